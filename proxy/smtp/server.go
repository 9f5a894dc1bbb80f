package smtp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/oauthbridge/oauthbridge/internal/metrics"
	"github.com/oauthbridge/oauthbridge/proxy"
)

const proto = "smtp"

// Defaults for the zero values of Server's fields.
const (
	// DefaultMaxMessageBytes caps a message when the upstream's SIZE is
	// unknown or larger; it also bounds the spool on disk.
	DefaultMaxMessageBytes = 64 << 20
	DefaultMaxRecipients   = 100              // RFC 5321 §4.5.3.1.8: at least 100 must be accepted
	DefaultMaxLineLength   = 2000             // RFC 5321 §4.5.3.1.6 allows 1000; doubled as go-smtp does
	DefaultSpoolMemory     = 1 << 20          // config smtp.spool_memory
	DefaultReadTimeout     = 5 * time.Minute  // RFC 5321 §4.5.3.2.7 server timeout
	DefaultDataTimeout     = 3 * time.Minute  // RFC 5321 §4.5.3.2.5 data block
	DefaultWriteTimeout    = time.Minute      // a client not reading a reply line for a minute is gone
	DefaultLoginTimeout    = time.Minute      // config timeouts.login
	DefaultUpstreamTimeout = 30 * time.Second // config timeouts.upstream
	DefaultResumeWithin    = 30 * time.Second // config resume.within, when Account.Session leaves it zero
	DefaultDrainTimeout    = 20 * time.Second // below the daemon's 30s shutdown_grace
)

// Server is the SMTP bridge. It implements proxy.Handler: each client
// connection gets a go-smtp server session locally, and its messages are
// re-originated upstream with go-smtp's client and XOAUTH2.
//
// The zero values of the optional fields mean the Default* constants. A
// Server is safe for concurrent use by many connections; do not change its
// fields while it serves.
type Server struct {
	Auth    proxy.Authenticator
	Dialer  *proxy.Dialer
	Limits  *proxy.Limiter   // per-account session cap; nil means none
	Logger  *slog.Logger     // nil discards
	Metrics *metrics.Metrics // nil disables

	// Hostname is the name in the greeting (220) and EHLO replies, and the
	// name the bridge gives in its EHLO upstream. Default: os.Hostname.
	Hostname string

	// RelayFrom lists client networks that may send without AUTH
	// (relay_without_auth.from); their sessions use RelayAccount's upstream
	// identity. Anyone else must AUTH before MAIL.
	RelayFrom    []netip.Prefix
	RelayAccount string

	// MaxMessageBytes is the largest message accepted, whatever the
	// upstream allows (see size.go for what is advertised).
	MaxMessageBytes int64
	MaxRecipients   int // per message
	MaxLineLength   int // command and message lines, CRLF included

	// SpoolMemory is how much of a message is held in memory before the
	// spool continues in a temporary file in SpoolDir (os.TempDir when
	// empty). The file never outlives the transaction.
	SpoolMemory int64
	SpoolDir    string

	// ReadTimeout bounds the wait for each command line, WriteTimeout each
	// reply; DataTimeout each read while a message is received;
	// LoginTimeout the time from connect to a completed AUTH.
	ReadTimeout, WriteTimeout, DataTimeout, LoginTimeout time.Duration
	// UpstreamTimeout bounds connect + TLS + greeting + EHLO + XOAUTH2.
	UpstreamTimeout time.Duration
	// DrainTimeout bounds how long, once shutdown began, a message in
	// flight may still wait for the upstream. Keep it below the daemon's
	// shutdown grace so the reply still reaches the client.
	DrainTimeout time.Duration

	// spoolFirst makes Data receive the whole message before sending it
	// upstream instead of streaming it (see data.go); for the benchmark
	// that measures the difference.
	spoolFirst bool

	sizes sizeCache
}

var _ proxy.Handler = (*Server)(nil)

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

func orDefault[T int | int64 | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

var hostnameOnce = sync.OnceValue(func() string {
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "localhost"
})

func (s *Server) hostname() string {
	if s.Hostname != "" {
		return s.Hostname
	}
	return hostnameOnce()
}

func (s *Server) maxMessageBytes() int64 { return orDefault(s.MaxMessageBytes, DefaultMaxMessageBytes) }

func (s *Server) relayAllowed(a netip.Addr) bool {
	if s.RelayAccount == "" {
		return false
	}
	for _, p := range s.RelayFrom {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Reject answers a connection the bridge will not serve with one 421
// greeting (RFC 5321 §3.1: a server may refuse a session with 421 instead
// of 220) and returns; the listener closes c.
func (s *Server) Reject(c *proxy.Conn, err error) {
	code := "4.7.0"
	if proxy.Classify(err) == proxy.FailShutdown {
		code = "4.3.2"
	}
	c.SetWriteDeadline(time.Now().Add(orDefault(s.WriteTimeout, DefaultWriteTimeout)))
	fmt.Fprintf(c, "421 %s %s %s\r\n", code, s.hostname(), proxy.ClientMessage(err, ""))
}

// ServeConn serves one client connection until it ends. When ctx is
// cancelled the session drains: a message being received is finished and
// answered, then the client gets "421 4.3.2" at its next command.
func (s *Server) ServeConn(ctx context.Context, pc *proxy.Conn) {
	start := time.Now()
	log := s.logger().With("proto", proto, "session", pc.ID, "client_ip", pc.Remote.String())
	writeTimeout := orDefault(s.WriteTimeout, DefaultWriteTimeout)
	cc := newClientConn(pc.Conn, !pc.IsTLS(), writeTimeout, s.hostname())
	sess := newSession(ctx, s, pc, cc, log)
	if !s.relayAllowed(pc.Remote) {
		cc.setLoginDeadline(start.Add(orDefault(s.LoginTimeout, DefaultLoginTimeout)))
	}

	gs := gosmtp.NewServer(sess)
	gs.Domain = s.hostname()
	gs.MaxLineLength = orDefault(s.MaxLineLength, DefaultMaxLineLength)
	gs.MaxRecipients = orDefault(s.MaxRecipients, DefaultMaxRecipients)
	gs.ReadTimeout = orDefault(s.ReadTimeout, DefaultReadTimeout)
	gs.WriteTimeout = writeTimeout
	// AUTH is allowed by go-smtp everywhere; the session refuses it where
	// the listener requires TLS first, with the RFC 3207 reply.
	gs.AllowInsecureAuth = true
	gs.ErrorLog = errorLog{log}
	if pc.Listener != nil && pc.Listener.TLS == proxy.TLSStartTLS && !pc.IsTLS() {
		gs.TLSConfig = pc.Listener.TLSConfig
	}
	// The go-smtp server is per connection, so its message size limit and
	// SMTPUTF8 can follow this session's upstream once it is known.
	gs.MaxMessageBytes, gs.EnableSMTPUTF8 = s.sizes.advertise(s.maxMessageBytes())
	if s.relayAllowed(pc.Remote) {
		if acct, err := s.Auth.Account(s.RelayAccount); err == nil {
			gs.MaxMessageBytes, gs.EnableSMTPUTF8 = s.sizes.forEndpoint(acct.SMTP.Addr, s.maxMessageBytes())
		}
	}
	sess.gs = gs

	// go-smtp exports no way to serve one accepted connection: Serve wants
	// a listener. A listener that yields this connection once and then
	// blocks until closed does it; Shutdown then closes it and waits for
	// the connection's goroutine.
	ln := newOneConnListener(cc)
	served := make(chan error, 1)
	go func() { served <- gs.Serve(ln) }()

	// The drain watcher: ctx cancellation is the listener's "finish at a
	// command boundary" signal.
	stop := make(chan struct{})
	var watcher sync.WaitGroup
	watcher.Add(1)
	go func() {
		defer watcher.Done()
		select {
		case <-ctx.Done():
			sess.drain()
		case <-stop:
		}
	}()

	select {
	case <-ln.dispatched:
		gs.Shutdown(context.Background()) // waits for the connection goroutine
	case <-served:
	}
	ln.Close()
	if err := <-served; err != nil && !errors.Is(err, net.ErrClosed) {
		log.Debug("smtp server ended", "err", err)
	}
	close(stop)
	watcher.Wait()
	sess.end()
}

// oneConnListener hands out one connection, then blocks until closed.
type oneConnListener struct {
	conn       net.Conn
	mu         sync.Mutex // guards taken
	taken      bool
	dispatched chan struct{} // closed at the second Accept: the conn is being served
	closed     chan struct{}
	once       sync.Once
	dispOnce   sync.Once
}

func newOneConnListener(c net.Conn) *oneConnListener {
	return &oneConnListener{conn: c, dispatched: make(chan struct{}), closed: make(chan struct{})}
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	first := !l.taken
	l.taken = true
	l.mu.Unlock()
	if first {
		return l.conn, nil
	}
	// go-smtp calls Accept again only after it started the goroutine
	// serving the first connection (wg.Add included), so Shutdown may
	// wait for it from now on.
	l.dispOnce.Do(func() { close(l.dispatched) })
	<-l.closed
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *oneConnListener) Addr() net.Addr { return l.conn.LocalAddr() }

// errorLog sends go-smtp's internal error lines (connection errors,
// recovered panics) to the session's logger at debug level. They carry no
// client data beyond addresses.
type errorLog struct{ log *slog.Logger }

func (e errorLog) Printf(format string, v ...any) {
	e.log.Debug("go-smtp: " + fmt.Sprintf(format, v...))
}

func (e errorLog) Println(v ...any) { e.log.Debug("go-smtp: " + fmt.Sprint(v...)) }

// tlsActive reports whether go-smtp's connection is TLS now (implicit or
// after STARTTLS).
func tlsActive(c *gosmtp.Conn, pc *proxy.Conn) bool {
	if pc.IsTLS() {
		return true
	}
	_, ok := c.Conn().(*tls.Conn)
	return ok
}
