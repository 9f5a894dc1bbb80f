package smtp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/oauthbridge/oauthbridge/proxy"
)

// upstream is one authenticated go-smtp client connection to the
// account's SMTP endpoint.
type upstream struct {
	c    *gosmtp.Client
	conn *upConn
	caps upstreamCaps
	// ends is when the upstream session should be replaced: the access
	// token's expiry, or the provider's session lifetime, minus the
	// rotation margin. Zero when unknown.
	ends time.Time
	// txOpen is set while a MAIL was accepted upstream and the
	// transaction was not ended by a reply after the final dot: a local
	// RSET must then be passed on.
	txOpen bool
}

// upConn wraps the upstream TCP (or TLS) connection. go-smtp's client sets
// deadlines around each command but none while a message is written
// (DotWriter), and clears them after each command; upConn gives every
// write its own deadline (RFC 5321 §4.5.3.2.5, 3 minutes per data block)
// and lets the session cap all deadlines (the login budget, the drain).
type upConn struct {
	net.Conn
	writeTimeout time.Duration

	mu     sync.Mutex // guards capAt and rd
	capAt  time.Time  // no deadline may be later; zero: none
	rd     time.Time  // read deadline go-smtp asked for
	failed atomic.Bool
	wrote  atomic.Int64
}

func (u *upConn) Write(p []byte) (int, error) {
	u.mu.Lock()
	d := capped(time.Now().Add(u.writeTimeout), u.capAt)
	u.mu.Unlock()
	u.Conn.SetWriteDeadline(d)
	n, err := u.Conn.Write(p)
	u.wrote.Add(int64(n))
	if err != nil {
		u.failed.Store(true)
	}
	return n, err
}

func (u *upConn) Read(p []byte) (int, error) {
	u.mu.Lock()
	d := u.rd
	if d.IsZero() {
		d = time.Now().Add(DefaultReadTimeout)
	}
	d = capped(d, u.capAt)
	u.mu.Unlock()
	u.Conn.SetReadDeadline(d)
	return u.Conn.Read(p)
}

func (u *upConn) SetDeadline(t time.Time) error {
	return u.SetReadDeadline(t)
}

func (u *upConn) SetReadDeadline(t time.Time) error {
	u.mu.Lock()
	u.rd = t
	u.mu.Unlock()
	return nil // applied by the next Read
}

func (u *upConn) SetWriteDeadline(time.Time) error { return nil } // each Write sets its own

// capDeadlines bounds every read and write from now on by t, including
// one blocked now.
func (u *upConn) capDeadlines(t time.Time) {
	u.mu.Lock()
	u.capAt = t
	u.mu.Unlock()
	if !t.IsZero() {
		u.Conn.SetDeadline(t)
	}
}

func capped(d, capAt time.Time) time.Time {
	if !capAt.IsZero() && (d.IsZero() || d.After(capAt)) {
		return capAt
	}
	return d
}

// writeFailed reports whether a write failed: what was being sent, the
// final dot included, may not have reached the upstream.
func (u *upConn) writeFailed() bool { return u.failed.Load() }

// dial opens, secures and authenticates one upstream connection for acct
// with accessToken. It is AuthenticateUpstream's login function, so a
// retry after a refused token gets a fresh connection (FACTS: after a
// final 535 the connection is closed). A refused token is returned as a
// *proxy.AuthError.
func (sess *session) dial(ctx context.Context, acct *proxy.Account, accessToken string) (*upstream, error) {
	srv := sess.srv
	ep := acct.SMTP
	dialer := srv.Dialer
	if dialer == nil {
		dialer = &proxy.Dialer{}
	}
	raw, err := dialer.DialEndpoint(ctx, ep)
	if err != nil {
		return nil, err
	}
	uc := &upConn{Conn: raw, writeTimeout: orDefault(srv.DataTimeout, DefaultDataTimeout)}
	// The whole greeting + EHLO + STARTTLS + AUTH exchange shares the
	// login budget, and the drain deadline if shutdown began.
	loginBy, _ := ctx.Deadline()
	uc.capDeadlines(earliest(loginBy, sess.hardDeadline()))
	sess.trackUpstream(uc)

	var c *gosmtp.Client
	if ep.TLS == proxy.UpstreamStartTLS {
		// NewClientStartTLS reads the greeting, says EHLO, STARTTLS and
		// layers a verifying TLS client over uc (handshake at the next
		// write, within uc's deadlines).
		c, err = gosmtp.NewClientStartTLS(uc, proxy.UpstreamTLSConfig(ep))
		if err != nil {
			uc.Close()
			return nil, fmt.Errorf("smtp: STARTTLS with %s: %w", ep.Addr, err)
		}
	} else {
		c = gosmtp.NewClient(uc)
	}
	c.CommandTimeout = DefaultReadTimeout // RFC 5321 §4.5.3.2.2-4: 5 minutes
	if err := c.Hello(srv.hostname()); err != nil {
		c.Close()
		return nil, fmt.Errorf("smtp: EHLO to %s: %w", ep.Addr, err)
	}
	if ok, _ := c.Extension("AUTH"); !ok || !c.SupportsAuth("XOAUTH2") {
		c.Close()
		return nil, fmt.Errorf("smtp: %s does not offer AUTH XOAUTH2", ep.Addr)
	}
	x := &proxy.XOAuth2{User: acct.UpstreamUser, Token: accessToken}
	if err := c.Auth(x); err != nil {
		// Whatever the reply, go-smtp's client may have answered it with
		// "*"; the connection's state is unknown: close it (FACTS).
		c.Close()
		var se *gosmtp.SMTPError
		if errors.As(err, &se) && (se.Code == 535 || se.Code == 534 || se.Code == 530) {
			return nil, proxy.NewAuthError(x.Challenge, replyText(se))
		}
		return nil, fmt.Errorf("smtp: AUTH XOAUTH2 at %s: %w", ep.Addr, err)
	}
	up := &upstream{c: c, conn: uc}
	if ok, v := c.Extension("SIZE"); ok {
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil && n > 0 {
			up.caps.size = n
		}
	}
	up.caps.utf8, _ = c.Extension("SMTPUTF8")
	uc.capDeadlines(sess.hardDeadline())
	return up, nil
}

// quit ends the upstream session politely, within a short time.
func (up *upstream) quit(hard time.Time) {
	up.conn.capDeadlines(earliest(time.Now().Add(5*time.Second), hard))
	if up.c.Quit() != nil {
		up.c.Close()
	}
}

// close drops the connection without a word: used when a message must
// not be completed (no final dot is ever sent for a partial message).
func (up *upstream) close() { up.c.Close() }

func earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero() || a.Before(b):
		return a
	}
	return b
}

// replyText renders an upstream reply for logs and errors ("535 5.7.8
// text"). Upstream replies carry no secrets.
func replyText(e *gosmtp.SMTPError) string {
	if e.EnhancedCode != gosmtp.EnhancedCodeNotSet && e.EnhancedCode != gosmtp.NoEnhancedCode {
		return fmt.Sprintf("%d %d.%d.%d %s", e.Code, e.EnhancedCode[0], e.EnhancedCode[1], e.EnhancedCode[2], e.Message)
	}
	return fmt.Sprintf("%d %s", e.Code, e.Message)
}

// isConnLost reports whether err from the upstream client means the
// connection is gone (so a resume may help) rather than a reply refusing
// the command: any non-reply error, or 421, which RFC 5321 §3.8 defines as
// "service not available, closing transmission channel".
func isConnLost(err error) bool {
	if err == nil {
		return false
	}
	var se *gosmtp.SMTPError
	if errors.As(err, &se) {
		return se.Code == 421
	}
	return true
}

// lostReason is the metrics reason for a lost connection.
func lostReason(err error) string {
	var se *gosmtp.SMTPError
	var ne net.Error
	switch {
	case errors.As(err, &se):
		return "bye" // 421
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, net.ErrClosed), errors.Is(err, errEOF), isReset(err):
		return "eof"
	}
	return "error"
}

var errEOF = io.EOF

func isReset(err error) bool {
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
