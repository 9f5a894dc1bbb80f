package imap

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"golang.org/x/oauth2"

	"github.com/oauthbridge/oauthbridge/internal/testpeers"
	"github.com/oauthbridge/oauthbridge/proxy"
	"github.com/oauthbridge/oauthbridge/proxy/proxytest"
)

// Real clients against the bridge in front of fakegmail.

func TestCurlThroughBridge(t *testing.T) {
	testpeers.Require(t, "curl")
	e := newEnv(t)
	stored, _, _ := e.fg.Messages(testUser, "INBOX")
	ctx := context.Background()
	out, _, err := testpeers.RunClient(t, ctx, "curl", "-sS", "--max-time", "30",
		"--user", testUser+":"+testPass,
		fmt.Sprintf("imap://%s/INBOX;UID=%d", e.addr, stored[0].UID))
	if err != nil {
		t.Fatal(err)
	}
	if out != string(stored[0].Data) {
		t.Fatalf("curl fetched %d bytes, want the %d-byte message", len(out), len(stored[0].Data))
	}
	// A custom command: curl sends it after LOGIN and SELECT.
	out, _, err = testpeers.RunClient(t, ctx, "curl", "-sS", "--max-time", "30",
		"--user", testUser+":"+testPass, "-X", "UID SEARCH ALL", fmt.Sprintf("imap://%s/INBOX", e.addr))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "* SEARCH") {
		t.Fatalf("curl UID SEARCH output %q", out)
	}
}

func TestPythonImaplibThroughBridge(t *testing.T) {
	testpeers.Require(t, "python3")
	e := newEnv(t)
	stored, _, _ := e.fg.Messages(testUser, "INBOX")
	host, port, _ := strings.Cut(e.addr, ":")
	script := `
import imaplib, sys, hashlib
m = imaplib.IMAP4(sys.argv[1], int(sys.argv[2]))
m.login(sys.argv[3], sys.argv[4])
typ, data = m.select("INBOX")
assert typ == "OK", data
typ, data = m.fetch("1:*", "(BODY.PEEK[])")
assert typ == "OK", data
for part in data:
    if isinstance(part, tuple):
        print(hashlib.sha256(part[1]).hexdigest())
typ, data = m.idle() if hasattr(m, "idle") else ("OK", None)
m.logout()
`
	out, _, err := testpeers.Cmd{Name: "python3", Args: []string{"-c", script, host, port, testUser, testPass}}.Run(t, context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, m := range stored {
		want = append(want, fmt.Sprintf("%x", sha256.Sum256(m.Data)))
	}
	if got := strings.Fields(out); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("imaplib checksums %v, want %v", got, want)
	}
}

// dovecotEnv is the bridge in front of a real Dovecot with XOAUTH2.
type dovecotEnv struct {
	d    *testpeers.Dovecot
	addr string
	logs *proxytest.LogBuffer
}

func newDovecotEnv(t *testing.T) *dovecotEnv {
	t.Helper()
	testpeers.Require(t, "dovecot", "doveadm")
	d := testpeers.StartDovecot(t, testpeers.DovecotOptions{Users: []string{testUser}})
	logs := proxytest.NewLogBuffer()
	acct := &proxy.Account{
		Name: testUser, ConfigName: testUser, UpstreamUser: testUser,
		Tokens: proxy.TokenFunc(func(ctx context.Context, force bool) (*oauth2.Token, error) {
			return &oauth2.Token{AccessToken: d.Token(testUser), Expiry: time.Now().Add(time.Hour)}, nil
		}),
		IMAP:    proxy.Endpoint{Addr: d.IMAPAddr(), TLSConfig: &tls.Config{RootCAs: d.RootCAs()}},
		Session: proxy.SessionPolicy{ResumeWithin: 20 * time.Second},
	}
	auth := proxytest.NewAuthenticator()
	auth.Add(testUser, testPass, acct)
	srv := &Server{Auth: auth, Dialer: &proxy.Dialer{Timeout: 10 * time.Second}, Logger: logs.Logger()}
	addr := proxytest.Serve(t, srv, proxy.ListenerInfo{Protocol: "imap", Loopback: true})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("bridge log:\n%s", logs.String())
		}
	})
	return &dovecotEnv{d: d, addr: addr, logs: logs}
}

func TestDovecotUpstream(t *testing.T) {
	de := newDovecotEnv(t)
	rec := newRecorder()
	c, err := imapclient.DialInsecure(de.addr, rec.options())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(testUser, testPass).Wait(); err != nil {
		t.Fatal(err)
	}
	msg := bigMessage(1 << 20)
	app := c.Append("INBOX", int64(len(msg)), nil)
	app.Write(msg)
	app.Close()
	if _, err := app.Wait(); err != nil {
		t.Fatal(err)
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil || sel.NumMessages != 1 {
		t.Fatalf("SELECT: %v %v", sel, err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil || len(msgs) != 1 || sha256.Sum256(firstBody(msgs[0])) != sha256.Sum256(msg) {
		t.Fatalf("FETCH through the bridge from Dovecot: %v", err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	if err := de.d.Deliver(testUser, bigMessage(100)); err != nil {
		t.Fatal(err)
	}
	if ev := rec.waitEvents(t, 1); ev[0] != "EXISTS 2" {
		t.Fatalf("IDLE saw %v, want EXISTS 2", ev)
	}
	// doveadm kick during IDLE: the client stays in IDLE and sees nothing.
	if err := de.d.Kick(testUser); err != nil {
		t.Fatal(err)
	}
	if err := de.d.Deliver(testUser, bigMessage(100)); err != nil {
		t.Fatal(err)
	}
	if ev := rec.waitEvents(t, 1); ev[0] != "EXISTS 3" {
		t.Fatalf("IDLE after kick saw %v, want EXISTS 3", ev)
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatalf("IDLE across doveadm kick: %v", err)
	}
	// doveadm kick between commands.
	if err := de.d.Kick(testUser); err != nil {
		t.Fatal(err)
	}
	msgs, err = c.Fetch(imap.SeqSetNum(1, 2, 3), &imap.FetchOptions{UID: true}).Collect()
	if err != nil || len(msgs) != 3 {
		t.Fatalf("FETCH after kick: %d messages, %v", len(msgs), err)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Fatal(err)
	}
	if n := len(de.logs.Lines("resumed upstream session")); n != 2 {
		t.Fatalf("%d resumes logged, want 2", n)
	}
}
