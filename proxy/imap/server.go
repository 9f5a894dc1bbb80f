package imap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/oauthbridge/oauthbridge/internal/metrics"
	"github.com/oauthbridge/oauthbridge/proxy"
)

// Server bridges local IMAP clients to their accounts' upstreams. One
// Server serves one listener; its fields must not change after the first
// ServeConn. It implements proxy.Handler.
type Server struct {
	Auth    proxy.Authenticator
	Dialer  *proxy.Dialer
	Limits  *proxy.Limiter // nil: no per-account limit
	Logger  *slog.Logger   // nil: discard
	Metrics *metrics.Metrics

	// LoginTimeout bounds the time from connect to a completed login
	// (default 60s).
	LoginTimeout time.Duration
	// IdleTimeout is how long an authenticated client may stay silent,
	// IDLE included (default 30m: RFC 3501 §5.4 requires at least 30
	// minutes, and RFC 2177 clients re-issue IDLE every 29).
	IdleTimeout time.Duration
	// WriteTimeout bounds one write to the client (default 5m): a client
	// that stops reading is disconnected rather than holding the session.
	WriteTimeout time.Duration
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
}

var _ proxy.Handler = (*Server)(nil)

const (
	maxPreauthLine    = 8 << 10 // a LOGIN line with quoted user and password
	maxPreauthLiteral = 8 << 10 // a password in a literal
	maxLine           = 1 << 20 // after login: long UID sets, SEARCH criteria
	maxBadCommands    = 10      // pre-auth BADs before the connection is closed
)

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Server) loginTimeout() time.Duration {
	if s.LoginTimeout > 0 {
		return s.LoginTimeout
	}
	return 60 * time.Second
}

func (s *Server) idleTimeout() time.Duration {
	if s.IdleTimeout > 0 {
		return s.IdleTimeout
	}
	return 30 * time.Minute
}

func (s *Server) writeTimeout() time.Duration {
	if s.WriteTimeout > 0 {
		return s.WriteTimeout
	}
	return 5 * time.Minute
}

// Reject greets a client the bridge will not serve with an untagged BYE
// (RFC 3501 §7.1.5: a server may send BYE as its greeting to refuse a
// connection).
func (s *Server) Reject(c *proxy.Conn, err error) {
	code := "UNAVAILABLE"
	if errors.Is(err, proxy.ErrTooManySessions) {
		code = "LIMIT"
	}
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "* BYE [%s] %s\r\n", code, proxy.ClientMessage(err, ""))
}

// ServeConn serves one client connection: the pre-auth dialogue, then the
// relay to the account's upstream. See proxy.Handler.
func (s *Server) ServeConn(ctx context.Context, c *proxy.Conn) {
	log := s.logger().With("proto", "imap", "session", c.ID, "client_ip", c.Remote.String())

	cl := newClientConn(c, s.writeTimeout())
	if log.Enabled(ctx, slog.LevelDebug) {
		cl.trace, cl.red = log, proxy.NewRedactor("imap")
	}
	login, err := s.preauth(ctx, cl, log)
	if err != nil {
		if !isClosedErr(err) {
			log.Debug("pre-auth ended", "reason", err.Error())
		}
		return
	}
	defer login.release()
	sess := newSession(s, cl, login, log)
	sess.run(ctx)
}

// clientConn is the client side of a session: the connection, its one
// buffered reader and its buffered writer. The writer is guarded by wmu
// because responses come from the upstream reader while the client reader
// may answer commands the bridge handles itself.
type clientConn struct {
	pc           *proxy.Conn
	br           *connReader
	bw           *connWriter
	writeTimeout time.Duration
	// writeDeadline is the deadline set on the connection; guarded like bw
	// (the session's cwmu after login).
	writeDeadline time.Time
	scratch       []byte // for overlong lines; owned by the reading goroutine

	// trace, when set (debug level), gets the pre-auth transcript with
	// credentials masked by red.
	trace *slog.Logger
	red   *proxy.Redactor
}

func newClientConn(c *proxy.Conn, writeTimeout time.Duration) *clientConn {
	return &clientConn{
		pc:           c,
		br:           newConnReader(c),
		bw:           newConnWriter(c),
		writeTimeout: writeTimeout,
	}
}

// flush writes out buffered output under a write deadline.
func (c *clientConn) flush() error {
	if c.bw.Buffered() == 0 {
		return nil
	}
	c.extendWriteDeadline()
	return c.bw.Flush()
}

// extendWriteDeadline keeps the client's write deadline between 3/4 and
// all of writeTimeout ahead. Moving it on every flush costs a timer update
// per response; a busy session moves it a few times a minute instead.
func (c *clientConn) extendWriteDeadline() {
	now := time.Now()
	if now.Add(c.writeTimeout * 3 / 4).Before(c.writeDeadline) {
		return
	}
	c.writeDeadline = now.Add(c.writeTimeout)
	c.pc.SetWriteDeadline(c.writeDeadline)
}

// writeLine writes s followed by CRLF and flushes.
func (c *clientConn) writeLine(s string) error {
	if c.trace != nil {
		c.red.Server([]byte(s))
		c.trace.Debug("S: " + truncate(s))
	}
	c.bw.WriteString(s)
	c.bw.WriteString("\r\n")
	return c.flush()
}

// rebuffer makes new reader and writer on the connection after STARTTLS.
func (c *clientConn) rebuffer() {
	c.br.Reset(c.pc)
	c.bw.Reset(c.pc)
	c.writeDeadline = time.Time{}
}

// isClosedErr reports whether err is an ordinary end of the client
// connection (the client hung up, or the bridge closed it after LOGOUT).
func isClosedErr(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, errSessionClosed)
}

// traceClient logs a pre-auth client line at debug level, masked.
func (c *clientConn) traceClient(line []byte) {
	if c.trace != nil {
		c.trace.Debug("C: " + truncate(string(trimEOL(c.red.Client(line)))))
	}
}

// truncate shortens a transcript line for the log.
func truncate(s string) string {
	const max = 200
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
