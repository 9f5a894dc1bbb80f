package imap

import (
	"bytes"
	"errors"
	"slices"
	"strings"
)

// While the client's view lags the upstream's (see mailbox), a command
// that names messages by sequence number cannot be relayed as it is: the
// numbers mean other messages upstream. The bridge rewrites it into its
// UID form using the client's own list, and maps the numbers in the
// responses back. Commands it cannot rewrite exactly make the view
// unreconcilable, and the client is closed rather than risk acting on the
// wrong message.

var errUntranslatable = errors.New("imap: command cannot be translated while the mailbox view lags")

// seqRange is an inclusive range of sequence numbers; hi == 0 means "*".
type seqRange struct{ lo, hi uint32 }

// parseSeqSet parses an RFC 3501 sequence-set ("1,3:5,7:*").
func parseSeqSet(b []byte) ([]seqRange, bool) {
	if len(b) == 0 {
		return nil, false
	}
	var out []seqRange
	for _, part := range bytes.Split(b, []byte{','}) {
		lo, hi, isRange := bytes.Cut(part, []byte{':'})
		a, ok := parseSeqNum(lo)
		if !ok {
			return nil, false
		}
		r := seqRange{a, a}
		if isRange {
			z, ok := parseSeqNum(hi)
			if !ok {
				return nil, false
			}
			r.hi = z
		}
		out = append(out, r)
	}
	return out, true
}

// parseSeqNum parses a seq-number: nz-number or "*" (returned as 0).
func parseSeqNum(b []byte) (uint32, bool) {
	if len(b) == 1 && b[0] == '*' {
		return 0, true
	}
	n, ok := parseNumber(b)
	return n, ok && n > 0
}

// isSeqSet reports whether b looks like a sequence set.
func isSeqSet(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c == ':' || c == ',' || c == '*') {
			return false
		}
	}
	return true
}

// uidSetFor maps a client sequence set to the UID set of the same
// messages. Numbers beyond the client's view are left out; an empty result
// becomes a UID no message has, so the upstream answers with nothing.
func uidSetFor(m *mailbox, set []seqRange) []byte {
	n := uint32(m.clientLen())
	var uids []uint32
	for _, r := range set {
		lo, hi := r.lo, r.hi
		if lo == 0 {
			lo = n
		}
		if hi == 0 {
			hi = n
		}
		if lo > hi {
			lo, hi = hi, lo
		}
		for i := lo; i <= hi && i <= n; i++ {
			if u := m.clientUID(i); u != 0 {
				uids = append(uids, u)
			}
		}
	}
	if len(uids) == 0 {
		return []byte("4294967295")
	}
	return formatUIDSet(uids)
}

// formatUIDSet renders UIDs (any order) as a compact set "1:3,7,9:12".
func formatUIDSet(uids []uint32) []byte {
	sorted := append([]uint32(nil), uids...)
	slices.Sort(sorted)
	var b []byte
	for i := 0; i < len(sorted); {
		j := i
		for j+1 < len(sorted) && (sorted[j+1] == sorted[j] || sorted[j+1] == sorted[j]+1) {
			j++
		}
		if len(b) > 0 {
			b = append(b, ',')
		}
		b = appendUint(b, uint64(sorted[i]))
		if sorted[j] != sorted[i] {
			b = append(b, ':')
			b = appendUint(b, uint64(sorted[j]))
		}
		i = j + 1
	}
	return b
}

// translateCommand rewrites the first line of a sequence-number command
// (FETCH, STORE, COPY, MOVE, SEARCH) into its UID form for a lagging view.
// line excludes the CRLF; the result has none either.
func translateCommand(m *mailbox, tag, name string, args []byte) ([]byte, error) {
	out := []byte(tag + " UID " + name + " ")
	switch name {
	case "FETCH", "STORE", "COPY", "MOVE":
		setb, rest := splitWord(args)
		set, ok := parseSeqSet(setb)
		if !ok {
			return nil, errUntranslatable
		}
		out = append(out, uidSetFor(m, set)...)
		if len(rest) > 0 {
			out = append(out, ' ')
			out = append(out, rest...)
		}
		return out, nil
	case "SEARCH":
		crit, err := translateSearch(m, args)
		if err != nil {
			return nil, err
		}
		return append(out, crit...), nil
	}
	return nil, errUntranslatable
}

// searchArgs is how many arguments each search key takes (RFC 3501
// §6.4.4, RFC 7162, RFC 9051, Gmail's X-GM-*). Keys not listed make the
// criteria untranslatable.
var searchArgs = map[string]int{
	"ALL": 0, "ANSWERED": 0, "DELETED": 0, "DRAFT": 0, "FLAGGED": 0, "NEW": 0,
	"OLD": 0, "RECENT": 0, "SEEN": 0, "UNANSWERED": 0, "UNDELETED": 0,
	"UNDRAFT": 0, "UNFLAGGED": 0, "UNSEEN": 0, "NOT": 0, "OR": 0, "FUZZY": 0,
	"BCC": 1, "BEFORE": 1, "BODY": 1, "CC": 1, "FROM": 1, "KEYWORD": 1,
	"LARGER": 1, "ON": 1, "SENTBEFORE": 1, "SENTON": 1, "SENTSINCE": 1,
	"SINCE": 1, "SMALLER": 1, "SUBJECT": 1, "TEXT": 1, "TO": 1, "UID": 1,
	"UNKEYWORD": 1, "OLDER": 1, "YOUNGER": 1, "CHARSET": 1,
	"X-GM-RAW": 1, "X-GM-MSGID": 1, "X-GM-THRID": 1, "X-GM-LABELS": 1,
	"EMAILID": 1, "THREADID": 1, "SAVEDBEFORE": 1, "SAVEDON": 1, "SAVEDSINCE": 1,
	"HEADER": 2,
	"MODSEQ": -1, // 1 or 3 arguments
}

// translateSearch replaces the sequence sets used as search keys with
// "UID <set>". RETURN options (ESEARCH results) and literals are not
// translated.
func translateSearch(m *mailbox, crit []byte) ([]byte, error) {
	toks, err := searchTokens(crit)
	if err != nil {
		return nil, err
	}
	var out []byte
	emit := func(t []byte) {
		if len(out) > 0 && out[len(out)-1] != '(' && t[0] != ')' {
			out = append(out, ' ')
		}
		out = append(out, t...)
	}
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		switch {
		case t[0] == '(' || t[0] == ')':
			emit(t)
			continue
		case isSeqSet(t):
			set, ok := parseSeqSet(t)
			if !ok {
				return nil, errUntranslatable
			}
			emit([]byte("UID"))
			emit(uidSetFor(m, set))
			continue
		}
		key := strings.ToUpper(string(t))
		if key == "RETURN" {
			return nil, errUntranslatable
		}
		n, ok := searchArgs[key]
		if !ok {
			return nil, errUntranslatable
		}
		if n == -1 { // MODSEQ [entry-name entry-type] mod-sequence
			n = 1
			if i+1 < len(toks) && toks[i+1][0] == '"' {
				n = 3
			}
		}
		if i+n >= len(toks) {
			return nil, errUntranslatable
		}
		emit(t)
		for k := 0; k < n; k++ {
			i++
			emit(toks[i])
		}
	}
	return out, nil
}

// searchTokens splits search criteria into atoms, quoted strings (kept
// with their quotes) and single parentheses.
func searchTokens(b []byte) ([][]byte, error) {
	var toks [][]byte
	for i := 0; i < len(b); {
		switch c := b[i]; {
		case c == ' ':
			i++
		case c == '(' || c == ')':
			toks = append(toks, b[i:i+1])
			i++
		case c == '"':
			j := i + 1
			for ; j < len(b) && b[j] != '"'; j++ {
				if b[j] == '\\' {
					j++
				}
			}
			if j >= len(b) {
				return nil, errUntranslatable
			}
			toks = append(toks, b[i:j+1])
			i = j + 1
		case c == '{':
			return nil, errUntranslatable // a literal: not on the first line
		default:
			j := i
			for j < len(b) && b[j] != ' ' && b[j] != '(' && b[j] != ')' {
				j++
			}
			toks = append(toks, b[i:j])
			i = j
		}
	}
	return toks, nil
}

// translateSearchResult maps a "* SEARCH uid uid ... [(MODSEQ n)]" line
// answering a translated SEARCH to client sequence numbers, dropping
// messages the client does not see. line includes its CRLF.
func translateSearchResult(m *mailbox, line []byte) []byte {
	body := trimEOL(line)
	rest := body[len("* SEARCH"):]
	var suffix []byte
	if i := bytes.IndexByte(rest, '('); i >= 0 {
		suffix = rest[i:]
		rest = rest[:i]
	}
	out := []byte("* SEARCH")
	for len(rest) > 0 {
		var w []byte
		w, rest = splitWord(bytes.TrimLeft(rest, " "))
		uid, ok := parseNumber(w)
		if !ok {
			continue
		}
		if n := m.clientSeq(uid); n != 0 {
			out = append(out, ' ')
			out = appendUint(out, uint64(n))
		}
	}
	if len(suffix) > 0 {
		out = append(out, ' ')
		out = append(out, suffix...)
	}
	return append(out, '\r', '\n')
}

// rewriteSeqPrefix replaces the number of a "* n TYPE ..." line with
// client's number n2.
func rewriteSeqPrefix(line []byte, n2 uint32) []byte {
	rest := line[2:]
	_, after := splitWord(rest)
	out := make([]byte, 0, len(line)+4)
	out = append(out, "* "...)
	out = appendUint(out, uint64(n2))
	out = append(out, ' ')
	return append(out, after...)
}
