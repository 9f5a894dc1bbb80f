package smtp

import (
	"testing"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/oauthbridge/oauthbridge/internal/fakegmail"
	"github.com/oauthbridge/oauthbridge/proxy"
	"github.com/oauthbridge/oauthbridge/proxy/proxytest"
)

// TestNoSecretsInDebugLogs runs full sessions with every kind of event
// (AUTH PLAIN and LOGIN, wrong password, revoked grant, messages, a
// resume, rotations, logout) with the log at debug level, then checks no
// password, access token or XOAUTH2 payload appears in any form.
func TestNoSecretsInDebugLogs(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	b := startBridge(t, bridgeOpts{session: proxy.SessionPolicy{Lifetime: time.Nanosecond}})

	c := b.client()
	if err := c.Auth(sasl.NewLoginClient(alice, alicePW)); err != nil {
		t.Fatal(err)
	}
	if err := send(c, alice, []string{"x@example.com"}, testMessage("one", 3)); err != nil {
		t.Fatal(err)
	}
	// Kicked inside a transaction (before MAIL a rotation would replace
	// the session anyway): RCPT resumes.
	if err := c.Mail(alice, nil); err != nil {
		t.Fatal(err)
	}
	b.fg.Kick(alice, fakegmail.KickGmailBye)
	if err := c.Rcpt("y@example.com", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write(testMessage("two", 3))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c.Quit()

	if err := b.client().Auth(sasl.NewPlainClient("", bob, "wrong-"+bobPW)); smtpCode(err) != 535 {
		t.Fatalf("wrong password: %v", err)
	}
	b.tokens[bob].Revoke()
	if err := b.client().Auth(sasl.NewPlainClient("", bob, bobPW)); smtpCode(err) != 535 {
		t.Fatalf("revoked: %v", err)
	}
	b.waitSent(2)
	if !b.fg.WaitConnections(alice, "smtp", 0, 5*time.Second) {
		t.Fatal("upstream session not closed")
	}

	// The debug transcript was there to leak from.
	for _, kind := range []string{"msg=EHLO", "msg=AUTH", "msg=MAIL", "msg=RCPT", `msg="message relayed"`,
		`msg="upstream resumed"`, `msg="upstream rotated"`, "msg=login", "msg=logout", `msg="upstream login failed"`} {
		if len(b.logs.Lines(kind)) == 0 {
			t.Errorf("no %s line logged", kind)
		}
	}
	secrets := b.secrets()
	secrets = append(secrets, "wrong-"+bobPW, "\x00"+alice+"\x00"+alicePW, "\x00"+bob+"\x00"+bobPW, "ya29.revoked-token-for-test")
	for user, tt := range b.tokens {
		for _, tok := range tt.Issued() {
			secrets = append(secrets, string(proxy.XOAuth2Payload(user, tok)))
		}
	}
	b.logs.AssertNoSecrets(t, secrets...)
}
