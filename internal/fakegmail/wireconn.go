package fakegmail

import (
	"bytes"
	"compress/flate"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// wireConn is the net.Conn that go-imap's imapserver and go-smtp's server
// are given instead of their socket. Both libraries own their socket and
// interpret every command, so the knobs the fake needs (cut a session
// before it answers a given command, write a BYE between two responses,
// cut inside a literal, answer ID, rewrite the greeting and capability
// lines as Gmail writes them) live here, below the library:
//
//   - the read side hands the library one client line at a time (literals
//     and BDAT chunks pass unexamined) and asks the framer about each line
//     only when the library asks for more bytes, that is once everything
//     before it has been answered;
//   - the write side sees the library's output line by line (literals pass
//     through), lets the framer rewrite lines, and knows when the stream
//     is between responses, where a kick may write its BYE.
type wireConn struct {
	net.Conn          // the TLS connection
	raw      net.Conn // the TCP connection beneath it
	fr       framer
	sess     *session
	proto    string
	onClose  func()

	// Read side: touched only by the library's reading goroutine.
	buf  []byte    // backing store of in
	in   []byte    // read from the network, not yet classified
	out  []byte    // classified, to be handed to the library
	lit  int64     // octets to pass unexamined (a literal, a BDAT chunk)
	cont bool      // the next line continues a command (after a literal)
	long bool      // inside a line longer than buf, passed on in pieces
	tail []byte    // the last bytes of such a long line
	rerr error     // network read error, returned once in is drained
	r    io.Reader // the network: Conn, or a DEFLATE reader over it

	mu       sync.Mutex // guards the write side below and every write to Conn
	wline    []byte     // partial response line
	wlit     int64      // response literal octets still to pass through
	boundary bool       // the output is between two responses
	cut      *responseCut
	syncLit  int64 // IMAP: a synchronizing literal waiting for "+"
	grantLit int64 // IMAP: that literal, granted by "+", for the reader
	closed   bool
	w        io.Writer     // the network: Conn, or a DEFLATE writer over it
	fw       *flate.Writer // set once COMPRESS=DEFLATE is active

	// pending holds a kick's words until the output reaches a boundary.
	// It is set without mu: a writer busy inside a long literal holds mu,
	// and mutex fairness must not decide whether the BYE lands before or
	// after the next response.
	pending atomic.Pointer[string]

	closeOnce sync.Once
	done      chan struct{} // closed when the connection is closed
}

// readAction is a framer's verdict on a client line.
type readAction int

const (
	actPass readAction = iota // hand the line to the library
	actDrop                   // the framer answered it; drop it
	actCut                    // the framer closed the connection
)

// framer holds a protocol's view of the byte stream.
type framer interface {
	// clientLine classifies a client line (LF included; a long line's
	// first piece has no LF). cont says the line continues a command.
	// For actPass it also returns how many raw octets follow the line.
	clientLine(c *wireConn, line []byte, cont bool) (readAction, int64)
	// longLineEnd returns the raw octets that follow a line too long to
	// classify whole, given its last bytes.
	longLineEnd(c *wireConn, tail []byte) int64
	// serverLine may rewrite a complete response line. It returns the
	// bytes to write, the literal octets that follow it, and whether the
	// stream is then between responses.
	serverLine(c *wireConn, line []byte) (out []byte, lit int64, boundary bool)
}

// responseCut is an armed KickMidResponse or KickNoReply.
type responseCut struct {
	mode  KickMode
	text  string // written at the cut (IMAP: Dovecot's BYE inside the literal)
	fault *armedFault
	left  int64 // mid-response inside a literal: octets still to write
	inLit bool
}

// wireBufMax bounds the read buffer (a variable so a test can exercise
// lines longer than it).
var wireBufMax = 64 << 10

const (
	// The read buffer starts small (an idle session costs little) and
	// grows for long command lines up to wireBufMax; a longer line is
	// passed on in pieces.
	wireBufSize = 4 << 10
	kickTimeout = 3 * time.Second
	tailSize    = 32
)

func newWireConn(tlsConn, raw net.Conn, proto string, fr framer) *wireConn {
	return &wireConn{
		Conn:     tlsConn,
		r:        tlsConn,
		w:        tlsConn,
		raw:      raw,
		fr:       fr,
		proto:    proto,
		buf:      make([]byte, wireBufSize),
		boundary: true,
		done:     make(chan struct{}),
	}
}

// Read hands the library classified client bytes.
func (c *wireConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if len(c.out) > 0 {
			n := copy(p, c.out)
			c.out = c.out[n:]
			return n, nil
		}
		c.mu.Lock()
		if c.grantLit > 0 {
			c.lit, c.grantLit = c.grantLit, 0
		}
		c.mu.Unlock()
		if c.lit > 0 {
			if len(c.in) > 0 {
				k := min(int64(len(c.in)), c.lit)
				c.out, c.in = c.in[:k], c.in[k:]
				c.endLiteral(k)
				continue
			}
			if c.rerr != nil {
				return 0, c.rerr
			}
			n, err := c.r.Read(p[:min(int64(len(p)), c.lit)])
			c.endLiteral(int64(n))
			return n, err
		}
		if i := bytes.IndexByte(c.in, '\n'); i >= 0 {
			line := c.in[:i+1]
			c.in = c.in[i+1:]
			if c.long {
				c.long = false
				c.tail = appendTail(c.tail, line)
				c.out, c.lit = line, c.fr.longLineEnd(c, c.tail)
				continue
			}
			act, lit := c.fr.clientLine(c, line, c.cont)
			c.cont = false
			switch act {
			case actPass:
				c.out, c.lit = line, lit
			case actCut:
				c.in = nil
				return 0, net.ErrClosed
			}
			continue
		}
		if c.rerr != nil {
			if len(c.in) > 0 {
				c.out, c.in = c.in, nil
				continue
			}
			return 0, c.rerr
		}
		if len(c.in) == len(c.buf) && len(c.buf) < wireBufMax {
			grown := make([]byte, 2*len(c.buf))
			c.in = grown[:copy(grown, c.in)]
			c.buf = grown
		}
		if len(c.in) == len(c.buf) {
			// A line longer than the buffer: classify its start, pass it
			// on in pieces, and keep its tail for a literal marker.
			if !c.long {
				act, _ := c.fr.clientLine(c, c.in, c.cont)
				c.cont = false
				if act == actCut {
					return 0, net.ErrClosed
				}
				c.long = true
				c.tail = c.tail[:0]
			}
			c.tail = appendTail(c.tail, c.in)
			c.out, c.in = c.in, c.in[len(c.in):]
			continue
		}
		if len(c.in) > 0 && &c.in[0] != &c.buf[0] {
			n := copy(c.buf, c.in)
			c.in = c.buf[:n]
		} else if len(c.in) == 0 {
			c.in = c.buf[:0]
		}
		n, err := c.r.Read(c.buf[len(c.in):])
		c.in = c.buf[:len(c.in)+n]
		if err != nil {
			c.rerr = err
		}
	}
}

func (c *wireConn) endLiteral(n int64) {
	c.lit -= n
	if c.lit == 0 {
		c.cont = true
	}
}

func appendTail(tail, b []byte) []byte {
	if len(b) >= tailSize {
		return append(tail[:0], b[len(b)-tailSize:]...)
	}
	tail = append(tail, b...)
	if len(tail) > tailSize {
		tail = append(tail[:0], tail[len(tail)-tailSize:]...)
	}
	return tail
}
