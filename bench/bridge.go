package bench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthbridge/oauthbridge/internal/metrics"
	"github.com/oauthbridge/oauthbridge/proxy"
	"github.com/oauthbridge/oauthbridge/proxy/imap"
	"github.com/oauthbridge/oauthbridge/proxy/pop3"
	"github.com/oauthbridge/oauthbridge/proxy/smtp"
)

// bridgeSpec is what the bridge child serves: one wildcard account
// ("*@bench.test", one app password) whose logins map to the upstream user
// of the same name, with the access tokens the parent obtained.
type bridgeSpec struct {
	Upstream upstreamInfo
	Password string
	LogLevel string // "info" (the daemon's default) or "off"
	GOGC     int    // 0: the runtime's default (100, or $GOGC)
}

// bridgeInfo is the running bridge: plaintext loopback listeners, as
// legacy clients use them, and the debug endpoint (pprof, runtime stats).
type bridgeInfo struct {
	IMAP, POP3, SMTP string
	Debug            string
	PID              int
	FileLimit        uint64 // RLIMIT_NOFILE: the bridge holds two descriptors per session
}

// The app password every benchmark client uses; it is not a secret.
const appPassword = "bench-app-password"

const benchDomain = "bench.test"

// runBridgeChild builds the bridge as the daemon does (internal/daemon:
// LocalAuth with argon2id and its verified-password cache, a Limiter, the
// metrics, the three protocol servers on proxy.Listeners) minus the
// config file and the token store: tokens come from the spec.
func runBridgeChild(raw []byte) (any, func(), error) {
	var spec bridgeSpec
	if err := json.Unmarshal(raw, &spec); err != nil {
		return nil, nil, err
	}
	if spec.GOGC != 0 {
		debug.SetGCPercent(spec.GOGC)
	}
	log := slog.New(slog.DiscardHandler)
	if spec.LogLevel != "off" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(spec.Upstream.CAPEM) {
		return nil, nil, errors.New("no upstream CA")
	}
	ep := func(addr string) proxy.Endpoint {
		return proxy.Endpoint{Addr: addr, TLS: proxy.UpstreamImplicitTLS, TLSConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	}
	accounts := map[string]*proxy.Account{}
	for user, token := range spec.Upstream.Tokens {
		tok := &oauth2.Token{AccessToken: token, TokenType: "Bearer", Expiry: spec.Upstream.Expiry}
		accounts[user] = &proxy.Account{
			Name: user, ConfigName: "*@" + benchDomain, UpstreamUser: user,
			Tokens: proxy.TokenFunc(func(context.Context, bool) (*oauth2.Token, error) { return tok, nil }),
			IMAP:   ep(spec.Upstream.IMAP), POP3: ep(spec.Upstream.POP3), SMTP: ep(spec.Upstream.SMTP),
			// The provider defaults (config: rotate_before 5m, resume
			// within 30s); tokens outlive the run, so no rotation starts.
			Session: proxy.SessionPolicy{RotateBefore: 5 * time.Minute, ResumeWithin: 30 * time.Second},
		}
	}
	hash, err := proxy.HashPassword(spec.Password)
	if err != nil {
		return nil, nil, err
	}
	auth, err := proxy.NewLocalAuth([]proxy.LocalAccount{{
		Pattern: "*@" + benchDomain, Hashes: []string{hash},
		New: func(login string) *proxy.Account {
			if a := accounts[strings.ToLower(login)]; a != nil {
				return a
			}
			return &proxy.Account{Name: login, ConfigName: "*@" + benchDomain, UpstreamUser: login,
				Tokens: proxy.TokenFunc(func(context.Context, bool) (*oauth2.Token, error) {
					return nil, errors.New("bench: no token for this user")
				})}
		},
	}}, proxy.LocalAuthOptions{Logger: log})
	if err != nil {
		return nil, nil, err
	}
	m := metrics.New()
	limits := proxy.NewLimiter(proxy.Limits{}) // present as in the daemon, no caps
	dialer := &proxy.Dialer{Timeout: 30 * time.Second}
	handlers := map[string]proxy.Handler{
		"imap": &imap.Server{Auth: auth, Dialer: dialer, Limits: limits, Logger: log, Metrics: m},
		"pop3": &pop3.Server{Auth: auth, Dialer: dialer, Limits: limits, Logger: log, Metrics: m},
		"smtp": &smtp.Server{Auth: auth, Dialer: dialer, Limits: limits, Logger: log, Metrics: m, Hostname: "bridge.bench.test"},
	}
	info := bridgeInfo{PID: os.Getpid(), FileLimit: raiseFileLimit()}
	var listeners []*proxy.Listener
	served := make(chan struct{}, len(handlers))
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, l := range listeners {
			if err := l.Shutdown(ctx); err != nil {
				l.Close()
			}
		}
		for range listeners {
			<-served
		}
	}
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	for _, proto := range []string{"imap", "pop3", "smtp"} {
		l, err := proxy.Listen(proxy.ListenerConfig{
			Info:    proxy.ListenerInfo{Protocol: proto, Addr: "127.0.0.1:0", TLS: proxy.TLSNone, Loopback: true},
			Allow:   loopback,
			Limiter: limits, Logger: log, Metrics: m,
		}, handlers[proto])
		if err != nil {
			stop()
			return nil, nil, err
		}
		listeners = append(listeners, l)
		go func() {
			l.Serve()
			served <- struct{}{}
		}()
		switch proto {
		case "imap":
			info.IMAP = l.Addr().String()
		case "pop3":
			info.POP3 = l.Addr().String()
		case "smtp":
			info.SMTP = l.Addr().String()
		}
	}
	dbg, err := startDebugServer(m)
	if err != nil {
		stop()
		return nil, nil, err
	}
	info.Debug = dbg.addr
	return info, func() { dbg.close(); stop() }, nil
}

// startBridge starts a bridge child in front of up.
func startBridge(up upstreamInfo, cfg *Config) (*bridge, error) {
	var info bridgeInfo
	c, err := startChild(roleBridge, bridgeSpec{Upstream: up, Password: appPassword, LogLevel: cfg.BridgeLog, GOGC: cfg.BridgeGOGC}, &info, nil)
	if err != nil {
		return nil, err
	}
	return &bridge{info: info, proc: c, debug: &debugClient{base: "http://" + info.Debug}}, nil
}

// bridge is a running bridge child owned by the parent.
type bridge struct {
	info  bridgeInfo
	proc  *child
	debug *debugClient
}

func (b *bridge) stop() { b.proc.stop() }
