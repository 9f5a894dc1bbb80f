package smtp

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/oauthbridge/oauthbridge/internal/fakegmail"
	"github.com/oauthbridge/oauthbridge/proxy"
	"github.com/oauthbridge/oauthbridge/proxy/proxytest"
)

// waitSent waits until the fake has accepted n messages in total and
// returns them.
func (b *bridge) waitSent(n int) []fakegmail.Message {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msgs, err := b.fg.WaitSent(ctx, n)
	if err != nil {
		b.t.Fatalf("waiting for %d sent messages: %v (have %d)", n, err, len(b.fg.Sent()))
	}
	return msgs
}

func TestAuthPlainAndLogin(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	b := startBridge(t, bridgeOpts{})
	for i, mech := range []sasl.Client{
		sasl.NewPlainClient("", alice, alicePW),
		sasl.NewLoginClient(alice, alicePW),
	} {
		c := b.client()
		if err := c.Auth(mech); err != nil {
			t.Fatalf("AUTH #%d: %v", i, err)
		}
		msg := testMessage(fmt.Sprintf("auth %d", i), 10)
		if err := send(c, alice, []string{"x@example.com"}, msg); err != nil {
			t.Fatal(err)
		}
		if err := c.Quit(); err != nil {
			t.Fatal(err)
		}
		got := b.waitSent(i + 1)[i]
		if got.From != alice || len(got.To) != 1 || got.To[0] != "x@example.com" || !bytes.Equal(got.Data, msg) {
			t.Fatalf("sent %q %q %q", got.From, got.To, got.Data)
		}
	}
	if got := b.counter("oauthbridge_logins_total", map[string]string{"proto": "smtp", "outcome": "ok"}); got != 2 {
		t.Errorf("logins ok = %v", got)
	}
	if lines := b.logs.Lines("msg=\"message relayed\"", "account=alice@gmail.com", "recipients=1", "reply=250"); len(lines) != 2 {
		t.Errorf("message log lines: %q", lines)
	}
	b.logs.AssertNoSecrets(t, b.secrets()...)
}

// TestPerRecipientReplies: each RCPT gets the upstream's own reply, the
// refused one does not stop the others (go-smtp's SendMail would), and
// the message reaches exactly the accepted ones.
func TestPerRecipientReplies(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	b := startBridge(t, bridgeOpts{})
	const gone = "gone@example.com"
	b.fg.RejectRecipient(gone, 550, "5.1.1 The email account that you tried to reach does not exist.")
	c := b.login(alice, alicePW)
	if err := c.Mail(alice, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("one@example.com", nil); err != nil {
		t.Fatal(err)
	}
	err := c.Rcpt(gone, nil)
	se, ok := err.(*gosmtp.SMTPError)
	if !ok || se.Code != 550 || se.EnhancedCode != (gosmtp.EnhancedCode{5, 1, 1}) || se.Message != "The email account that you tried to reach does not exist." {
		t.Fatalf("RCPT %s: %#v", gone, err)
	}
	if err := c.Rcpt("three@example.com", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	msg := testMessage("three recipients", 5)
	w.Write(msg)
	resp, err := w.CloseWithResponse()
	if err != nil {
		t.Fatal(err)
	}
	// The upstream's 250 text comes through ("2.0.0 OK  <id> - gsmtp"),
	// not go-smtp's own "OK: queued".
	if !strings.HasPrefix(resp.StatusText, "2.0.0 OK  ") || !strings.HasSuffix(resp.StatusText, " - gsmtp") {
		t.Errorf("DATA reply %q is not the upstream's", resp.StatusText)
	}
	got := b.waitSent(1)[0]
	if strings.Join(got.To, ",") != "one@example.com,three@example.com" || !bytes.Equal(got.Data, msg) {
		t.Fatalf("sent to %q", got.To)
	}
}

// TestMessage20MiB: a large message arrives byte for byte (dot-stuffing,
// long runs, binary-ish 8-bit content), spooled partly to disk.
func TestMessage20MiB(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	b := startBridge(t, bridgeOpts{configure: func(s *Server) { s.SpoolMemory = 64 << 10 }})
	msg := bigMessage(20 << 20)
	c := b.login(alice, alicePW)
	if err := send(c, alice, []string{"big@example.com"}, msg); err != nil {
		t.Fatal(err)
	}
	got := b.waitSent(1)[0]
	if !bytes.Equal(got.Data, msg) {
		t.Fatalf("20 MiB message differs: got %d bytes, want %d", len(got.Data), len(msg))
	}
	if len(b.logs.Lines("message relayed", "spool=disk", fmt.Sprintf("size=%d", len(msg)))) != 1 {
		t.Errorf("no log line for a disk-spooled message: %s", b.logs.Lines("message"))
	}
	assertEmptyDir(t, b.srv.SpoolDir)
}

// bigMessage returns a message of about n bytes whose lines exercise
// dot-stuffing and 8-bit bytes, CRLF-terminated.
func bigMessage(n int) []byte {
	var buf bytes.Buffer
	buf.WriteString("From: alice@gmail.com\r\nTo: big@example.com\r\nSubject: big\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	line := make([]byte, 38)
	for i := 0; buf.Len() < n; i++ {
		rand.Read(line)
		switch i % 4 {
		case 0:
			buf.WriteString(".")
		case 1:
			buf.WriteString("..dots ")
		case 2:
			buf.WriteString("Grüße \xe2\x82\xac ")
		}
		buf.WriteString(hex.EncodeToString(line))
		buf.WriteString("\r\n")
	}
	return buf.Bytes()
}

// TestSizeLimit: the upstream's SIZE is learned, advertised (after AUTH,
// and before AUTH in later sessions), and a message over it gets 552
// 5.3.4 (RFC 1870), never 250, and is not delivered.
func TestSizeLimit(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	const limit = 100 << 10
	b := startBridge(t, bridgeOpts{fg: &fakegmail.Options{MaxMessageBytes: limit}})
	c := b.login(alice, alicePW)
	if err := c.Hello("again.test"); err == nil {
		t.Log("(Hello after AUTH refused by go-smtp's client, as expected)")
	}
	// Declared size too big: refused at MAIL.
	err := c.Mail(alice, &gosmtp.MailOptions{Size: limit + 1})
	if se, ok := err.(*gosmtp.SMTPError); !ok || se.Code != 552 || se.EnhancedCode != (gosmtp.EnhancedCode{5, 3, 4}) {
		t.Fatalf("MAIL SIZE=%d: %v", limit+1, err)
	}
	// Undeclared, too big: refused at the end of DATA.
	err = send(c, alice, []string{"x@example.com"}, bigMessage(limit+10))
	if se, ok := err.(*gosmtp.SMTPError); !ok || se.Code != 552 || se.EnhancedCode != (gosmtp.EnhancedCode{5, 3, 4}) {
		t.Fatalf("oversized DATA: %v", err)
	}
	// The session goes on: a message under the limit passes.
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}
	small := testMessage("small", 10)
	if err := send(c, alice, []string{"x@example.com"}, small); err != nil {
		t.Fatal(err)
	}
	if got := b.waitSent(1); len(got) != 1 || !bytes.Equal(got[0].Data, small) {
		t.Fatalf("sent %d messages", len(got))
	}
	// A new session advertises the learned SIZE before AUTH.
	w := dialWire(t, b.addr)
	w.reply()
	w.send("EHLO client.test\r\n")
	if ehlo := w.reply(); !strings.Contains(ehlo, fmt.Sprintf("250-SIZE %d\r\n", limit)) {
		t.Fatalf("EHLO after the upstream was seen: %q", ehlo)
	}
}

// TestSMTPUTF8: offered once the bridge has seen that the upstream
// offers it (before that, a client's pre-AUTH EHLO cannot know), and an
// internationalised envelope (RFC 6531) goes through.
func TestSMTPUTF8(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	b := startBridge(t, bridgeOpts{})
	first := b.client()
	if ok, _ := first.Extension("SMTPUTF8"); ok {
		t.Fatal("SMTPUTF8 offered before any upstream was seen")
	}
	if err := first.Auth(sasl.NewPlainClient("", alice, alicePW)); err != nil {
		t.Fatal(err)
	}
	first.Quit()
	c := b.client()
	if ok, _ := c.Extension("SMTPUTF8"); !ok {
		t.Fatal("SMTPUTF8 not offered after the upstream was seen")
	}
	if err := c.Auth(sasl.NewPlainClient("", alice, alicePW)); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail(alice, &gosmtp.MailOptions{UTF8: true}); err != nil {
		t.Fatalf("MAIL SMTPUTF8: %v", err)
	}
	if err := c.Rcpt("jürgen@bücher.example", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("Subject: Grüße\r\n\r\nÄ\r\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := b.waitSent(1)[0]; got.To[0] != "jürgen@bücher.example" {
		t.Fatalf("to %q", got.To)
	}
}

func TestRelayWithoutAuth(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	t.Run("allowed address", func(t *testing.T) {
		b := startBridge(t, bridgeOpts{configure: func(s *Server) {
			s.RelayFrom = mustPrefix("127.0.0.0/8")
			s.RelayAccount = scanner
		}})
		c := b.client()
		msg := testMessage("scan", 3)
		if err := send(c, scanner, []string{"office@example.com"}, msg); err != nil {
			t.Fatal(err)
		}
		got := b.waitSent(1)[0]
		if got.From != scanner || !bytes.Equal(got.Data, msg) {
			t.Fatalf("sent from %q", got.From)
		}
		// Whatever envelope sender the device claims, the upstream login
		// is the relay account's: the upstream enforces its From rules.
		for _, u := range []string{alice, bob} {
			if n := b.fg.Logins(u, "smtp"); n != 0 {
				t.Fatalf("%s logged in upstream", u)
			}
		}
		if n := b.fg.Logins(scanner, "smtp"); n != 1 {
			t.Fatalf("scanner logins %d", n)
		}
	})
	t.Run("refused address", func(t *testing.T) {
		b := startBridge(t, bridgeOpts{configure: func(s *Server) {
			s.RelayFrom = mustPrefix("192.0.2.50/32")
			s.RelayAccount = scanner
		}})
		c := b.client()
		if err := c.Mail(scanner, nil); smtpCode(err) != 530 {
			t.Fatalf("MAIL: %v", err)
		}
	})
}

func TestLocalSTARTTLSThenAuth(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	b := startBridge(t, bridgeOpts{direct: true, localTLS: proxy.TLSStartTLS, listener: proxy.ListenerInfo{Loopback: false}})
	conn, err := net.Dial("tcp", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := gosmtp.NewClientStartTLS(conn, b.clientTLS())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", alice, alicePW)); err != nil {
		t.Fatal(err)
	}
	if err := send(c, alice, []string{"x@example.com"}, testMessage("tls", 2)); err != nil {
		t.Fatal(err)
	}
	b.waitSent(1)
}

func TestLocalImplicitTLS(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	b := startBridge(t, bridgeOpts{localTLS: proxy.TLSImplicit})
	c, err := gosmtp.DialTLS(b.addr, b.clientTLS())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Error("STARTTLS offered on an implicit TLS connection")
	}
	if err := c.Auth(sasl.NewLoginClient(alice, alicePW)); err != nil {
		t.Fatal(err)
	}
	if err := send(c, alice, []string{"x@example.com"}, testMessage("implicit", 2)); err != nil {
		t.Fatal(err)
	}
	b.waitSent(1)
}

func TestUpstreamTLSModes(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	for _, starttls := range []bool{false, true} {
		t.Run(fmt.Sprintf("starttls=%v", starttls), func(t *testing.T) {
			b := startBridge(t, bridgeOpts{starttlsUpstream: starttls})
			c := b.login(alice, alicePW)
			msg := testMessage("mode", 2)
			if err := send(c, alice, []string{"x@example.com"}, msg); err != nil {
				t.Fatal(err)
			}
			if got := b.waitSent(1)[0]; !bytes.Equal(got.Data, msg) {
				t.Fatal("data differs")
			}
			if n := b.fg.Logins(alice, "smtp"); n != 1 {
				t.Fatalf("logins %d", n)
			}
		})
	}
}

// TestLoginErrors: the AUTH reply for each kind of failure, with the text
// of proxy.ClientMessage and never internal error text.
func TestLoginErrors(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	t.Run("revoked grant", func(t *testing.T) {
		b := startBridge(t, bridgeOpts{})
		b.tokens[alice].Revoke()
		c := b.client()
		err := c.Auth(sasl.NewPlainClient("", alice, alicePW))
		se, ok := err.(*gosmtp.SMTPError)
		if !ok || se.Code != 535 || se.EnhancedCode != (gosmtp.EnhancedCode{5, 7, 8}) || !strings.Contains(se.Message, "oauthbridge authorize alice@gmail.com") {
			t.Fatalf("AUTH: %#v", err)
		}
		if b.tokens[alice].Forced() != 1 {
			t.Errorf("refreshes %d, want one forced refresh", b.tokens[alice].Forced())
		}
		if len(b.logs.Lines("upstream login failed", "outcome=consent_required", "account=alice@gmail.com")) != 1 {
			t.Errorf("no login failed line: %s", b.logs.String())
		}
		b.logs.AssertNoSecrets(t, b.secrets()...)
	})
	t.Run("upstream down", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		dead := ln.Addr().String()
		ln.Close()
		b := startBridge(t, bridgeOpts{})
		b.accts[alice].SMTP.Addr = dead
		c := b.client()
		err := c.Auth(sasl.NewPlainClient("", alice, alicePW))
		se, ok := err.(*gosmtp.SMTPError)
		if !ok || se.Code != 454 || se.EnhancedCode != (gosmtp.EnhancedCode{4, 7, 0}) || se.Message != proxy.ClientMessage(fmt.Errorf("x"), alice) {
			t.Fatalf("AUTH: %#v", err)
		}
	})
	t.Run("session limit", func(t *testing.T) {
		b := startBridge(t, bridgeOpts{configure: func(s *Server) {
			s.Limits = proxy.NewLimiter(proxy.Limits{PerAccount: 1})
		}})
		b.login(alice, alicePW)
		w := dialWire(t, b.addr)
		w.reply()
		w.ehlo()
		w.send("AUTH PLAIN " + b64("\x00"+alice+"\x00"+alicePW) + "\r\n")
		if got := w.reply(); !strings.HasPrefix(got, "421 4.7.0 Too many concurrent sessions") {
			t.Fatalf("got %q", got)
		}
		w.closed()
		if n := b.fg.Logins(alice, "smtp"); n != 1 {
			t.Fatalf("upstream logins %d", n)
		}
	})
}

// TestBDAT: CHUNKING (RFC 3030) locally; the chunks go upstream as one
// DATA (go-smtp's client has no BDAT) and arrive byte for byte.
func TestBDAT(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	b := startBridge(t, bridgeOpts{})
	w := dialWire(t, b.addr)
	w.reply()
	w.ehlo()
	w.expect("AUTH PLAIN "+b64("\x00"+alice+"\x00"+alicePW)+"\r\n", "235 2.0.0 Authentication succeeded\r\n")
	w.expect("MAIL FROM:<alice@gmail.com>\r\n", "250 2.0.0 Roger, accepting mail from <alice@gmail.com>\r\n")
	w.expect("RCPT TO:<x@example.com>\r\n", "250 2.0.0 I'll make sure <x@example.com> gets this\r\n")
	part1 := "Subject: chunks\r\n\r\n.not stuffed in BDAT\r\n"
	part2 := "second chunk\r\n"
	w.expect(fmt.Sprintf("BDAT %d\r\n%s", len(part1), part1), "250 2.0.0 Continue\r\n")
	w.expect("NOOP\r\n", "250 2.0.0 I have successfully done nothing\r\n")
	w.send(fmt.Sprintf("BDAT %d LAST\r\n%s", len(part2), part2))
	if got := w.reply(); !strings.HasPrefix(got, "250 2.0.0 OK  ") {
		t.Fatalf("BDAT LAST: %q", got)
	}
	got := b.waitSent(1)[0]
	if string(got.Data) != part1+part2 {
		t.Fatalf("data %q", got.Data)
	}
}

// TestBDATInterrupted: AUTH and STARTTLS between BDAT chunks (where the
// session's Data is still running on go-smtp's chunk goroutine) are
// answered, not deadlocked; an interrupted message is never delivered,
// and the session goes on.
func TestBDATInterrupted(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	b := startBridge(t, bridgeOpts{localTLS: proxy.TLSStartTLS, configure: func(s *Server) {
		s.RelayFrom = mustPrefix("127.0.0.0/8")
		s.RelayAccount = scanner
	}})
	w := dialWire(t, b.addr)
	w.reply()
	w.ehlo()
	chunk := "Subject: interrupted\r\n\r\n"
	w.expect("MAIL FROM:<scanner@gmail.com>\r\n", "250 2.0.0 Roger, accepting mail from <scanner@gmail.com>\r\n")
	w.expect("RCPT TO:<x@example.com>\r\n", "250 2.0.0 I'll make sure <x@example.com> gets this\r\n")
	w.expect(fmt.Sprintf("BDAT %d\r\n%s", len(chunk), chunk), "250 2.0.0 Continue\r\n")
	w.expect("AUTH PLAIN "+b64("\x00"+alice+"\x00"+alicePW)+"\r\n", "503 5.5.1 AUTH not permitted during a mail transaction\r\n")
	w.startTLS(b.clientTLS()) // resets the transaction: the message is dropped
	w.ehlo()
	w.expect("MAIL FROM:<scanner@gmail.com>\r\n", "250 2.0.0 Roger, accepting mail from <scanner@gmail.com>\r\n")
	w.expect("RCPT TO:<y@example.com>\r\n", "250 2.0.0 I'll make sure <y@example.com> gets this\r\n")
	// DATA, not BDAT: go-smtp v0.25.1 races here. The goroutine of the
	// interrupted BDAT reads Conn.dataResult after the next BDAT assigned
	// a new channel (conn.go:1072 vs 1045), so it may hand its (failure)
	// result to the next message. Not fixable from the session; reported.
	w.expect("DATA\r\n", "354 Go ahead. End your data with <CR><LF>.<CR><LF>\r\n")
	w.send(chunk + ".\r\n")
	if got := w.reply(); !strings.HasPrefix(got, "250 2.0.0 OK  ") {
		t.Fatalf("DATA: %q", got)
	}
	got := b.waitSent(1)
	if len(got) != 1 || got[0].To[0] != "y@example.com" {
		t.Fatalf("sent %+v", got)
	}
}

// TestGracefulShutdown: when the listener shuts down, an idle session gets
// "421 4.3.2" at once; a message being received is finished, relayed and
// answered with the upstream's 250, and only then the session ends with
// 421 at its next command.
func TestGracefulShutdown(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	b := startBridge(t, bridgeOpts{})
	idle := dialWire(t, b.addr)
	idle.reply()
	idle.ehlo()
	idle.expect("AUTH PLAIN "+b64("\x00"+bob+"\x00"+bobPW)+"\r\n", "235 2.0.0 Authentication succeeded\r\n")
	busy := dialWire(t, b.addr)
	busy.reply()
	busy.ehlo()
	busy.expect("AUTH PLAIN "+b64("\x00"+alice+"\x00"+alicePW)+"\r\n", "235 2.0.0 Authentication succeeded\r\n")
	busy.expect("MAIL FROM:<alice@gmail.com>\r\n", "250 2.0.0 Roger, accepting mail from <alice@gmail.com>\r\n")
	busy.expect("RCPT TO:<x@example.com>\r\n", "250 2.0.0 I'll make sure <x@example.com> gets this\r\n")
	busy.expect("DATA\r\n", "354 Go ahead. End your data with <CR><LF>.<CR><LF>\r\n")
	busy.send("Subject: in flight\r\n\r\nfirst half\r\n")

	shutdown := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shutdown <- b.ln.Shutdown(ctx)
	}()
	// The idle session hears about it at once (RFC 5321 §3.8): the drain
	// has begun.
	const bye = "421 4.3.2 bridge.test Server shutting down, reconnect shortly\r\n"
	if got := idle.reply(); got != bye {
		t.Fatalf("idle session got %q", got)
	}
	idle.closed()
	// The message in flight is finished and answered with the upstream's
	// 250; then, where the next command would be read, the 421.
	busy.send("second half\r\n.\r\n")
	if got := busy.reply(); !strings.HasPrefix(got, "250 2.0.0 ") {
		t.Fatalf("in-flight message got %q", got)
	}
	if got := busy.reply(); got != bye {
		t.Fatalf("after the message: %q", got)
	}
	busy.closed()
	if err := <-shutdown; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	got := b.waitSent(1)[0]
	if !bytes.HasSuffix(got.Data, []byte("first half\r\nsecond half\r\n")) {
		t.Fatalf("data %q", got.Data)
	}
	for _, u := range []string{alice, bob} {
		if !b.fg.WaitConnections(u, "smtp", 0, 5*time.Second) {
			t.Errorf("upstream connections of %s left open", u)
		}
	}
}
