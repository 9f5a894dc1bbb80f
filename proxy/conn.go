package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"time"
)

// TLSMode is how a local listener offers TLS to clients.
type TLSMode int

const (
	TLSNone     TLSMode = iota // plaintext only
	TLSStartTLS                // plaintext, upgraded by STARTTLS / STLS
	TLSImplicit                // TLS from the first byte
)

func (m TLSMode) String() string {
	switch m {
	case TLSStartTLS:
		return "starttls"
	case TLSImplicit:
		return "implicit"
	}
	return "none"
}

// ListenerInfo is the part of a listener's settings a protocol handler
// needs. It is immutable once the listener runs.
type ListenerInfo struct {
	Protocol string // "imap", "pop3" or "smtp"
	Addr     string // the configured listen address
	TLS      TLSMode
	// TLSConfig is the server TLS config for STARTTLS and implicit TLS; nil
	// when TLS is TLSNone.
	TLSConfig *tls.Config
	// AllowPlaintextAuth permits AUTH/LOGIN without TLS on a non-loopback
	// listener (config allow_plaintext_auth).
	AllowPlaintextAuth bool
	// Loopback is true when the listen address is a loopback address.
	Loopback bool
}

// Conn is one accepted client connection, handed to a Handler. The
// listener has already checked the allow list and the connection caps and,
// for implicit TLS, completed the handshake (bounded by
// ListenerConfig.HandshakeTimeout), so Conn is then a *tls.Conn.
type Conn struct {
	net.Conn
	// Remote is the client's address (unmapped).
	Remote   netip.Addr
	Listener *ListenerInfo
	// ID names the session in logs ("session" attribute).
	ID string
	// Forced is done when the listener force-closes its connections (a
	// shutdown's grace period ran out, or Close). Closing the socket ends
	// any read or write on it; a handler that can block on anything else
	// (a lock, a condition) must end then too. Nil means never.
	Forced context.Context
}

// IsTLS reports whether the connection is encrypted now.
func (c *Conn) IsTLS() bool {
	_, ok := c.Conn.(*tls.Conn)
	return ok
}

// StartTLS runs a server TLS handshake on the connection (after the
// protocol's STARTTLS/STLS was answered) and replaces c.Conn with the TLS
// connection. The caller must have no buffered unread client bytes: RFC 3207
// §4 and RFC 2595 §3.1 forbid pipelining past STARTTLS, and anything the
// client sent before the handshake is discarded by dropping the buffer.
func (c *Conn) StartTLS(timeout time.Duration) error {
	if c.Listener == nil || c.Listener.TLSConfig == nil {
		return errors.New("proxy: TLS is not configured on this listener")
	}
	if c.IsTLS() {
		return errors.New("proxy: TLS is already active")
	}
	tc := tls.Server(c.Conn, c.Listener.TLSConfig)
	if timeout > 0 {
		tc.SetDeadline(time.Now().Add(timeout))
		defer tc.SetDeadline(time.Time{})
	}
	if err := tc.Handshake(); err != nil {
		return err
	}
	c.Conn = tc
	return nil
}

// PlaintextAuthAllowed reports whether a password may be accepted on this
// connection now: over TLS, on a loopback listener, or where the admin set
// allow_plaintext_auth.
func (c *Conn) PlaintextAuthAllowed() bool {
	if c.IsTLS() || c.Listener == nil {
		return true
	}
	return c.Listener.Loopback || c.Listener.AllowPlaintextAuth
}

// Handler serves client connections of one protocol.
type Handler interface {
	// ServeConn serves c until the client or the upstream ends the session,
	// then returns; the listener closes c afterwards. When ctx is cancelled
	// the server is shutting down gracefully: finish the command in
	// progress, say goodbye in the protocol's way (IMAP "* BYE", POP3/SMTP
	// after the current command), and return. The listener force-closes
	// connections whose handler has not returned by the end of the grace
	// period, so blocked reads and writes return then.
	ServeConn(ctx context.Context, c *Conn)

	// Reject tells a client the bridge will not serve it now (err is one of
	// ErrTooManySessions, ErrThrottled or ErrShuttingDown) with a single
	// protocol greeting line, e.g. IMAP "* BYE [UNAVAILABLE] ...", POP3
	// "-ERR [SYS/TEMP] ...", SMTP "421 4.7.0 ...". The listener closes c
	// afterwards.
	Reject(c *Conn, err error)
}
