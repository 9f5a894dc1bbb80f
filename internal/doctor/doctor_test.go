package doctor

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthbridge/oauthbridge/internal/fakegmail"
	"github.com/oauthbridge/oauthbridge/proxy"
	"github.com/oauthbridge/oauthbridge/tokens"
)

func TestSuccessIMAP(t *testing.T) {
	fg := startGmail(t)
	steps := Check(context.Background(), nil, account(fg, (&fgTokens{fg: fg}).fn()), []string{"imap"})
	if got, want := verdicts(steps), "imap/dns=ok imap/connect=ok imap/tls=ok imap/token=ok imap/login=ok"; got != want {
		t.Fatalf("steps %s, want %s\n%+v", got, want, steps)
	}
	if !Passed(steps) {
		t.Fatal("Passed = false")
	}
	for name, want := range map[string]string{
		"dns":   "127.0.0.1 is an IP address",
		"tls":   `issued by "CN=fakegmail test CA"`,
		"token": "access token valid until",
		"login": "logged in as alice@gmail.com with XOAUTH2",
	} {
		if s := find(t, steps, "imap", name); !strings.Contains(s.Detail, want) {
			t.Errorf("imap/%s detail %q lacks %q", name, s.Detail, want)
		}
	}
	if d := find(t, steps, "imap", "tls").Detail; !strings.Contains(d, "TLS 1.3") || !strings.Contains(d, "valid until") {
		t.Errorf("tls detail %q lacks the version or the expiry", d)
	}
}

func TestSuccessPOP3(t *testing.T) {
	fg := startGmail(t)
	steps := Check(context.Background(), nil, account(fg, (&fgTokens{fg: fg}).fn()), []string{"pop3"})
	if got, want := verdicts(steps), "pop3/dns=ok pop3/connect=ok pop3/tls=ok pop3/token=ok pop3/login=ok"; got != want {
		t.Fatalf("steps %s, want %s\n%+v", got, want, steps)
	}
}

func TestSuccessSMTPStartTLSAndImplicit(t *testing.T) {
	fg := startGmail(t)
	acct := account(fg, (&fgTokens{fg: fg}).fn())
	steps := Check(context.Background(), nil, acct, []string{"smtp"})
	if got, want := verdicts(steps), "smtp/dns=ok smtp/connect=ok smtp/starttls=ok smtp/tls=ok smtp/token=ok smtp/login=ok"; got != want {
		t.Fatalf("587-style: steps %s, want %s\n%+v", got, want, steps)
	}
	if d := find(t, steps, "smtp", "starttls").Detail; !strings.Contains(d, `greeting "220 `) {
		t.Errorf("starttls detail %q lacks the greeting", d)
	}
	acct.SMTP = proxy.Endpoint{Addr: fg.SMTPAddr(), TLS: proxy.UpstreamImplicitTLS, TLSConfig: acct.SMTP.TLSConfig}
	steps = Check(context.Background(), nil, acct, []string{"smtp"})
	if got, want := verdicts(steps), "smtp/dns=ok smtp/connect=ok smtp/tls=ok smtp/token=ok smtp/login=ok"; got != want {
		t.Fatalf("465-style: steps %s, want %s\n%+v", got, want, steps)
	}
}

// TestSMTPStartTLSReachesTLS covers the hand-written SMTP STARTTLS
// against fakegmail's submission port whatever the login step does.
func TestSMTPStartTLSReachesTLS(t *testing.T) {
	fg := startGmail(t)
	steps := Check(context.Background(), nil, account(fg, (&fgTokens{fg: fg}).fn()), []string{"smtp"})
	if s := find(t, steps, "smtp", "starttls"); !s.OK {
		t.Fatalf("starttls: %+v", s)
	}
	if s := find(t, steps, "smtp", "tls"); !s.OK || !strings.Contains(s.Detail, "fakegmail test CA") {
		t.Fatalf("tls after STARTTLS: %+v", s)
	}
}

func TestUnknownCA(t *testing.T) {
	fg := startGmail(t)
	other, err := fakegmail.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	acct := account(fg, (&fgTokens{fg: fg}).fn())
	acct.IMAP.TLSConfig = &tls.Config{RootCAs: other.Pool()}
	steps := (&Checker{Provider: "example"}).Check(context.Background(), acct, []string{"imap"})
	if got, want := verdicts(steps), "imap/dns=ok imap/connect=ok imap/tls=FAIL imap/token=skipped imap/login=skipped"; got != want {
		t.Fatalf("steps %s, want %s", got, want)
	}
	s := find(t, steps, "imap", "tls")
	if !strings.Contains(s.Detail, "certificate signed by unknown authority") || !strings.Contains(s.Detail, `issued by "CN=fakegmail test CA"`) {
		t.Errorf("detail %q", s.Detail)
	}
	if !strings.Contains(s.Fix, "set providers.example.ca_file") {
		t.Errorf("fix %q does not name providers.example.ca_file", s.Fix)
	}
	if Passed(steps) {
		t.Error("Passed = true")
	}
}

func TestHostnameMismatch(t *testing.T) {
	fg := startGmail(t)
	acct := account(fg, (&fgTokens{fg: fg}).fn())
	acct.IMAP.TLSConfig = &tls.Config{RootCAs: fg.RootCAs(), ServerName: "imap.example.test"}
	steps := (&Checker{Provider: "example"}).Check(context.Background(), acct, []string{"imap"})
	s := find(t, steps, "imap", "tls")
	if s.OK || !strings.Contains(s.Fix, `not valid for "imap.example.test"`) || !strings.Contains(s.Fix, "providers.example.imap") {
		t.Fatalf("tls step %+v", s)
	}
}

func TestPortClosed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	acct := &proxy.Account{Name: alice, UpstreamUser: alice, Tokens: proxy.TokenFunc(func(context.Context, bool) (*oauth2.Token, error) {
		t.Error("token asked for although connect failed")
		return nil, errors.New("unreachable")
	}), IMAP: proxy.Endpoint{Addr: addr}}
	steps := (&Checker{Provider: "gmail"}).Check(context.Background(), acct, []string{"imap"})
	if got, want := verdicts(steps), "imap/dns=ok imap/connect=FAIL imap/tls=skipped imap/token=skipped imap/login=skipped"; got != want {
		t.Fatalf("steps %s, want %s", got, want)
	}
	s := find(t, steps, "imap", "connect")
	if !strings.Contains(s.Fix, "connection refused") || !strings.Contains(s.Fix, "providers.gmail.imap") {
		t.Fatalf("fix %q", s.Fix)
	}
}

func TestDNSFailure(t *testing.T) {
	acct := &proxy.Account{Name: alice, UpstreamUser: alice, IMAP: proxy.Endpoint{Addr: "no-such-host.invalid:993"}}
	steps := (&Checker{Provider: "example"}).Check(context.Background(), acct, []string{"imap"})
	if got, want := verdicts(steps), "imap/dns=FAIL imap/connect=skipped imap/tls=skipped imap/token=skipped imap/login=skipped"; got != want {
		t.Fatalf("steps %s, want %s", got, want)
	}
	if s := steps[0]; !strings.Contains(s.Detail, "no-such-host.invalid") || !strings.Contains(s.Fix, "providers.example.imap") {
		t.Fatalf("dns step %+v", s)
	}
}

// consentErr is what a token source returns for a revoked grant.
type consentErr struct{}

func (consentErr) Error() string {
	return "tokens: alice@gmail.com: refresh: invalid_grant: Token has been expired or revoked."
}
func (consentErr) ConsentRequired() bool { return true }

func TestTokenRevoked(t *testing.T) {
	fg := startGmail(t)
	acct := account(fg, proxy.TokenFunc(func(context.Context, bool) (*oauth2.Token, error) { return nil, consentErr{} }))
	steps := Check(context.Background(), nil, acct, []string{"imap"})
	if got, want := verdicts(steps), "imap/dns=ok imap/connect=ok imap/tls=ok imap/token=FAIL imap/login=skipped"; got != want {
		t.Fatalf("steps %s, want %s", got, want)
	}
	s := find(t, steps, "imap", "token")
	if !strings.Contains(s.Detail, "consent required") || s.Fix != "run: oauthbridge authorize alice@gmail.com" {
		t.Fatalf("token step %+v", s)
	}
}

// TestTokenRevokedAtProvider goes through the real token manager: a grant
// revoked at the (fake) provider makes the refresh fail with invalid_grant.
func TestTokenRevokedAtProvider(t *testing.T) {
	fg := startGmail(t)
	prov := fg.OAuth()
	store, err := tokens.OpenStore(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	_, refresh := prov.Issue(alice)
	if err := store.Save(alice, &tokens.Record{RefreshToken: refresh, Flow: tokens.FlowAuthCode,
		AccessToken: "expired", Expiry: time.Now().Add(-time.Hour), ObtainedAt: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	prov.Revoke(alice)
	m := tokens.NewManager(store, tokens.Options{})
	t.Cleanup(func() { m.Close() })
	if err := m.SetAccounts([]tokens.AccountSpec{{Name: alice, Flow: tokens.FlowAuthCode, ClientID: prov.ClientID,
		ClientSecret: prov.ClientSecret, AuthURL: prov.AuthURL(), TokenURL: prov.TokenURL(), Scopes: []string{"https://mail.google.com/"}}}); err != nil {
		t.Fatal(err)
	}
	src, err := m.Source(alice, "")
	if err != nil {
		t.Fatal(err)
	}
	steps := Check(context.Background(), nil, account(fg, src), []string{"imap"})
	s := find(t, steps, "imap", "token")
	if s.OK || !strings.Contains(s.Detail, "invalid_grant") || s.Fix != "run: oauthbridge authorize alice@gmail.com" {
		t.Fatalf("token step %+v", s)
	}
	if l := find(t, steps, "imap", "login"); !l.Skipped {
		t.Fatalf("login step %+v, want skipped", l)
	}
}

func TestUpstreamRefusesToken(t *testing.T) {
	fg := startGmail(t)
	for _, proto := range []string{"imap", "pop3", "smtp"} {
		forced := 0
		acct := account(fg, proxy.TokenFunc(func(_ context.Context, force bool) (*oauth2.Token, error) {
			if force {
				forced++
			}
			return &oauth2.Token{AccessToken: "ya29.not-a-token-the-server-knows", Expiry: time.Now().Add(time.Hour)}, nil
		}))
		steps := Check(context.Background(), nil, acct, []string{proto})
		s := find(t, steps, proto, StepLogin)
		if s.OK || !strings.Contains(s.Fix, "refused the token even after a refresh") || !strings.Contains(s.Fix, "oauthbridge authorize alice@gmail.com") {
			t.Errorf("%s: login step %+v (steps %s)", proto, s, verdicts(steps))
		}
		if find(t, steps, proto, StepToken).OK != true {
			t.Errorf("%s: the token step should pass: the token is only refused by the server", proto)
		}
		if forced != 1 {
			t.Errorf("%s: forced refreshes = %d, want 1 (refresh once, as a session does)", proto, forced)
		}
		var buf bytes.Buffer
		Report(&buf, steps)
		if strings.Contains(buf.String(), "not-a-token-the-server-knows") {
			t.Fatalf("%s: the report shows the token:\n%s", proto, buf.String())
		}
	}
}

func TestPlaintextOnImplicitTLSPort(t *testing.T) {
	fg := startGmail(t)
	acct := account(fg, (&fgTokens{fg: fg}).fn())
	acct.SMTP.TLS = proxy.UpstreamImplicitTLS // but the address is the STARTTLS port
	steps := (&Checker{Provider: "example"}).Check(context.Background(), acct, []string{"smtp"})
	s := find(t, steps, "smtp", "tls")
	if s.OK || !strings.Contains(s.Fix, "did not answer with TLS") || !strings.Contains(s.Fix, "smtp_tls") {
		t.Fatalf("tls step %+v", s)
	}
}

func TestConfigProblems(t *testing.T) {
	acct := &proxy.Account{Name: alice, IMAP: proxy.Endpoint{Addr: "imap.example.test"}}
	steps := (&Checker{Provider: "example"}).Check(context.Background(), acct, []string{"imap", "pop3", "nntp"})
	if got, want := verdicts(steps), "imap/config=FAIL pop3/config=FAIL nntp/config=FAIL"; got != want {
		t.Fatalf("steps %s, want %s", got, want)
	}
	if !strings.Contains(steps[0].Fix, "providers.example.imap to host:port") || !strings.Contains(steps[1].Fix, "set providers.example.pop3") {
		t.Fatalf("fixes: %q, %q", steps[0].Fix, steps[1].Fix)
	}
}

func TestReportFormat(t *testing.T) {
	var buf bytes.Buffer
	Report(&buf, []Step{
		{Proto: "imap", Name: "dns", OK: true, Detail: "imap.gmail.com -> 192.0.2.1"},
		{Proto: "imap", Name: "tls", Detail: "certificate signed by unknown authority", Fix: "set providers.x.ca_file"},
		{Proto: "imap", Name: "token", Skipped: true, Detail: "skipped: an earlier step failed"},
	})
	want := "imap  dns       ok       imap.gmail.com -> 192.0.2.1\n" +
		"imap  tls       FAIL     certificate signed by unknown authority\n" +
		"                fix:     set providers.x.ca_file\n" +
		"imap  token     skipped  skipped: an earlier step failed\n"
	if buf.String() != want {
		t.Fatalf("report:\n%s\nwant:\n%s", buf.String(), want)
	}
	if Passed(nil) {
		t.Error("Passed(nil) = true: nothing checked is no pass")
	}
}
