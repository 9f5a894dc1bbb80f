package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// Cheap parameters keep the tests fast; BenchmarkAuthenticate* use the
// defaults.
var testArgon2 = Argon2Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func mustHash(t testing.TB, pw string) string {
	t.Helper()
	h, err := HashPasswordParams(pw, testArgon2)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// recordingTokens fails the test if anything asks it for a token.
type recordingTokens struct{ calls atomic.Int64 }

func (r *recordingTokens) Token(context.Context) (*oauth2.Token, error) {
	r.calls.Add(1)
	return nil, errors.New("must not be called")
}
func (r *recordingTokens) ForceRefresh(context.Context, string) (*oauth2.Token, error) {
	r.calls.Add(1)
	return nil, errors.New("must not be called")
}

// authFixture is a LocalAuth over three accounts with a log buffer.
type authFixture struct {
	auth   *LocalAuth
	logs   *syncBuffer
	tokens *recordingTokens
	news   atomic.Int64 // calls of New
	hashes map[string]string
}

type syncBuffer struct {
	mu sync.Mutex // guards b
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines(substr ...string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
next:
	for _, l := range strings.Split(s.b.String(), "\n") {
		for _, sub := range substr {
			if !strings.Contains(l, sub) {
				continue next
			}
		}
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newAuthFixture(t testing.TB, th ThrottleConfig) *authFixture {
	f := &authFixture{logs: &syncBuffer{}, tokens: &recordingTokens{}, hashes: map[string]string{
		"alice-laptop": mustHash(t, "alice-laptop-pw"),
		"alice-phone":  mustHash(t, "alice-phone-pw"),
		"alice-tablet": mustHash(t, "alice-tablet-pw"),
		"boss":         mustHash(t, "boss-pw"),
		"domain":       mustHash(t, "domain-pw"),
	}}
	a, err := NewLocalAuth(f.accounts(), LocalAuthOptions{
		Throttle: th,
		Logger:   slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	f.auth = a
	return f
}

func (f *authFixture) accounts() []LocalAccount {
	mk := func(loginName string) *Account {
		f.news.Add(1)
		return &Account{Name: loginName, Tokens: f.tokens}
	}
	return []LocalAccount{
		{Pattern: "Alice@Gmail.com", Hashes: []string{f.hashes["alice-laptop"], f.hashes["alice-phone"], f.hashes["alice-tablet"]}, New: mk},
		{Pattern: "boss@example.com", Hashes: []string{f.hashes["boss"]}, New: mk},
		{Pattern: "*@example.com", Hashes: []string{f.hashes["domain"]}, New: mk},
	}
}

var (
	clientA = netip.MustParseAddr("192.0.2.7")
	clientB = netip.MustParseAddr("192.0.2.8")
)

func TestLocalAuthLogins(t *testing.T) {
	tests := []struct {
		user, pw string
		want     string // account Name, or "" for ErrBadCredentials
	}{
		{"alice@gmail.com", "alice-laptop-pw", "Alice@Gmail.com"},
		{"ALICE@GMAIL.COM", "alice-tablet-pw", "Alice@Gmail.com"},
		{"alice@gmail.com", "boss-pw", ""},
		{"alice@gmail.com", "", ""},
		{"boss@example.com", "boss-pw", "boss@example.com"},
		{"boss@example.com", "domain-pw", ""}, // exact wins over the wildcard
		{"Carol@Example.com", "domain-pw", "carol@example.com"},
		{"carol@example.com", "boss-pw", ""},
		{"carol@sub.example.com", "domain-pw", ""},
		{"@example.com", "domain-pw", ""},
		{"a@b@example.com", "domain-pw", ""},
		{"a b@example.com", "domain-pw", ""},
		{"a\x01auth=Bearer x@example.com", "domain-pw", ""},
		{strings.Repeat("a", 65) + "@example.com", "domain-pw", ""},
		{"jürgen@example.com", "domain-pw", "jürgen@example.com"},
		{"nobody@gmail.com", "alice-laptop-pw", ""},
		{"", "", ""},
	}
	f := newAuthFixture(t, ThrottleConfig{})
	for _, tt := range tests {
		acct, err := f.auth.Authenticate(context.Background(), clientA, tt.user, tt.pw)
		switch {
		case tt.want == "" && !errors.Is(err, ErrBadCredentials):
			t.Errorf("%q/%q: got %v, %v; want ErrBadCredentials", tt.user, tt.pw, acct, err)
		case tt.want != "" && (err != nil || acct.Name != tt.want):
			t.Errorf("%q/%q: got %v, %v; want account %q", tt.user, tt.pw, acct, err, tt.want)
		}
	}
	if n := f.tokens.calls.Load(); n != 0 {
		t.Fatalf("token source called %d times", n)
	}
}

func TestLocalAuthAccount(t *testing.T) {
	f := newAuthFixture(t, ThrottleConfig{})
	for _, tt := range []struct{ name, want string }{
		{"alice@gmail.com", "Alice@Gmail.com"},
		{"scanner@EXAMPLE.com", "scanner@example.com"},
	} {
		if a, err := f.auth.Account(tt.name); err != nil || a.Name != tt.want {
			t.Errorf("Account(%q) = %v, %v", tt.name, a, err)
		}
	}
	if _, err := f.auth.Account("bob@gmail.com"); !errors.Is(err, ErrUnknownAccount) {
		t.Errorf("unknown account: %v", err)
	}
}

// A failed login costs the same number of argon2 runs whoever the user is:
// the largest number of hashes of any account (alice has 3).
func TestLocalAuthTimingEqualised(t *testing.T) {
	f := newAuthFixture(t, ThrottleConfig{})
	tests := []struct {
		name, user, pw string
		runs           int64
	}{
		{"unknown user", "nobody@gmail.com", "x", 3},
		{"unknown domain user", "nobody@elsewhere.org", "x", 3},
		{"wrong password, 3 hashes", "alice@gmail.com", "x", 3},
		{"wrong password, 1 hash", "boss@example.com", "x", 3},
		{"wrong password, wildcard", "carol@example.com", "x", 3},
		{"first hash matches", "alice@gmail.com", "alice-laptop-pw", 1},
		{"third hash matches", "alice@gmail.com", "alice-tablet-pw", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.auth.argonRuns.Load()
			f.auth.Authenticate(context.Background(), clientA, tt.user, tt.pw)
			if got := f.auth.argonRuns.Load() - before; got != tt.runs {
				t.Fatalf("argon2 ran %d times, want %d", got, tt.runs)
			}
		})
	}
}

func TestLocalAuthCache(t *testing.T) {
	f := newAuthFixture(t, ThrottleConfig{})
	ctx := context.Background()
	runs := func(user, pw string) (int64, error) {
		before := f.auth.argonRuns.Load()
		_, err := f.auth.Authenticate(ctx, clientA, user, pw)
		return f.auth.argonRuns.Load() - before, err
	}
	steps := []struct {
		name     string
		update   func() // before the login, when set
		user, pw string
		runs     int64
		ok       bool
	}{
		{"first login verifies", nil, "alice@gmail.com", "alice-phone-pw", 2, true},
		{"repeat login is cached", nil, "alice@gmail.com", "alice-phone-pw", 0, true},
		{"cache is case-insensitive on the user", nil, "ALICE@gmail.com", "alice-phone-pw", 0, true},
		{"other password is not cached", nil, "alice@gmail.com", "alice-laptop-pw", 1, true},
		{"wrong password is never cached", nil, "alice@gmail.com", "nope", 3, false},
		{"wrong password again", nil, "alice@gmail.com", "nope", 3, false},
		{"wildcard caches per pattern", nil, "carol@example.com", "domain-pw", 1, true},
		{"same pattern, other login", nil, "dave@example.com", "domain-pw", 0, true},
		{"unchanged hash keeps its cache across Update", func() {
			if err := f.auth.Update(f.accounts()); err != nil {
				t.Fatal(err)
			}
		}, "alice@gmail.com", "alice-phone-pw", 0, true},
		{"removed hash drops its cache", func() {
			acc := f.accounts()
			acc[0].Hashes = []string{f.hashes["alice-laptop"]}
			if err := f.auth.Update(acc); err != nil {
				t.Fatal(err)
			}
		}, "alice@gmail.com", "alice-phone-pw", 1, false},
		{"kept hash still cached", nil, "alice@gmail.com", "alice-laptop-pw", 0, true},
	}
	for _, s := range steps {
		if s.update != nil {
			s.update()
		}
		n, err := runs(s.user, s.pw)
		if n != s.runs || (err == nil) != s.ok {
			t.Fatalf("%s: %d argon2 runs, err %v; want %d runs, success %v", s.name, n, err, s.runs, s.ok)
		}
	}
}

func TestLocalAuthUpdateErrors(t *testing.T) {
	mk := func(string) *Account { return &Account{} }
	good := mustHash(t, "pw")
	tests := []struct {
		name string
		acc  []LocalAccount
	}{
		{"bad hash", []LocalAccount{{Pattern: "a@b.c", Hashes: []string{"plaintext"}, New: mk}}},
		{"duplicate", []LocalAccount{{Pattern: "a@b.c", Hashes: []string{good}, New: mk}, {Pattern: "A@B.C", New: mk}}},
		{"duplicate wildcard", []LocalAccount{{Pattern: "*@b.c", New: mk}, {Pattern: "*@B.c", New: mk}}},
		{"bad wildcard", []LocalAccount{{Pattern: "*@", New: mk}}},
		{"star in name", []LocalAccount{{Pattern: "a*@b.c", New: mk}}},
		{"empty", []LocalAccount{{Pattern: "", New: mk}}},
		{"no New", []LocalAccount{{Pattern: "a@b.c"}}},
	}
	f := newAuthFixture(t, ThrottleConfig{})
	for _, tt := range tests {
		if _, err := NewLocalAuth(tt.acc, LocalAuthOptions{}); err == nil {
			t.Errorf("%s: NewLocalAuth accepted it", tt.name)
		}
		if err := f.auth.Update(tt.acc); err == nil {
			t.Errorf("%s: Update accepted it", tt.name)
		}
		if strings.Contains(fmt.Sprint(NewLocalAuth(tt.acc, LocalAuthOptions{})), "plaintext") {
			t.Errorf("%s: error quotes the hash field", tt.name)
		}
	}
	// The failed updates left the old accounts in place.
	if _, err := f.auth.Authenticate(context.Background(), clientA, "boss@example.com", "boss-pw"); err != nil {
		t.Fatalf("after failed updates: %v", err)
	}
}

func TestLocalAuthThrottle(t *testing.T) {
	f := newAuthFixture(t, ThrottleConfig{BanAfter: 3, BanFor: time.Hour, Window: time.Hour})
	ctx := WithSession(WithProto(context.Background(), "pop3"), "sess0001")
	for range 3 {
		if _, err := f.auth.Authenticate(ctx, clientA, "alice@gmail.com", "wrong"); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("got %v", err)
		}
	}
	before := f.auth.argonRuns.Load()
	_, err := f.auth.Authenticate(ctx, clientA, "alice@gmail.com", "alice-laptop-pw")
	if !errors.Is(err, ErrThrottled) {
		t.Fatalf("banned address with the right password: %v, want ErrThrottled", err)
	}
	if f.auth.argonRuns.Load() != before {
		t.Fatal("a banned attempt ran argon2")
	}
	if _, err := f.auth.Authenticate(ctx, clientB, "alice@gmail.com", "alice-laptop-pw"); err != nil {
		t.Fatalf("other address: %v", err)
	}
	if got := f.logs.lines(`msg="login failed"`, "proto=pop3", "session=sess0001", "client_ip=192.0.2.7", "user=alice@gmail.com", "reason=bad_password", "level=WARN"); len(got) != 3 {
		t.Fatalf("want 3 bad_password lines, logs:\n%s", f.logs)
	}
	if got := f.logs.lines(`msg="login failed"`, "client_ip=192.0.2.7", "reason=banned"); len(got) != 1 {
		t.Fatalf("want 1 banned line, logs:\n%s", f.logs)
	}
	if got := f.logs.lines(`msg="login failed"`); len(got) != 4 {
		t.Fatalf("want exactly one line per failure (4), logs:\n%s", f.logs)
	}
	for _, secret := range []string{"wrong", "alice-laptop-pw"} {
		if strings.Contains(f.logs.String(), secret) {
			t.Fatalf("password %q logged:\n%s", secret, f.logs)
		}
	}
}

func TestLocalAuthDelayRespectsCtx(t *testing.T) {
	f := newAuthFixture(t, ThrottleConfig{Delay: time.Hour, MaxDelay: time.Hour})
	f.auth.Authenticate(context.Background(), clientA, "alice@gmail.com", "wrong")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	before := f.auth.argonRuns.Load()
	_, err := f.auth.Authenticate(ctx, clientA, "alice@gmail.com", "alice-laptop-pw")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("delayed attempt: %v, want the ctx's error", err)
	}
	if f.auth.argonRuns.Load() != before {
		t.Fatal("argon2 ran although the attempt never got past its delay")
	}
	// The other address is not delayed.
	if _, err := f.auth.Authenticate(context.Background(), clientB, "alice@gmail.com", "alice-laptop-pw"); err != nil {
		t.Fatalf("other address: %v", err)
	}
	if got := f.logs.lines(`msg="login failed"`); len(got) != 1 {
		t.Fatalf("a cancelled wait was logged as a failure:\n%s", f.logs)
	}
}

func TestLocalAuthNeverTouchesTokensOnFailure(t *testing.T) {
	f := newAuthFixture(t, ThrottleConfig{})
	for _, u := range []string{"alice@gmail.com", "boss@example.com", "x@example.com", "nobody"} {
		f.auth.Authenticate(context.Background(), clientA, u, "wrong")
	}
	if f.news.Load() != 0 || f.tokens.calls.Load() != 0 {
		t.Fatalf("failed logins built %d accounts and asked %d tokens", f.news.Load(), f.tokens.calls.Load())
	}
}

func TestLocalAuthConcurrent(t *testing.T) {
	f := newAuthFixture(t, ThrottleConfig{})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 20 {
				pw := "alice-phone-pw"
				if (i+j)%3 == 0 {
					pw = "wrong"
				}
				_, err := f.auth.Authenticate(context.Background(), clientA, "alice@gmail.com", pw)
				if (err == nil) != (pw != "wrong") {
					t.Errorf("pw %q: %v", pw, err)
				}
				if j == 10 && i == 0 {
					f.auth.Update(f.accounts())
				}
			}
		})
	}
	wg.Wait()
}

func TestTruncateUser(t *testing.T) {
	long := strings.Repeat("é", 100)
	got := truncateUser(long)
	if len(got) > 131 || !strings.HasSuffix(got, "...") || !strings.HasPrefix(long, strings.TrimSuffix(got, "...")) {
		t.Fatalf("truncateUser = %q", got)
	}
	if got := truncateUser("a\xffb"); got != "a?b" {
		t.Fatalf("invalid UTF-8: %q", got)
	}
}

func benchmarkAuth(b *testing.B, pw string) {
	h, err := HashPassword("app-password")
	if err != nil {
		b.Fatal(err)
	}
	acct := &Account{Name: "alice@gmail.com"}
	a, err := NewLocalAuth([]LocalAccount{{Pattern: "alice@gmail.com", Hashes: []string{h}, New: func(string) *Account { return acct }}}, LocalAuthOptions{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if pw == "app-password" {
		if _, err := a.Authenticate(ctx, clientA, "alice@gmail.com", pw); err != nil { // fill the cache
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		a.Authenticate(ctx, clientA, "alice@gmail.com", pw)
	}
}

// BenchmarkAuthenticateCached is a repeat login: an HMAC and a map lookup,
// no argon2.
func BenchmarkAuthenticateCached(b *testing.B) { benchmarkAuth(b, "app-password") }

// BenchmarkAuthenticateWrong is a wrong password (one argon2id run with
// DefaultArgon2; no throttle configured).
func BenchmarkAuthenticateWrong(b *testing.B) { benchmarkAuth(b, "wrong") }
