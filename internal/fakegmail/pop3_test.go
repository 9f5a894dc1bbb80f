package fakegmail

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"net/textproto"
	"regexp"
	"strings"
	"testing"
	"time"
)

// pop3Login logs user in with the one-line AUTH form.
func pop3Login(t testing.TB, s *Server, user string) *rawConn {
	t.Helper()
	r := dialRaw(t, s, s.POP3Addr())
	r.expectPrefix("+OK Gpop ready")
	r.send("AUTH XOAUTH2 " + xoauth2(user, s.AccessToken(user)))
	r.expect("+OK Welcome.")
	return r
}

// dotBody reads a multi-line body with net/textproto (undoing dot-stuffing).
func (r *rawConn) dotBody() []byte {
	r.t.Helper()
	b, err := textproto.NewReader(r.r).ReadDotBytes()
	if err != nil {
		r.t.Fatal(err)
	}
	return b
}

func TestPOP3GreetingAndCapa(t *testing.T) {
	s := start(t, Options{})
	r := dialRaw(t, s, s.POP3Addr())
	if g := r.line(); !regexp.MustCompile(`^\+OK Gpop ready for requests from 127\.0\.0\.1 [a-z0-9]+\r\n$`).MatchString(g) {
		t.Fatalf("greeting %q", g)
	}
	r.send("CAPA")
	r.expect("+OK Capability list follows")
	for _, want := range []string{"USER", "RESP-CODES", "EXPIRE 0", "LOGIN-DELAY 300", "TOP", "UIDL", "X-GOOGLE-RICO", "SASL PLAIN XOAUTH2", "."} {
		r.expect(want)
	}
	r.send("STAT")
	r.expect("-ERR [AUTH] Command not valid before login")
	r.send("USER " + alice)
	r.expect("+OK send PASS")
	r.send("PASS secret")
	r.expect("-ERR [AUTH] Username and password not accepted.")
	r.send("QUIT")
	r.expect("+OK Farewell.")
	if rest := r.expectEOF(); rest != "" {
		t.Fatalf("after QUIT: %q", rest)
	}
}

func TestPOP3XOAuth2(t *testing.T) {
	challenge := "+ " + base64.StdEncoding.EncodeToString([]byte(`{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}`))
	s := start(t, Options{})
	t.Run("failure", func(t *testing.T) {
		r := dialRaw(t, s, s.POP3Addr())
		r.line()
		r.send("AUTH XOAUTH2 " + xoauth2(alice, "ya29.bogus"))
		r.expect(challenge)
		r.send("")
		r.expect("-ERR [AUTH] Username and password not accepted.")
		r.send("AUTH XOAUTH2")
		r.expect("+ ")
		r.send(xoauth2(alice, "ya29.bogus"))
		r.expect(challenge)
		r.send("")
		r.expect("-ERR [AUTH] Username and password not accepted.")
	})
	t.Run("255-octets", func(t *testing.T) {
		r := dialRaw(t, s, s.POP3Addr())
		r.line()
		long := xoauth2(alice, s.AccessToken(alice)+strings.Repeat("x", 200))
		r.send("AUTH XOAUTH2 " + long)
		r.expect("-ERR Command line too long (RFC 2449: 255 octets)")
		// The two-step form carries any length.
		token := s.AccessToken(alice)
		r.send("AUTH XOAUTH2")
		r.expect("+ ")
		r.send(xoauth2(alice, token))
		r.expect("+OK Welcome.")
		r.send("STAT")
		r.expect("+OK 0 0")
	})
	t.Run("microsoft", func(t *testing.T) {
		ms := start(t, Options{Microsoft: true})
		r := dialRaw(t, ms, ms.POP3Addr())
		r.expectPrefix("+OK The Microsoft Exchange POP3 service is ready.")
		r.send("AUTH XOAUTH2")
		r.expect("+ ")
		r.send(xoauth2(alice, "bogus"))
		r.expect("-ERR Logon failure: unknown user name or bad password.")
	})
	if n := s.Logins(alice, ProtoPOP3); n != 1 {
		t.Fatalf("logins %d", n)
	}
}

func TestPOP3Transaction(t *testing.T) {
	s := start(t, Options{SeedMessages: true})
	msgs, uv, err := s.Messages(alice, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, m := range msgs {
		total += len(m.Data)
	}
	r := pop3Login(t, s, alice)
	r.send("STAT")
	r.expect(fmt.Sprintf("+OK 3 %d", total))
	r.send("LIST")
	r.expect(fmt.Sprintf("+OK 3 messages (%d octets)", total))
	for i, m := range msgs {
		r.expect(fmt.Sprintf("%d %d", i+1, len(m.Data)))
	}
	r.expect(".")
	r.send("UIDL 2")
	r.expect(fmt.Sprintf("+OK 2 GmailId%08x%08x", uv, msgs[1].UID))
	r.send("UIDL")
	r.expect("+OK")
	for i, m := range msgs {
		r.expect(fmt.Sprintf("%d GmailId%08x%08x", i+1, uv, m.UID))
	}
	r.expect(".")

	// RETR 2 holds lines starting with "."; check the stuffing on the wire
	// and that textproto undoes it to the stored bytes.
	r.send("RETR 2")
	r.expect(fmt.Sprintf("+OK %d octets", len(msgs[1].Data)))
	var wire strings.Builder
	for {
		l := r.line()
		if l == ".\r\n" {
			break
		}
		wire.WriteString(l)
	}
	stuffed := strings.ReplaceAll(string(msgs[1].Data), "\r\n.", "\r\n..")
	if wire.String() != stuffed || !strings.Contains(stuffed, "\r\n..hidden\r\n...two dots\r\n..\r\nend\r\n") {
		t.Fatalf("RETR 2 on the wire %q, want %q", wire.String(), stuffed)
	}
	r.send("RETR 3")
	r.expectPrefix("+OK")
	if got, want := string(r.dotBody()), strings.ReplaceAll(string(msgs[2].Data), "\r\n", "\n"); got != want {
		t.Fatalf("RETR 3 differs (%d bytes, want %d)", len(got), len(want))
	}
	r.send("TOP 1 0")
	r.expect("+OK")
	head := string(msgs[0].Data[:strings.Index(string(msgs[0].Data), "\r\n\r\n")+4])
	if got, want := string(r.dotBody()), strings.ReplaceAll(head, "\r\n", "\n"); got != want {
		t.Fatalf("TOP 1 0 = %q, want %q", got, want)
	}
	r.send("RETR 9")
	r.expect("-ERR [SYS/PERM] No such message")

	r.send("DELE 1")
	r.expect("+OK message 1 deleted")
	r.send("DELE 1")
	r.expect("-ERR [SYS/PERM] Message already deleted")
	r.send("RSET")
	r.expectPrefix("+OK 3 messages")
	r.send("DELE 1")
	r.expect("+OK message 1 deleted")
	r.send("DELE 3")
	r.expect("+OK message 3 deleted")
	r.send("STAT")
	r.expect(fmt.Sprintf("+OK 1 %d", len(msgs[1].Data)))

	// Not committed before QUIT: IMAP still sees three.
	if now, _, _ := s.Messages(alice, "INBOX"); len(now) != 3 {
		t.Fatalf("before QUIT: %d messages", len(now))
	}
	c := imapLogin(t, s, alice, nil)
	r.send("QUIT")
	r.expect("+OK Farewell.")
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil || sel.NumMessages != 1 {
		t.Fatalf("IMAP after QUIT: %+v %v", sel, err)
	}
	now, _, _ := s.Messages(alice, "INBOX")
	if len(now) != 1 || now[0].UID != msgs[1].UID {
		t.Fatalf("after QUIT: %+v", now)
	}
}

func TestPOP3LineLimitsAndGarbage(t *testing.T) {
	s := start(t, Options{})
	r := pop3Login(t, s, alice)
	r.send(strings.Repeat("A", 300))
	r.expect("-ERR Command line too long (RFC 2449: 255 octets)")
	r.send(strings.Repeat("B", 10000)) // longer than the read buffer
	r.expect("-ERR Command line too long (RFC 2449: 255 octets)")
	r.send("RETR\x00 1")
	r.expect("-ERR bad command")
	r.send("XYZZY")
	r.expect("-ERR bad command")
	r.send("NOOP")
	r.expect("+OK")
}

func TestPOP3Faults(t *testing.T) {
	t.Run("retr-mid-data", func(t *testing.T) {
		s := start(t, Options{SeedMessages: true})
		msgs, _, _ := s.Messages(alice, "INBOX")
		r := pop3Login(t, s, alice)
		fired := s.ArmFault(Fault{User: alice, Proto: ProtoPOP3, OnCommand: "RETR", Kick: KickMidResponse})
		r.send("RETR 3")
		r.expect(fmt.Sprintf("+OK %d octets", len(msgs[2].Data)))
		rest := r.expectEOF()
		if len(rest) == 0 || len(rest) >= len(msgs[2].Data) || !strings.HasPrefix(string(msgs[2].Data), rest) {
			t.Fatalf("got %d bytes of a %d-byte message", len(rest), len(msgs[2].Data))
		}
		<-fired
	})
	t.Run("quit-before-commit", func(t *testing.T) {
		s := start(t, Options{SeedMessages: true})
		r := pop3Login(t, s, alice)
		r.send("DELE 1")
		r.expectPrefix("+OK")
		s.ArmFault(Fault{User: alice, Proto: ProtoPOP3, OnCommand: "QUIT", Kick: KickServerShutdown})
		r.send("QUIT")
		if got := r.expectEOF(); got != "-ERR [SYS/TEMP] Server shutting down.\r\n" {
			t.Fatalf("got %q", got)
		}
		if msgs, _, _ := s.Messages(alice, "INBOX"); len(msgs) != 3 {
			t.Fatalf("%d messages left, want 3 (no commit)", len(msgs))
		}
	})
	t.Run("quit-after-commit-no-reply", func(t *testing.T) {
		s := start(t, Options{SeedMessages: true})
		r := pop3Login(t, s, alice)
		r.send("DELE 1")
		r.expectPrefix("+OK")
		s.ArmFault(Fault{User: alice, Proto: ProtoPOP3, OnCommand: "QUIT", Kick: KickNoReply})
		r.send("QUIT")
		if got := r.expectEOF(); got != "" {
			t.Fatalf("got %q", got)
		}
		if msgs, _, _ := s.Messages(alice, "INBOX"); len(msgs) != 2 {
			t.Fatalf("%d messages left, want 2 (committed)", len(msgs))
		}
	})
	t.Run("dele-close", func(t *testing.T) {
		s := start(t, Options{SeedMessages: true})
		r := pop3Login(t, s, alice)
		s.ArmFault(Fault{Proto: ProtoPOP3, OnCommand: "DELE", Kick: KickClose})
		r.send("DELE 1")
		if got := r.expectEOF(); got != "" {
			t.Fatalf("got %q", got)
		}
	})
}

func TestPOP3Kick(t *testing.T) {
	s := start(t, Options{})
	r := pop3Login(t, s, alice)
	if !s.WaitConnections(alice, ProtoPOP3, 1, 5*time.Second) {
		t.Fatal("not counted")
	}
	s.Kick(alice, KickGmailBye)
	if got := r.expectEOF(); got != "-ERR [SYS/TEMP] Session expired, please login again.\r\n" {
		t.Fatalf("got %q", got)
	}
	if !s.WaitConnections(alice, ProtoPOP3, 0, 5*time.Second) {
		t.Fatal("still counted")
	}
	r2 := pop3Login(t, s, alice)
	s.SetSessionLifetime(20 * time.Millisecond)
	if got := r2.expectEOF(); got != "-ERR [SYS/TEMP] Session expired, please login again.\r\n" {
		t.Fatalf("lifetime: got %q", got)
	}
	_ = bufio.ErrBufferFull
}
