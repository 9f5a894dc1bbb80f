package testpeers

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// xoauth2 is a test-local XOAUTH2 client (independent of proxy's, so the
// harness proves Dovecot's side on its own). It answers the error
// challenge with an empty response, as RFC-less XOAUTH2 requires.
type xoauth2 struct {
	user, token string
	challenge   []byte
}

func (x *xoauth2) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + x.user + "\x01auth=Bearer " + x.token + "\x01\x01"), nil
}

func (x *xoauth2) Next(challenge []byte) ([]byte, error) {
	x.challenge = append([]byte(nil), challenge...)
	return []byte{}, nil
}

func xoauth2B64(user, token string) string {
	_, ir, _ := (&xoauth2{user: user, token: token}).Start()
	return base64.StdEncoding.EncodeToString(ir)
}

const alice = "alice@example.test"

func testMessage(subject string) []byte {
	return []byte("From: bob@example.test\r\nTo: alice@example.test\r\nSubject: " + subject +
		"\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", ".") + "@example.test>\r\n\r\n" +
		"Hello,\r\n.dot-stuffed line\r\nbye\r\n")
}

// waitCtx is the bound for a single expected event in these tests.
func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func dialIMAP(t *testing.T, d *Dovecot, opts *imapclient.Options) *imapclient.Client {
	t.Helper()
	if opts == nil {
		opts = &imapclient.Options{}
	}
	opts.TLSConfig = d.TLSConfig()
	c, err := imapclient.DialTLS(d.IMAPAddr(), opts)
	if err != nil {
		t.Fatalf("dial imap: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestDovecotIMAP drives Dovecot's IMAP over TLS with go-imap: XOAUTH2,
// SELECT, APPEND, FETCH, and IDLE seeing a message Deliver put in.
func TestDovecotIMAP(t *testing.T) {
	d := StartDovecot(t, DovecotOptions{Users: []string{alice}})
	exists := make(chan uint32, 16)
	c := dialIMAP(t, d, &imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(m *imapclient.UnilateralDataMailbox) {
				if m.NumMessages != nil {
					exists <- *m.NumMessages
				}
			},
		},
	})
	if err := c.Authenticate(&xoauth2{user: alice, token: d.Token(alice)}); err != nil {
		t.Fatalf("AUTHENTICATE XOAUTH2: %v", err)
	}
	if d.Introspections() == 0 {
		t.Fatal("login succeeded without a call to the introspection endpoint")
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatalf("SELECT: %v", err)
	}
	if sel.NumMessages != 0 {
		t.Fatalf("new INBOX has %d messages", sel.NumMessages)
	}

	msg := testMessage("appended")
	app := c.Append("INBOX", int64(len(msg)), nil)
	if _, err := app.Write(msg); err != nil {
		t.Fatal(err)
	}
	if err := app.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := app.Wait(); err != nil {
		t.Fatalf("APPEND: %v", err)
	}
	section := &imap.FetchItemBodySection{Peek: true}
	bufs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		t.Fatalf("FETCH: %v", err)
	}
	if len(bufs) != 1 || !bytes.Equal(bufs[0].FindBodySection(section), msg) {
		t.Fatalf("FETCH 1 BODY[] = %+v, want the appended message", bufs)
	}
	stored, err := d.Messages(alice, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 1 || !bytes.Equal(stored[0].Text, msg) || stored[0].UID != uint32(bufs[0].UID) {
		t.Fatalf("Messages = %+v, want the appended message with UID %d", stored, bufs[0].UID)
	}

	// Drain the EXISTS the APPEND produced, then IDLE and deliver.
	drain(exists)
	idle, err := c.Idle()
	if err != nil {
		t.Fatalf("IDLE: %v", err)
	}
	if err := d.Deliver(alice, testMessage("delivered")); err != nil {
		t.Fatal(err)
	}
	ctx := waitCtx(t)
	for got := false; !got; {
		select {
		case n := <-exists:
			got = n == 2
		case <-ctx.Done():
			t.Fatal("no * 2 EXISTS during IDLE after Deliver")
		}
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatalf("IDLE end: %v", err)
	}
	if n, err := d.MessageCount(alice, "INBOX"); err != nil || n != 2 {
		t.Fatalf("MessageCount = %d, %v; want 2", n, err)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Fatalf("LOGOUT: %v", err)
	}
}

func drain(ch chan uint32) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// imapRaw is a raw IMAP connection over TLS, for exact wire checks.
type imapRaw struct {
	t  *testing.T
	tp *textproto.Conn
}

func dialIMAPRaw(t *testing.T, d *Dovecot) *imapRaw {
	t.Helper()
	tc, err := tls.Dial("tcp", d.IMAPAddr(), d.TLSConfig())
	if err != nil {
		t.Fatalf("dial imap: %v", err)
	}
	t.Cleanup(func() { tc.Close() })
	tc.SetDeadline(time.Now().Add(30 * time.Second))
	c := &imapRaw{t: t, tp: textproto.NewConn(tc)}
	if l := c.line(); !strings.HasPrefix(l, "* OK ") {
		t.Fatalf("imap greeting %q", l)
	}
	return c
}

func (c *imapRaw) line() string {
	c.t.Helper()
	l, err := c.tp.ReadLine()
	if err != nil {
		c.t.Fatalf("imap read: %v", err)
	}
	return l
}

func (c *imapRaw) send(format string, args ...any) {
	c.t.Helper()
	if err := c.tp.PrintfLine(format, args...); err != nil {
		c.t.Fatalf("imap write: %v", err)
	}
}

// tagged reads up to the tagged reply of tag and returns it.
func (c *imapRaw) tagged(tag string) string {
	c.t.Helper()
	for {
		if l := c.line(); strings.HasPrefix(l, tag+" ") {
			return l
		}
	}
}

// TestDovecotTokenChecks proves the token check really happens: unknown
// and revoked tokens fail the way Gmail fails them (a base64 JSON
// challenge, an empty client line, then NO [AUTHENTICATIONFAILED]), and
// failures cost no penalty delay for later logins.
func TestDovecotTokenChecks(t *testing.T) {
	d := StartDovecot(t, DovecotOptions{Users: []string{alice}})
	c := dialIMAPRaw(t, d)

	fail := func(tag, token string) {
		t.Helper()
		c.send("%s AUTHENTICATE XOAUTH2 %s", tag, xoauth2B64(alice, token))
		l := c.line()
		ch, ok := strings.CutPrefix(l, "+ ")
		if !ok {
			t.Fatalf("bad token: %q, want an error challenge", l)
		}
		js, err := base64.StdEncoding.DecodeString(ch)
		if want := `{"status":"401","schemes":"bearer","scope":"mail"}`; err != nil || string(js) != want {
			t.Fatalf("error challenge = %q (%v), want %q", js, err, want)
		}
		c.send("") // the empty response; go-imap would send "=" here, which Dovecot answers with BAD
		if l := c.tagged(tag); l != tag+" NO [AUTHENTICATIONFAILED] Authentication failed." {
			t.Fatalf("after the empty response: %q", l)
		}
	}
	// A session opened before the revocation outlives it: Dovecot checks
	// tokens only at login.
	tok := d.Token(alice)
	early := dialIMAPRaw(t, d)
	early.send("e1 AUTHENTICATE XOAUTH2 %s", xoauth2B64(alice, tok))
	if l := early.tagged("e1"); !strings.HasPrefix(l, "e1 OK ") {
		t.Fatalf("login: %q", l)
	}

	fail("a1", "not-a-token")
	d.Revoke(alice)
	fail("a2", tok)
	early.send("e2 NOOP")
	if l := early.tagged("e2"); !strings.HasPrefix(l, "e2 OK ") {
		t.Fatalf("NOOP in a session whose token was revoked: %q", l)
	}

	// Two failures from 127.0.0.1 would put a penalty on the address (4 s
	// and more before each later login); the harness disables it, so anvil
	// must have no entry.
	out, err := d.runDoveadm(nil, "penalty")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "127.0.0.1") {
		t.Fatalf("auth penalty recorded for 127.0.0.1:\n%s", out)
	}
	c.send("a3 AUTHENTICATE XOAUTH2 %s", xoauth2B64(alice, d.Token(alice)))
	if l := c.tagged("a3"); !strings.HasPrefix(l, "a3 OK ") {
		t.Fatalf("valid token after failures: %q", l)
	}
}

// TestDovecotIMAPClientEmptyResponse records a go-imap quirk against
// Dovecot: imapclient answers the XOAUTH2 error challenge with "=" (its
// encoding of an empty response), which Dovecot 2.3.19 rejects with BAD
// "Invalid base64 data in continued response" instead of NO. A bridge must
// send an empty line.
func TestDovecotIMAPClientEmptyResponse(t *testing.T) {
	d := StartDovecot(t, DovecotOptions{Users: []string{alice}})
	c := dialIMAP(t, d, nil)
	err := c.Authenticate(&xoauth2{user: alice, token: "not-a-token"})
	var imapErr *imap.Error
	if !errors.As(err, &imapErr) || imapErr.Type != imap.StatusResponseTypeBad {
		t.Fatalf("err = %v; want BAD (if this now says NO, go-imap or Dovecot changed: update FACTS)", err)
	}
	if err := c.Authenticate(&xoauth2{user: alice, token: d.Token(alice)}); err != nil {
		t.Fatalf("login after the BAD: %v", err)
	}
}

// TestDovecotIntrospectCallback plugs a token check like a fake OAuth
// server's: Dovecot must accept a token only for the user it names, and
// OAUTHBEARER must work too, also for a user not listed in Users.
func TestDovecotIntrospectCallback(t *testing.T) {
	const bob, carol = "bob@example.test", "carol@example.test"
	var mu sync.Mutex
	var seen []string
	d := StartDovecot(t, DovecotOptions{
		Users: []string{alice, bob},
		Introspect: func(token string) (string, bool) {
			mu.Lock()
			seen = append(seen, token)
			mu.Unlock()
			switch token {
			case "tok-bob":
				return bob, true
			case "tok-carol":
				return carol, true
			}
			return "", false
		},
	})

	c := dialIMAP(t, d, nil)
	if err := c.Authenticate(&xoauth2{user: alice, token: "tok-bob"}); err == nil {
		t.Fatal("bob's token logged in as alice")
	}
	if err := c.Authenticate(sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{Username: bob, Token: "tok-bob"})); err != nil {
		t.Fatalf("OAUTHBEARER as bob: %v", err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("SELECT as bob: %v", err)
	}

	c2 := dialIMAP(t, d, nil)
	if err := c2.Authenticate(&xoauth2{user: carol, token: "tok-carol"}); err != nil {
		t.Fatalf("XOAUTH2 as unlisted carol: %v", err)
	}
	if _, err := c2.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("SELECT as unlisted carol (home created by dovecot): %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"tok-bob", "tok-bob", "tok-carol"}; strings.Join(seen, ",") != strings.Join(want, ",") {
		t.Fatalf("Introspect saw %q, want %q", seen, want)
	}
}

// pop3Conn is a minimal POP3 client on net/textproto.
type pop3Conn struct {
	t  *testing.T
	tc *tls.Conn
	tp *textproto.Conn
}

func dialPOP3(t *testing.T, d *Dovecot) *pop3Conn {
	t.Helper()
	tc, err := tls.Dial("tcp", d.POP3Addr(), d.TLSConfig())
	if err != nil {
		t.Fatalf("dial pop3: %v", err)
	}
	t.Cleanup(func() { tc.Close() })
	tc.SetDeadline(time.Now().Add(30 * time.Second))
	p := &pop3Conn{t: t, tc: tc, tp: textproto.NewConn(tc)}
	if l := p.line(); !strings.HasPrefix(l, "+OK") {
		t.Fatalf("pop3 greeting %q", l)
	}
	return p
}

func (p *pop3Conn) line() string {
	p.t.Helper()
	l, err := p.tp.ReadLine()
	if err != nil {
		p.t.Fatalf("pop3 read: %v", err)
	}
	return l
}

// cmd sends a command and returns its status line, failing unless +OK.
func (p *pop3Conn) cmd(format string, args ...any) string {
	p.t.Helper()
	if err := p.tp.PrintfLine(format, args...); err != nil {
		p.t.Fatalf("pop3 write: %v", err)
	}
	l := p.line()
	if !strings.HasPrefix(l, "+OK") {
		p.t.Fatalf("pop3 %q: %q", fmt.Sprintf(format, args...), l)
	}
	return l
}

// login uses the two-step AUTH form (RFC 5034 §4), which Microsoft
// requires and long tokens need (RFC 2449 §4: 255-octet command lines).
func (p *pop3Conn) login(user, token string) {
	p.t.Helper()
	if err := p.tp.PrintfLine("AUTH XOAUTH2"); err != nil {
		p.t.Fatal(err)
	}
	if l := p.line(); l != "+ " && l != "+" {
		p.t.Fatalf("AUTH XOAUTH2: %q, want an empty continuation", l)
	}
	if err := p.tp.PrintfLine("%s", xoauth2B64(user, token)); err != nil {
		p.t.Fatal(err)
	}
	if l := p.line(); !strings.HasPrefix(l, "+OK") {
		p.t.Fatalf("AUTH XOAUTH2 response: %q", l)
	}
}

// TestDovecotPOP3 logs in to Dovecot's POP3 over TLS with XOAUTH2 and
// retrieves and deletes what Deliver put in.
func TestDovecotPOP3(t *testing.T) {
	d := StartDovecot(t, DovecotOptions{Users: []string{alice}})
	m1, m2 := testMessage("first"), testMessage("second")
	for _, m := range [][]byte{m1, m2} {
		if err := d.Deliver(alice, m); err != nil {
			t.Fatal(err)
		}
	}
	p := dialPOP3(t, d)
	p.login(alice, d.Token(alice))
	if st, want := p.cmd("STAT"), fmt.Sprintf("+OK 2 %d", len(m1)+len(m2)); st != want {
		t.Fatalf("STAT = %q, want %q", st, want)
	}
	p.cmd("RETR 2")
	got, err := p.tp.ReadDotBytes() // undoes dot-stuffing, CRLF -> LF
	if err != nil {
		t.Fatal(err)
	}
	if want := bytes.ReplaceAll(m2, []byte("\r\n"), []byte("\n")); !bytes.Equal(got, want) {
		t.Fatalf("RETR 2 = %q, want %q", got, want)
	}
	p.cmd("DELE 1")
	p.cmd("QUIT")
	if n, err := d.MessageCount(alice, "INBOX"); err != nil || n != 1 {
		t.Fatalf("after DELE 1 and QUIT: MessageCount = %d, %v; want 1", n, err)
	}
}

// TestDovecotSubmission sends through Dovecot's submission service with
// go-smtp's client, over implicit TLS and over STARTTLS, and checks the
// capture server received what was sent.
func TestDovecotSubmission(t *testing.T) {
	d := StartDovecot(t, DovecotOptions{Users: []string{alice}})
	for i, tc := range []struct {
		name string
		dial func() (*smtp.Client, error)
	}{
		{"implicit TLS", func() (*smtp.Client, error) { return smtp.DialTLS(d.SMTPAddr(), d.TLSConfig()) }},
		{"STARTTLS", func() (*smtp.Client, error) { return smtp.DialStartTLS(d.SubmissionAddr(), d.TLSConfig()) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.dial()
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer c.Close()
			if err := c.Auth(&xoauth2{user: alice, token: d.Token(alice)}); err != nil {
				t.Fatalf("AUTH XOAUTH2: %v", err)
			}
			msg := testMessage(fmt.Sprintf("submitted %d", i))
			rcpts := []string{"carol@example.test", "dave@example.test"}
			if err := c.SendMail(alice, rcpts, bytes.NewReader(msg)); err != nil {
				t.Fatalf("send: %v", err)
			}
			if err := c.Quit(); err != nil {
				t.Fatalf("QUIT: %v", err)
			}
			msgs, err := d.WaitDelivered(waitCtx(t), i+1)
			if err != nil {
				t.Fatal(err)
			}
			got := msgs[i]
			if got.From != alice || strings.Join(got.To, ",") != strings.Join(rcpts, ",") {
				t.Errorf("envelope = %q -> %q, want %q -> %q", got.From, got.To, alice, rcpts)
			}
			// Dovecot prepends its Received: header and relays the rest
			// unchanged.
			if !bytes.HasPrefix(got.Data, []byte("Received: from localhost ([127.0.0.1])")) || !bytes.HasSuffix(got.Data, msg) {
				t.Errorf("relayed data = %q, want a Received: header and then %q", got.Data, msg)
			}
			if n := len(d.Delivered()); n != i+1 {
				t.Errorf("Delivered() has %d messages, want %d", n, i+1)
			}
		})
	}

	t.Run("bad token", func(t *testing.T) {
		c, err := smtp.DialTLS(d.SMTPAddr(), d.TLSConfig())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		x := &xoauth2{user: alice, token: "not-a-token"}
		err = c.Auth(x)
		var smtpErr *smtp.SMTPError
		if !errors.As(err, &smtpErr) || smtpErr.Code != 535 || smtpErr.EnhancedCode != (smtp.EnhancedCode{5, 7, 8}) {
			t.Fatalf("AUTH with a bad token: %v, want 535 5.7.8", err)
		}
		if want := `{"status":"401","schemes":"bearer","scope":"mail"}`; string(x.challenge) != want {
			t.Fatalf("334 challenge = %q, want %q", x.challenge, want)
		}
	})
}

// syncWriter collects an imapclient debug transcript.
type syncWriter struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// Kick texts Dovecot 2.3.19 sends: recorded from real runs and asserted
// here so a Dovecot upgrade that changes them is noticed.
const (
	kickIMAP       = "* BYE Server shutting down."
	kickPOP3       = "-ERR [SYS/TEMP] Server shutting down."
	kickSubmission = "421 4.3.2 localhost Shutting down"
)

// TestDovecotKick cuts live sessions with doveadm kick: an IMAP client in
// IDLE (go-imap) sees BYE and the close; POP3 and submission sessions get
// their protocol's goodbye, then EOF.
func TestDovecotKick(t *testing.T) {
	d := StartDovecot(t, DovecotOptions{Users: []string{alice}})

	if err := d.Kick(alice); err == nil {
		t.Fatal("Kick with no session reported success")
	}

	t.Run("IMAP IDLE", func(t *testing.T) {
		var transcript syncWriter
		c := dialIMAP(t, d, &imapclient.Options{DebugWriter: &transcript})
		if err := c.Authenticate(&xoauth2{user: alice, token: d.Token(alice)}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		idle, err := c.Idle()
		if err != nil {
			t.Fatal(err)
		}
		// Dovecot answers IDLE with "+ idling" before it is in IDLE; the
		// kick may land either side of it, both are fine.
		if err := d.Kick(alice); err != nil {
			t.Fatal(err)
		}
		select {
		case <-c.Closed():
		case <-waitCtx(t).Done():
			t.Fatal("connection still open after kick")
		}
		_ = idle.Wait()
		if !strings.Contains(transcript.String(), kickIMAP+"\r\n") {
			t.Fatalf("no %q in transcript:\n%s", kickIMAP, transcript.String())
		}
	})

	t.Run("POP3", func(t *testing.T) {
		p := dialPOP3(t, d)
		p.login(alice, d.Token(alice))
		p.cmd("STAT")
		if err := d.Kick(alice); err != nil {
			t.Fatal(err)
		}
		if l := p.line(); l != kickPOP3 {
			t.Fatalf("after kick: %q, want %q", l, kickPOP3)
		}
		if l, err := p.tp.ReadLine(); err != io.EOF {
			t.Fatalf("after goodbye: %q, %v; want EOF", l, err)
		}
	})

	t.Run("submission", func(t *testing.T) {
		tc, err := tls.Dial("tcp", d.SMTPAddr(), d.TLSConfig())
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close()
		tc.SetDeadline(time.Now().Add(30 * time.Second))
		tp := textproto.NewConn(tc)
		expect := func(code int) {
			t.Helper()
			if _, msg, err := tp.ReadResponse(code); err != nil {
				t.Fatalf("want %d: %v %q", code, err, msg)
			}
		}
		expect(220)
		tp.PrintfLine("EHLO client.example.test")
		expect(250)
		tp.PrintfLine("AUTH XOAUTH2 %s", xoauth2B64(alice, d.Token(alice)))
		expect(235)
		tp.PrintfLine("MAIL FROM:<%s>", alice)
		expect(250)
		if err := d.Kick(alice); err != nil {
			t.Fatal(err)
		}
		l, err := tp.ReadLine()
		if err != nil || l != kickSubmission {
			t.Fatalf("after kick: %q, %v; want %q", l, err, kickSubmission)
		}
		if l, err := tp.ReadLine(); err != io.EOF {
			t.Fatalf("after goodbye: %q, %v; want EOF", l, err)
		}
	})
}

// TestDovecotStop: stopping the server ends a live session with the
// shutdown BYE, like a real server restart, and Stop is idempotent.
func TestDovecotStop(t *testing.T) {
	d := StartDovecot(t, DovecotOptions{Users: []string{alice}})
	c := dialIMAPRaw(t, d)
	c.send("a AUTHENTICATE XOAUTH2 %s", xoauth2B64(alice, d.Token(alice)))
	if l := c.tagged("a"); !strings.HasPrefix(l, "a OK ") {
		t.Fatalf("login: %q", l)
	}
	d.Stop()
	if l := c.line(); l != kickIMAP {
		t.Fatalf("after Stop: %q, want %q", l, kickIMAP)
	}
	if l, err := c.tp.ReadLine(); err != io.EOF {
		t.Fatalf("after BYE: %q, %v; want EOF", l, err)
	}
	d.Stop()
}

// TestDovecotPlainPorts: the cleartext listeners on loopback accept
// XOAUTH2 without STARTTLS (Dovecot counts 127.0.0.1 as secured).
func TestDovecotPlainPorts(t *testing.T) {
	d := StartDovecot(t, DovecotOptions{Users: []string{alice}})

	c, err := imapclient.DialInsecure(d.IMAPPlainAddr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Authenticate(&xoauth2{user: alice, token: d.Token(alice)}); err != nil {
		t.Fatalf("IMAP XOAUTH2 on the plain port: %v", err)
	}

	conn, err := net.DialTimeout("tcp", d.POP3PlainAddr(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	tp := textproto.NewConn(conn)
	if l, err := tp.ReadLine(); err != nil || !strings.HasPrefix(l, "+OK") {
		t.Fatalf("pop3 greeting %q, %v", l, err)
	}
	// One-line form this time: this payload is under 255 octets.
	tp.PrintfLine("AUTH XOAUTH2 %s", xoauth2B64(alice, d.Token(alice)))
	if l, err := tp.ReadLine(); err != nil || !strings.HasPrefix(l, "+OK") {
		t.Fatalf("POP3 AUTH XOAUTH2 on the plain port: %q, %v", l, err)
	}
}
