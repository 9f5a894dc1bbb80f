package daemon

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/oauthbridge/oauthbridge/config"
	"github.com/oauthbridge/oauthbridge/proxy"
	"github.com/oauthbridge/oauthbridge/proxy/imap"
	"github.com/oauthbridge/oauthbridge/proxy/pop3"
	"github.com/oauthbridge/oauthbridge/proxy/smtp"
)

// protocols in the order status output lists them.
var protocols = []string{config.ProtoIMAP, config.ProtoPOP3, config.ProtoSMTP}

// handler builds the protocol server of listener i of cfg. The servers
// share the daemon's LocalAuth, Limiter and Metrics, which outlive reloads;
// timeouts, relay and spool settings are the new config's.
func (d *Daemon) handler(cfg *config.Config, i int, dialer *proxy.Dialer) (proxy.Handler, error) {
	l := &cfg.Listeners[i]
	t := &cfg.Timeouts
	var h proxy.Handler
	switch l.Protocol {
	case config.ProtoIMAP:
		h = &imap.Server{
			Auth: d.auth, Dialer: dialer, Limits: d.limits, Logger: d.log, Metrics: d.metrics,
			LoginTimeout: t.Login.D(),
			IdleTimeout:  t.IMAPIdle.D(),
		}
	case config.ProtoPOP3:
		h = &pop3.Server{
			Auth: d.auth, Dialer: dialer, Limits: d.limits, Logger: d.log, Metrics: d.metrics,
			LoginTimeout:    t.Login.D(),
			IdleTimeout:     t.POP3Idle.D(),
			UpstreamTimeout: t.Upstream.D(),
		}
	case config.ProtoSMTP:
		s := &smtp.Server{
			Auth: d.auth, Dialer: dialer, Limits: d.limits, Logger: d.log, Metrics: d.metrics,
			Hostname:        cfg.SMTP.Hostname,
			SpoolMemory:     cfg.SMTP.SpoolMemory,
			SpoolDir:        cfg.SMTP.SpoolDir,
			ReadTimeout:     t.SMTPIdle.D(),
			LoginTimeout:    t.Login.D(),
			UpstreamTimeout: t.Upstream.D(),
			// A message in flight at shutdown must get its reply before the
			// grace period force-closes the connection.
			DrainTimeout: min(smtp.DefaultDrainTimeout, cfg.ShutdownGrace.D()*2/3),
		}
		if r := l.RelayWithoutAuth; r != nil {
			s.RelayFrom = unmapPrefixes(l.RelayFromPrefixes())
			s.RelayAccount = r.Account
		}
		h = s
	default:
		return nil, &config.Error{Path: fmt.Sprintf("listeners[%d].protocol", i), Msg: fmt.Sprintf("unknown protocol %q", l.Protocol)}
	}
	return &countedHandler{h: h, open: d.sessions[l.Protocol]}, nil
}

// countedHandler counts the sessions a handler is serving, for Sessions:
// open sessions by protocol, across listeners and reloads.
type countedHandler struct {
	h    proxy.Handler
	open *atomic.Int64
}

func (c *countedHandler) ServeConn(ctx context.Context, conn *proxy.Conn) {
	c.open.Add(1)
	defer c.open.Add(-1)
	c.h.ServeConn(ctx, conn)
}

func (c *countedHandler) Reject(conn *proxy.Conn, err error) { c.h.Reject(conn, err) }

// dialerFor is the injected Dialer, or one with the config's upstream
// timeout.
func (d *Daemon) dialerFor(cfg *config.Config) *proxy.Dialer {
	if d.opts.Dialer != nil {
		return d.opts.Dialer
	}
	return &proxy.Dialer{Timeout: cfg.Timeouts.Upstream.D()}
}

func tlsMode(s string) proxy.TLSMode {
	switch s {
	case config.TLSStartTLS:
		return proxy.TLSStartTLS
	case config.TLSImplicit:
		return proxy.TLSImplicit
	}
	return proxy.TLSNone
}

func throttleConfig(cfg *config.Config) proxy.ThrottleConfig {
	t := &cfg.Throttle
	return proxy.ThrottleConfig{Delay: t.Delay.D(), MaxDelay: t.MaxDelay.D(), BanAfter: t.BanAfter, BanFor: t.BanFor.D(), Window: t.Window.D()}
}

func limitsOf(cfg *config.Config) proxy.Limits {
	return proxy.Limits{MaxConnections: cfg.Limits.MaxConnections, PerAddress: cfg.Limits.PerAddress, PerAccount: cfg.Limits.PerAccount}
}

// grace is the config's shutdown grace period.
func grace(cfg *config.Config) time.Duration { return cfg.ShutdownGrace.D() }
