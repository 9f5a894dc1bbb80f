package interop

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oauthbridge/oauthbridge/config"
	"github.com/oauthbridge/oauthbridge/internal/daemon"
	"github.com/oauthbridge/oauthbridge/proxy"
	"github.com/oauthbridge/oauthbridge/tokens"
)

// appPassword is every account's local password. The clients send it in
// the clear: the bridge's listeners are plaintext on loopback, as legacy
// clients are configured (DESIGN §3 default listeners).
const appPassword = "interop-app-password"

// bridge is the whole daemon, built from a config the way "oauthbridge
// serve" builds it, in front of one upstream, with every account of
// accounts authorized.
type bridge struct {
	d                *daemon.Daemon
	imap, pop3, smtp string // host:port of the plaintext listeners
	logs             *logBuffer
	secrets          []string // what must never appear in the log
}

// startBridge starts the daemon for up (the approach of "oauthbridge
// demo": a config built in Go, Complete()d, and the token store seeded
// with a grant from the upstream's OAuth server as "oauthbridge
// authorize" would leave it, its access token already expired).
func startBridge(t *testing.T, up upstream) *bridge {
	t.Helper()
	hash, err := proxy.HashPassword(appPassword)
	if err != nil {
		t.Fatal(err)
	}
	oa := up.oauth()
	cfg := &config.Config{
		StateDir:      t.TempDir(),
		ShutdownGrace: config.Duration(5 * time.Second),
		Log:           config.Log{Level: "info"},
		Listeners: []config.Listener{
			{Protocol: config.ProtoIMAP, Listen: "127.0.0.1:0"},
			{Protocol: config.ProtoPOP3, Listen: "127.0.0.1:0"},
			{Protocol: config.ProtoSMTP, Listen: "127.0.0.1:0"},
		},
		Providers: map[string]*config.Provider{"upstream": up.provider()},
	}
	for _, a := range accounts {
		cfg.Accounts = append(cfg.Accounts, config.Account{
			Username: up.user(a), Provider: "upstream", ClientID: oa.ClientID, ClientSecret: oa.ClientSecret,
			Passwords: []config.Password{{Name: "interop", Hash: hash}},
		})
	}
	if err := cfg.Complete(); err != nil {
		t.Fatalf("config: %v", err)
	}

	store, err := tokens.OpenStore(cfg.StateDir, cfg.MasterKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	b := &bridge{logs: &logBuffer{}, secrets: []string{appPassword, oa.ClientSecret}}
	for _, a := range accounts {
		user := up.user(a)
		access, refresh := oa.Issue(user)
		b.secrets = append(b.secrets, access, refresh)
		now := time.Now()
		// The stored access token is marked expired: the bridge must
		// refresh it at the upstream's token endpoint before its first
		// login, so what the upstream validates (Dovecot through
		// Introspect) is a token the bridge obtained itself.
		if err := store.Save(user, &tokens.Record{
			AccessToken: access, TokenType: "Bearer", Expiry: now.Add(-time.Minute), RefreshToken: refresh,
			Flow: tokens.FlowAuthCode, Scopes: []string{gmailScope},
			ObtainedAt: now, RefreshTokenIssuedAt: now,
		}); err != nil {
			t.Fatal(err)
		}
	}

	log := slog.New(slog.NewTextHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	d, err := daemon.New(cfg, daemon.Options{Logger: log})
	if err != nil {
		t.Fatalf("daemon: %v", err)
	}
	if err := d.Start(); err != nil {
		d.Close()
		t.Fatalf("daemon start: %v", err)
	}
	b.d = d
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.Shutdown(ctx); err != nil {
			t.Errorf("daemon shutdown: %v", err)
		}
		if t.Failed() {
			t.Logf("bridge log:\n%s", b.logs.String())
		}
	})
	for _, l := range d.Listeners() {
		switch l.Protocol {
		case config.ProtoIMAP:
			b.imap = l.Addr
		case config.ProtoPOP3:
			b.pop3 = l.Addr
		case config.ProtoSMTP:
			b.smtp = l.Addr
		}
	}
	if b.imap == "" || b.pop3 == "" || b.smtp == "" {
		t.Fatalf("daemon listeners: %+v", d.Listeners())
	}
	return b
}

// assertNoSecrets fails t when a password, token or client secret was
// logged (the brief's standard, checked on real client traffic here).
func (b *bridge) assertNoSecrets(t *testing.T) {
	t.Helper()
	log := b.logs.String()
	for i, s := range b.secrets {
		if s != "" && strings.Contains(log, s) {
			t.Errorf("secret #%d appears in the bridge log", i)
		}
	}
}

// logLines counts the bridge's log lines that contain every one of substrs.
func (b *bridge) logLines(substrs ...string) int {
	n := 0
	for _, line := range strings.Split(b.logs.String(), "\n") {
		ok := line != ""
		for _, s := range substrs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			n++
		}
	}
	return n
}

// hostPort splits addr for clients that take host and port apart.
func hostPort(t testing.TB, addr string) (string, string) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return h, p
}

// logBuffer collects the daemon's log (info and above) for failure
// reports and secrecy checks.
type logBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
