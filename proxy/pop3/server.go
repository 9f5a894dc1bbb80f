package pop3

import (
	"bufio"
	"context"
	"log/slog"
	"time"

	"github.com/oauthbridge/oauthbridge/internal/metrics"
	"github.com/oauthbridge/oauthbridge/proxy"
)

// Defaults for the zero values of Server's timeouts.
const (
	DefaultLoginTimeout    = 60 * time.Second
	DefaultIdleTimeout     = 10 * time.Minute // RFC 1939 §3: the autologout timer is at least 10 minutes
	DefaultUpstreamTimeout = 30 * time.Second
	DefaultWriteTimeout    = 60 * time.Second
	// DefaultResumeWithin applies when an Account's Session.ResumeWithin
	// is zero.
	DefaultResumeWithin = 30 * time.Second
)

// Server is the POP3 bridge. It implements proxy.Handler; the zero value of
// every optional field is usable.
type Server struct {
	// Auth checks local logins (required).
	Auth proxy.Authenticator
	// Dialer opens upstream connections; nil means a default proxy.Dialer.
	Dialer *proxy.Dialer
	// Limits caps sessions per account (AcquireAccount, "-ERR [IN-USE]");
	// nil means no cap.
	Limits *proxy.Limiter
	// Logger gets one info line per login, logout and resume, and debug
	// transcripts with secrets redacted; nil discards.
	Logger *slog.Logger
	// Metrics counts logins, upstream connects, resumes and relayed bytes;
	// nil disables. Open sessions are counted by the proxy.Listener.
	Metrics *metrics.Metrics

	// LoginTimeout bounds the AUTHORIZATION state, from connect to a
	// completed login (config timeouts.login; default 60s). It is an
	// absolute deadline on every read, so a client trickling bytes
	// (slowloris) is closed when it passes.
	LoginTimeout time.Duration
	// IdleTimeout is how long an authenticated client may stay silent
	// between commands, and how long one command line may take to arrive
	// (config timeouts.pop3_idle; default 10m, the minimum RFC 1939 §3
	// allows for the autologout timer). Tests use shorter values.
	IdleTimeout time.Duration
	// UpstreamTimeout bounds connect + TLS + greeting + XOAUTH2, and each
	// wait for upstream bytes while relaying (config timeouts.upstream;
	// default 30s). An upstream silent that long counts as cut.
	UpstreamTimeout time.Duration
	// WriteTimeout bounds each write to the client (default 60s): a client
	// that stops reading its RETR data is closed after it.
	WriteTimeout time.Duration
}

var _ proxy.Handler = (*Server)(nil)

func (s *Server) loginTimeout() time.Duration {
	return orDefault(s.LoginTimeout, DefaultLoginTimeout)
}

func (s *Server) idleTimeout() time.Duration { return orDefault(s.IdleTimeout, DefaultIdleTimeout) }

func (s *Server) upstreamTimeout() time.Duration {
	return orDefault(s.UpstreamTimeout, DefaultUpstreamTimeout)
}

func (s *Server) writeTimeout() time.Duration { return orDefault(s.WriteTimeout, DefaultWriteTimeout) }

func (s *Server) dialer() *proxy.Dialer {
	if s.Dialer != nil {
		return s.Dialer
	}
	return &proxy.Dialer{Timeout: s.upstreamTimeout()}
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// greeting is the RFC 1939 §4 greeting. It carries no APOP timestamp:
// the bridge does not offer APOP (it would need the app password in clear).
const greeting = "+OK oauthbridge POP3 ready"

// clientBufSize is the size of the client connection's one buffered
// reader: larger than maxPreauthLine so a too-long line is detected as
// such rather than as a full buffer.
const clientBufSize = 4096

// ServeConn serves one client connection until it ends; see
// proxy.Handler. The listener closes c afterwards.
func (s *Server) ServeConn(ctx context.Context, c *proxy.Conn) {
	sess := s.newSession(ctx, c)
	defer sess.finish()

	// Graceful shutdown interrupts only the wait for the client's next
	// command: the read deadline is moved to the past, and readLine
	// sees ctx done. The deadline is set on the connection as accepted,
	// which a later STLS wraps but never replaces underneath, so this
	// goroutine never reads c.Conn while STLS swaps it.
	base := c.Conn
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(fired)
		base.SetReadDeadline(time.Unix(1, 0))
	})
	defer func() {
		if !stop() {
			<-fired // the func ran or is running: wait for it
		}
	}()

	if err := sess.writeLine(greeting); err != nil {
		sess.endReason = "client_gone"
		return
	}
	if !sess.authorization() {
		return
	}
	sess.transaction()
}

// Reject answers a client the bridge will not serve with one RFC 2449
// "-ERR [SYS/TEMP]" greeting (the POP3 way to say "try again later").
func (s *Server) Reject(c *proxy.Conn, err error) {
	c.SetWriteDeadline(time.Now().Add(s.writeTimeout()))
	c.Write([]byte("-ERR [SYS/TEMP] " + proxy.ClientMessage(err, "") + "\r\n"))
}

// newSession prepares the per-connection state.
func (s *Server) newSession(ctx context.Context, c *proxy.Conn) *session {
	log := s.logger().With("proto", "pop3", "session", c.ID, "client_ip", c.Remote.String())
	return &session{
		srv:    s,
		ctx:    ctx,
		c:      c,
		r:      bufio.NewReaderSize(c, clientBufSize),
		log:    log,
		start:  time.Now(),
		toCl:   s.Metrics.Counter("pop3", "to_client"),
		toUp:   s.Metrics.Counter("pop3", "to_upstream"),
		debug:  log.Enabled(ctx, slog.LevelDebug),
		loginD: time.Now().Add(s.loginTimeout()),
	}
}
