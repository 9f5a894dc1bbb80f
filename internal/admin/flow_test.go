package admin

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/oauthbridge/oauthbridge/internal/fakegmail/fakeoauth"
	"github.com/oauthbridge/oauthbridge/tokens"
)

// managerSource is the Source the daemon builds, reduced to the token
// parts: the real tokens.Manager behind the status page.
type managerSource struct {
	*fakeSource
	m     *tokens.Manager
	specs map[string]tokens.AccountSpec
}

func (s *managerSource) Accounts() []tokens.AccountStatus { return s.m.Status() }

func (s *managerSource) BeginAuthorize(account, redirectURL string) (string, func(context.Context, url.Values) error, error) {
	u, p, err := s.m.BeginAuthCode(s.specs[account], redirectURL)
	if err != nil {
		return "", nil, err
	}
	return u, p.Complete, nil
}

// TestAuthorizeThroughFakeProvider runs the Authorize button's whole flow
// with a real tokens.Manager against the fake OAuth server: POST
// /authorize, the provider's consent (auto-approved), the redirect to
// /oauth2/callback, the code exchange with PKCE, the stored tokens.
func TestAuthorizeThroughFakeProvider(t *testing.T) {
	prov, err := fakeoauth.Start(fakeoauth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prov.Close() })
	store, err := tokens.OpenStore(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	m := tokens.NewManager(store, tokens.Options{})
	t.Cleanup(func() { m.Close() })
	spec := tokens.AccountSpec{Name: "alice@gmail.com", Flow: tokens.FlowAuthCode,
		ClientID: prov.ClientID, ClientSecret: prov.ClientSecret,
		AuthURL: prov.AuthURL(), TokenURL: prov.TokenURL(), Scopes: []string{"https://mail.google.com/"}}
	if err := m.SetAccounts([]tokens.AccountSpec{spec}); err != nil {
		t.Fatal(err)
	}
	src := &managerSource{fakeSource: sampleSource(time.Now()), m: m, specs: map[string]tokens.AccountSpec{spec.Name: spec}}
	srv := serve(t, New(src, nil, nil))

	if st := m.Status(); st[0].State != tokens.StateNotAuthorized {
		t.Fatalf("before: %+v", st)
	}
	c := &http.Client{Timeout: 30 * time.Second} // follows 303 -> provider -> 302 -> callback
	_, page := get(t, c, srv.URL+"/")
	if !strings.Contains(page, "not authorized yet") {
		t.Fatal("page does not say the account needs authorizing")
	}
	resp, body := postForm(t, c, srv.URL+"/authorize?account=alice%40gmail.com", url.Values{"csrf": {csrfFrom(t, page)}}, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "<h1>Authorized</h1>") {
		t.Fatalf("flow ended with %d at %s\n%s", resp.StatusCode, resp.Request.URL, body)
	}
	if resp.Request.URL.Path != "/oauth2/callback" || !strings.HasPrefix(resp.Request.URL.String(), srv.URL) {
		t.Fatalf("the provider did not come back to the callback: %s", resp.Request.URL)
	}
	if st := m.Status(); st[0].State != tokens.StateAuthorized || st[0].ObtainedAt.IsZero() {
		t.Fatalf("after: %+v", st)
	}
	s, err := m.Source(spec.Name, "")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := s.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !prov.Validate("alice@gmail.com", tok.AccessToken) {
		t.Fatal("the stored access token is not one the provider issued for alice")
	}
	_, page = get(t, c, srv.URL+"/")
	if !strings.Contains(page, `<td class="ok">authorized</td>`) {
		t.Fatal("the page does not show the account as authorized")
	}
	if strings.Contains(page, tok.AccessToken) {
		t.Fatal("the page shows the access token")
	}
}
