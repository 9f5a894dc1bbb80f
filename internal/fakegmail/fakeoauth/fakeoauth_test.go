package fakeoauth

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"golang.org/x/oauth2/jwt"
)

// clock is a settable clock for Options.Now.
type clock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func start(t *testing.T, opts Options) *Server {
	t.Helper()
	s, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func config(s *Server) *oauth2.Config {
	return &oauth2.Config{
		ClientID: s.ClientID, ClientSecret: s.ClientSecret,
		Endpoint: oauth2.Endpoint{AuthURL: s.AuthURL(), TokenURL: s.TokenURL(),
			DeviceAuthURL: s.DeviceAuthURL(), AuthStyle: oauth2.AuthStyleInParams},
		RedirectURL: "http://127.0.0.1:9/cb",
		Scopes:      []string{"https://mail.google.com/"},
	}
}

// noRedirect is an HTTP client that returns the /authorize redirect
// instead of following it.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// authorize GETs u and returns the redirect's query.
func authorize(t *testing.T, u string) url.Values {
	t.Helper()
	resp, err := noRedirect.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize: status %d, want 302", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return loc.Query()
}

func oauthCode(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		if re.ErrorCode != "" {
			return re.ErrorCode
		}
		var body struct{ Error string }
		_ = json.Unmarshal(re.Body, &body)
		return body.Error
	}
	return ""
}

func TestAuthCodePKCE(t *testing.T) {
	s := start(t, Options{})
	cfg := config(s)
	ctx := context.Background()
	verifier := oauth2.GenerateVerifier()
	q := authorize(t, cfg.AuthCodeURL("st4te", oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("user", "alice@gmail.com")))
	if q.Get("state") != "st4te" || q.Get("code") == "" {
		t.Fatalf("redirect query %v", q)
	}
	if _, err := cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption("wrong-verifier-wrong-verifier-wrong-verifier")); oauthCode(err) != "invalid_grant" {
		t.Fatalf("wrong verifier: %v, want invalid_grant", err)
	}
	tok, err := cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if tok.RefreshToken == "" || !s.Validate("ALICE@gmail.com", tok.AccessToken) || s.Validate("bob@gmail.com", tok.AccessToken) {
		t.Fatalf("token %+v does not validate for alice only", tok)
	}
	// A code used twice revokes what it issued (RFC 6749 §4.1.2).
	if _, err := cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier)); oauthCode(err) != "invalid_grant" {
		t.Fatalf("reused code: %v, want invalid_grant", err)
	}
	if s.Validate("alice@gmail.com", tok.AccessToken) {
		t.Fatal("token of a replayed code still valid")
	}
	if got := s.Grants("authorization_code"); got != 1 {
		t.Fatalf("Grants(authorization_code) = %d, want 1", got)
	}
}

func TestAuthorizeChecks(t *testing.T) {
	s := start(t, Options{DefaultUser: "default@example.com"})
	s.RegisterClient("web", "sec", "https://app.example/cb")
	chal := oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())
	base := url.Values{"client_id": {s.ClientID}, "redirect_uri": {"http://127.0.0.1:4711/"},
		"response_type": {"code"}, "scope": {"mail"}, "code_challenge": {chal},
		"code_challenge_method": {"S256"}, "state": {"s"}}
	with := func(kv ...string) string {
		v := url.Values{}
		for k, vv := range base {
			v[k] = vv
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "" {
				v.Del(kv[i])
			} else {
				v.Set(kv[i], kv[i+1])
			}
		}
		return s.AuthURL() + "?" + v.Encode()
	}
	// Problems with the client or redirect URI are never redirected.
	for name, u := range map[string]string{
		"unknown client":     with("client_id", "nope"),
		"remote redirect":    with("redirect_uri", "http://evil.example/cb"),
		"https loopback":     with("redirect_uri", "https://127.0.0.1:1/"),
		"unregistered exact": with("client_id", "web", "redirect_uri", "https://app.example/other"),
	} {
		resp, err := noRedirect.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 && resp.StatusCode != 401 {
			t.Errorf("%s: status %d, want 400/401 page", name, resp.StatusCode)
		}
	}
	if q := authorize(t, with("client_id", "web", "redirect_uri", "https://app.example/cb")); q.Get("code") == "" {
		t.Errorf("registered redirect: %v", q)
	}
	for name, tc := range map[string]struct {
		u, want string
	}{
		"no pkce":       {with("code_challenge", ""), "invalid_request"},
		"plain pkce":    {with("code_challenge_method", "plain"), "invalid_request"},
		"token type":    {with("response_type", "token"), "unsupported_response_type"},
		"missing scope": {with("scope", ""), "invalid_scope"},
	} {
		if q := authorize(t, tc.u); q.Get("error") != tc.want || q.Get("state") != "s" {
			t.Errorf("%s: redirect %v, want error=%s", name, q, tc.want)
		}
	}
	s.SetDeny(true)
	if q := authorize(t, with()); q.Get("error") != "access_denied" {
		t.Errorf("deny: %v", q)
	}
	s.SetDeny(false)

	// The consenting user: user param > knob > login_hint > default.
	userOf := func(u string) string {
		t.Helper()
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.codes[u].user
	}
	if u := userOf(authorize(t, with("login_hint", "hint@x")).Get("code")); u != "hint@x" {
		t.Errorf("login_hint: consent by %q", u)
	}
	if u := userOf(authorize(t, with()).Get("code")); u != "default@example.com" {
		t.Errorf("default: consent by %q", u)
	}
	s.SetConsentUser("knob@x")
	if u := userOf(authorize(t, with("login_hint", "hint@x")).Get("code")); u != "knob@x" {
		t.Errorf("knob: consent by %q", u)
	}
	if u := userOf(authorize(t, with("user", "param@x")).Get("code")); u != "param@x" {
		t.Errorf("param: consent by %q", u)
	}
}

func refresh(ctx context.Context, cfg *oauth2.Config, rt string) (*oauth2.Token, error) {
	return cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: rt}).Token()
}

func TestRefreshRotationAndReplay(t *testing.T) {
	s := start(t, Options{})
	cfg := config(s)
	ctx := context.Background()
	_, rt1 := s.Issue("alice@gmail.com")
	tok2, err := refresh(ctx, cfg, rt1)
	if err != nil {
		t.Fatal(err)
	}
	if tok2.RefreshToken == rt1 || !s.Validate("alice@gmail.com", tok2.AccessToken) {
		t.Fatalf("refresh did not rotate or token invalid: %+v", tok2)
	}
	// Reusing the rotated token is a replay: the whole grant dies.
	if _, err := refresh(ctx, cfg, rt1); oauthCode(err) != "invalid_grant" {
		t.Fatalf("replay: %v, want invalid_grant", err)
	}
	if _, err := refresh(ctx, cfg, tok2.RefreshToken); oauthCode(err) != "invalid_grant" {
		t.Fatalf("after replay the new token still works: %v", err)
	}
	if s.Validate("alice@gmail.com", tok2.AccessToken) {
		t.Fatal("access token of a revoked grant validates")
	}
	if got := s.Refreshes("alice@gmail.com"); got != 1 {
		t.Fatalf("Refreshes = %d, want 1", got)
	}

	// With a grace period the old token may be used again within it.
	clk := &clock{t: time.Now()}
	s2 := start(t, Options{Now: clk.Now})
	s2.SetRefreshGrace(10 * time.Second)
	cfg2 := config(s2)
	_, rt := s2.Issue("bob@x")
	if _, err := refresh(ctx, cfg2, rt); err != nil {
		t.Fatal(err)
	}
	if _, err := refresh(ctx, cfg2, rt); err != nil {
		t.Fatalf("reuse within grace: %v", err)
	}
	clk.Advance(11 * time.Second)
	if _, err := refresh(ctx, cfg2, rt); oauthCode(err) != "invalid_grant" {
		t.Fatalf("reuse after grace: %v, want invalid_grant", err)
	}

	// Without rotation the refresh token stays and no new one is sent.
	s3 := start(t, Options{})
	s3.SetRotateRefreshTokens(false)
	_, rt = s3.Issue("carol@x")
	for range 2 {
		tok, err := config(s3).TokenSource(ctx, &oauth2.Token{RefreshToken: rt}).Token()
		if err != nil {
			t.Fatal(err)
		}
		if raw, _ := tok.Extra("refresh_token").(string); raw != "" {
			t.Fatalf("rotation off but response has refresh_token")
		}
	}
}

func TestRevokeExpiryAndFailures(t *testing.T) {
	clk := &clock{t: time.Now()}
	s := start(t, Options{Now: clk.Now, TokenLifetime: time.Minute})
	cfg := config(s)
	ctx := context.Background()
	at, rt := s.Issue("alice@gmail.com")
	if e := s.Expiry(at); !e.Equal(clk.Now().Add(time.Minute)) {
		t.Fatalf("Expiry = %v", e)
	}
	clk.Advance(time.Minute)
	if s.Validate("alice@gmail.com", at) {
		t.Fatal("expired token validates")
	}

	s.FailNext(2, http.StatusServiceUnavailable)
	for range 2 {
		_, err := refresh(ctx, cfg, rt)
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.Response.StatusCode != 503 {
			t.Fatalf("FailNext: %v", err)
		}
	}
	tok, err := refresh(ctx, cfg, rt)
	if err != nil {
		t.Fatalf("after failures: %v", err)
	}

	wrong := *cfg
	wrong.ClientSecret = "bad"
	_, err = refresh(ctx, &wrong, tok.RefreshToken)
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_client" || re.Response.StatusCode != 401 {
		t.Fatalf("wrong secret: %v, want 401 invalid_client", err)
	}

	s.RevokeUser("alice@gmail.com")
	if _, err := refresh(ctx, cfg, tok.RefreshToken); oauthCode(err) != "invalid_grant" {
		t.Fatalf("after RevokeUser: %v", err)
	}
	if s.Validate("alice@gmail.com", tok.AccessToken) {
		t.Fatal("access token valid after RevokeUser")
	}
	if got := s.TokenRequests(); got != 5 {
		t.Fatalf("TokenRequests = %d, want 5", got)
	}
}

func TestDeviceFlow(t *testing.T) {
	clk := &clock{t: time.Now()}
	s := start(t, Options{Now: clk.Now, DeviceInterval: 5 * time.Second})
	s.RegisterClient("public-app", "") // Microsoft-style public client
	cfg := &oauth2.Config{ClientID: "public-app", Scopes: []string{"offline_access"},
		Endpoint: oauth2.Endpoint{DeviceAuthURL: s.DeviceAuthURL(), TokenURL: s.TokenURL(), AuthStyle: oauth2.AuthStyleInParams}}
	ctx := context.Background()
	da, err := cfg.DeviceAuth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if da.Interval != 5 || da.UserCode == "" || !strings.HasPrefix(da.VerificationURI, s.URL()) {
		t.Fatalf("device auth response %+v", da)
	}
	poll := func() string {
		v := url.Values{"grant_type": {GrantTypeDeviceCode}, "device_code": {da.DeviceCode}, "client_id": {"public-app"}}
		resp, err := http.PostForm(s.TokenURL(), v)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		if e, ok := body["error"].(string); ok {
			return e
		}
		return "ok"
	}
	steps := []struct {
		advance time.Duration
		want    string
	}{
		{0, "authorization_pending"},
		{time.Second, "slow_down"}, // faster than 5 s: interval becomes 10 s
		{6 * time.Second, "slow_down"},
		{16 * time.Second, "authorization_pending"}, // interval is 15 s now
	}
	for i, st := range steps {
		clk.Advance(st.advance)
		if got := poll(); got != st.want {
			t.Fatalf("step %d: %s, want %s", i, got, st.want)
		}
	}
	s.SlowDownNext(1)
	clk.Advance(time.Minute)
	if got := poll(); got != "slow_down" {
		t.Fatalf("SlowDownNext: %s", got)
	}
	if err := s.ApproveDevice(da.UserCode, "dave@contoso.com"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	if got := poll(); got != "ok" {
		t.Fatalf("after approval: %s", got)
	}
	clk.Advance(time.Minute)
	if got := poll(); got != "invalid_grant" {
		t.Fatalf("second use: %s", got)
	}

	da2, err := cfg.DeviceAuth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DenyDevice(da2.UserCode); err != nil {
		t.Fatal(err)
	}
	da, clk.t = da2, clk.Now().Add(time.Minute)
	if got := poll(); got != "access_denied" {
		t.Fatalf("denied: %s", got)
	}
	da3, err := cfg.DeviceAuth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	da = da3
	clk.Advance(11 * time.Minute)
	if got := poll(); got != "expired_token" {
		t.Fatalf("expired: %s", got)
	}
}

func saConfig(t *testing.T, keyJSON []byte, sub, aud string, scopes ...string) *jwt.Config {
	t.Helper()
	var k ServiceAccountKey
	if err := json.Unmarshal(keyJSON, &k); err != nil {
		t.Fatal(err)
	}
	if k.Type != "service_account" || !strings.Contains(k.PrivateKey, "PRIVATE KEY") {
		t.Fatalf("key file %+v", k)
	}
	return &jwt.Config{Email: k.ClientEmail, PrivateKey: []byte(k.PrivateKey), PrivateKeyID: k.PrivateKeyID,
		Subject: sub, Scopes: scopes, TokenURL: k.TokenURI, Audience: aud}
}

func TestServiceAccountJWT(t *testing.T) {
	s := start(t, Options{})
	ctx := context.Background()
	key, err := s.RegisterServiceAccount("bridge@proj.iam.gserviceaccount.com", "https://mail.google.com/")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := saConfig(t, key, "bob@example.com", "", "https://mail.google.com/").TokenSource(ctx).Token()
	if err != nil {
		t.Fatal(err)
	}
	if user, ok := s.Introspect(tok.AccessToken); !ok || user != "bob@example.com" {
		t.Fatalf("Introspect = %q %v, want bob@example.com", user, ok)
	}
	if tok.RefreshToken != "" {
		t.Fatal("jwt-bearer issued a refresh token")
	}
	for name, tc := range map[string]struct {
		cfg  *jwt.Config
		want string
	}{
		"wrong aud":        {saConfig(t, key, "bob@example.com", "https://other/token", "https://mail.google.com/"), "invalid_grant"},
		"scope not in dwd": {saConfig(t, key, "bob@example.com", "", "https://www.googleapis.com/auth/drive"), "unauthorized_client"},
	} {
		if _, err := tc.cfg.TokenSource(ctx).Token(); oauthCode(err) != tc.want {
			t.Errorf("%s: %v, want %s", name, err, tc.want)
		}
	}
	// A key the server does not know (another service account's key under
	// this email) fails the signature check.
	other, err := s.RegisterServiceAccount("other@proj.iam.gserviceaccount.com")
	if err != nil {
		t.Fatal(err)
	}
	forged := saConfig(t, other, "bob@example.com", "", "https://mail.google.com/")
	forged.Email, forged.PrivateKeyID = "bridge@proj.iam.gserviceaccount.com", ""
	if _, err := forged.TokenSource(ctx).Token(); oauthCode(err) != "invalid_grant" {
		t.Errorf("forged signature: %v", err)
	}
}

// assertion builds a client assertion the way Microsoft documents it.
func assertion(t *testing.T, keyPEM, certPEM []byte, clientID, aud, jti string) string {
	t.Helper()
	blk, _ := pem.Decode(keyPEM)
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	cb, _ := pem.Decode(certPEM)
	thumb := sha1.Sum(cb.Bytes)
	h, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "x5t": base64.RawURLEncoding.EncodeToString(thumb[:])})
	now := time.Now().Unix()
	c, _ := json.Marshal(map[string]any{"aud": aud, "iss": clientID, "sub": clientID, "jti": jti, "nbf": now, "iat": now, "exp": now + 600})
	signed := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	sum := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, k.(*rsa.PrivateKey), crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func TestClientCredentials(t *testing.T) {
	s := start(t, Options{})
	ctx := context.Background()
	s.RegisterClient("app-secret", "s3cret")
	cc := &clientcredentials.Config{ClientID: "app-secret", ClientSecret: "s3cret", TokenURL: s.TokenURL(),
		Scopes: []string{"https://outlook.office365.com/.default"}}
	tok, err := cc.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Validate("anyone@contoso.com", tok.AccessToken) {
		t.Fatal("app token does not validate")
	}
	bad := *cc
	bad.Scopes = []string{"https://outlook.office.com/IMAP.AccessAsUser.All"}
	if _, err := bad.Token(ctx); oauthCode(err) != "invalid_scope" {
		t.Fatalf("non-.default scope: %v", err)
	}

	certPEM, keyPEM, err := GenerateCertificate("app-cert")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RegisterCertificate("app-cert", certPEM); err != nil {
		t.Fatal(err)
	}
	post := func(a string) string {
		resp, err := http.PostForm(s.TokenURL(), url.Values{"grant_type": {"client_credentials"}, "client_id": {"app-cert"},
			"scope": {"https://outlook.office365.com/.default"}, "client_assertion_type": {clientAssertionType}, "client_assertion": {a}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		if e, ok := body["error"].(string); ok {
			return e
		}
		return "ok"
	}
	a := assertion(t, keyPEM, certPEM, "app-cert", s.TokenURL(), "jti-1")
	if got := post(a); got != "ok" {
		t.Fatalf("certificate assertion: %s", got)
	}
	if got := post(a); got != "invalid_client" {
		t.Fatalf("replayed assertion: %s", got)
	}
	if got := post(assertion(t, keyPEM, certPEM, "app-cert", "https://login.example/token", "jti-2")); got != "invalid_client" {
		t.Fatalf("wrong aud: %s", got)
	}
	otherCert, otherKey, err := GenerateCertificate("other")
	if err != nil {
		t.Fatal(err)
	}
	if got := post(assertion(t, otherKey, otherCert, "app-cert", s.TokenURL(), "jti-3")); got != "invalid_client" {
		t.Fatalf("unregistered certificate: %s", got)
	}
	// A certificate-only client cannot use client_credentials without it.
	if _, err := (&clientcredentials.Config{ClientID: "app-cert", TokenURL: s.TokenURL(),
		Scopes: []string{"https://outlook.office365.com/.default"}}).Token(ctx); oauthCode(err) != "invalid_client" {
		t.Fatalf("no credential: %v", err)
	}
	if got := s.Grants("client_credentials"); got != 2 {
		t.Fatalf("Grants(client_credentials) = %d, want 2", got)
	}
}

func TestIntrospectRevokeHTTP(t *testing.T) {
	s := start(t, Options{})
	at, _ := s.Issue("alice@gmail.com")
	introspect := func() map[string]any {
		resp, err := http.PostForm(s.IntrospectURL(), url.Values{"token": {at}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := introspect(); v["active"] != true || v["username"] != "alice@gmail.com" || v["email"] != "alice@gmail.com" {
		t.Fatalf("introspect = %v", v)
	}
	resp, err := http.Get(s.TokenInfoURL() + "?access_token=" + url.QueryEscape(at))
	if err != nil {
		t.Fatal(err)
	}
	var ti map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&ti)
	resp.Body.Close()
	if resp.StatusCode != 200 || ti["email"] != "alice@gmail.com" {
		t.Fatalf("tokeninfo %d %v", resp.StatusCode, ti)
	}
	resp, err = http.PostForm(s.RevokeURL(), url.Values{"token": {at}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if v := introspect(); v["active"] != false || v["username"] != nil {
		t.Fatalf("after revoke: %v", v)
	}
	if user, ok := s.Introspect(at); ok || user != "" {
		t.Fatalf("Introspect after revoke = %q %v", user, ok)
	}
}

// FuzzParseJWT: assertions are untrusted input; parsing never panics and
// the claims' audience check copes with any aud shape.
func FuzzParseJWT(f *testing.F) {
	f.Add("eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOlsiYSIsImIiXX0.c2ln")
	f.Add("a.b.c")
	f.Add("..")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Fuzz(func(t *testing.T, tok string) {
		_, c, _, _, err := parseJWT(tok)
		if err == nil {
			_ = c.hasAudience("http://127.0.0.1/token")
		}
	})
}
