package daemon

import (
	"context"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/oauthbridge/oauthbridge/config"
	"github.com/oauthbridge/oauthbridge/internal/fakegmail"
	"github.com/oauthbridge/oauthbridge/proxy"
	"github.com/oauthbridge/oauthbridge/proxy/proxytest"
	"github.com/oauthbridge/oauthbridge/tokens"
)

const (
	alice = "alice@gmail.com"
	bob   = "bob@gmail.com"
)

// cheap argon2 parameters: the tests hash many passwords.
var testArgon2 = proxy.Argon2Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func hash(t *testing.T, pw string) string {
	t.Helper()
	h, err := proxy.HashPasswordParams(pw, testArgon2)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// env is a fake Gmail and a config for a daemon in front of it.
type env struct {
	fg   *fakegmail.Server
	logs *proxytest.LogBuffer
	dir  string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	fg, err := fakegmail.Start(fakegmail.Options{Users: []string{alice, bob}, SeedMessages: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fg.Close() })
	return &env{fg: fg, logs: proxytest.NewLogBuffer(), dir: t.TempDir()}
}

// config returns a completed config: provider "fake" pointing at the fake
// (its CA via CAPEM, SMTP implicit TLS), the given listeners, and alice
// and bob with one password each.
func (e *env) config(t *testing.T, listeners []config.Listener, alicePw, bobPw string) *config.Config {
	t.Helper()
	oa := e.fg.OAuth()
	cfg := &config.Config{
		StateDir:  e.dir,
		Listeners: listeners,
		// Wrong passwords are part of the tests: no 1s delay after each.
		Throttle: config.Throttle{Delay: config.Duration(time.Millisecond), MaxDelay: config.Duration(time.Millisecond)},
		Providers: map[string]*config.Provider{"fake": {
			IMAP: e.fg.IMAPAddr(), POP3: e.fg.POP3Addr(), SMTP: e.fg.SMTPAddr(), SMTPTLS: config.SMTPImplicit,
			AuthURL: oa.AuthURL(), TokenURL: oa.TokenURL(), Scopes: []string{"https://mail.google.com/"},
			CAPEM: e.fg.CACertPEM(),
		}},
	}
	for _, u := range []struct{ name, pw string }{{alice, alicePw}, {bob, bobPw}} {
		cfg.Accounts = append(cfg.Accounts, config.Account{
			Username: u.name, Provider: "fake", ClientID: oa.ClientID, ClientSecret: oa.ClientSecret,
			Passwords: []config.Password{{Name: "test", Hash: hash(t, u.pw)}},
		})
	}
	if err := cfg.Complete(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// authorize stores tokens for user as "oauthbridge authorize" would: a
// Manager of its own on the state dir runs the authorization-code flow
// against the fake's auto-approving endpoint.
func (e *env) authorize(t *testing.T, cfg *config.Config, user string) {
	t.Helper()
	m, _, err := OpenTokens(cfg, tokens.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	spec, err := AccountSpec(cfg, user)
	if err != nil {
		t.Fatal(err)
	}
	authURL, p, err := m.BeginAuthCode(spec, "http://127.0.0.1:1/callback")
	if err != nil {
		t.Fatal(err)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize: status %d, location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if err := p.Complete(context.Background(), loc.Query()); err != nil {
		t.Fatal(err)
	}
}

// start builds and starts a daemon; it is closed at cleanup.
func (e *env) start(t *testing.T, cfg *config.Config) *Daemon {
	t.Helper()
	d, err := New(cfg, Options{Logger: e.logs.Logger(), Dialer: &proxy.Dialer{Timeout: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	return d
}

func imapListener() config.Listener { return config.Listener{Protocol: "imap", Listen: "127.0.0.1:0"} }
func pop3Listener() config.Listener { return config.Listener{Protocol: "pop3", Listen: "127.0.0.1:0"} }
func smtpListener() config.Listener { return config.Listener{Protocol: "smtp", Listen: "127.0.0.1:0"} }

// addr returns the bound address of the daemon's listener for proto.
func addr(t *testing.T, d *Daemon, proto string) string {
	t.Helper()
	for _, l := range d.Listeners() {
		if l.Protocol == proto {
			return l.Addr
		}
	}
	t.Fatalf("no %s listener in %+v", proto, d.Listeners())
	return ""
}

func imapLogin(t *testing.T, address, user, pw string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(address, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(user, pw).Wait(); err != nil {
		t.Fatalf("login %s at %s: %v", user, address, err)
	}
	return c
}

// imapLoginErr tries a login and returns its error (nil on success).
func imapLoginErr(t *testing.T, address, user, pw string) error {
	t.Helper()
	c, err := imapclient.DialInsecure(address, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	err = c.Login(user, pw).Wait()
	if err == nil {
		c.Logout().Wait()
	}
	return err
}

// rawIMAP is a line-level IMAP client (net/textproto), for what imapclient
// hides: untagged BYE text, connection close.
type rawIMAP struct {
	conn net.Conn
	tp   *textproto.Conn
}

func dialRaw(t *testing.T, address string) *rawIMAP {
	t.Helper()
	c, err := net.DialTimeout("tcp", address, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	r := &rawIMAP{conn: c, tp: textproto.NewConn(c)}
	if l := r.line(t); !strings.HasPrefix(l, "* OK") {
		t.Fatalf("greeting %q", l)
	}
	return r
}

func (r *rawIMAP) line(t *testing.T) string {
	t.Helper()
	l, err := r.tp.ReadLine()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return l
}

// cmd sends a command and returns every line up to its tagged reply.
func (r *rawIMAP) cmd(t *testing.T, tag, command string) []string {
	t.Helper()
	if err := r.tp.PrintfLine("%s %s", tag, command); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for {
		l := r.line(t)
		lines = append(lines, l)
		if strings.HasPrefix(l, tag+" ") {
			return lines
		}
	}
}

// readAll reads lines until the connection closes.
func (r *rawIMAP) readAll() ([]string, error) {
	var lines []string
	for {
		l, err := r.tp.ReadLine()
		if err != nil {
			return lines, err
		}
		lines = append(lines, l)
	}
}
