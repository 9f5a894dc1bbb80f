package fakegmail

import (
	"bufio"
	"compress/flate"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// readUntilTagged reads lines until the one starting with tag.
func (r *rawConn) readUntilTagged(tag string) []string {
	r.t.Helper()
	var lines []string
	for {
		l := r.line()
		lines = append(lines, l)
		if strings.HasPrefix(l, tag+" ") {
			return lines
		}
	}
}

func TestIMAPKick(t *testing.T) {
	s := start(t, Options{})
	for _, tc := range []struct {
		mode KickMode
		want string
	}{
		{KickGmailBye, "* BYE Session expired, please login again.\r\n"},
		{KickMicrosoftBye, "* BYE Session invalidated - AccessTokenExpired\r\n"},
		{KickServerShutdown, "* BYE Server shutting down.\r\n"},
		{KickClose, ""},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			r := rawIMAPLogin(t, s, alice)
			other := rawIMAPLogin(t, s, "bob@gmail.com")
			if n := s.Kick(alice, tc.mode); n != 1 {
				t.Fatalf("kicked %d sessions", n)
			}
			if got := r.expectEOF(); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			if !s.WaitConnections(alice, ProtoIMAP, 0, 5*time.Second) {
				t.Fatal("session still counted")
			}
			other.send("n NOOP")
			other.expect("n OK NOOP completed")
		})
	}
}

func TestIMAPFaultBeforeAnswer(t *testing.T) {
	s := start(t, Options{SeedMessages: true})
	r := rawIMAPLogin(t, s, alice)
	r.send("s SELECT INBOX")
	r.readUntilTagged("s")

	// A fault for someone else does not fire.
	bobFault := s.ArmFault(Fault{User: "bob@gmail.com", Proto: ProtoIMAP, OnCommand: "FETCH", Kick: KickClose})
	r.send("f1 FETCH 1 FLAGS")
	r.readUntilTagged("f1")

	fired := s.ArmFault(Fault{User: alice, Proto: ProtoIMAP, OnCommand: "UID FETCH", Kick: KickGmailBye})
	r.send("f2 FETCH 1 FLAGS") // not UID FETCH
	r.readUntilTagged("f2")
	r.send("f3 UID FETCH 1 FLAGS")
	if got := r.expectEOF(); got != "* BYE Session expired, please login again.\r\n" {
		t.Fatalf("got %q", got)
	}
	<-fired
	select {
	case <-bobFault:
		t.Fatal("bob's fault fired")
	default:
	}
}

func TestIMAPFaultMidResponse(t *testing.T) {
	s := start(t, Options{SeedMessages: true})
	msgs, _, err := s.Messages(alice, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	big := msgs[2].Data
	r := rawIMAPLogin(t, s, alice)
	r.send("s SELECT INBOX")
	r.readUntilTagged("s")
	fired := s.ArmFault(Fault{User: alice, Proto: ProtoIMAP, OnCommand: "UID FETCH", Kick: KickMidResponse})
	r.send(fmt.Sprintf("f UID FETCH %d BODY.PEEK[]", msgs[2].UID))
	head := r.line()
	want := fmt.Sprintf("* 3 FETCH (UID %d BODY[] {%d}\r\n", msgs[2].UID, len(big))
	if head != want {
		t.Fatalf("got %q, want %q", head, want)
	}
	rest := r.expectEOF()
	wantRest := string(big[:len(big)/2]) + "* BYE Server shutting down.\r\n"
	if rest != wantRest {
		t.Fatalf("got %d bytes ending %q, want %d bytes", len(rest), rest[max(0, len(rest)-40):], len(wantRest))
	}
	<-fired
}

func TestIMAPFaultNoReply(t *testing.T) {
	s := start(t, Options{})
	r := rawIMAPLogin(t, s, alice)
	s.ArmFault(Fault{User: alice, Proto: ProtoIMAP, OnCommand: "APPEND", Kick: KickNoReply})
	msg := "Subject: appended\r\n\r\nbody\r\n"
	r.send("a APPEND INBOX {" + strconv.Itoa(len(msg)) + "}")
	r.expect("+ Ready for literal data")
	r.send(msg)
	if got := r.expectEOF(); got != "" {
		t.Fatalf("got %q, want nothing", got)
	}
	msgs, _, err := s.Messages(alice, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || string(msgs[0].Data) != msg {
		t.Fatalf("INBOX %+v", msgs)
	}
}

func TestIMAPSessionLifetime(t *testing.T) {
	t.Run("duration", func(t *testing.T) {
		s := start(t, Options{})
		r := rawIMAPLogin(t, s, alice)
		s.SetSessionLifetime(50 * time.Millisecond)
		if got := r.expectEOF(); got != "* BYE Session expired, please login again.\r\n" {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("token", func(t *testing.T) {
		s := start(t, Options{TokenLifetime: 300 * time.Millisecond, Microsoft: true})
		s.SetSessionLifetime(LifetimeToken)
		r := dialRaw(t, s, s.IMAPAddr())
		r.line()
		token := s.AccessToken(alice)
		r.send("a AUTHENTICATE XOAUTH2 " + xoauth2(alice, token))
		r.expect("a OK AUTHENTICATE completed.")
		expiry := s.Tokens().Expiry(token)
		if got := r.expectEOF(); got != "* BYE Session invalidated - AccessTokenExpired\r\n" {
			t.Fatalf("got %q", got)
		}
		if time.Now().Before(expiry) {
			t.Fatalf("BYE before the token expired")
		}
	})
}

// idleClient logs in, selects INBOX and reports unilateral data.
type idleEvents struct {
	exists  chan uint32
	expunge chan uint32
}

func TestIMAPStoreChangesSeenInIdle(t *testing.T) {
	s := start(t, Options{SeedMessages: true})
	ev := idleEvents{exists: make(chan uint32, 10), expunge: make(chan uint32, 10)}
	c := imapLogin(t, s, alice, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				ev.exists <- *d.NumMessages
			}
		},
		Expunge: func(seq uint32) { ev.expunge <- seq },
	}})
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	uid, err := s.Append(alice, "INBOX", []byte("Subject: new\r\n\r\nhi\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if n := <-ev.exists; n != 4 {
		t.Fatalf("EXISTS %d, want 4", n)
	}
	if err := s.Expunge(alice, "INBOX", uid); err != nil {
		t.Fatal(err)
	}
	if seq := <-ev.expunge; seq != 4 {
		t.Fatalf("EXPUNGE %d, want 4", seq)
	}
	if err := s.Expunge(alice, "INBOX", uid); err == nil {
		t.Fatal("second expunge of the same UID succeeded")
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}

	_, oldUV, _ := s.Messages(alice, "INBOX")
	newUV, err := s.RecreateMailbox(alice, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if newUV == oldUV {
		t.Fatal("UIDVALIDITY did not change")
	}
	<-c.Closed() // the selected session was ended
	msgs, uv, err := s.Messages(alice, "INBOX")
	if err != nil || uv != newUV || len(msgs) != 3 {
		t.Fatalf("after recreate: %d messages, uidvalidity %d (want %d), %v", len(msgs), uv, newUV, err)
	}
	c2 := imapLogin(t, s, alice, nil)
	sel, err := c2.Select("INBOX", nil).Wait()
	if err != nil || sel.UIDValidity != newUV || sel.NumMessages != 3 {
		t.Fatalf("select after recreate: %+v %v", sel, err)
	}
}

func TestIMAPConnectionLimit(t *testing.T) {
	s := start(t, Options{IMAPConnectionLimit: 2})
	a := imapLogin(t, s, alice, nil)
	imapLogin(t, s, alice, nil)
	r := dialRaw(t, s, s.IMAPAddr())
	r.line()
	r.send("a AUTHENTICATE XOAUTH2 " + xoauth2(alice, s.AccessToken(alice)))
	r.expect("a NO [ALERT] Too many simultaneous connections. (Failure)")
	if n, m := s.Connections(alice, ProtoIMAP), s.MaxConnections(alice, ProtoIMAP); n != 2 || m != 2 {
		t.Fatalf("connections %d, max %d", n, m)
	}
	if err := a.Logout().Wait(); err != nil {
		t.Fatal(err)
	}
	if !s.WaitConnections(alice, ProtoIMAP, 1, 5*time.Second) {
		t.Fatal("logout not counted")
	}
	r.send("b AUTHENTICATE XOAUTH2 " + xoauth2(alice, s.AccessToken(alice)))
	r.expectPrefix("* CAPABILITY")
	r.expect("b OK " + alice + " authenticated (Success)")
	if n, m := s.Connections(alice, ProtoIMAP), s.MaxConnections(alice, ProtoIMAP); n != 2 || m != 2 {
		t.Fatalf("connections %d, max %d", n, m)
	}
	if n := s.Logins(alice, ProtoIMAP); n != 3 {
		t.Fatalf("logins %d", n)
	}
}

func TestIMAPCompressDeflate(t *testing.T) {
	s := start(t, Options{})
	r := dialRaw(t, s, s.IMAPAddr())
	r.line()
	r.send("z COMPRESS DEFLATE")
	r.expect("z BAD COMPRESS is only valid after login")
	r.send("a AUTHENTICATE XOAUTH2 " + xoauth2(alice, s.AccessToken(alice)))
	r.readUntilTagged("a")
	r.send("z COMPRESS DEFLATE")
	r.expect("z OK Success")
	fw, _ := flate.NewWriter(r.c, flate.DefaultCompression)
	zr := bufio.NewReader(flate.NewReader(r.r))
	io.WriteString(fw, "n NOOP\r\nz2 COMPRESS DEFLATE\r\n")
	fw.Flush()
	for _, want := range []string{"n OK NOOP completed\r\n", "z2 NO [COMPRESSIONACTIVE] DEFLATE active via COMPRESS\r\n"} {
		if got, err := zr.ReadString('\n'); got != want {
			t.Fatalf("got %q (%v), want %q", got, err, want)
		}
	}
	s.Kick(alice, KickGmailBye)
	if got, err := zr.ReadString('\n'); got != "* BYE Session expired, please login again.\r\n" {
		t.Fatalf("got %q (%v)", got, err)
	}
}

func TestIMAPLiterals(t *testing.T) {
	s := start(t, Options{})
	r := rawIMAPLogin(t, s, alice)
	// A non-synchronizing literal whose bytes look like a command must not
	// trigger a fault or the ID handler.
	s.ArmFault(Fault{Proto: ProtoIMAP, OnCommand: "NOOP", Kick: KickClose})
	msg := "Subject: tricky\r\n\r\nx NOOP\r\ny ID NIL\r\n"
	r.send("a APPEND INBOX {" + strconv.Itoa(len(msg)) + "+}\r\n" + msg)
	r.expectPrefix("a OK")
	// A refused synchronizing literal is not sent; the next line is a
	// command again.
	r.send("b APPEND INBOX {99999999}")
	r.expectPrefix("b NO [TOOBIG]")
	r.send("c ID NIL")
	r.expectPrefix("* ID")
	r.expect("c OK Success")
	msgs, _, _ := s.Messages(alice, "INBOX")
	if len(msgs) != 1 || string(msgs[0].Data) != msg {
		t.Fatalf("INBOX %+v", msgs)
	}
	_ = imap.UID(0)
}
