package smtp

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// clientConn is the client connection as go-smtp's server sees it. go-smtp
// owns the reading and writing; this wrapper is where the bridge steps in
// between its reads:
//
//   - graceful shutdown: once draining, the next time go-smtp needs bytes
//     for a new command it gets "421 4.3.2" and a closed connection, while
//     a message in flight (inData) is read to its end first;
//   - a reply that must close the connection (421 for limits) closes it at
//     go-smtp's next read, after the reply was written;
//   - a TLS ClientHello as the first bytes on a plaintext port gets one
//     clear line and a close instead of go-smtp waiting for a CRLF;
//   - until login completes, no read deadline go-smtp sets may pass the
//     login deadline (DESIGN: timeouts.login, from connect to login).
//
// After a local STARTTLS, go-smtp wraps this connection in a tls.Conn, so
// from then on Read and Write here carry TLS records; the reply channel
// for the 421 line is then that tls.Conn (top).
type clientConn struct {
	net.Conn // what the listener handed over (a *tls.Conn for implicit TLS)

	// checkHello is set when the first bytes are plaintext SMTP, i.e. the
	// listener is not implicit TLS.
	checkHello   bool
	writeTimeout time.Duration
	host         string // for the 421 lines

	muted atomic.Bool // the bridge ended the session: drop go-smtp's writes

	mu sync.Mutex // guards the fields below
	// top is the connection go-smtp writes replies to: this wrapper, or
	// the tls.Conn over it after STARTTLS; nil between a STARTTLS and the
	// next EHLO, when it is not known.
	top      net.Conn
	reading  bool      // a Read is blocked on the socket
	readOnce bool      // the first Read happened
	inData   bool      // a DATA/BDAT transfer is in progress: let it finish
	draining bool      // shutdown began
	closing  bool      // the connection ends at go-smtp's next read
	loginBy  time.Time // cap for read deadlines until login; zero when none
	byeLine  string    // what to say when the drain ends the session
	// byeSent is closed once the closing line was written; a read that
	// finds the connection closing waits for it, so go-smtp does not close
	// the connection under the line being written.
	byeSent chan struct{}
}

func newClientConn(c net.Conn, checkHello bool, writeTimeout time.Duration, host string) *clientConn {
	cc := &clientConn{Conn: c, checkHello: checkHello, writeTimeout: writeTimeout, host: host}
	cc.top = cc
	return cc
}

// ErrClosed-returning reads make go-smtp end the session without writing
// anything more (it treats net.ErrClosed as a clean end).
var errConnClosed = net.ErrClosed

func (c *clientConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		c.waitBye()
		return 0, errConnClosed
	}
	if c.draining && !c.inData {
		// go-smtp wants the next command: this is the command boundary
		// where a drain ends the session (RFC 5321 §3.8: a server that is
		// shutting down sends 421 and closes).
		top, sent := c.beginEndLocked()
		line := c.byeLine
		c.mu.Unlock()
		c.sayAndMute(top, line, sent)
		return 0, errConnClosed
	}
	c.reading = true
	first := !c.readOnce
	c.readOnce = true
	c.mu.Unlock()

	n, err := c.Conn.Read(p)

	c.mu.Lock()
	c.reading = false
	closing := c.closing
	loginTimeout := !c.loginBy.IsZero() && !time.Now().Before(c.loginBy)
	c.mu.Unlock()
	var ne net.Error
	switch {
	case closing:
		// The drain said 421 while this read was blocked: whatever came in
		// is not processed, the client took the 421 as the reply to it.
		c.waitBye()
		return 0, errConnClosed
	case first && c.checkHello && n > 0 && p[0] == 0x16:
		// 0x16 is a TLS handshake record (RFC 8446 §5.1), never the start
		// of an SMTP command: a TLS client on the plaintext port.
		c.end("500 5.5.1 TLS handshake on a plaintext port: use STARTTLS or the implicit TLS port\r\n")
		return 0, errConnClosed
	case err != nil && errors.As(err, &ne) && ne.Timeout():
		// RFC 5321 §4.5.3.2.7: a server may close after its timeout, with
		// 421 (§3.8). The bridge says it itself rather than leaving it to
		// go-smtp: bufio hands go-smtp the partial line a timeout
		// interrupted as if it were complete (bufio.Reader.ReadLine never
		// returns data and an error together), so a slow client's half
		// command would be executed. Here the session ends first; go-smtp's
		// replies to such a fragment are muted, and the session refuses it.
		what := "Idle timeout"
		if loginTimeout {
			what = "Login timeout"
		}
		c.end("421 4.4.2 " + c.host + " " + what + ", closing connection\r\n")
		return 0, errConnClosed
	}
	return n, err
}

// Write passes go-smtp's replies on, until the session was ended by the
// bridge: then they are dropped (a reply to a command fragment, a TLS
// close_notify after the 421).
func (c *clientConn) Write(p []byte) (int, error) {
	if c.muted.Load() {
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// beginEndLocked marks the session ending; c.mu must be held. The caller
// then calls sayAndMute with the results.
func (c *clientConn) beginEndLocked() (net.Conn, chan struct{}) {
	c.closing = true
	sent := make(chan struct{})
	c.byeSent = sent
	return c.top, sent
}

// end ends the session with line: it is written, later writes are
// dropped, reads fail. A session already ending is left alone.
func (c *clientConn) end(line string) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	top, sent := c.beginEndLocked()
	c.mu.Unlock()
	c.sayAndMute(top, line, sent)
}

func (c *clientConn) sayAndMute(top net.Conn, line string, sent chan struct{}) {
	if top != nil && line != "" {
		top.SetWriteDeadline(time.Now().Add(c.writeTimeout))
		top.Write([]byte(line))
	}
	c.muted.Store(true)
	close(sent)
}

func (c *clientConn) waitBye() {
	c.mu.Lock()
	ch := c.byeSent
	c.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

// SetDeadline and SetReadDeadline cap read deadlines at the login
// deadline, and keep an ending connection's reads failing at once.
func (c *clientConn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	return c.SetReadDeadline(t)
}

func (c *clientConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	switch {
	case c.closing:
		t = time.Now()
	case !c.loginBy.IsZero() && (t.IsZero() || t.After(c.loginBy)):
		t = c.loginBy
	}
	c.mu.Unlock()
	return c.Conn.SetReadDeadline(t)
}

// extendRead sets the read deadline to now+d, for the data phase where
// go-smtp reads a whole message after a single deadline (RFC 5321
// §4.5.3.2.5: the timeout applies per data block).
func (c *clientConn) extendRead(d time.Duration) {
	c.SetReadDeadline(time.Now().Add(d))
}

func (c *clientConn) setLoginDeadline(t time.Time) {
	c.mu.Lock()
	c.loginBy = t
	c.mu.Unlock()
}

func (c *clientConn) setTop(top net.Conn) {
	c.mu.Lock()
	c.top = top
	c.mu.Unlock()
}

func (c *clientConn) setInData(on bool) {
	c.mu.Lock()
	c.inData = on
	c.mu.Unlock()
}

// closeAtNextRead makes go-smtp's next read end the session, after the
// reply it is writing now (RFC 5321 §3.8: after a 421 the server closes).
func (c *clientConn) closeAtNextRead() {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
}

// isClosing reports whether the session ends at the next read.
func (c *clientConn) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// drain starts a graceful shutdown: when go-smtp is waiting for a command
// now, say line and end the session; otherwise the next read does it,
// unless a message is being received, which is read to its end and
// answered first.
func (c *clientConn) drain(line string) {
	c.mu.Lock()
	c.draining = true
	c.byeLine = line
	if !c.reading || c.inData || c.closing {
		c.mu.Unlock()
		return
	}
	// Decided under the lock while the read is blocked: when it returns it
	// finds closing set and drops what it read.
	top, sent := c.beginEndLocked()
	c.mu.Unlock()
	c.sayAndMute(top, line, sent)
	// Unblock the read; it sees closing and reports a closed connection.
	c.Conn.SetReadDeadline(time.Now())
}

func (c *clientConn) isDraining() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.draining
}
