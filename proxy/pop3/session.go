package pop3

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/oauthbridge/oauthbridge/internal/metrics"
	"github.com/oauthbridge/oauthbridge/proxy"
	"github.com/prometheus/client_golang/prometheus"
)

// session is one client connection. It is used by the ServeConn goroutine
// only: POP3 is strictly command/response (RFC 1939 §3), so one goroutine
// reads a command, relays it, relays the answer, and reads the next one.
// Pipelined commands (RFC 2449 §6.6) simply wait in the client's buffer.
type session struct {
	srv   *Server
	ctx   context.Context // cancelled on graceful shutdown
	c     *proxy.Conn
	r     *bufio.Reader // the client connection's only reader
	log   *slog.Logger
	debug bool // debug transcripts enabled
	start time.Time
	// loginD is the AUTHORIZATION state's absolute deadline.
	loginD time.Time

	// Set by a successful login.
	acct    *proxy.Account
	mech    string // USER, PLAIN or LOGIN
	loginAt time.Time
	release func() // gives back the per-account session slot
	up      *upstream
	view    *maildrop // the client's view; nil until the first listing
	// noContinuity: the upstream refused UIDL, so a lost upstream session
	// cannot be resumed (numbers could not be mapped).
	noContinuity bool
	rotateAt     time.Time // planned switch to a new upstream session; zero: never
	rotateReason string    // "token_expiry" or "session_lifetime"
	resumes      int

	// endReason says why the session ended, for the logout line.
	endReason string
	// writeErr is the first failed write to the client: once set, the
	// session only winds down.
	writeErr error

	toCl, toUp       prometheus.Counter
	bytesCl, bytesUp int64
}

var (
	errLineTooLong = errors.New("pop3: line too long")
	errShutdown    = errors.New("pop3: server shutting down")
)

// readLine reads one CRLF- (or LF-) terminated line of at most max octets
// (terminator included) with the read deadline d, and returns it without
// the terminator. The slice is valid until the next read.
func (s *session) readLine(max int, d time.Time) ([]byte, error) {
	s.c.SetReadDeadline(d)
	// A cancelled ctx must win over the deadline just set: the shutdown
	// AfterFunc may have run before it (see ServeConn).
	if s.ctx.Err() != nil {
		return nil, errShutdown
	}
	line, err := s.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull || len(line) > max {
		return nil, errLineTooLong
	}
	if err != nil {
		if err == io.EOF && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, s.readErr(err)
	}
	return trimEOL(line), nil
}

// readErr turns the timeout caused by the shutdown AfterFunc into
// errShutdown.
func (s *session) readErr(err error) error {
	if s.ctx.Err() != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		return errShutdown
	}
	return err
}

// trimEOL drops a trailing LF and the CR before it.
func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

// write sends b to the client with the write deadline.
func (s *session) write(b []byte) error {
	s.c.SetWriteDeadline(time.Now().Add(s.srv.writeTimeout()))
	n, err := s.c.Write(b)
	if s.acct != nil {
		s.bytesCl += int64(n)
		metrics.AddBytes(s.toCl, n)
	}
	return err
}

// writeLine sends one response line; CRLF is appended.
func (s *session) writeLine(line string) error {
	if s.debug {
		s.trace("S", line)
	}
	b := make([]byte, 0, len(line)+2)
	b = append(append(b, line...), "\r\n"...)
	return s.write(b)
}

// writeMulti sends a multi-line response (RFC 1939 §3): the status line,
// then the lines dot-stuffed, then the terminating ".".
func (s *session) writeMulti(status string, lines []string) error {
	if s.debug {
		s.trace("S", status)
	}
	n := len(status) + 5
	for _, l := range lines {
		n += len(l) + 3
	}
	b := make([]byte, 0, n)
	b = append(append(b, status...), "\r\n"...)
	for _, l := range lines {
		if len(l) > 0 && l[0] == '.' {
			b = append(b, '.')
		}
		b = append(append(b, l...), "\r\n"...)
	}
	b = append(b, ".\r\n"...)
	return s.write(b)
}

// finish ends the session: the upstream is let go without committing
// anything (unless QUIT already did), the account slot is released, and
// a logged-in session gets its logout line.
func (s *session) finish() {
	if s.up != nil {
		s.up.retire()
		s.up = nil
	}
	if s.release != nil {
		s.release()
	}
	if s.acct == nil {
		return
	}
	reason := s.endReason
	if reason == "" {
		reason = "client_closed"
	}
	s.log.Info("logout",
		"reason", reason,
		"duration", time.Since(s.loginAt).Round(time.Millisecond),
		"resumes", s.resumes,
		"bytes_to_client", s.bytesCl,
		"bytes_to_upstream", s.bytesUp)
}

// readErrReason names a failed client read for the logout line.
func readErrReason(err error) string {
	switch {
	case errors.Is(err, errShutdown):
		return "shutdown"
	case errors.Is(err, errLineTooLong):
		return "line_too_long"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "client_closed"
	}
	return "client_error"
}
