package imap

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/oauthbridge/oauthbridge/internal/fakegmail"
	"github.com/oauthbridge/oauthbridge/proxy"
)

func TestLoginSelectFetch(t *testing.T) {
	e := newEnv(t)
	c := e.login(t, nil)
	caps := c.Caps()
	for _, bad := range []imap.Cap{"AUTH=XOAUTH2", "COMPRESS=DEFLATE", "LOGINDISABLED", "STARTTLS", "SASL-IR"} {
		if caps.Has(bad) {
			t.Errorf("capability %s reached the client", bad)
		}
	}
	if !caps.Has(imap.CapIdle) {
		t.Errorf("IDLE missing from %v", caps)
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages != 3 {
		t.Fatalf("NumMessages = %d, want 3 seeded", sel.NumMessages)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1, 2, 3), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	stored, _, err := e.fg.Messages(testUser, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 3 {
		t.Fatalf("got %d messages", len(msgs))
	}
	for i, m := range msgs {
		var body []byte
		for _, b := range m.BodySection {
			body = b.Bytes
		}
		if !bytes.Equal(body, stored[i].Data) {
			t.Errorf("message %d body differs (%d vs %d bytes)", i+1, len(body), len(stored[i].Data))
		}
	}
	if err := c.Logout().Wait(); err != nil {
		t.Fatal(err)
	}
}

func TestAuthenticatePlain(t *testing.T) {
	for _, ir := range []bool{true, false} {
		t.Run(fmt.Sprintf("sasl-ir=%v", ir), func(t *testing.T) {
			e := newEnv(t)
			c := e.dial(t, nil)
			if !ir {
				// imapclient uses SASL-IR when advertised; talk by hand.
				raw := rawDial(t, e.addr)
				raw.expect(t, "* OK")
				raw.send(t, "a AUTHENTICATE PLAIN")
				raw.expect(t, "+ ")
				raw.send(t, b64("\x00"+testUser+"\x00"+testPass))
				raw.expect(t, "a OK [CAPABILITY ")
				raw.send(t, "b NOOP")
				raw.expect(t, "b OK")
				return
			}
			if err := c.Authenticate(sasl.NewPlainClient("", testUser, testPass)); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Select("INBOX", nil).Wait(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestLoginLiteralPassword(t *testing.T) {
	e := newEnv(t)
	raw := rawDial(t, e.addr)
	raw.expect(t, "* OK")
	raw.send(t, fmt.Sprintf("a LOGIN %s {%d}", testUser, len(testPass)))
	raw.expect(t, "+ ")
	raw.send(t, testPass)
	raw.expect(t, "a OK [CAPABILITY ")
	// Non-synchronizing literal (RFC 7888) for the user name too.
	raw2 := rawDial(t, e.addr)
	raw2.expect(t, "* OK")
	raw2.sendRaw(t, fmt.Sprintf("b LOGIN {%d+}\r\n%s {%d+}\r\n%s\r\n", len(testUser), testUser, len(testPass), testPass))
	raw2.expect(t, "b OK [CAPABILITY ")
}

func TestWrongPasswordNeverTouchesTokens(t *testing.T) {
	e := newEnv(t)
	c := e.dial(t, nil)
	err := c.Login(testUser, "wrong").Wait()
	if err == nil || !strings.Contains(err.Error(), "AUTHENTICATIONFAILED") {
		t.Fatalf("login with a wrong password: %v", err)
	}
	if n := e.tokens.Calls() + e.tokens.Forced(); n != 0 {
		t.Fatalf("token source called %d times for a wrong password", n)
	}
	if err := c.Login(testUser, testPass).Wait(); err != nil {
		t.Fatalf("retry with the right password on the same connection: %v", err)
	}
}

func TestRevokedTokenGivesCleanNo(t *testing.T) {
	e := newEnv(t)
	e.tokens.Revoke()
	c := e.dial(t, nil)
	err := c.Login(testUser, testPass).Wait()
	if err == nil {
		t.Fatal("login succeeded with a revoked grant")
	}
	msg := err.Error()
	if !strings.Contains(msg, "AUTHENTICATIONFAILED") || !strings.Contains(msg, "oauthbridge authorize "+testUser) {
		t.Fatalf("client saw %q; want AUTHENTICATIONFAILED naming the fix", msg)
	}
}

func TestRejectedTokenRefreshedOnce(t *testing.T) {
	e := newEnv(t)
	// A token the upstream does not know: Gmail's challenge, then NO; the
	// bridge must answer the challenge, refresh once and succeed.
	e.tokens.SetToken(&oauth2TokenStale)
	e.selected(t, nil)
	if n := e.tokens.Forced(); n != 1 {
		t.Fatalf("ForceRefresh called %d times, want 1", n)
	}
}

func TestAppendLargeAndFetchBack(t *testing.T) {
	e := newEnv(t)
	c := e.login(t, nil)
	msg := bigMessage(10 << 20)
	cmd := c.Append("INBOX", int64(len(msg)), nil)
	if _, err := cmd.Write(msg); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := cmd.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	uid := data.UID
	msgs, err := c.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 {
		t.Fatalf("fetched %d messages", len(msgs))
	}
	var got []byte
	for _, b := range msgs[0].BodySection {
		got = b.Bytes
	}
	if sha256.Sum256(got) != sha256.Sum256(msg) {
		t.Fatalf("10 MiB message came back different (%d bytes)", len(got))
	}
}

func TestIdleReceivesExists(t *testing.T) {
	e := newEnv(t)
	exists := make(chan uint32, 4)
	c := e.login(t, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				exists <- *d.NumMessages
			}
		},
	}})
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.fg.Append(testUser, "INBOX", bigMessage(100)); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-exists:
		if n != 4 {
			t.Fatalf("EXISTS %d, want 4", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no EXISTS during IDLE")
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
}

func TestNoSecretsInDebugLogs(t *testing.T) {
	e := newEnv(t)
	c := e.dial(t, nil)
	c.Login(testUser, "wrong-password-xyz").Wait()
	if err := c.Login(testUser, testPass).Wait(); err != nil {
		t.Fatal(err)
	}
	c.Select("INBOX", nil).Wait()
	c.Logout().Wait()
	c.Close()
	secrets := []string{testPass, "wrong-password-xyz", b64("\x00" + testUser + "\x00" + testPass)}
	for _, tok := range e.tokens.Issued() {
		secrets = append(secrets, tok, b64(string(xoauth2For(testUser, tok))))
	}
	e.logs.AssertNoSecrets(t, secrets...)
	if !strings.Contains(e.logs.String(), "login") {
		t.Fatalf("no login line logged:\n%s", e.logs.String())
	}
}

// bigMessage makes an RFC 5322 message of about n bytes.
func bigMessage(n int) []byte {
	var b bytes.Buffer
	b.WriteString("From: a@example.com\r\nTo: alice@gmail.com\r\nSubject: big\r\n\r\n")
	line := strings.Repeat("0123456789abcdef", 4) + "\r\n"
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "%08d ", i)
		b.WriteString(line)
	}
	return b.Bytes()
}

func TestLogoutLine(t *testing.T) {
	e := newEnv(t)
	c := e.login(t, nil)
	if err := c.Logout().Wait(); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := waitFor(5*time.Second, func() bool { return len(e.logs.Lines("msg=logout")) == 1 }); err != nil {
		t.Fatal("no logout line")
	}
	if l := e.logs.Lines("msg=logout")[0]; !strings.Contains(l, "reason=logout") {
		t.Fatalf("logout line %q, want reason=logout", l)
	}
}

// TestSixteenthSessionRefused: with a per-account limit of 15 (Gmail's own
// IMAP limit), the 16th concurrent login of one account gets a clean
// NO [LIMIT] and the first 15 keep working.
func TestSixteenthSessionRefused(t *testing.T) {
	e := newEnv(t, func(_ *fakegmail.Options, s *Server, _ *proxy.Account) {
		s.Limits = proxy.NewLimiter(proxy.Limits{PerAccount: 15})
	})
	var clients []*imapclient.Client
	for i := 0; i < 15; i++ {
		clients = append(clients, e.login(t, nil))
	}
	c := e.dial(t, nil)
	err := c.Login(testUser, testPass).Wait()
	var ie *imap.Error
	if !errors.As(err, &ie) || ie.Code != imap.ResponseCodeLimit {
		t.Fatalf("16th login: %v, want NO [LIMIT]", err)
	}
	if n := e.fg.Connections(testUser, fakegmail.ProtoIMAP); n != 15 {
		t.Fatalf("%d upstream sessions, want 15 (the refused one must not reach the upstream)", n)
	}
	for i, c := range clients {
		if err := c.Noop().Wait(); err != nil {
			t.Fatalf("session %d after the refusal: %v", i, err)
		}
	}
	clients[0].Logout().Wait()
	clients[0].Close()
	// A freed slot is usable again.
	if err := waitFor(5*time.Second, func() bool { return c.Login(testUser, testPass).Wait() == nil }); err != nil {
		t.Fatal("no login after a session ended")
	}
}

// TestSyncLiteralsBackToBack sends many APPENDs with synchronizing
// literals: the upstream's "+" can come back before the bridge's write
// returns, and must still reach the command that waits for it (a lost
// "+" left the session hung; it showed once in a few runs of the Dovecot
// test, and this test failed on its first run without the fix).
func TestSyncLiteralsBackToBack(t *testing.T) {
	e := newEnv(t)
	r := rawLogin(t, e.addr)
	const msg = "Subject: x\r\n\r\nx\r\n"
	for i := range 2000 {
		tag := fmt.Sprintf("s%d", i)
		r.send(t, fmt.Sprintf("%s APPEND INBOX {%d}", tag, len(msg)))
		r.expect(t, "+")
		r.sendRaw(t, msg+"\r\n")
		for {
			l := r.readLine(t)
			if strings.HasPrefix(l, tag+" ") {
				if !strings.HasPrefix(l, tag+" OK") {
					t.Fatalf("APPEND %d: %s", i, l)
				}
				break
			}
		}
	}
}
