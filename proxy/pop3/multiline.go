package pop3

import (
	"bytes"
	"time"
)

// Multi-line responses (RFC 1939 §3) end with a line holding a single
// "."; lines of the body that begin with "." are dot-stuffed by the
// server. The relay never unstuffs or rewrites the body: it copies it out
// of the upstream reader's buffer in whatever chunks arrive and only
// looks for the terminator, CRLF "." CRLF, where the first CRLF is the
// end of the previous line (or of the status line).

// terminator is the end of a multi-line response, including the CRLF that
// ends the line before it.
const terminator = "\r\n.\r\n"

// termScanner finds the terminator in a stream fed chunk by chunk. It
// remembers the last bytes of what it has seen so a terminator split
// across chunks is found too.
type termScanner struct {
	tail  [len(terminator) - 1]byte
	ntail int
}

// newTermScanner returns a scanner positioned at the start of a line, as
// after a status line: ".\r\n" as the very first body line terminates.
func newTermScanner() termScanner {
	var s termScanner
	s.ntail = copy(s.tail[:], "\r\n")
	return s
}

// scan looks for the terminator in p, which follows everything scanned
// before. It returns the length of the prefix of p that ends with the
// terminator, or -1 when p does not complete one.
func (s *termScanner) scan(p []byte) int {
	if s.ntail > 0 && len(p) > 0 {
		// A terminator starting in the tail: join the tail with the
		// first bytes of p. A match starting inside p is found below.
		var b [2*len(terminator) - 2]byte
		k := copy(b[:], s.tail[:s.ntail])
		m := copy(b[k:], p[:min(len(p), len(terminator)-1)])
		if i := bytes.Index(b[:k+m], []byte(terminator)); i >= 0 && i < k {
			return i + len(terminator) - k
		}
	}
	// Inside p: look for the terminator's "." and check around it. '.'
	// is far rarer than CR or LF (base64 attachments, most of a large
	// message's bytes, have none), so IndexByte skips most of p at memory
	// speed where a search for CRLF would stop at every line. A "." too
	// close to either end of p is left to the check above on the next
	// chunk (or on this one, for the start).
	for off := 0; ; {
		i := bytes.IndexByte(p[off:], '.')
		if i < 0 {
			break
		}
		i += off
		if i >= 2 && i+2 < len(p) && p[i-2] == '\r' && p[i-1] == '\n' && p[i+1] == '\r' && p[i+2] == '\n' {
			return i + 3
		}
		off = i + 1
	}
	// Keep the last len(terminator)-1 bytes of tail+p.
	if len(p) >= len(s.tail) {
		s.ntail = copy(s.tail[:], p[len(p)-len(s.tail):])
	} else {
		keep := min(s.ntail, len(s.tail)-len(p))
		copy(s.tail[:], s.tail[s.ntail-keep:s.ntail])
		s.ntail = keep + copy(s.tail[keep:], p)
	}
	return -1
}

// relayMulti forwards a multi-line response whose status line (statusLen
// octets, still in the upstream buffer) was +OK, up to and including its
// terminator, writing it to the client in chunks of at least relayChunk
// octets (or through the terminator). An
// upstream failure returns a *cutError with touched set when any byte
// already went to the client (then it cannot be replayed: RFC 1939 offers
// no way to take back part of a response).
func (s *session) relayMulti(statusLen int) error {
	u := s.up
	sc := newTermScanner()
	scanned := statusLen // buffered octets already scanned (the status line is not part of the body)
	touched := false
	for {
		buf, _ := u.r.Peek(u.r.Buffered())
		if end := sc.scan(buf[scanned:]); end >= 0 {
			n := scanned + end
			if err := s.write(buf[:n]); err != nil {
				return err
			}
			u.r.Discard(n)
			u.idle = true
			return nil
		}
		scanned = len(buf)
		if scanned >= relayChunk {
			if err := s.write(buf); err != nil {
				return err
			}
			touched = true
			u.r.Discard(scanned)
			scanned = 0
		}
		// Wait for more of the response before writing again: an upstream
		// that sends small TLS records (Dovecot: 4 KiB) must not become one
		// client write each. Holding bytes back cannot stall: the response
		// is not over until its terminator arrives.
		u.conn.SetReadDeadline(time.Now().Add(u.timeout))
		if _, err := u.r.Peek(scanned + 1); err != nil {
			return newCut(err, touched)
		}
	}
}

// relayChunk is how much of a multi-line response the bridge gathers
// before writing it to the client.
const relayChunk = 16 << 10
