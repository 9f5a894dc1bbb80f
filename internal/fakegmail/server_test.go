package fakegmail

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a goroutine-safe log sink.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestLogsHoldNoTokens(t *testing.T) {
	var logs lockedBuffer
	s := start(t, Options{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	good := s.AccessToken(alice)
	bad := "ya29.this-is-a-bad-token"
	r := dialRaw(t, s, s.IMAPAddr())
	r.line()
	r.send("a AUTHENTICATE XOAUTH2 " + xoauth2(alice, bad))
	r.line()
	r.send("")
	r.line()
	r.send("b AUTHENTICATE XOAUTH2 " + xoauth2(alice, good))
	r.readUntilTagged("b")
	p := dialRaw(t, s, s.POP3Addr())
	p.line()
	p.send("AUTH XOAUTH2 " + xoauth2(alice, good))
	p.line()
	s.Kick(alice, KickGmailBye)
	out := logs.String()
	for _, secret := range []string{good, bad, xoauth2(alice, good), xoauth2(alice, bad)} {
		if strings.Contains(out, secret) {
			t.Fatalf("log holds a secret:\n%s", out)
		}
	}
	if !strings.Contains(out, "login failed") || !strings.Contains(out, "account="+alice) {
		t.Fatalf("log lacks the login lines:\n%s", out)
	}
}

func TestTokenAuthority(t *testing.T) {
	t.Run("revoked", func(t *testing.T) {
		s := start(t, Options{})
		token := s.AccessToken(alice)
		s.OAuth().Revoke(alice)
		r := dialRaw(t, s, s.IMAPAddr())
		r.line()
		r.send("a AUTHENTICATE XOAUTH2 " + xoauth2(alice, token))
		r.expectPrefix("+ ")
		r.send("")
		r.expect("a NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)")
	})
	t.Run("custom", func(t *testing.T) {
		s := start(t, Options{Tokens: staticTokens{"tok-alice": alice}})
		if s.OAuth() != nil {
			t.Fatal("embedded OAuth server started although Tokens was set")
		}
		r := dialRaw(t, s, s.POP3Addr())
		r.line()
		r.send("AUTH XOAUTH2 " + xoauth2(alice, "tok-alice"))
		r.expect("+OK Welcome.")
	})
}

// staticTokens is a TokenAuthority with fixed, never-expiring tokens.
type staticTokens map[string]string

func (st staticTokens) Validate(user, token string) bool { return strings.EqualFold(st[token], user) }
func (st staticTokens) Expiry(string) time.Time          { return time.Time{} }
func (st staticTokens) Issue(user string) (string, string) {
	for tok, u := range st {
		if u == user {
			return tok, ""
		}
	}
	return "", ""
}

// TestKickWaitsForResponseBoundary: a BYE never lands inside a response.
func TestKickWaitsForResponseBoundary(t *testing.T) {
	s := start(t, Options{})
	// 16 MiB: more than loopback socket buffers hold, so the server
	// blocks inside the literal.
	body := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n"), 16<<20/64)
	msg := append([]byte("Subject: big\r\n\r\n"), body...)
	uid, err := s.Append(alice, "INBOX", msg)
	if err != nil {
		t.Fatal(err)
	}
	r := rawIMAPLogin(t, s, alice)
	r.send("s SELECT INBOX")
	r.readUntilTagged("s")
	r.send(fmt.Sprintf("f UID FETCH %d BODY.PEEK[]", uid))
	r.expect(fmt.Sprintf("* 1 FETCH (UID %d BODY[] {%d}", uid, len(msg)))
	// The server is now blocked inside the literal (the client is not
	// reading); Kick must wait for the end of the response.
	kicked := make(chan int)
	go func() { kicked <- s.Kick(alice, KickGmailBye) }()
	got := r.expectEOF()
	<-kicked
	want := string(msg) + ")\r\n* BYE Session expired, please login again.\r\n"
	if got != want {
		t.Fatalf("got %d bytes ending %q, want %d bytes", len(got), got[max(0, len(got)-60):], len(want))
	}
}

func TestIMAPLongLineLiteral(t *testing.T) {
	defer func(max int) { wireBufMax = max }(wireBufMax)
	wireBufMax = 8 << 10 // the 20 KiB lines below are passed on in pieces
	s := start(t, Options{})
	r := rawIMAPLogin(t, s, alice)
	s.ArmFault(Fault{Proto: ProtoIMAP, OnCommand: "NOOP", Kick: KickClose})
	var flags strings.Builder
	for i := 0; flags.Len() < 20<<10; i++ {
		fmt.Fprintf(&flags, " $kw%d", i)
	}
	msg := "Subject: long\r\n\r\nx NOOP\r\n"
	r.send("a APPEND INBOX (\\Seen" + flags.String() + ") {" + strconv.Itoa(len(msg)) + "+}\r\n" + msg)
	r.expectPrefix("a OK")
	r.send("b APPEND INBOX (\\Seen" + flags.String() + ") {" + strconv.Itoa(len(msg)) + "}")
	r.expect("+ Ready for literal data")
	r.send(msg)
	r.expectPrefix("b OK")
	if msgs, _, _ := s.Messages(alice, "INBOX"); len(msgs) != 2 {
		t.Fatalf("%d messages", len(msgs))
	}
}

// TestCloseEndsEverything: Close returns with sessions of every kind open
// (mid-handshake, before STARTTLS, logged in, in IDLE) and leaves no
// goroutine behind.
func TestCloseEndsEverything(t *testing.T) {
	before := runtime.NumGoroutine()
	s, err := Start(Options{Users: []string{alice}, SeedMessages: true})
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	for _, addr := range []string{s.IMAPAddr(), s.POP3Addr(), s.SMTPAddr(), s.SubmissionAddr()} {
		c, err := net.Dial("tcp", addr) // no TLS handshake / plaintext
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	imap := rawIMAPLogin(t, s, alice)
	imap.send("s SELECT INBOX")
	imap.readUntilTagged("s")
	imap.send("i IDLE")
	imap.expect("+ idling")
	pop := pop3Login(t, s, alice)
	smtpc := dialRaw(t, s, s.SMTPAddr())
	smtpc.line()

	done := make(chan struct{})
	go func() {
		s.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs")
	}
	for _, r := range []*rawConn{imap, pop, smtpc} {
		r.expectEOF()
		r.c.Close()
	}
	for _, c := range conns {
		c.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines left (before: %d):\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond) // polling a count: there is no event to wait on
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestFixedAddresses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := start(t, Options{IMAPAddr: addr})
	if s.IMAPAddr() != addr {
		t.Fatalf("IMAP on %s, want %s", s.IMAPAddr(), addr)
	}
	c, err := tls.Dial("tcp", addr, s.ClientTLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}
