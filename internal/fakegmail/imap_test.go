package fakegmail

import (
	"encoding/base64"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// imapLogin dials the fake with imapclient and logs alice in.
func imapLogin(t testing.TB, s *Server, user string, opts *imapclient.Options) *imapclient.Client {
	t.Helper()
	if opts == nil {
		opts = &imapclient.Options{}
	}
	opts.TLSConfig = s.ClientTLSConfig()
	c, err := imapclient.DialTLS(s.IMAPAddr(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Authenticate(&saslXOAuth2{user: user, token: s.AccessToken(user)}); err != nil {
		t.Fatalf("authenticate: %v", err)
	}
	return c
}

// rawIMAPLogin logs in over a raw connection and consumes the reply.
func rawIMAPLogin(t testing.TB, s *Server, user string) *rawConn {
	t.Helper()
	r := dialRaw(t, s, s.IMAPAddr())
	r.expectPrefix("* OK Gimap ready")
	r.send("a AUTHENTICATE XOAUTH2 " + xoauth2(user, s.AccessToken(user)))
	r.expectPrefix("* CAPABILITY ")
	r.expect("a OK " + user + " authenticated (Success)")
	return r
}

func TestIMAPGreetingAndCapabilities(t *testing.T) {
	s := start(t, Options{ExtraIMAPCaps: []string{"X-GM-EXT-1"}})
	r := dialRaw(t, s, s.IMAPAddr())
	greeting := r.line()
	if !regexp.MustCompile(`^\* OK Gimap ready for requests from 127\.0\.0\.1 [a-z0-9]+\r\n$`).MatchString(greeting) {
		t.Fatalf("greeting %q", greeting)
	}
	r.send("c1 CAPABILITY")
	r.expect("* CAPABILITY IMAP4rev1 ID LITERAL- SASL-IR AUTH=XOAUTH2 AUTH=PLAIN")
	r.expectPrefix("c1 OK")
	r.send("c2 ID (\"name\" \"test\")")
	r.expect(`* ID ("name" "GImap" "vendor" "Google, Inc." "support-url" "https://support.google.com/mail")`)
	r.expect("c2 OK Success")

	r.send("a AUTHENTICATE XOAUTH2 " + xoauth2(alice, s.AccessToken(alice)))
	want := "* CAPABILITY IMAP4rev1 UNSELECT IDLE NAMESPACE ID X-GM-EXT-1 UIDPLUS COMPRESS=DEFLATE ENABLE MOVE ESEARCH UTF8=ACCEPT LIST-EXTENDED LIST-STATUS LITERAL- SPECIAL-USE APPENDLIMIT=35651584"
	r.expect(want)
	r.expect("a OK " + alice + " authenticated (Success)")
	r.send("c3 CAPABILITY")
	r.expect(want)
	r.expectPrefix("c3 OK")
}

func TestIMAPXOAuth2Success(t *testing.T) {
	s := start(t, Options{SeedMessages: true})
	c := imapLogin(t, s, alice, nil)
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages != 3 {
		t.Fatalf("INBOX has %d messages, want 3 seeds", sel.NumMessages)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(2), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if body := string(msgs[0].BodySection[0].Bytes); !strings.Contains(body, "\r\n.hidden\r\n") {
		t.Fatalf("seed 2 body %q", body)
	}
	if n := s.Logins(alice, ProtoIMAP); n != 1 {
		t.Fatalf("logins %d", n)
	}
}

func TestIMAPXOAuth2FailureTranscript(t *testing.T) {
	challenge := "+ " + base64.StdEncoding.EncodeToString([]byte(`{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}`))
	s := start(t, Options{})
	s.AccessToken(alice)

	t.Run("sasl-ir", func(t *testing.T) {
		r := dialRaw(t, s, s.IMAPAddr())
		r.line()
		r.send("a AUTHENTICATE XOAUTH2 " + xoauth2(alice, "ya29.bogus"))
		r.expect(challenge)
		r.send("")
		r.expect("a NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)")
		// The session goes on: a good token now works.
		r.send("b AUTHENTICATE XOAUTH2 " + xoauth2(alice, s.AccessToken(alice)))
		r.expectPrefix("* CAPABILITY ")
		r.expect("b OK " + alice + " authenticated (Success)")
	})
	t.Run("two-step", func(t *testing.T) {
		r := dialRaw(t, s, s.IMAPAddr())
		r.line()
		r.send("a AUTHENTICATE XOAUTH2")
		r.expect("+ ")
		r.send(xoauth2(alice, "ya29.bogus"))
		r.expect(challenge)
		r.send("")
		r.expect("a NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)")
	})
	t.Run("wrong-user", func(t *testing.T) {
		r := dialRaw(t, s, s.IMAPAddr())
		r.line()
		r.send("a AUTHENTICATE XOAUTH2 " + xoauth2("bob@gmail.com", s.AccessToken(alice)))
		r.expect(challenge)
		r.send("")
		r.expect("a NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)")
	})
	t.Run("malformed", func(t *testing.T) {
		r := dialRaw(t, s, s.IMAPAddr())
		r.line()
		r.send("a AUTHENTICATE XOAUTH2 " + base64.StdEncoding.EncodeToString([]byte("garbage")))
		r.expect("+ " + base64.StdEncoding.EncodeToString([]byte(`{"status":"400","schemes":"bearer","scope":"https://mail.google.com/"}`)))
		r.send("")
		r.expect("a NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)")
	})
	t.Run("login-refused", func(t *testing.T) {
		r := dialRaw(t, s, s.IMAPAddr())
		r.line()
		r.send("a LOGIN " + alice + " secret")
		r.expect("a NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)")
	})
	t.Run("imapclient", func(t *testing.T) {
		c, err := imapclient.DialTLS(s.IMAPAddr(), &imapclient.Options{TLSConfig: s.ClientTLSConfig()})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		x := &saslXOAuth2{user: alice, token: "ya29.bogus"}
		err = c.Authenticate(x)
		var ierr *imap.Error
		if !errors.As(err, &ierr) || ierr.Code != imap.ResponseCodeAuthenticationFailed {
			t.Fatalf("authenticate: %v", err)
		}
		if !strings.Contains(string(x.challenge), `"status":"401"`) {
			t.Fatalf("challenge %q", x.challenge)
		}
		// The client is still in sync.
		if err := c.Noop().Wait(); err != nil {
			t.Fatal(err)
		}
	})
	if n := s.Logins(alice, ProtoIMAP); n != 1 {
		t.Fatalf("logins %d, want 1", n)
	}
}

func TestIMAPMicrosoftStyle(t *testing.T) {
	s := start(t, Options{Microsoft: true})
	r := dialRaw(t, s, s.IMAPAddr())
	r.expectPrefix("* OK The Microsoft Exchange IMAP4 service is ready. [")
	r.send("a AUTHENTICATE XOAUTH2 " + xoauth2(alice, "bogus"))
	r.expect("a NO AUTHENTICATE failed.")
	r.send("b AUTHENTICATE XOAUTH2 " + xoauth2(alice, s.AccessToken(alice)))
	r.expect("b OK AUTHENTICATE completed.")
	s.Kick(alice, KickMicrosoftBye)
	r.expect("* BYE Session invalidated - AccessTokenExpired")
	if rest := r.expectEOF(); rest != "" {
		t.Fatalf("after BYE: %q", rest)
	}
}
