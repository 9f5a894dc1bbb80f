package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// flowRecorder is a BeginAuthorize that hands out states and records the
// callbacks its complete functions get.
type flowRecorder struct {
	mu        sync.Mutex // guards the fields below
	n         int
	completed []url.Values
	fail      error // complete's result
}

func (f *flowRecorder) begin(account, redirectURL string) (string, func(context.Context, url.Values) error, error) {
	f.mu.Lock()
	f.n++
	state := fmt.Sprintf("state-%d", f.n)
	f.mu.Unlock()
	u := "https://provider.example/authorize?" + url.Values{"state": {state}, "redirect_uri": {redirectURL},
		"login_hint": {account}}.Encode()
	return u, func(ctx context.Context, q url.Values) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.completed = append(f.completed, q)
		return f.fail
	}, nil
}

func (f *flowRecorder) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.completed)
}

func newFlowServer(t *testing.T) (*fakeSource, *flowRecorder, string, *http.Client, string) {
	t.Helper()
	src := sampleSource(time.Now())
	rec := &flowRecorder{}
	src.begin = rec.begin
	srv := serve(t, New(src, nil, nil))
	c := noRedirects()
	_, page := get(t, c, srv.URL+"/")
	return src, rec, srv.URL, c, csrfFrom(t, page)
}

func TestAuthorizeRoundTrip(t *testing.T) {
	src, rec, base, c, csrf := newFlowServer(t)
	resp, _ := postForm(t, c, base+"/authorize?account=alice%40gmail.com", url.Values{"csrf": {csrf}}, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /authorize: %d, want 303", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Host != "provider.example" {
		t.Fatalf("Location = %q, want the provider", resp.Header.Get("Location"))
	}
	// The redirect comes back to the Host the browser used.
	wantRedirect := base + "/oauth2/callback"
	if got := loc.Query().Get("redirect_uri"); got != wantRedirect || src.begun[0] != wantRedirect {
		t.Fatalf("redirect URL %q, want %q", got, wantRedirect)
	}
	state := loc.Query().Get("state")

	resp, body := get(t, c, base+"/oauth2/callback?"+url.Values{"state": {state}, "code": {"the-code"}}.Encode())
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "<h1>Authorized</h1>") || !strings.Contains(body, "alice@gmail.com") {
		t.Fatalf("callback: %d\n%s", resp.StatusCode, body)
	}
	if rec.calls() != 1 || rec.completed[0].Get("code") != "the-code" || rec.completed[0].Get("state") != state {
		t.Fatalf("complete got %v", rec.completed)
	}
	// One click, one completion: a replayed callback is refused before
	// the Source sees it.
	resp, body = get(t, c, base+"/oauth2/callback?"+url.Values{"state": {state}, "code": {"the-code"}}.Encode())
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "Authorization failed") || rec.calls() != 1 {
		t.Fatalf("replayed callback: %d, completions %d\n%s", resp.StatusCode, rec.calls(), body)
	}
}

func TestAuthorizeAccountInForm(t *testing.T) {
	_, _, base, c, csrf := newFlowServer(t)
	resp, _ := postForm(t, c, base+"/authorize", url.Values{"csrf": {csrf}, "account": {"alice@gmail.com"}}, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("account as a form field: %d, want 303", resp.StatusCode)
	}
}

func TestAuthorizeRefusals(t *testing.T) {
	src, rec, base, c, csrf := newFlowServer(t)
	target := base + "/authorize?account=alice%40gmail.com"
	for _, tc := range []struct {
		name string
		form url.Values
		hdr  map[string]string
		want int
	}{
		{"no token", url.Values{}, nil, http.StatusForbidden},
		{"wrong token", url.Values{"csrf": {csrf + "x"}}, nil, http.StatusForbidden},
		{"cross-site browser POST", url.Values{"csrf": {csrf}}, map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"foreign Origin", url.Values{"csrf": {csrf}}, map[string]string{"Origin": "http://evil.example"}, http.StatusForbidden},
	} {
		resp, _ := postForm(t, c, target, tc.form, tc.hdr)
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
	}
	if resp, _ := postForm(t, c, base+"/authorize?account=mallory%40example.com", url.Values{"csrf": {csrf}}, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown account: %d, want 404", resp.StatusCode)
	}
	if len(src.begun) != 0 {
		t.Fatalf("BeginAuthorize ran for a refused request: %v", src.begun)
	}
	// A same-origin browser POST passes.
	if resp, _ := postForm(t, c, target, url.Values{"csrf": {csrf}}, map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": base}); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("same-origin browser POST: %d, want 303", resp.StatusCode)
	}
	if resp, _ := get(t, c, base+"/oauth2/callback?state=forged&code=x"); resp.StatusCode != http.StatusBadRequest || rec.calls() != 0 {
		t.Errorf("forged state: %d, completions %d", resp.StatusCode, rec.calls())
	}
	if resp, _ := get(t, c, base+"/oauth2/callback?code=x"); resp.StatusCode != http.StatusBadRequest || rec.calls() != 0 {
		t.Errorf("no state: %d, completions %d", resp.StatusCode, rec.calls())
	}
}

func TestAuthorizeFailuresShown(t *testing.T) {
	src, rec, base, c, csrf := newFlowServer(t)
	src.begin = func(string, string) (string, func(context.Context, url.Values) error, error) {
		return "", nil, errors.New("tokens: bob: authorize: flow device has no browser consent (no authorization URL)")
	}
	resp, body := postForm(t, c, base+"/authorize?account=bob%40contoso.example", url.Values{"csrf": {csrf}}, nil)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "flow device has no browser consent") {
		t.Fatalf("begin failure: %d\n%s", resp.StatusCode, body)
	}

	src.begin = rec.begin
	rec.fail = errors.New(`tokens: alice@gmail.com: authorize: access_denied: consent was refused in the browser: run "oauthbridge authorize alice@gmail.com" again and allow access`)
	resp, _ = postForm(t, c, base+"/authorize?account=alice%40gmail.com", url.Values{"csrf": {csrf}}, nil)
	loc, _ := url.Parse(resp.Header.Get("Location"))
	resp, body = get(t, c, base+"/oauth2/callback?"+url.Values{"state": {loc.Query().Get("state")}, "error": {"access_denied"}}.Encode())
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "Authorization failed") ||
		!strings.Contains(body, "consent was refused in the browser") {
		t.Fatalf("complete failure: %d\n%s", resp.StatusCode, body)
	}
}

func TestPendingAuthorizationsExpireAndAreCapped(t *testing.T) {
	src := sampleSource(time.Now())
	rec := &flowRecorder{}
	src.begin = rec.begin
	h := New(src, nil, nil).(*handler)
	var mu sync.Mutex // guards clock
	clock := time.Now()
	h.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	srv := serve(t, h)
	c := noRedirects()
	form := url.Values{"csrf": {h.csrf}}
	target := srv.URL + "/authorize?account=alice%40gmail.com"

	var first string
	for i := range maxPending {
		resp, _ := postForm(t, c, target, form, nil)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("flow %d: %d", i, resp.StatusCode)
		}
		if i == 0 {
			loc, _ := url.Parse(resp.Header.Get("Location"))
			first = loc.Query().Get("state")
		}
	}
	if resp, _ := postForm(t, c, target, form, nil); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("flow beyond the cap: %d, want 429", resp.StatusCode)
	}
	mu.Lock()
	clock = clock.Add(pendingTTL + time.Second)
	mu.Unlock()
	if resp, _ := get(t, c, srv.URL+"/oauth2/callback?state="+first+"&code=x"); resp.StatusCode != http.StatusBadRequest || rec.calls() != 0 {
		t.Fatalf("expired flow: %d, completions %d", resp.StatusCode, rec.calls())
	}
	if resp, _ := postForm(t, c, target, form, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after expiry a new flow starts: %d", resp.StatusCode)
	}
}
