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

const (
	wireBufSize = 16 << 10
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

// Write passes the library's output through the framer.
//
// It never fails: once the connection is closed (a kick, a cut, a client
// gone) further output is discarded. imapmemserver leaves its response
// encoder locked when a write fails inside a literal, and imapserver then
// blocks forever on its next response; a silent sink lets the library
// finish the response and notice the closed connection on its next read.
func (c *wireConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(p)
	for len(p) > 0 && !c.closed {
		if c.wlit > 0 {
			k := int(min(int64(len(p)), c.wlit))
			if c.cut != nil && c.cut.inLit {
				if int64(k) >= c.cut.left {
					c.writeLocked(p[:c.cut.left])
					c.cutNowLocked()
					break
				}
				c.cut.left -= int64(k)
			}
			c.writeLocked(p[:k])
			p, c.wlit = p[k:], c.wlit-int64(k)
			continue
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			c.wline = append(c.wline, p...)
			c.boundary = false
			break
		}
		c.wline = append(c.wline, p[:i+1]...)
		p = p[i+1:]
		out, lit, boundary := c.fr.serverLine(c, c.wline)
		if c.cut != nil && !bytes.HasPrefix(out, []byte("+")) {
			if c.startCutLocked(out, lit) {
				break
			}
		}
		c.writeLocked(out)
		c.wline = c.wline[:0]
		c.wlit = lit
		c.boundary = boundary && lit == 0
		if c.boundary {
			if line := c.pending.Swap(nil); line != nil {
				c.kickLocked(*line)
			}
		}
	}
	return n, nil
}

// writeLocked writes to the network; a failure closes the connection.
func (c *wireConn) writeLocked(b []byte) {
	_, err := c.w.Write(b)
	if err == nil && c.fw != nil {
		err = c.fw.Flush()
	}
	if err != nil {
		c.closed = true
		c.bareClose()
	}
}

// startDeflate turns both directions into DEFLATE streams (RFC 4978 §4).
// It runs on the reading goroutine right after the tagged OK was written;
// bytes already read beyond the COMPRESS line are compressed ones.
func (c *wireConn) startDeflate() {
	rest := append([]byte(nil), c.in...)
	c.in = nil
	c.r = flate.NewReader(io.MultiReader(bytes.NewReader(rest), c.Conn))
	c.mu.Lock()
	defer c.mu.Unlock()
	// Level 1: the fake favours speed; any level is valid DEFLATE.
	c.fw, _ = flate.NewWriter(c.Conn, flate.BestSpeed)
	c.w = c.fw
}

func (c *wireConn) compressed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fw != nil
}

// startCutLocked applies an armed response cut to the first response line
// out; it reports whether the connection is now closed.
func (c *wireConn) startCutLocked(out []byte, lit int64) bool {
	switch c.cut.mode {
	case KickNoReply:
		c.cutNowLocked()
		return true
	case KickMidResponse:
		if lit > 0 {
			// Cut inside the literal, after half of it.
			c.cut.inLit, c.cut.left = true, lit/2
			if c.cut.left == 0 {
				c.writeLocked(out)
				c.cutNowLocked()
				return true
			}
			return false
		}
		c.writeLocked(out[:len(out)/2])
		c.cutNowLocked()
		return true
	}
	return false
}

// cutNowLocked ends an armed response cut: its text, then a TCP close.
func (c *wireConn) cutNowLocked() {
	cut := c.cut
	c.cut = nil
	if cut.text != "" {
		c.Conn.SetWriteDeadline(time.Now().Add(kickTimeout))
		c.writeLocked([]byte(cut.text))
	}
	c.closed = true
	c.bareClose()
	cut.fault.fire()
}

// armCut arms a KickMidResponse or KickNoReply for the next response.
func (c *wireConn) armCut(f *armedFault, text string) {
	c.mu.Lock()
	c.cut = &responseCut{mode: f.Kick, text: text, fault: f}
	c.mu.Unlock()
}

// applyFault acts on a fault that matched a client line about to be handed
// to the library.
func (c *wireConn) applyFault(f *armedFault, midText string) readAction {
	switch f.Kick {
	case KickMidResponse:
		c.armCut(f, midText)
		return actPass
	case KickNoReply:
		c.armCut(f, "")
		return actPass
	}
	if line := byeLine(c.proto, f.Kick); line != "" {
		c.mu.Lock()
		c.kickLocked(line)
		c.mu.Unlock()
	} else {
		c.bareClose()
	}
	f.fire()
	return actCut
}

// kickLocked writes line and closes the connection (TLS close_notify
// included).
func (c *wireConn) kickLocked(line string) {
	if c.closed {
		return
	}
	c.closed = true
	c.Conn.SetWriteDeadline(time.Now().Add(kickTimeout))
	c.writeLocked([]byte(line))
	c.closeOnce.Do(func() {
		c.Conn.Close()
		close(c.done)
	})
}

// end implements ender: the BYE goes out at the next boundary between
// responses; a writer stuck for kickTimeout gets a bare close.
func (c *wireConn) end(mode KickMode) {
	line := byeLine(c.proto, mode)
	if line == "" {
		c.bareClose()
		return
	}
	fired := make(chan struct{})
	t := time.AfterFunc(kickTimeout, func() {
		defer close(fired)
		c.bareClose()
	})
	defer func() {
		if !t.Stop() {
			<-fired
		}
	}()
	c.pending.Store(&line)
	c.mu.Lock()
	if c.boundary {
		if l := c.pending.Swap(nil); l != nil {
			c.kickLocked(*l)
		}
	}
	c.mu.Unlock()
	<-c.done
}

func (c *wireConn) closeNow() { c.bareClose() }

// bareClose closes the TCP connection without TLS close_notify, like a
// dropped connection. It never blocks on the write side.
func (c *wireConn) bareClose() {
	c.closeOnce.Do(func() {
		c.raw.Close()
		close(c.done)
	})
}

// Close is the library closing its connection.
func (c *wireConn) Close() error {
	c.closeOnce.Do(func() {
		c.raw.SetDeadline(time.Now().Add(kickTimeout))
		c.Conn.Close()
		close(c.done)
	})
	c.mu.Lock()
	c.closed = true
	onClose := c.onClose
	c.onClose = nil
	c.mu.Unlock()
	if onClose != nil {
		onClose()
	}
	return nil
}

// writeDirect writes a response the framer composed itself (ID, COMPRESS):
// the library is waiting for input, so the output is between responses.
func (c *wireConn) writeDirect(b string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	// The library cleared its write deadline after its last response.
	c.Conn.SetWriteDeadline(time.Now().Add(kickTimeout * 10))
	c.writeLocked([]byte(b))
	c.Conn.SetWriteDeadline(time.Time{})
}

// remoteIP is the client's IP address as text.
func remoteIP(conn net.Conn) string {
	if a, ok := conn.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return conn.RemoteAddr().String()
}
