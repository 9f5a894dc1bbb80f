package fakegmail

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
)

// RFC 2449 §4: a command line is at most 255 octets including CRLF, a
// keyword 3 or 4 characters, each argument at most 40 characters.
const (
	pop3MaxLine    = 255
	pop3MaxArg     = 40
	pop3MaxSASL    = 16 << 10 // RFC 5034 §4: SASL responses are not held to 255
	pop3MaxArgs    = 4
	pop3KeywordMin = 3
	pop3KeywordMax = 4
)

var (
	errPOP3LineTooLong = errors.New("fakegmail: pop3 command line too long")
	errPOP3Syntax      = errors.New("fakegmail: pop3 syntax error")
)

// pop3Command is one parsed POP3 command line.
type pop3Command struct {
	Verb string   // upper case
	Args []string // as sent
}

// parsePOP3Command parses one command line (with its CRLF or LF). It is
// the parser that reads untrusted bytes; FuzzPOP3Command exercises it.
func parsePOP3Command(line []byte) (pop3Command, error) {
	if len(line) > pop3MaxLine {
		return pop3Command{}, errPOP3LineTooLong
	}
	l, ok := bytes.CutSuffix(line, []byte("\n"))
	if !ok {
		return pop3Command{}, errPOP3Syntax
	}
	l = bytes.TrimSuffix(l, []byte("\r"))
	for _, ch := range l {
		// Printable ASCII and space only: no controls, no 8-bit.
		if ch < 0x20 || ch > 0x7e {
			return pop3Command{}, errPOP3Syntax
		}
	}
	fields := strings.Split(string(l), " ")
	verb := fields[0]
	if len(verb) < pop3KeywordMin || len(verb) > pop3KeywordMax {
		return pop3Command{}, errPOP3Syntax
	}
	for i := 0; i < len(verb); i++ {
		ch := verb[i]
		if !(ch >= 'A' && ch <= 'Z' || ch >= 'a' && ch <= 'z') {
			return pop3Command{}, errPOP3Syntax
		}
	}
	args := fields[1:]
	if len(args) > pop3MaxArgs {
		return pop3Command{}, errPOP3Syntax
	}
	verb = strings.ToUpper(verb)
	for i, a := range args {
		// RFC 5034 §4: AUTH's initial response is exempt from the
		// 40-character argument limit (the 255-octet line limit stays).
		if a == "" || len(a) > pop3MaxArg && !(verb == "AUTH" && i == 1) {
			return pop3Command{}, errPOP3Syntax
		}
	}
	return pop3Command{Verb: verb, Args: args}, nil
}

// msgNumber parses a message-number argument (RFC 1939: 1-based decimal).
func msgNumber(s string) (int, bool) {
	if s == "" || len(s) > 9 || s[0] == '0' {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, false
	}
	return n, true
}

// dotStuff appends data to dst as a POP3 multi-line body (RFC 1939 §3):
// lines starting with "." get another ".", bare LF becomes CRLF, the data
// ends with CRLF, and ".\r\n" terminates it.
func dotStuff(dst, data []byte) []byte {
	atLineStart := true
	for i, ch := range data {
		if atLineStart && ch == '.' {
			dst = append(dst, '.')
		}
		if ch == '\n' && (i == 0 || data[i-1] != '\r') {
			dst = append(dst, '\r')
		}
		dst = append(dst, ch)
		atLineStart = ch == '\n'
	}
	if !atLineStart {
		dst = append(dst, '\r', '\n')
	}
	return append(dst, '.', '\r', '\n')
}

// crlfSize is the size of data as RETR sends it before dot-stuffing (bare
// LF counted as CRLF, a final CRLF added), the size LIST reports.
func crlfSize(data []byte) int {
	n := len(data)
	for i, ch := range data {
		if ch == '\n' && (i == 0 || data[i-1] != '\r') {
			n++
		}
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		n += 2
	}
	return n
}

// topLines is data's header, the blank line, and the first n body lines
// (RFC 1939 §7 TOP).
func topLines(data []byte, n int) []byte {
	i := bytes.Index(data, []byte("\r\n\r\n"))
	sep := 4
	if j := bytes.Index(data, []byte("\n\n")); j >= 0 && (i < 0 || j < i) {
		i, sep = j, 2
	}
	if i < 0 {
		return data
	}
	end := i + sep
	for k := 0; k < n && end < len(data); k++ {
		nl := bytes.IndexByte(data[end:], '\n')
		if nl < 0 {
			end = len(data)
			break
		}
		end += nl + 1
	}
	return data[:end]
}
