package imap

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// IMAP framing (RFC 3501 §2.2, RFC 7888): a command or response is a line,
// possibly interrupted by literals. A line ending in "{n}" CRLF (or
// "{n+}" for a non-synchronizing literal, "~{n}" for a binary one, RFC
// 3516) is followed by exactly n octets, then the rest of the line. The
// bridge counts literal octets and never scans them for CRLF.

var (
	errLineTooLong = errors.New("imap: line too long")
	errBadLiteral  = errors.New("imap: malformed literal")
)

// literal describes the literal announced at the end of a line.
type literal struct {
	size    int64
	nonSync bool // {n+}: the sender does not wait for a continuation
}

// parseLiteral looks at the end of line (which includes its CRLF or LF) for
// a literal marker. ok is false when the line announces no literal. A
// marker whose size does not parse returns errBadLiteral.
func parseLiteral(line []byte) (lit literal, ok bool, err error) {
	l := trimEOL(line)
	if len(l) < 3 || l[len(l)-1] != '}' {
		return literal{}, false, nil
	}
	i := bytes.LastIndexByte(l, '{')
	if i < 0 {
		return literal{}, false, nil
	}
	num := l[i+1 : len(l)-1]
	if len(num) > 0 && num[len(num)-1] == '+' {
		lit.nonSync = true
		num = num[:len(num)-1]
	}
	if len(num) == 0 || len(num) > 12 {
		return literal{}, false, errBadLiteral
	}
	var n int64
	for _, c := range num {
		if c < '0' || c > '9' {
			// "{abc}" at the end of a line is not a literal marker but
			// text (e.g. a quoted string ending in "}"): not our business.
			return literal{}, false, nil
		}
		n = n*10 + int64(c-'0')
	}
	lit.size = n
	return lit, true, nil
}

// trimEOL removes a trailing CRLF or LF.
func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

// readLine reads one line through its LF from br. It returns a slice of
// br's buffer when the line fits (valid until the next read), else a copy
// grown in *scratch. Lines longer than max return errLineTooLong after
// consuming through the end of the line (or up to 1 MiB more, whichever
// is first) so the caller can answer BAD and go on.
func readLine(br *connReader, max int, scratch *[]byte) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err == nil {
		if len(line) > max {
			return nil, errLineTooLong
		}
		return line, nil
	}
	if err != bufio.ErrBufferFull {
		if err == io.EOF && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	buf := append((*scratch)[:0], line...)
	for {
		line, err = br.ReadSlice('\n')
		if len(buf)+len(line) > max {
			*scratch = buf[:0]
			return nil, skipLine(br, err)
		}
		buf = append(buf, line...)
		if err == nil {
			*scratch = buf
			return buf, nil
		}
		if err != bufio.ErrBufferFull {
			*scratch = buf[:0]
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

// skipLine discards through the end of an overlong line, bounded so a peer
// cannot keep us reading forever.
func skipLine(br *connReader, lastErr error) error {
	const bound = 1 << 20
	skipped := 0
	for lastErr == bufio.ErrBufferFull && skipped < bound {
		var line []byte
		line, lastErr = br.ReadSlice('\n')
		skipped += len(line)
	}
	if lastErr == nil {
		return errLineTooLong
	}
	if lastErr == bufio.ErrBufferFull {
		return io.ErrUnexpectedEOF // treat as a broken peer: caller closes
	}
	return lastErr
}

// isAtomChar reports whether c may appear in an atom (RFC 3501 §9
// ATOM-CHAR: any CHAR except atom-specials).
func isAtomChar(c byte) bool {
	if c <= ' ' || c >= 0x7f {
		return false
	}
	switch c {
	case '(', ')', '{', '%', '*', '"', '\\', ']':
		return false
	}
	return true
}

// isTagChar reports whether c may appear in a tag (ASTRING-CHAR minus "+").
func isTagChar(c byte) bool {
	return c == ']' || (isAtomChar(c) && c != '+')
}

// splitWord returns the leading run of bytes of b up to a space (or the
// end), and the rest after that space.
func splitWord(b []byte) (word, rest []byte) {
	if i := bytes.IndexByte(b, ' '); i >= 0 {
		return b[:i], b[i+1:]
	}
	return b, nil
}

// upperASCII returns s in upper case, allocating only when needed.
func upperASCII(b []byte) string {
	for _, c := range b {
		if 'a' <= c && c <= 'z' {
			return string(bytes.ToUpper(b))
		}
	}
	return string(b)
}

// parseNumber parses a decimal uint32 (RFC 3501 nz-number / number).
func parseNumber(b []byte) (uint32, bool) {
	if len(b) == 0 || len(b) > 10 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	if n > 0xffffffff {
		return 0, false
	}
	return uint32(n), true
}
