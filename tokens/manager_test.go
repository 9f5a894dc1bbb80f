package tokens

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oauthbridge/oauthbridge/internal/fakegmail/fakeoauth"
	"github.com/oauthbridge/oauthbridge/internal/metrics"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/oauth2"
)

func TestRefreshRotationPersistedAcrossRestart(t *testing.T) {
	f := startFake(t, fakeoauth.Options{})
	dir := t.TempDir()
	store := openStore(t, dir)
	clk := newClock()
	old := seed(t, store, f, alice, alice, clk.Now().Add(-time.Minute)) // expired
	m := newManager(t, store, Options{Now: clk.Now}, authcodeSpec(f, alice))

	at := mustToken(t, source(t, m, alice, ""))
	if at == old.AccessToken || !f.Validate(alice, at) {
		t.Fatalf("Token did not refresh to a valid token")
	}
	rec, err := store.Load(alice)
	if err != nil {
		t.Fatal(err)
	}
	if rec.RefreshToken == old.RefreshToken || rec.AccessToken != at || !rec.RefreshTokenIssuedAt.Equal(clk.Now()) {
		t.Fatalf("rotated refresh token not persisted: %v", rec)
	}
	if got := f.Refreshes(alice); got != 1 {
		t.Fatalf("Refreshes = %d, want 1", got)
	}
	m.Close()

	// A restart (new store handle and Manager on the same directory) uses
	// the persisted, rotated refresh token: the old one would be a replay
	// that revokes the grant at the fake.
	clk.Advance(2 * time.Hour)
	m2 := newManager(t, openStore(t, dir), Options{Now: clk.Now}, authcodeSpec(f, alice))
	at2 := mustToken(t, source(t, m2, alice, ""))
	if at2 == at || !f.Validate(alice, at2) || f.Refreshes(alice) != 2 {
		t.Fatalf("refresh after restart failed: refreshes=%d", f.Refreshes(alice))
	}
}

func TestWarmTokenNoRequest(t *testing.T) {
	f := startFake(t, fakeoauth.Options{})
	store := openStore(t, t.TempDir())
	clk := newClock()
	r := seed(t, store, f, alice, alice, clk.Now().Add(time.Hour))
	m := newManager(t, store, Options{Now: clk.Now}, authcodeSpec(f, alice))
	s := source(t, m, alice, "")
	for range 3 {
		if got := mustToken(t, s); got != r.AccessToken {
			t.Fatal("a fresh stored token was not used")
		}
	}
	if n := f.TokenRequests(); n != 0 {
		t.Fatalf("%d token requests for a fresh token", n)
	}
	// The same Source is shared by every session of the account.
	if source(t, m, alice, "whatever") != s {
		t.Fatal("Source is not shared")
	}
}

func TestConcurrentCallersOneRefresh(t *testing.T) {
	f := startFake(t, fakeoauth.Options{})
	store := openStore(t, t.TempDir())
	clk := newClock()
	seed(t, store, f, alice, alice, clk.Now().Add(-time.Second))
	m := newManager(t, store, Options{Now: clk.Now}, authcodeSpec(f, alice))
	s := source(t, m, alice, "")

	const n = 50
	got := make([]string, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			tok, err := s.Token(context.Background())
			if err == nil {
				got[i] = tok.AccessToken
			}
			errs[i] = err
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil || got[i] != got[0] {
			t.Fatalf("caller %d: %q, %v", i, got[i], errs[i])
		}
	}
	if r := f.Refreshes(alice); r != 1 {
		t.Fatalf("%d concurrent callers caused %d refreshes, want 1", n, r)
	}
}

func TestRefreshAheadServesCurrentToken(t *testing.T) {
	f := startFake(t, fakeoauth.Options{})
	store := openStore(t, t.TempDir())
	clk := newClock()
	r := seed(t, store, f, alice, alice, clk.Now().Add(time.Hour))
	m := newManager(t, store, Options{Now: clk.Now, RefreshBefore: 5 * time.Minute}, authcodeSpec(f, alice))
	s := source(t, m, alice, "")
	mustToken(t, s)               // loads
	clk.Advance(56 * time.Minute) // 4 minutes left: inside the margin
	if got := mustToken(t, s); got != r.AccessToken {
		t.Fatal("a still valid token was not served while refreshing ahead")
	}
	settle(t, s)
	if f.Refreshes(alice) != 1 {
		t.Fatalf("no refresh ahead of expiry")
	}
	if got := mustToken(t, s); got == r.AccessToken || !f.Validate(alice, got) {
		t.Fatal("refreshed token not served")
	}
}

func TestForceRefresh(t *testing.T) {
	f := startFake(t, fakeoauth.Options{})
	store := openStore(t, t.TempDir())
	clk := newClock()
	r := seed(t, store, f, alice, alice, clk.Now().Add(time.Hour))
	m := newManager(t, store, Options{Now: clk.Now}, authcodeSpec(f, alice))
	s := source(t, m, alice, "")
	ctx := context.Background()

	tok, err := s.ForceRefresh(ctx, r.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken == r.AccessToken || f.Refreshes(alice) != 1 {
		t.Fatalf("ForceRefresh of the current token did not refresh")
	}
	// A session that still holds the old token asks again: it gets the
	// current one, without another refresh.
	tok2, err := s.ForceRefresh(ctx, r.AccessToken)
	if err != nil || tok2.AccessToken != tok.AccessToken || f.Refreshes(alice) != 1 {
		t.Fatalf("ForceRefresh with a stale rejected token: %v, refreshes %d", err, f.Refreshes(alice))
	}
	if tok.RefreshToken != "" {
		t.Fatal("Source hands out the refresh token")
	}
}

func TestInvalidGrantConsentRequired(t *testing.T) {
	f := startFake(t, fakeoauth.Options{})
	dir := t.TempDir()
	store := openStore(t, dir)
	clk := newClock()
	old := seed(t, store, f, alice, alice, clk.Now().Add(-time.Minute))
	m := newManager(t, store, Options{Now: clk.Now}, authcodeSpec(f, alice))
	s := source(t, m, alice, "")
	f.RevokeUser(alice)

	_, err := s.Token(context.Background())
	if !IsConsentRequired(err) || IsTemporary(err) {
		t.Fatalf("after revocation: %v, want consent required", err)
	}
	if !strings.Contains(err.Error(), `run "oauthbridge authorize alice@gmail.com"`) || !strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("error does not name the fix: %v", err)
	}
	rec, lerr := store.Load(alice)
	if lerr != nil {
		t.Fatal(lerr)
	}
	if !rec.ConsentRequired || rec.RefreshToken != old.RefreshToken || rec.LastError == "" {
		t.Fatalf("record after invalid_grant: %v", rec)
	}
	st := m.Status()
	if len(st) != 1 || st[0].State != StateConsentRequired || !strings.Contains(st[0].LastError, "invalid_grant") {
		t.Fatalf("Status = %+v", st)
	}
	// Further calls do not hammer the token endpoint.
	n := f.TokenRequests()
	for range 5 {
		if _, err := s.Token(context.Background()); !IsConsentRequired(err) {
			t.Fatalf("second call: %v", err)
		}
	}
	if f.TokenRequests() != n {
		t.Fatal("consent-required account still sends refresh requests")
	}
	// A fresh Manager (restart) sees it from the store, without a request.
	m2 := newManager(t, openStore(t, dir), Options{Now: clk.Now}, authcodeSpec(f, alice))
	if _, err := source(t, m2, alice, "").Token(context.Background()); !IsConsentRequired(err) || f.TokenRequests() != n {
		t.Fatalf("after restart: %v", err)
	}
}

func TestGoogleInvalidGrantExplainsTestingStatus(t *testing.T) {
	a, err := newAccount(AccountSpec{Name: alice, Flow: FlowAuthCode, ClientID: "c", AuthURL: "https://accounts.google.com/o/oauth2/auth",
		TokenURL: "https://oauth2.googleapis.com/token"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := classify(a, "refresh", &oauth2.RetrieveError{ErrorCode: "invalid_grant", ErrorDescription: "Token has been expired or revoked.",
		Response: &http.Response{StatusCode: 400}})
	for _, want := range []string{`run "oauthbridge authorize alice@gmail.com"`, `"Testing"`, "7 days", "Token has been expired or revoked."} {
		if !strings.Contains(e.Error(), want) {
			t.Errorf("%q lacks %q", e.Error(), want)
		}
	}
	if !e.ConsentRequired() || e.Temporary() {
		t.Errorf("classes: consent %v temporary %v", e.ConsentRequired(), e.Temporary())
	}
}

func TestErrorClasses(t *testing.T) {
	a := &account{spec: AccountSpec{Name: "x", Flow: FlowAuthCode}, tokenURL: "http://127.0.0.1:1/token"}
	resp := func(code int) *http.Response { return &http.Response{StatusCode: code} }
	for _, tc := range []struct {
		err                error
		consent, temporary bool
	}{
		{&oauth2.RetrieveError{ErrorCode: "invalid_grant", Response: resp(400)}, true, false},
		{&oauth2.RetrieveError{ErrorCode: "invalid_scope", Response: resp(400)}, true, false},
		{&oauth2.RetrieveError{ErrorCode: "unauthorized_client", Response: resp(401)}, true, false},
		{&oauth2.RetrieveError{ErrorCode: "invalid_client", Response: resp(401)}, false, false},
		{&oauth2.RetrieveError{ErrorCode: "invalid_request", Response: resp(400)}, false, false},
		{&oauth2.RetrieveError{Response: resp(503), Body: []byte("<html>")}, false, true},
		{&oauth2.RetrieveError{Response: resp(429)}, false, true},
		{&oauth2.RetrieveError{ErrorCode: "temporarily_unavailable", Response: resp(400)}, false, true},
		{&oauth2.RetrieveError{Response: resp(500), Body: []byte(`{"error":"server_error"}`)}, false, true},
		{context.DeadlineExceeded, false, true},
		{errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), false, true},
	} {
		e := classify(a, "refresh", tc.err)
		if e.ConsentRequired() != tc.consent || e.Temporary() != tc.temporary {
			t.Errorf("%v: consent %v temporary %v, want %v %v", tc.err, e.ConsentRequired(), e.Temporary(), tc.consent, tc.temporary)
		}
	}
	// invalid_grant outside a refresh (an authorization code, a service
	// account) is not a consent problem of the stored grant.
	if e := classify(a, "authorize", &oauth2.RetrieveError{ErrorCode: "invalid_grant"}); e.ConsentRequired() {
		t.Error("invalid_grant of a code exchange marked consent required")
	}
	if e := classify(a, "refresh", &oauth2.RetrieveError{ErrorCode: "invalid_grant", ErrorDescription: "bad\r\nInjected: line"}); strings.ContainsAny(e.Error(), "\r\n") {
		t.Errorf("control characters pass through: %q", e.Error())
	}
}

func TestTemporaryFailuresKeepTokens(t *testing.T) {
	f := startFake(t, fakeoauth.Options{})
	dir := t.TempDir()
	store := openStore(t, dir)
	clk := newClock()
	r := seed(t, store, f, alice, alice, clk.Now().Add(time.Hour))
	m := newManager(t, store, Options{Now: clk.Now, MinBackoff: time.Second, MaxBackoff: time.Second}, authcodeSpec(f, alice))
	s := source(t, m, alice, "")
	mustToken(t, s)

	// 5xx while the token is inside the refresh margin: the valid token
	// is served, the stored tokens stay.
	f.FailNext(1, http.StatusServiceUnavailable)
	clk.Advance(57 * time.Minute)
	if got := mustToken(t, s); got != r.AccessToken {
		t.Fatal("valid token not served during a 5xx")
	}
	settle(t, s)
	if f.TokenRequests() != 1 {
		t.Fatalf("token requests = %d, want 1", f.TokenRequests())
	}
	rec, err := store.Load(alice)
	if err != nil {
		t.Fatal(err)
	}
	if rec.RefreshToken != r.RefreshToken || rec.AccessToken != r.AccessToken || rec.ConsentRequired || !strings.Contains(rec.LastError, "temporarily_unavailable") {
		t.Fatalf("record after a 5xx: %v", rec)
	}
	s.mu.Lock()
	lastErr := s.err
	s.mu.Unlock()
	if !IsTemporary(lastErr) || IsConsentRequired(lastErr) {
		t.Fatalf("5xx error class: %v", lastErr)
	}
	// Within the backoff no request is made; after it the refresh is
	// retried and succeeds.
	if got := mustToken(t, s); got != r.AccessToken || f.TokenRequests() != 1 {
		t.Fatalf("retried inside the backoff: %d requests", f.TokenRequests())
	}
	clk.Advance(time.Second)
	mustToken(t, s)
	settle(t, s)
	if got := mustToken(t, s); got == r.AccessToken || f.Refreshes(alice) != 1 {
		t.Fatal("refresh not retried after the backoff")
	}

	// Connection refused with an expired token: a temporary error, and
	// the stored grant is untouched.
	before, err := store.Load(alice)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	clk.Advance(2 * time.Hour)
	_, err = s.Token(context.Background())
	if !IsTemporary(err) || IsConsentRequired(err) {
		t.Fatalf("connection refused: %v, want temporary", err)
	}
	after, err := store.Load(alice)
	if err != nil {
		t.Fatal(err)
	}
	if after.RefreshToken != before.RefreshToken || after.AccessToken != before.AccessToken || after.ConsentRequired {
		t.Fatal("a connection failure changed the stored tokens")
	}
	if st := m.Status(); st[0].State != StateAuthorized || st[0].LastError == "" {
		t.Fatalf("Status after a connection failure: %+v", st[0])
	}
}

func TestSecondProcessPicksUpAuthorization(t *testing.T) {
	f := startFake(t, fakeoauth.Options{})
	dir := t.TempDir()
	clk := newClock()
	spec := authcodeSpec(f, alice)
	daemon := newManager(t, openStore(t, dir), Options{Now: clk.Now}, spec)
	s := source(t, daemon, alice, "")
	if _, err := s.Token(context.Background()); !IsConsentRequired(err) || !strings.Contains(err.Error(), "not authorized") {
		t.Fatalf("before authorize: %v", err)
	}
	if st := daemon.Status(); st[0].State != StateNotAuthorized {
		t.Fatalf("Status: %+v", st)
	}

	// The CLI ("another process": its own store handle and Manager)
	// authorizes while the daemon runs.
	cli := newManager(t, openStore(t, dir), Options{Now: clk.Now}, spec)
	if err := cli.AuthorizeCode(context.Background(), spec, AuthCodeOptions{OpenBrowser: browser(t, nil)}); err != nil {
		t.Fatal(err)
	}
	// The daemon's next Token call notices the new file.
	at := mustToken(t, s)
	if !f.Validate(alice, at) || f.Refreshes(alice) != 0 {
		t.Fatalf("daemon did not adopt the CLI's token")
	}

	// Re-authorizing after a revocation is picked up by the background
	// loop as well.
	f.RevokeUser(alice)
	clk.Advance(2 * time.Hour)
	if _, err := s.Token(context.Background()); !IsConsentRequired(err) {
		t.Fatalf("after revocation: %v", err)
	}
	if err := cli.AuthorizeCode(context.Background(), spec, AuthCodeOptions{OpenBrowser: browser(t, nil)}); err != nil {
		t.Fatal(err)
	}
	daemon.tick()
	settle(t, s)
	s.mu.Lock()
	consent, tok := s.consent, s.tok
	s.mu.Unlock()
	if consent || tok == nil || !f.Validate(alice, tok.AccessToken) {
		t.Fatal("background loop did not pick up the new authorization")
	}
}

func TestTwoManagersShareOneRefresh(t *testing.T) {
	f := startFake(t, fakeoauth.Options{}) // rotation with replay detection
	dir := t.TempDir()
	clk := newClock()
	storeA, storeB := openStore(t, dir), openStore(t, dir)
	seed(t, storeA, f, alice, alice, clk.Now().Add(-time.Second))
	a := newManager(t, storeA, Options{Now: clk.Now}, authcodeSpec(f, alice))
	b := newManager(t, storeB, Options{Now: clk.Now}, authcodeSpec(f, alice))
	sa, sb := source(t, a, alice, ""), source(t, b, alice, "")

	for round := range 3 {
		var wg sync.WaitGroup
		errs := make(chan error, 40)
		for i := range 40 {
			s := sa
			if i%2 == 1 {
				s = sb
			}
			wg.Go(func() {
				if _, err := s.Token(context.Background()); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: %v", round, err)
		}
		if got := f.Refreshes(alice); got != round+1 {
			t.Fatalf("round %d: %d refreshes, want %d: both processes refreshed", round, got, round+1)
		}
		if mustToken(t, sa) != mustToken(t, sb) {
			t.Fatalf("round %d: the managers serve different tokens", round)
		}
		clk.Advance(2 * time.Hour) // expire it again
	}
	// The grant survived: a replayed refresh token would have revoked it.
	if _, err := sa.Token(context.Background()); err != nil {
		t.Fatalf("grant lost: %v", err)
	}
}

func TestKeepaliveUsesIdleRefreshToken(t *testing.T) {
	f := startFake(t, fakeoauth.Options{})
	store := openStore(t, t.TempDir())
	clk := newClock()
	r := seed(t, store, f, alice, alice, clk.Now().Add(time.Hour))
	m := newManager(t, store, Options{Now: clk.Now, Keepalive: 48 * time.Hour}, authcodeSpec(f, alice))
	m.tick()
	s := source(t, m, alice, "")
	settle(t, s)
	if f.Refreshes(alice) != 0 {
		t.Fatal("refreshed a fresh, recently used token")
	}
	// Two days later, with a fresh access token (the fake issues tokens
	// on real time; make the stored one look fresh on the test clock).
	clk.Advance(47 * time.Hour)
	r.Expiry = clk.Now().Add(2 * time.Hour)
	if err := store.Save(alice, r); err != nil {
		t.Fatal(err)
	}
	m.tick()
	settle(t, s)
	if f.Refreshes(alice) != 0 {
		t.Fatal("keepalive before it was due")
	}
	clk.Advance(2 * time.Hour)
	r.Expiry = clk.Now().Add(2 * time.Hour)
	if err := store.Save(alice, r); err != nil {
		t.Fatal(err)
	}
	m.tick() // picks up the rewritten file
	settle(t, s)
	m.tick() // keepalive due
	settle(t, s)
	if f.Refreshes(alice) != 1 {
		t.Fatalf("keepalive refreshes = %d, want 1", f.Refreshes(alice))
	}
	rec, _ := store.Load(alice)
	if !rec.RefreshTokenLastUsed.Equal(clk.Now()) {
		t.Fatalf("last use not recorded: %v", rec.RefreshTokenLastUsed)
	}
}

func TestRunRefreshesAhead(t *testing.T) {
	f := startFake(t, fakeoauth.Options{})
	store := openStore(t, t.TempDir())
	seed(t, store, f, alice, alice, time.Now().Add(time.Minute)) // inside the 5m margin
	m := newManager(t, store, Options{CheckInterval: time.Hour}, authcodeSpec(f, alice))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	// Run ticks at once; wait for the refresh it starts.
	deadline := time.Now().Add(10 * time.Second)
	for f.Refreshes(alice) == 0 && time.Now().Before(deadline) {
		m.mu.Lock()
		s := m.sources[sourceKey{account: alice}]
		m.mu.Unlock()
		if s != nil {
			settle(t, s)
		}
		<-time.After(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if f.Refreshes(alice) != 1 {
		t.Fatal("Run did not refresh a token expiring within the margin")
	}
}

func TestServiceAccountWildcard(t *testing.T) {
	f := startFake(t, fakeoauth.Options{})
	key, err := f.RegisterServiceAccount("bridge@proj.iam.gserviceaccount.com", "https://mail.google.com/")
	if err != nil {
		t.Fatal(err)
	}
	spec := AccountSpec{Name: "*@example.com", Wildcard: true, Flow: FlowServiceAccount,
		ServiceAccountKey: key, Scopes: []string{"https://mail.google.com/"}}
	m := newManager(t, openStore(t, t.TempDir()), Options{}, spec)
	bob := mustToken(t, source(t, m, "*@example.com", "Bob@Example.com"))
	carol := mustToken(t, source(t, m, "*@example.com", "carol@example.com"))
	if u, ok := f.Introspect(bob); !ok || u != "bob@example.com" {
		t.Fatalf("bob's token is for %q", u)
	}
	if u, ok := f.Introspect(carol); !ok || u != "carol@example.com" {
		t.Fatalf("carol's token is for %q", u)
	}
	if again := mustToken(t, source(t, m, "*@example.com", "bob@example.com")); again != bob {
		t.Fatal("bob's token not cached")
	}
	if f.Grants(fakeoauth.GrantTypeJWTBearer) != 2 {
		t.Fatalf("grants = %d, want 2", f.Grants(fakeoauth.GrantTypeJWTBearer))
	}
	for _, bad := range []string{"mallory@evil.com", "@example.com", "", "bob@example.com.evil"} {
		if _, err := m.Source("*@example.com", bad); err == nil {
			t.Errorf("subject %q accepted", bad)
		}
	}
	if st := m.Status(); st[0].Subjects != 2 || st[0].State != StateAuthorized {
		t.Fatalf("Status: %+v", st)
	}
	// A scope outside the delegation is a configuration error, not consent.
	spec2 := spec
	spec2.Name, spec2.Wildcard, spec2.Subject = "dave@example.com", false, ""
	spec2.Scopes = []string{"https://www.googleapis.com/auth/drive"}
	m2 := newManager(t, openStore(t, t.TempDir()), Options{}, spec2)
	_, err = source(t, m2, "dave@example.com", "").Token(context.Background())
	if err == nil || IsConsentRequired(err) || IsTemporary(err) || !strings.Contains(err.Error(), "domain-wide delegation") {
		t.Fatalf("undelegated scope: %v", err)
	}
}

func TestClientCredentials(t *testing.T) {
	f := startFake(t, fakeoauth.Options{})
	f.RegisterClient("app-secret", "s3cret")
	certPEM, keyPEM, err := fakeoauth.GenerateCertificate("app-cert")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.RegisterCertificate("app-cert", certPEM); err != nil {
		t.Fatal(err)
	}
	scopes := []string{"https://outlook.office365.com/.default"}
	specs := []AccountSpec{
		{Name: "scanner@contoso.com", Flow: FlowClientCredentials, ClientID: "app-secret", ClientSecret: "s3cret", TokenURL: f.TokenURL(), Scopes: scopes},
		{Name: "shared@contoso.com", Flow: FlowClientCredentials, ClientID: "app-cert", ClientCertPEM: certPEM, ClientKeyPEM: keyPEM, TokenURL: f.TokenURL(), Scopes: scopes},
	}
	m := newManager(t, openStore(t, t.TempDir()), Options{}, specs...)
	for _, sp := range specs {
		s := source(t, m, sp.Name, sp.Name)
		at := mustToken(t, s)
		if !f.Validate(sp.Name, at) {
			t.Fatalf("%s: token does not validate", sp.Name)
		}
		// "Refresh" is a new grant with a new assertion (the fake refuses
		// a replayed jti).
		tok, err := s.ForceRefresh(context.Background(), at)
		if err != nil || tok.AccessToken == at {
			t.Fatalf("%s: ForceRefresh: %v", sp.Name, err)
		}
	}
	if f.Grants("client_credentials") != 4 {
		t.Fatalf("grants = %d, want 4", f.Grants("client_credentials"))
	}
	// A wrong secret is a configuration error, with the fix named.
	bad := specs[0]
	bad.ClientSecret = "wrong"
	m2 := newManager(t, openStore(t, t.TempDir()), Options{}, bad)
	_, err = source(t, m2, bad.Name, "").Token(context.Background())
	if err == nil || IsConsentRequired(err) || IsTemporary(err) || !strings.Contains(err.Error(), "invalid_client") {
		t.Fatalf("wrong secret: %v", err)
	}
}

func TestSetAccountsValidates(t *testing.T) {
	m := newManager(t, openStore(t, t.TempDir()), Options{})
	good := AccountSpec{Name: alice, Flow: FlowAuthCode, ClientID: "c", AuthURL: "https://a", TokenURL: "https://t"}
	if err := m.SetAccounts([]AccountSpec{good}); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]AccountSpec{
		"no token url":       {Name: "x", Flow: FlowAuthCode, ClientID: "c", AuthURL: "https://a"},
		"wildcard authcode":  {Name: "*@x.com", Wildcard: true, Flow: FlowAuthCode, ClientID: "c", AuthURL: "https://a", TokenURL: "https://t"},
		"bad sa key":         {Name: "x", Flow: FlowServiceAccount, ServiceAccountKey: []byte(`{"type":"service_account"}`)},
		"cc without secret":  {Name: "x", Flow: FlowClientCredentials, ClientID: "c", TokenURL: "https://t", Scopes: []string{"s"}},
		"unknown flow":       {Name: "x", Flow: "password", TokenURL: "https://t"},
		"wildcard bad shape": {Name: "a*@x.com", Wildcard: true, Flow: FlowServiceAccount},
	} {
		if err := m.SetAccounts([]AccountSpec{good, bad}); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	// All or nothing: the good account is still there.
	if _, err := m.Source(alice, ""); err != nil {
		t.Fatalf("a failed SetAccounts changed the accounts: %v", err)
	}
	if err := m.SetAccounts(nil); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Source(alice, ""); err == nil {
		t.Fatal("removed account still has a Source")
	}
}

func TestNoSecretsInLogs(t *testing.T) {
	var logs logBuffer
	f := startFake(t, fakeoauth.Options{Logger: logs.logger()})
	dir := t.TempDir()
	store := openStore(t, dir)
	clk := newClock()
	spec := authcodeSpec(f, alice)
	m := newManager(t, store, Options{Now: clk.Now, Logger: logs.logger(), MinBackoff: time.Second, MaxBackoff: time.Second}, spec)
	s := source(t, m, alice, "")
	var secrets []string
	var out strings.Builder
	if err := m.AuthorizeCode(context.Background(), spec, AuthCodeOptions{Out: &out, OpenBrowser: browser(t, nil)}); err != nil {
		t.Fatal(err)
	}
	record := func() {
		r, err := store.Load(alice)
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, r.AccessToken, r.RefreshToken)
	}
	record()
	for range 3 { // refreshes with rotation
		clk.Advance(2 * time.Hour)
		mustToken(t, s)
		record()
	}
	f.FailNext(1, 503) // a temporary failure
	clk.Advance(2 * time.Hour)
	_, _ = s.Token(context.Background())
	clk.Advance(time.Minute)
	mustToken(t, s)
	record()
	f.RevokeUser(alice) // invalid_grant
	clk.Advance(2 * time.Hour)
	_, _ = s.Token(context.Background())

	secrets = append(secrets, f.ClientSecret)
	text := logs.String() + out.String()
	if !strings.Contains(text, "token refreshed") || !strings.Contains(text, "consent required") {
		t.Fatalf("the scenario did not run: %s", text)
	}
	for _, sec := range secrets {
		if sec == "" {
			t.Fatal("empty secret collected")
		}
		if strings.Contains(text, sec) {
			t.Fatalf("a secret (%.12s...) appears in the logs", sec)
		}
	}
}

func BenchmarkTokenWarm(b *testing.B) {
	f := startFake(b, fakeoauth.Options{})
	store := openStore(b, b.TempDir())
	seed(b, store, f, alice, alice, time.Now().Add(time.Hour))
	m := newManager(b, store, Options{}, authcodeSpec(f, alice))
	s := source(b, m, alice, "")
	ctx := context.Background()
	mustToken(b, s)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Token(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestMetrics(t *testing.T) {
	f := startFake(t, fakeoauth.Options{})
	store := openStore(t, t.TempDir())
	clk := newClock()
	seed(t, store, f, alice, alice, clk.Now().Add(-time.Minute))
	met := metrics.New()
	bob := authcodeSpec(f, "bob@gmail.com")
	m := newManager(t, store, Options{Now: clk.Now, Metrics: met}, authcodeSpec(f, alice), bob)
	mustToken(t, source(t, m, alice, ""))
	want := `
# HELP oauthbridge_account_token_state 1 for the account's current token state (authorized, consent_required, not_authorized, error), 0 for the others.
# TYPE oauthbridge_account_token_state gauge
oauthbridge_account_token_state{account="alice@gmail.com",state="authorized"} 1
oauthbridge_account_token_state{account="alice@gmail.com",state="consent_required"} 0
oauthbridge_account_token_state{account="alice@gmail.com",state="error"} 0
oauthbridge_account_token_state{account="alice@gmail.com",state="not_authorized"} 0
oauthbridge_account_token_state{account="bob@gmail.com",state="authorized"} 0
oauthbridge_account_token_state{account="bob@gmail.com",state="consent_required"} 0
oauthbridge_account_token_state{account="bob@gmail.com",state="error"} 0
oauthbridge_account_token_state{account="bob@gmail.com",state="not_authorized"} 1
# HELP oauthbridge_token_refreshes_total OAuth token refreshes by outcome (ok, consent_required, temporary_error).
# TYPE oauthbridge_token_refreshes_total counter
oauthbridge_token_refreshes_total{outcome="ok"} 1
`
	if err := testutil.GatherAndCompare(met.Registry(), strings.NewReader(want),
		"oauthbridge_account_token_state", "oauthbridge_token_refreshes_total"); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(met.Registry(), "oauthbridge_account_token_expiry_timestamp_seconds"); err != nil || n != 1 {
		t.Fatalf("expiry gauges: %d %v", n, err)
	}
}
