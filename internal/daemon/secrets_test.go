package daemon

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/smtp"
	"strings"
	"testing"
	"time"

	"github.com/oauthbridge/oauthbridge/config"
	"github.com/oauthbridge/oauthbridge/proxy"
	"github.com/oauthbridge/oauthbridge/tokens"
)

// TestNoSecretsAnywhere runs full IMAP, POP3 and SMTP sessions (with a
// failed login each) through a daemon logging at debug level, then reads
// the logs, /metrics, the status page and /status.json: no password,
// token, XOAUTH2 string or client secret may appear in any of them, in
// clear or in base64 (DESIGN §4 "Tokens", issue 7).
func TestNoSecretsAnywhere(t *testing.T) {
	e := newEnv(t)
	const (
		alicePw = "alice-app-password-Zq7"
		wrongPw = "wrong-password-Hx3"
	)
	cfg := e.config(t, []config.Listener{imapListener(), pop3Listener(), smtpListener()}, alicePw, "bob-app-password-Kp2")
	cfg.HTTP.Listen = "127.0.0.1:0"
	e.authorize(t, cfg, alice)
	d := e.start(t, cfg)

	// IMAP: a wrong password, then LOGIN, AUTHENTICATE PLAIN, a session.
	r := dialRaw(t, addr(t, d, "imap"))
	r.cmd(t, "a", "LOGIN "+alice+" "+wrongPw)
	r.cmd(t, "b", "AUTHENTICATE PLAIN "+b64("\x00"+alice+"\x00"+alicePw))
	r.cmd(t, "c", "SELECT INBOX")
	r.cmd(t, "d", "FETCH 1:* (UID FLAGS BODY.PEEK[HEADER])")
	r.cmd(t, "e", "LOGOUT")

	// POP3: USER/PASS wrong, AUTH PLAIN, RETR, QUIT.
	pop := dialText(t, addr(t, d, "pop3"))
	pop.expect(t, "+OK")
	pop.send(t, "USER "+alice)
	pop.expect(t, "+OK")
	pop.send(t, "PASS "+wrongPw)
	pop.expect(t, "-ERR")
	pop.send(t, "AUTH PLAIN "+b64("\x00"+alice+"\x00"+alicePw))
	pop.expect(t, "+OK")
	pop.send(t, "RETR 1")
	pop.expect(t, "+OK")
	pop.readDot(t)
	pop.send(t, "QUIT")
	pop.expect(t, "+OK")

	// SMTP: AUTH LOGIN wrong, AUTH PLAIN, one message.
	c, err := smtp.Dial(addr(t, d, "smtp"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(loginAuth{alice, wrongPw}); err == nil {
		t.Fatal("SMTP AUTH with a wrong password succeeded")
	}
	c.Close()
	c, err = smtp.Dial(addr(t, d, "smtp"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(smtp.PlainAuth("", alice, alicePw, "127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail(alice); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt(alice); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "Subject: s\r\n\r\nbody\r\n")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c.Quit()

	// The secrets: passwords, the tokens in the store, the client secret,
	// and the XOAUTH2 payload built from the access token.
	_, store, err := OpenTokens(cfg, tokens.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := store.Load(alice)
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{alicePw, wrongPw, rec.AccessToken, rec.RefreshToken, e.fg.OAuth().ClientSecret,
		string(proxy.XOAuth2Payload(alice, rec.AccessToken))}

	base := "http://" + d.AdminAddr()
	for _, page := range []string{"/metrics", "/", "/status.json", "/healthz"} {
		body := httpGet(t, base+page)
		for _, s := range secrets {
			for _, form := range []string{s, b64(s)} {
				if strings.Contains(body, form) {
					t.Errorf("%s shows a secret (%.6s...)", page, form)
				}
			}
		}
	}
	if !strings.Contains(httpGet(t, base+"/metrics"), `oauthbridge_logins_total{outcome="ok",proto="imap"}`) {
		t.Error("/metrics lacks the IMAP login counter: the sessions did not run")
	}
	e.logs.AssertNoSecrets(t, secrets...)
	for _, want := range []string{"proto=imap", "proto=pop3", "proto=smtp", "login failed"} {
		if !strings.Contains(e.logs.String(), want) {
			t.Errorf("the debug log has no %q: the sessions did not run as intended", want)
		}
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// textConn is a line-based client for POP3.
type textConn struct {
	c  net.Conn
	br *bufio.Reader
}

func dialText(t *testing.T, address string) *textConn {
	t.Helper()
	c, err := net.Dial("tcp", address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return &textConn{c: c, br: bufio.NewReader(c)}
}

func (p *textConn) send(t *testing.T, line string) {
	t.Helper()
	if _, err := fmt.Fprintf(p.c, "%s\r\n", line); err != nil {
		t.Fatal(err)
	}
}

func (p *textConn) expect(t *testing.T, prefix string) string {
	t.Helper()
	l, err := p.br.ReadString('\n')
	if err != nil || !strings.HasPrefix(l, prefix) {
		t.Fatalf("got %q (%v), want %q", l, err, prefix)
	}
	return l
}

func (p *textConn) readDot(t *testing.T) {
	t.Helper()
	for {
		l, err := p.br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if l == ".\r\n" {
			return
		}
	}
}

// loginAuth is SMTP AUTH LOGIN for net/smtp (which only has PLAIN and
// CRAM-MD5); net/smtp refuses PLAIN without TLS to non-localhost names,
// but 127.0.0.1 is localhost to it.
type loginAuth struct{ user, pass string }

func (a loginAuth) Start(*smtp.ServerInfo) (string, []byte, error) { return "LOGIN", nil, nil }

func (a loginAuth) Next(from []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	switch string(from) {
	case "Username:":
		return []byte(a.user), nil
	case "Password:":
		return []byte(a.pass), nil
	}
	return nil, fmt.Errorf("unexpected challenge %q", from)
}
