package tokens

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/oauthbridge/oauthbridge/internal/fakegmail/fakeoauth"
)

// testClock is a settable clock shared by a Manager (and sometimes the
// fake server).
type testClock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

func newClock() *testClock { return &testClock{t: time.Now()} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// logBuffer collects log output at debug level, for the no-secret checks.
type logBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func startFake(t testing.TB, opts fakeoauth.Options) *fakeoauth.Server {
	t.Helper()
	f, err := fakeoauth.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func openStore(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := OpenStore(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const alice = "alice@gmail.com"

// authcodeSpec describes an account of the fake's default client.
func authcodeSpec(f *fakeoauth.Server, name string) AccountSpec {
	return AccountSpec{Name: name, Flow: FlowAuthCode, ClientID: f.ClientID, ClientSecret: f.ClientSecret,
		AuthURL: f.AuthURL(), TokenURL: f.TokenURL(), DeviceAuthURL: f.DeviceAuthURL(),
		Scopes: []string{"https://mail.google.com/"}}
}

func newManager(t testing.TB, store *Store, opts Options, specs ...AccountSpec) *Manager {
	t.Helper()
	m := NewManager(store, opts)
	t.Cleanup(func() { m.Close() })
	if err := m.SetAccounts(specs); err != nil {
		t.Fatal(err)
	}
	return m
}

// seed stores a grant issued by the fake for account, with its access
// token expiring at expiry on the test's clock. It returns the stored
// record.
func seed(t testing.TB, store *Store, f *fakeoauth.Server, account, user string, expiry time.Time) *Record {
	t.Helper()
	at, rt := f.Issue(user)
	r := &Record{AccessToken: at, TokenType: "Bearer", Expiry: expiry, RefreshToken: rt, Flow: FlowAuthCode,
		ObtainedAt: expiry.Add(-time.Hour), RefreshTokenIssuedAt: expiry.Add(-time.Hour)}
	if err := store.Save(account, r); err != nil {
		t.Fatal(err)
	}
	return r
}

func source(t testing.TB, m *Manager, account, subject string) *Source {
	t.Helper()
	s, err := m.Source(account, subject)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// settle waits until no refresh is running on s: the event a background
// refresh ends with.
func settle(t testing.TB, s *Source) {
	t.Helper()
	s.mu.Lock()
	ch := s.refreshing
	s.mu.Unlock()
	if ch == nil {
		return
	}
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("refresh did not end")
	}
}

func mustToken(t testing.TB, s *Source) string {
	t.Helper()
	tok, err := s.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return tok.AccessToken
}
