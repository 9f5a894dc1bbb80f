package doctor

import (
	"context"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthbridge/oauthbridge/internal/testpeers"
	"github.com/oauthbridge/oauthbridge/proxy"
)

// TestAgainstDovecot runs the doctor against a real server: Dovecot's
// implicit-TLS ports and its STARTTLS/STLS ports, where the hand-written
// STARTTLS exchanges meet a real implementation.
func TestAgainstDovecot(t *testing.T) {
	const user = "dana@example.test"
	d := testpeers.StartDovecot(t, testpeers.DovecotOptions{Users: []string{user}})
	src := proxy.TokenFunc(func(context.Context, bool) (*oauth2.Token, error) {
		return &oauth2.Token{AccessToken: d.Token(user), Expiry: time.Now().Add(time.Hour)}, nil
	})
	tlsCfg := d.TLSConfig()
	acct := func(imap, pop3, smtp proxy.Endpoint) *proxy.Account {
		return &proxy.Account{Name: user, ConfigName: user, UpstreamUser: user, Tokens: src, IMAP: imap, POP3: pop3, SMTP: smtp}
	}
	implicit := acct(
		proxy.Endpoint{Addr: d.IMAPAddr(), TLS: proxy.UpstreamImplicitTLS, TLSConfig: tlsCfg},
		proxy.Endpoint{Addr: d.POP3Addr(), TLS: proxy.UpstreamImplicitTLS, TLSConfig: tlsCfg},
		proxy.Endpoint{Addr: d.SMTPAddr(), TLS: proxy.UpstreamImplicitTLS, TLSConfig: tlsCfg})
	starttls := acct(
		proxy.Endpoint{Addr: d.IMAPPlainAddr(), TLS: proxy.UpstreamStartTLS, TLSConfig: tlsCfg},
		proxy.Endpoint{Addr: d.POP3PlainAddr(), TLS: proxy.UpstreamStartTLS, TLSConfig: tlsCfg},
		proxy.Endpoint{Addr: d.SubmissionAddr(), TLS: proxy.UpstreamStartTLS, TLSConfig: tlsCfg})

	for name, a := range map[string]*proxy.Account{"implicit": implicit, "starttls": starttls} {
		steps := Check(context.Background(), nil, a, []string{"imap", "pop3", "smtp"})
		want := 3 * 5 // dns, connect, tls, token, login per protocol
		if name == "starttls" {
			want += 3
		}
		if len(steps) != want {
			t.Errorf("%s: %d steps, want %d: %s", name, len(steps), want, verdicts(steps))
		}
		for _, s := range steps {
			if !s.OK {
				t.Errorf("%s: %s/%s failed: %s (fix: %s)", name, s.Proto, s.Name, s.Detail, s.Fix)
			}
		}
		if name == "starttls" {
			for _, p := range []string{"imap", "pop3", "smtp"} {
				if s := find(t, steps, p, StepStartTLS); !s.OK {
					t.Errorf("%s STARTTLS against Dovecot: %+v", p, s)
				}
			}
		}
		for _, p := range []string{"imap", "pop3", "smtp"} {
			if l := find(t, steps, p, StepLogin); !strings.Contains(l.Detail, "logged in as "+user) {
				t.Errorf("%s: %s login: %+v", name, p, l)
			}
		}
	}

	d.Revoke(user)
	revoked := proxy.TokenFunc(func(context.Context, bool) (*oauth2.Token, error) {
		return &oauth2.Token{AccessToken: "revoked-" + user, Expiry: time.Now().Add(time.Hour)}, nil
	})
	implicit.Tokens = revoked
	steps := Check(context.Background(), nil, implicit, []string{"imap", "pop3", "smtp"})
	for _, p := range []string{"imap", "pop3", "smtp"} {
		if l := find(t, steps, p, StepLogin); l.OK || !strings.Contains(l.Fix, "oauthbridge authorize "+user) {
			t.Errorf("%s refused token: %+v", p, l)
		}
	}
}
