package admin

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oauthbridge/oauthbridge/tokens"
)

// fakeSource is a Source whose answers the test sets.
type fakeSource struct {
	mu           sync.Mutex // guards everything below
	health       error
	accounts     []tokens.AccountStatus
	sessions     map[string]int
	acctSessions map[string]map[string]int
	errors       []ErrorEntry
	begin        func(account, redirectURL string) (string, func(context.Context, url.Values) error, error)
	begun        []string // redirect URLs passed to BeginAuthorize
}

func (f *fakeSource) Healthy() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.health
}

func (f *fakeSource) Accounts() []tokens.AccountStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]tokens.AccountStatus(nil), f.accounts...)
}

func (f *fakeSource) Sessions() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sessions
}

func (f *fakeSource) AccountSessions(account string) map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.acctSessions[account]
}

func (f *fakeSource) RecentErrors() []ErrorEntry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]ErrorEntry(nil), f.errors...)
}

func (f *fakeSource) BeginAuthorize(account, redirectURL string) (string, func(context.Context, url.Values) error, error) {
	f.mu.Lock()
	f.begun = append(f.begun, redirectURL)
	begin := f.begin
	f.mu.Unlock()
	return begin(account, redirectURL)
}

// sampleSource has two accounts (one authcode, one consent_required
// device account), sessions and an error.
func sampleSource(now time.Time) *fakeSource {
	return &fakeSource{
		accounts: []tokens.AccountStatus{
			{Account: "alice@gmail.com", Flow: tokens.FlowAuthCode, State: tokens.StateAuthorized,
				AccessExpiry: now.Add(41 * time.Minute), ObtainedAt: now.Add(-72 * time.Hour),
				RefreshTokenIssuedAt: now.Add(-72 * time.Hour), RefreshTokenLastUsed: now.Add(-19 * time.Minute),
				LastRefreshAt: now.Add(-19 * time.Minute)},
			{Account: "bob@contoso.example", Flow: tokens.FlowDevice, State: tokens.StateConsentRequired,
				LastError: "tokens: bob@contoso.example: refresh: invalid_grant: run \"oauthbridge authorize bob@contoso.example\""},
		},
		sessions:     map[string]int{"imap": 2, "smtp": 1},
		acctSessions: map[string]map[string]int{"alice@gmail.com": {"imap": 2, "smtp": 1}},
		errors: []ErrorEntry{{Time: now.Add(-5 * time.Minute), Message: "upstream login failed",
			Attrs: map[string]string{"account": "bob@contoso.example", "proto": "imap"}}},
		begin: func(string, string) (string, func(context.Context, url.Values) error, error) {
			panic("BeginAuthorize not expected")
		},
	}
}

// serve starts h on a real loopback listener.
func serve(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// noRedirects is a client that shows redirects instead of following them.
func noRedirects() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
}

func get(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func postForm(t *testing.T, c *http.Client, u string, form url.Values, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrfFrom reads the form token from the status page.
func csrfFrom(t *testing.T, page string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no csrf field in the page:\n%s", page)
	}
	return m[1]
}
