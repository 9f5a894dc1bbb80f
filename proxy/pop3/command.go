package pop3

import (
	"bytes"
	"errors"
	"strconv"
)

// Line limits. RFC 2449 §4 raises the POP3 command line limit to 255
// octets including CRLF; every command the bridge relays upstream stays
// within it. The local AUTHORIZATION dialogue is more lenient: some legacy
// clients send AUTH PLAIN initial responses and PASS lines longer than 255
// octets (RFC 5034 §4 forbids it, they do it anyway), and SASL responses
// have no line limit at all in RFC 5034 beyond "the mechanism's maximum".
// 2 KiB holds any sane user name and password three times over.
const (
	maxCommandLine  = 255  // transaction state, RFC 2449 §4
	maxPreauthLine  = 2048 // AUTHORIZATION state: commands and SASL responses
	maxUpstreamLine = 4096 // status and listing lines from the upstream (RFC 2449 §4: 512)
)

// command is one parsed client command line. Keyword is upper-cased;
// Args are the space-separated words after it; Rest is everything after
// the keyword and its single separating space, verbatim (PASS takes the
// rest of the line as the password, spaces included: RFC 1939 §7).
type command struct {
	Keyword string
	Args    []string
	Rest    string
}

var errEmptyCommand = errors.New("pop3: empty command line")

// parseCommand splits a command line (without CRLF). Keywords are 3 or 4
// printable characters in RFC 1939 §3, but the parser accepts any word and
// leaves judging it to the state machine. It never fails except on an
// empty or all-blank line, so garbage gets "-ERR Unknown command".
func parseCommand(line []byte) (command, error) {
	line = bytes.TrimLeft(line, " \t")
	if len(line) == 0 {
		return command{}, errEmptyCommand
	}
	kw := line
	var rest []byte
	if i := bytes.IndexAny(line, " \t"); i >= 0 {
		kw, rest = line[:i], line[i+1:]
	}
	cmd := command{Keyword: upperASCII(kw), Rest: string(rest)}
	for _, f := range bytes.Fields(rest) {
		cmd.Args = append(cmd.Args, string(f))
	}
	return cmd, nil
}

// upperASCII upper-cases ASCII letters only, so a keyword's case folding
// never depends on Unicode tables (a keyword like "ſtat" must not become
// "STAT").
func upperASCII(b []byte) string {
	out := make([]byte, len(b))
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		out[i] = c
	}
	return string(out)
}

// maxMessageNumber bounds message numbers the parser accepts; a maildrop
// larger than this is not a POP3 maildrop anyone can use.
const maxMessageNumber = 1 << 30

// parseNumber parses a message number or line count: decimal digits only
// (RFC 1939 §3: "a message-number argument ... may not refer to a message
// marked as deleted"; the syntax is 1*DIGIT), no sign, no leading "+".
// min is 1 for message numbers and 0 for TOP's line count.
func parseNumber(s string, min int) (int, bool) {
	if len(s) == 0 || len(s) > 10 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < min || n > maxMessageNumber {
		return 0, false
	}
	return n, true
}

// txnCommand is a transaction-state command validated for relaying: its
// shape (argument count and kinds) is known, so the shape of the response
// (single- or multi-line) is too.
type txnCommand struct {
	Keyword string
	// Msg is the message number argument, 0 when the command has none.
	Msg int
	// Lines is TOP's line count (-1 when not TOP).
	Lines int
}

// multiLine reports whether a positive answer to the command is a
// multi-line response (RFC 1939 §5, RFC 2449 §5 for CAPA).
func (c txnCommand) multiLine() bool {
	switch c.Keyword {
	case "RETR", "TOP", "CAPA":
		return true
	case "LIST", "UIDL":
		return c.Msg == 0
	}
	return false
}

// line is the canonical command line sent upstream for msg (the message
// number in the upstream's session), without CRLF. Rebuilding the line
// instead of forwarding the client's bytes guarantees that the upstream
// sees exactly the command whose response shape the relay expects.
func (c txnCommand) line(msg int) []byte {
	b := make([]byte, 0, 24)
	b = append(b, c.Keyword...)
	if c.Msg > 0 {
		b = append(b, ' ')
		b = strconv.AppendInt(b, int64(msg), 10)
	}
	if c.Lines >= 0 {
		b = append(b, ' ')
		b = strconv.AppendInt(b, int64(c.Lines), 10)
	}
	return b
}

var errSyntax = errors.New("pop3: invalid arguments")

// validateTxn checks a transaction-state command's arguments (RFC 1939 §5,
// RFC 2449 §5). ok is false for keywords the relay does not know, whose
// response shape it cannot frame; err is errSyntax for known keywords with
// bad arguments.
func validateTxn(cmd command) (tc txnCommand, ok bool, err error) {
	tc = txnCommand{Keyword: cmd.Keyword, Lines: -1}
	n := len(cmd.Args)
	switch cmd.Keyword {
	case "STAT", "NOOP", "RSET", "QUIT", "CAPA":
		if n != 0 {
			return tc, true, errSyntax
		}
	case "LIST", "UIDL":
		if n > 1 {
			return tc, true, errSyntax
		}
		if n == 1 {
			m, good := parseNumber(cmd.Args[0], 1)
			if !good {
				return tc, true, errSyntax
			}
			tc.Msg = m
		}
	case "RETR", "DELE":
		if n != 1 {
			return tc, true, errSyntax
		}
		m, good := parseNumber(cmd.Args[0], 1)
		if !good {
			return tc, true, errSyntax
		}
		tc.Msg = m
	case "TOP":
		if n != 2 {
			return tc, true, errSyntax
		}
		m, good := parseNumber(cmd.Args[0], 1)
		l, good2 := parseNumber(cmd.Args[1], 0)
		if !good || !good2 {
			return tc, true, errSyntax
		}
		tc.Msg, tc.Lines = m, l
	default:
		return tc, false, nil
	}
	return tc, true, nil
}
