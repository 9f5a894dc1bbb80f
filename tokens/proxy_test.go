package tokens_test

import (
	"context"
	"testing"
	"time"

	"github.com/oauthbridge/oauthbridge/internal/fakegmail/fakeoauth"
	"github.com/oauthbridge/oauthbridge/proxy"
	"github.com/oauthbridge/oauthbridge/tokens"
)

// The package satisfies proxy.TokenSource without importing proxy; the
// external test checks it at compile time.
var _ proxy.TokenSource = (*tokens.Source)(nil)

// An upstream that refuses a token still valid by its expiry (revoked at
// the provider, say) gets a fresh one through proxy.AuthenticateUpstream's
// single ForceRefresh; once the grant itself is gone the error says
// consent is required, as proxy.ConsentRequired reads it.
func TestWithAuthenticateUpstream(t *testing.T) {
	f, err := fakeoauth.Start(fakeoauth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	store, err := tokens.OpenStore(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	const user = "alice@gmail.com"
	at, rt := f.Issue(user)
	if err := store.Save(user, &tokens.Record{AccessToken: at, RefreshToken: rt, Expiry: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	m := tokens.NewManager(store, tokens.Options{})
	defer m.Close()
	if err := m.SetAccounts([]tokens.AccountSpec{{Name: user, Flow: tokens.FlowAuthCode, ClientID: f.ClientID,
		ClientSecret: f.ClientSecret, AuthURL: f.AuthURL(), TokenURL: f.TokenURL()}}); err != nil {
		t.Fatal(err)
	}
	src, err := m.Source(user, "")
	if err != nil {
		t.Fatal(err)
	}
	// The upstream accepts only tokens the fake still validates, and
	// refuses the first (seeded) one as if it had been revoked.
	login := func(tok string) error {
		if tok == at || !f.Validate(user, tok) {
			return &proxy.AuthError{Status: "401", Reply: "NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)"}
		}
		return nil
	}
	tok, err := proxy.AuthenticateUpstream(context.Background(), src, login)
	if err != nil || tok.AccessToken == at || f.Refreshes(user) != 1 {
		t.Fatalf("AuthenticateUpstream: %v, refreshes %d", err, f.Refreshes(user))
	}

	f.RevokeUser(user)
	_, err = proxy.AuthenticateUpstream(context.Background(), src, login)
	if !proxy.ConsentRequired(err) {
		t.Fatalf("after revocation: %v, want consent required", err)
	}
}
