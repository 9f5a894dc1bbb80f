package smtp

import (
	"bytes"
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"
	"golang.org/x/oauth2"

	"github.com/oauthbridge/oauthbridge/internal/testpeers"
	"github.com/oauthbridge/oauthbridge/proxy"
	"github.com/oauthbridge/oauthbridge/proxy/proxytest"
)

// TestDovecotUpstream relays through a real XOAUTH2 submission server
// (Dovecot 2.3), over implicit TLS and over STARTTLS: an independent
// implementation of the upstream side of the wire.
func TestDovecotUpstream(t *testing.T) {
	const user = "carol@example.test"
	d := testpeers.StartDovecot(t, testpeers.DovecotOptions{Users: []string{user}})
	for i, ep := range []proxy.Endpoint{
		{Addr: d.SMTPAddr(), TLS: proxy.UpstreamImplicitTLS, TLSConfig: &tls.Config{RootCAs: d.RootCAs()}},
		{Addr: d.SubmissionAddr(), TLS: proxy.UpstreamStartTLS, TLSConfig: &tls.Config{RootCAs: d.RootCAs()}},
	} {
		t.Run([]string{"implicit", "starttls"}[i], func(t *testing.T) {
			var issued []string
			tokens := proxy.TokenFunc(func(ctx context.Context, force bool) (*oauth2.Token, error) {
				tok := d.Token(user)
				issued = append(issued, tok)
				return &oauth2.Token{AccessToken: tok, Expiry: time.Now().Add(time.Hour)}, nil
			})
			auth := proxytest.NewAuthenticator()
			auth.Add(user, "carol-pw", &proxy.Account{Name: user, UpstreamUser: user, Tokens: tokens, SMTP: ep})
			logs := proxytest.NewLogBuffer()
			srv := &Server{Auth: auth, Logger: logs.Logger(), Hostname: "bridge.test", SpoolDir: t.TempDir()}
			addr := proxytest.Serve(t, srv, proxy.ListenerInfo{Protocol: proto})

			c, err := gosmtp.Dial(addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.Auth(sasl.NewLoginClient(user, "carol-pw")); err != nil {
				t.Fatalf("AUTH LOGIN: %v", err)
			}
			before := len(d.Delivered())
			msg := testMessage("via dovecot", 50)
			if err := send(c, user, []string{"dave@example.test", "erin@example.test"}, msg); err != nil {
				t.Fatal(err)
			}
			if err := c.Quit(); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			got, err := d.WaitDelivered(ctx, before+1)
			if err != nil {
				t.Fatal(err)
			}
			m := got[before]
			if m.From != user || len(m.To) != 2 || !bytes.HasSuffix(m.Data, msg) {
				t.Fatalf("delivered %q to %q, data %q", m.From, m.To, m.Data)
			}
			logs.AssertNoSecrets(t, append(issued, "carol-pw")...)
		})
	}
}
