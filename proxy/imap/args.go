package imap

import (
	"bytes"
	"errors"
)

// segment is one piece of a client command: a run of line text and the
// literal that followed it (nil when the line ended the command).
type segment struct {
	text []byte // without the literal marker's CRLF; includes "{n}"
	lit  []byte
}

var errSyntax = errors.New("imap: syntax error")

// argScanner tokenizes the arguments of a command made of segments, for
// the few commands the bridge interprets itself (LOGIN, AUTHENTICATE,
// SELECT, ENABLE, ...). Arguments are atoms, quoted strings or literals
// (RFC 3501 §4).
type argScanner struct {
	segs []segment
	i    int    // current segment
	rest []byte // unread text of segs[i]
}

func newArgScanner(segs []segment, rest []byte) *argScanner {
	return &argScanner{segs: segs, rest: rest}
}

// done reports whether only spaces remain.
func (s *argScanner) done() bool {
	return len(bytes.TrimLeft(s.rest, " ")) == 0 && s.i == len(s.segs)-1
}

// astring returns the next astring argument: an atom (ASTRING-CHAR run),
// a quoted string or a literal.
func (s *argScanner) astring() ([]byte, error) {
	s.rest = bytes.TrimLeft(s.rest, " ")
	if len(s.rest) == 0 {
		return nil, errSyntax
	}
	switch s.rest[0] {
	case '"':
		return s.quoted()
	case '{', '~':
		return s.literal()
	}
	n := 0
	for n < len(s.rest) && (isAtomChar(s.rest[n]) || s.rest[n] == ']') {
		n++
	}
	if n == 0 {
		return nil, errSyntax
	}
	v := s.rest[:n]
	s.rest = s.rest[n:]
	return v, nil
}

// atom returns the next atom.
func (s *argScanner) atom() ([]byte, error) {
	s.rest = bytes.TrimLeft(s.rest, " ")
	n := 0
	for n < len(s.rest) && isAtomChar(s.rest[n]) {
		n++
	}
	if n == 0 {
		return nil, errSyntax
	}
	v := s.rest[:n]
	s.rest = s.rest[n:]
	return v, nil
}

func (s *argScanner) quoted() ([]byte, error) {
	var out []byte
	for i := 1; i < len(s.rest); i++ {
		switch c := s.rest[i]; c {
		case '"':
			s.rest = s.rest[i+1:]
			if out == nil {
				out = []byte{}
			}
			return out, nil
		case '\\':
			i++
			if i == len(s.rest) || (s.rest[i] != '"' && s.rest[i] != '\\') {
				return nil, errSyntax
			}
			out = append(out, s.rest[i])
		case '\r', '\n', 0:
			return nil, errSyntax
		default:
			out = append(out, c)
		}
	}
	return nil, errSyntax
}

// literal consumes a "{n}" / "{n+}" / "~{n}" marker that must end the
// current segment's text and returns the segment's literal.
func (s *argScanner) literal() ([]byte, error) {
	if s.i >= len(s.segs)-1 || s.segs[s.i].lit == nil {
		return nil, errSyntax
	}
	r := s.rest
	if r[0] == '~' {
		r = r[1:]
	}
	if len(r) < 3 || r[0] != '{' || r[len(r)-1] != '}' || bytes.IndexByte(r, ' ') >= 0 {
		return nil, errSyntax
	}
	v := s.segs[s.i].lit
	s.i++
	s.rest = s.segs[s.i].text
	return v, nil
}

// remaining returns the unread text of the current segment, trimmed; used
// for trailing arguments such as a SASL initial response.
func (s *argScanner) remaining() []byte {
	return bytes.TrimLeft(s.rest, " ")
}

func appendUint(dst []byte, n uint64) []byte {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return append(dst, b[i:]...)
}
