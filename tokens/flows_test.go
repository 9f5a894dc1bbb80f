package tokens

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oauthbridge/oauthbridge/internal/fakegmail/fakeoauth"
)

// browser is an OpenBrowser that behaves like one: in the background it
// GETs the URL, follows the provider's redirect to the loopback listener
// and sends the page it ends on to pages (when not nil).
func browser(t *testing.T, pages chan<- string) func(string) error {
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	return func(u string) error {
		wg.Go(func() {
			c := &http.Client{Timeout: 10 * time.Second}
			resp, err := c.Get(u)
			if err != nil {
				t.Errorf("browser: %v", err)
				return
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if pages != nil {
				pages <- string(body)
			}
		})
		return nil
	}
}

func TestAuthorizeCodeLoopback(t *testing.T) {
	f := startFake(t, fakeoauth.Options{})
	store := openStore(t, t.TempDir())
	spec := authcodeSpec(f, alice)
	m := newManager(t, store, Options{}, spec)
	pages := make(chan string, 1)
	var out strings.Builder
	err := m.AuthorizeCode(context.Background(), spec, AuthCodeOptions{Out: &out, OpenBrowser: browser(t, pages)})
	if err != nil {
		t.Fatal(err)
	}
	if page := <-pages; !strings.Contains(page, "Authorized") {
		t.Fatalf("browser page: %s", page)
	}
	rec, err := store.Load(alice)
	if err != nil {
		t.Fatal(err)
	}
	// The fake consents as login_hint: the account name.
	if !f.Validate(alice, rec.AccessToken) || rec.RefreshToken == "" || rec.ConsentRequired || rec.Flow != FlowAuthCode {
		t.Fatalf("stored record %v", rec)
	}
	if !strings.Contains(out.String(), f.AuthURL()+"?") || !strings.Contains(out.String(), "code_challenge_method=S256") {
		t.Fatalf("printed URL: %s", out.String())
	}
	if st := m.Status(); st[0].State != StateAuthorized || st[0].ObtainedAt.IsZero() {
		t.Fatalf("Status: %+v", st)
	}
}

// terminal is the test's side of AuthorizeCode's Out and In: the lines it
// prints, and a pipe to paste into (an os.Pipe, which supports read
// deadlines like a terminal).
type terminal struct {
	lines chan string
	in    *os.File // AuthorizeCode reads this
	paste *os.File // the test writes this
	out   *io.PipeWriter
	wg    sync.WaitGroup
}

func newTerminal(t *testing.T) *terminal {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	term := &terminal{lines: make(chan string, 100), in: r, paste: w, out: pw}
	term.wg.Go(func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			term.lines <- sc.Text()
		}
		close(term.lines)
	})
	t.Cleanup(func() {
		pw.Close()
		term.wg.Wait()
		r.Close()
		w.Close()
	})
	return term
}

// waitLine returns the first printed line containing s.
func (term *terminal) waitLine(t *testing.T, s string) string {
	t.Helper()
	for l := range term.lines {
		if strings.Contains(l, s) {
			return l
		}
	}
	t.Fatalf("no line with %q printed", s)
	return ""
}

// redirectOf GETs the authorization URL like a browser whose loopback
// redirect cannot be reached: it returns the Location to paste.
func redirectOf(t *testing.T, authURL string) string {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || loc == "" {
		t.Fatalf("authorize: %d %q", resp.StatusCode, loc)
	}
	return loc
}

func TestAuthorizeCodePaste(t *testing.T) {
	f := startFake(t, fakeoauth.Options{})
	store := openStore(t, t.TempDir())
	spec := authcodeSpec(f, alice)
	m := newManager(t, store, Options{}, spec)
	term := newTerminal(t)
	done := make(chan error, 1)
	go func() {
		done <- m.AuthorizeCode(context.Background(), spec, AuthCodeOptions{Out: term.out, In: term.in})
	}()
	authURL := strings.TrimSpace(term.waitLine(t, f.AuthURL()))
	loc := redirectOf(t, authURL)

	// Something that is not the redirect first: a complaint, not a failure.
	if _, err := term.paste.WriteString(authURL + "\n"); err != nil {
		t.Fatal(err)
	}
	term.waitLine(t, "not the redirect address")
	if _, err := term.paste.WriteString("  " + loc + "  \n"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	term.waitLine(t, "Authorized alice@gmail.com")
	rec, err := store.Load(alice)
	if err != nil || !f.Validate(alice, rec.AccessToken) {
		t.Fatalf("after paste: %v %v", rec, err)
	}
}

func TestAuthorizeCodeStateMismatch(t *testing.T) {
	f := startFake(t, fakeoauth.Options{})
	store := openStore(t, t.TempDir())
	spec := authcodeSpec(f, alice)
	m := newManager(t, store, Options{}, spec)
	term := newTerminal(t)
	done := make(chan error, 1)
	go func() {
		done <- m.AuthorizeCode(context.Background(), spec, AuthCodeOptions{Out: term.out, In: term.in})
	}()
	authURL := strings.TrimSpace(term.waitLine(t, f.AuthURL()))
	u, err := url.Parse(redirectOf(t, authURL))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("state", "forged")
	u.RawQuery = q.Encode()
	if _, err := term.paste.WriteString(u.String() + "\n"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrStateMismatch) {
		t.Fatalf("forged state: %v, want ErrStateMismatch", err)
	}
	if _, err := store.Load(alice); !errors.Is(err, ErrNoToken) {
		t.Fatalf("tokens stored after a state mismatch: %v", err)
	}
	if f.Grants("authorization_code") != 0 {
		t.Fatal("code exchanged despite a state mismatch")
	}
}

func TestAuthorizeCodeDenied(t *testing.T) {
	f := startFake(t, fakeoauth.Options{})
	f.SetDeny(true)
	spec := authcodeSpec(f, alice)
	m := newManager(t, openStore(t, t.TempDir()), Options{}, spec)
	pages := make(chan string, 1)
	err := m.AuthorizeCode(context.Background(), spec, AuthCodeOptions{OpenBrowser: browser(t, pages)})
	var e *Error
	if !errors.As(err, &e) || e.Code != "access_denied" || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("denied: %v", err)
	}
	if page := <-pages; !strings.Contains(page, "Authorization failed") {
		t.Fatalf("browser page: %s", page)
	}
}

func TestAuthorizeCodeInvalidClient(t *testing.T) {
	f := startFake(t, fakeoauth.Options{})
	spec := authcodeSpec(f, alice)
	m := newManager(t, openStore(t, t.TempDir()), Options{}, spec)
	spec.ClientSecret = "wrong"
	err := m.AuthorizeCode(context.Background(), spec, AuthCodeOptions{OpenBrowser: browser(t, nil)})
	if err == nil || !strings.Contains(err.Error(), "invalid_client") || !strings.Contains(err.Error(), "client_id") {
		t.Fatalf("wrong secret: %v", err)
	}
}

func TestAuthorizeCodeTimeout(t *testing.T) {
	f := startFake(t, fakeoauth.Options{})
	spec := authcodeSpec(f, alice)
	m := newManager(t, openStore(t, t.TempDir()), Options{}, spec)
	err := m.AuthorizeCode(context.Background(), spec, AuthCodeOptions{Timeout: 20 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "no answer within") {
		t.Fatalf("timeout: %v", err)
	}
}

// The admin page's path: its own callback URL, Begin then Complete.
func TestBeginCompleteAuthCode(t *testing.T) {
	f := startFake(t, fakeoauth.Options{})
	store := openStore(t, t.TempDir())
	spec := authcodeSpec(f, alice)
	m := newManager(t, store, Options{}, spec)
	authURL, p, err := m.BeginAuthCode(spec, "http://127.0.0.1:8025/oauth2/callback")
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(redirectOf(t, authURL))
	if err != nil {
		t.Fatal(err)
	}
	if u.Path != "/oauth2/callback" || u.Query().Get("state") != p.State() {
		t.Fatalf("callback %s", u)
	}
	if err := p.Complete(context.Background(), u.Query()); err != nil {
		t.Fatal(err)
	}
	if err := p.Complete(context.Background(), u.Query()); err == nil {
		t.Fatal("a PendingAuth completed twice")
	}
	if _, err := store.Load(alice); err != nil {
		t.Fatal(err)
	}
}

func TestAuthorizeDevice(t *testing.T) {
	clk := newClock()
	f := startFake(t, fakeoauth.Options{Now: clk.Now, DeviceInterval: 5 * time.Second})
	f.RegisterClient("ms-public", "") // Microsoft-style public client
	spec := AccountSpec{Name: "dave@contoso.com", Flow: FlowDevice, ClientID: "ms-public",
		TokenURL: f.TokenURL(), DeviceAuthURL: f.DeviceAuthURL(),
		Scopes: []string{"https://outlook.office.com/IMAP.AccessAsUser.All", "offline_access"}}
	store := openStore(t, t.TempDir())
	m := newManager(t, store, Options{Now: clk.Now}, spec)
	var out strings.Builder
	var waits []time.Duration
	f.SlowDownNext(1)
	wait := func(ctx context.Context, d time.Duration) error {
		waits = append(waits, d)
		clk.Advance(d) // the fake measures polling intervals on this clock
		if len(waits) == 3 {
			// The user enters the printed code.
			line := out.String()
			i := strings.Index(line, "enter the code ")
			if i < 0 {
				t.Errorf("no code printed: %s", line)
				return errors.New("no code")
			}
			code := strings.Fields(line[i+len("enter the code "):])[0]
			if err := f.ApproveDevice(code, "dave@contoso.com"); err != nil {
				t.Error(err)
			}
		}
		return nil
	}
	if err := m.AuthorizeDevice(context.Background(), spec, DeviceOptions{Out: &out, Wait: wait}); err != nil {
		t.Fatal(err)
	}
	// 5 s, then slow_down (+5 s), then pending, then approved.
	want := []time.Duration{5 * time.Second, 10 * time.Second, 10 * time.Second}
	if len(waits) != len(want) || waits[0] != want[0] || waits[1] != want[1] || waits[2] != want[2] {
		t.Fatalf("waits %v, want %v", waits, want)
	}
	rec, err := store.Load(spec.Name)
	if err != nil || !f.Validate("dave@contoso.com", rec.AccessToken) || rec.Flow != FlowDevice {
		t.Fatalf("stored: %v %v", rec, err)
	}

	// A denial ends the flow with a clear error.
	deny := func(ctx context.Context, d time.Duration) error {
		clk.Advance(d)
		line := out.String()
		i := strings.LastIndex(line, "enter the code ")
		_ = f.DenyDevice(strings.Fields(line[i+len("enter the code "):])[0])
		return nil
	}
	err = m.AuthorizeDevice(context.Background(), spec, DeviceOptions{Out: &out, Wait: deny})
	if err == nil || !strings.Contains(err.Error(), "access_denied") || !strings.Contains(err.Error(), "--device") {
		t.Fatalf("denied: %v", err)
	}
}

func TestAuthorizeDeviceWithoutEndpoint(t *testing.T) {
	spec := AccountSpec{Name: alice, Flow: FlowAuthCode, ClientID: "c", AuthURL: "https://accounts.google.com/o/oauth2/auth",
		TokenURL: "https://oauth2.googleapis.com/token", Scopes: []string{"https://mail.google.com/"}}
	m := newManager(t, openStore(t, t.TempDir()), Options{}, spec)
	err := m.AuthorizeDevice(context.Background(), spec, DeviceOptions{})
	for _, want := range []string{"device", "Gmail scope", `oauthbridge authorize alice@gmail.com --no-browser`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v lacks %q", err, want)
		}
	}
}
