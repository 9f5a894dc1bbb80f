package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestHealthz(t *testing.T) {
	src := sampleSource(time.Now())
	srv := serve(t, New(src, nil, nil))
	resp, body := get(t, srv.Client(), srv.URL+"/healthz")
	if resp.StatusCode != http.StatusOK || body != "ok\n" {
		t.Fatalf("healthy: %d %q, want 200 \"ok\\n\"", resp.StatusCode, body)
	}
	src.mu.Lock()
	src.health = errors.New("daemon: token store unreadable: permission denied")
	src.mu.Unlock()
	resp, body = get(t, srv.Client(), srv.URL+"/healthz")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "token store unreadable") {
		t.Fatalf("unhealthy: %d %q, want 503 with the reason", resp.StatusCode, body)
	}
}

func TestSecurityHeadersOnEveryRoute(t *testing.T) {
	srv := serve(t, New(sampleSource(time.Now()), nil, nil))
	for _, path := range []string{"/", "/healthz", "/metrics", "/status.json", "/style.css", "/oauth2/callback", "/nope"} {
		resp, _ := get(t, srv.Client(), srv.URL+path)
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "script-src") {
			t.Errorf("%s: Content-Security-Policy %q", path, csp)
		}
		for h, want := range map[string]string{"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
			"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"} {
			if got := resp.Header.Get(h); got != want {
				t.Errorf("%s: %s = %q, want %q", path, h, got, want)
			}
		}
	}
}

func TestHostHeaderCheck(t *testing.T) {
	h := New(sampleSource(time.Now()), nil, nil, AllowHost("Bridge.LAN"))
	local := &net.TCPAddr{IP: net.ParseIP("192.0.2.10"), Port: 8025}
	for _, tc := range []struct {
		host string
		want int
	}{
		{"127.0.0.1:8025", 200},
		{"127.1.2.3", 200},
		{"localhost:8025", 200},
		{"LOCALHOST.", 200},
		{"admin.localhost:9000", 200},
		{"[::1]:8025", 200},
		{"[::ffff:127.0.0.1]:8025", 200},
		{"192.0.2.10:8025", 200}, // the address the request arrived on
		{"192.0.2.10:1234", 200}, // through a port-forward the port differs
		{"bridge.lan:8025", 200}, // AllowHost, case-insensitive
		{"192.0.2.11:8025", 403},
		{"evil.example:8025", 403}, // DNS rebinding
		{"127.0.0.1.nip.io", 403},
		{"localhost.evil.example", 403},
		{"", 403},
	} {
		req := httptest.NewRequest(http.MethodGet, "/healthz", nil)
		req.Host = tc.host
		req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, net.Addr(local)))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("Host %q: %d, want %d", tc.host, rec.Code, tc.want)
		}
	}
}

func TestStatusJSONSchema(t *testing.T) {
	now := time.Now()
	srv := serve(t, New(sampleSource(now), nil, nil))
	resp, body := get(t, srv.Client(), srv.URL+"/status.json")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status.json: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var st Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if st.Schema != SchemaVersion || !st.Healthy || st.Health != "" {
		t.Errorf("schema/health: %+v", st)
	}
	if want := map[string]int{"imap": 2, "pop3": 0, "smtp": 1}; !mapsEqual(st.Sessions, want) {
		t.Errorf("sessions = %v, want %v", st.Sessions, want)
	}
	if len(st.Accounts) != 2 {
		t.Fatalf("accounts: %+v", st.Accounts)
	}
	a, b := st.Accounts[0], st.Accounts[1]
	if a.Account != "alice@gmail.com" || a.Flow != "authcode" || a.State != "authorized" || !a.Authorize {
		t.Errorf("alice: %+v", a)
	}
	if a.AccessExpiresInSeconds == nil || *a.AccessExpiresInSeconds < 40*60 || *a.AccessExpiresInSeconds > 41*60 {
		t.Errorf("alice access_expires_in_seconds = %v, want about 2460", a.AccessExpiresInSeconds)
	}
	if a.RefreshTokenAgeSeconds == nil || *a.RefreshTokenAgeSeconds < 72*3600 || *a.RefreshTokenAgeSeconds > 72*3600+60 {
		t.Errorf("alice refresh_token_age_seconds = %v, want about 259200", a.RefreshTokenAgeSeconds)
	}
	if !a.AccessExpiry.Equal(now.Add(41*time.Minute)) || !strings.Contains(body, `"access_expiry": "`+now.Add(41*time.Minute).UTC().Format(time.RFC3339Nano)+`"`) {
		t.Errorf("alice access_expiry = %v", a.AccessExpiry)
	}
	if !mapsEqual(a.Sessions, map[string]int{"imap": 2, "pop3": 0, "smtp": 1}) {
		t.Errorf("alice sessions = %v", a.Sessions)
	}
	if b.State != "consent_required" || b.Authorize || !strings.Contains(b.LastError, "invalid_grant") ||
		b.AccessExpiresInSeconds != nil || !mapsEqual(b.Sessions, map[string]int{"imap": 0, "pop3": 0, "smtp": 0}) {
		t.Errorf("bob: %+v", b)
	}
	if len(st.RecentErrors) != 1 || st.RecentErrors[0].Attrs["proto"] != "imap" {
		t.Errorf("recent_errors: %+v", st.RecentErrors)
	}

	// The key names are the contract "oauthbridge status" and scripts
	// read: pin them.
	var raw map[string]any
	json.Unmarshal([]byte(body), &raw)
	if got, want := keys(raw), []string{"accounts", "healthy", "recent_errors", "schema", "sessions", "time"}; !slices.Equal(got, want) {
		t.Errorf("top-level keys %v, want %v", got, want)
	}
	alice := raw["accounts"].([]any)[0].(map[string]any)
	if got, want := keys(alice), []string{"access_expires_in_seconds", "access_expiry", "account", "authorize", "flow",
		"last_refresh_at", "obtained_at", "refresh_token_age_seconds", "refresh_token_issued_at", "refresh_token_last_used",
		"sessions", "state"}; !slices.Equal(got, want) {
		t.Errorf("account keys %v, want %v", got, want)
	}
	if got, want := keys(raw["recent_errors"].([]any)[0].(map[string]any)), []string{"attrs", "message", "time"}; !slices.Equal(got, want) {
		t.Errorf("error keys %v, want %v", got, want)
	}
}

func TestStatusPageContent(t *testing.T) {
	src := sampleSource(time.Now())
	srv := serve(t, New(src, nil, nil))
	resp, body := get(t, srv.Client(), srv.URL+"/")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("page: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{
		"<strong class=\"ok\">healthy</strong>",
		"<th scope=\"row\">alice@gmail.com</th>",
		"consent required: authorize again",
		`<form method="post" action="/authorize?account=alice%40gmail.com">`,
		`<button type="submit" aria-label="Authorize alice@gmail.com">Authorize</button>`,
		"oauthbridge authorize bob@contoso.example", // device flow: no button, the CLI hint
		"IMAP 2, SMTP 1",
		"upstream login failed",
		"account=bob@contoso.example proto=imap",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, "<script") {
		t.Error("page has a script")
	}
	if strings.Count(body, "<form") != 1 {
		t.Errorf("want exactly one Authorize form (authcode accounts only), page has %d", strings.Count(body, "<form"))
	}
}

func TestPageEscapesSourceText(t *testing.T) {
	src := sampleSource(time.Now())
	src.errors = []ErrorEntry{{Time: time.Now(), Message: `<img src=x onerror=alert(1)>`, Attrs: map[string]string{"user": `"><b>x`}}}
	srv := serve(t, New(src, nil, nil))
	_, body := get(t, srv.Client(), srv.URL+"/")
	if strings.Contains(body, "<img") || strings.Contains(body, "<b>x") {
		t.Fatalf("source text rendered as markup:\n%s", body)
	}
	if !strings.Contains(body, "&lt;img src=x onerror=alert(1)&gt;") {
		t.Fatal("escaped message missing")
	}
}

func TestMetricsWithoutRegistry(t *testing.T) {
	srv := serve(t, New(sampleSource(time.Now()), nil, nil))
	resp, body := get(t, srv.Client(), srv.URL+"/metrics")
	if resp.StatusCode != 200 || body != "" {
		t.Fatalf("nil metrics: %d %q, want 200 and an empty exposition", resp.StatusCode, body)
	}
}

func TestUnknownPathsAndMethods(t *testing.T) {
	srv := serve(t, New(sampleSource(time.Now()), nil, nil))
	if resp, _ := get(t, srv.Client(), srv.URL+"/authorize?account=alice@gmail.com"); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /authorize: %d, want 405", resp.StatusCode)
	}
	if resp, _ := get(t, srv.Client(), srv.URL+"/secret"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /secret: %d, want 404", resp.StatusCode)
	}
	if resp, _ := postForm(t, srv.Client(), srv.URL+"/healthz", url.Values{}, nil); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz: %d, want 405", resp.StatusCode)
	}
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
