package fakegmail

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

const testMsg = "From: alice@gmail.com\r\nTo: carol@example.com\r\nSubject: hi\r\n\r\nHello.\r\n.dot line\r\n"

// smtpLogin dials (implicit TLS or STARTTLS) and authenticates user.
func smtpLogin(t testing.TB, s *Server, user string, starttls bool) *smtp.Client {
	t.Helper()
	var (
		c   *smtp.Client
		err error
	)
	if starttls {
		c, err = smtp.DialStartTLS(s.SubmissionAddr(), s.ClientTLSConfig())
	} else {
		c, err = smtp.DialTLS(s.SMTPAddr(), s.ClientTLSConfig())
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Auth(&saslXOAuth2{user: user, token: s.AccessToken(user)}); err != nil {
		t.Fatalf("auth: %v", err)
	}
	return c
}

func send(c *smtp.Client, from string, to []string, msg string) error {
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	for _, rcpt := range to {
		if err := c.Rcpt(rcpt, nil); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, msg); err != nil {
		return err
	}
	return w.Close()
}

// ehlo sends EHLO and returns the reply lines.
func (r *rawConn) ehlo() []string {
	r.t.Helper()
	r.send("EHLO client.example")
	var lines []string
	for {
		l := r.line()
		lines = append(lines, strings.TrimRight(l, "\r\n"))
		if len(l) >= 4 && l[3] == ' ' {
			return lines
		}
	}
}

func TestSMTPSendBothPorts(t *testing.T) {
	s := start(t, Options{})
	for i, starttls := range []bool{false, true} {
		c := smtpLogin(t, s, alice, starttls)
		if size, ok := c.MaxMessageSize(); !ok || size != 35882577 {
			t.Fatalf("SIZE %d %v", size, ok)
		}
		if err := send(c, alice, []string{"carol@example.com", "dave@example.com"}, testMsg); err != nil {
			t.Fatal(err)
		}
		sent, err := s.WaitSent(context.Background(), i+1)
		if err != nil {
			t.Fatal(err)
		}
		m := sent[i]
		if m.From != alice || strings.Join(m.To, ",") != "carol@example.com,dave@example.com" || string(m.Data) != testMsg {
			t.Fatalf("sent %+v", m)
		}
		if err := c.Quit(); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.Logins(alice, ProtoSMTP); n != 2 {
		t.Fatalf("logins %d", n)
	}
}

func TestSMTPTranscripts(t *testing.T) {
	s := start(t, Options{})
	t.Run("implicit", func(t *testing.T) {
		r := dialRaw(t, s, s.SMTPAddr())
		if g := r.line(); !regexp.MustCompile(`^220 smtp\.gmail\.com ESMTP [a-z0-9]+ - gsmtp\r\n$`).MatchString(g) {
			t.Fatalf("greeting %q", g)
		}
		lines := r.ehlo()
		if lines[0] != "250-smtp.gmail.com at your service, [127.0.0.1]" {
			t.Fatalf("EHLO %q", lines[0])
		}
		joined := strings.Join(lines, "\n")
		for _, want := range []string{"250-AUTH LOGIN PLAIN XOAUTH2", "SIZE 35882577", "8BITMIME", "ENHANCEDSTATUSCODES", "PIPELINING", "CHUNKING", "SMTPUTF8"} {
			if !strings.Contains(joined, want) {
				t.Fatalf("EHLO lacks %q:\n%s", want, joined)
			}
		}
		if strings.Contains(joined, "STARTTLS") {
			t.Fatal("STARTTLS offered inside TLS")
		}
		r.send("MAIL FROM:<" + alice + ">")
		want530 := regexp.MustCompile(`^530-5\.7\.0 Authentication Required\. For more information, go to\r\n$`)
		if l := r.line(); !want530.MatchString(l) {
			t.Fatalf("MAIL before AUTH: %q", l)
		}
		r.expectPrefix("530 5.7.0  https://support.google.com/mail/?p=WantAuthError ")

		r.send("AUTH XOAUTH2 " + xoauth2(alice, "ya29.bogus"))
		r.expect("334 " + base64.StdEncoding.EncodeToString([]byte(`{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}`)))
		r.send("")
		r.expect("535-5.7.8 Username and Password not accepted. For more information, go to")
		if l := r.line(); !regexp.MustCompile(`^535 5\.7\.8  https://support\.google\.com/mail/\?p=BadCredentials [a-z0-9]+ - gsmtp\r\n$`).MatchString(l) {
			t.Fatalf("final 535: %q", l)
		}
		r.send("AUTH XOAUTH2")
		r.expect("334 ")
		r.send(xoauth2(alice, s.AccessToken(alice)))
		r.expect("235 2.0.0 Authentication succeeded")
	})
	t.Run("starttls-plaintext", func(t *testing.T) {
		c, err := net.Dial("tcp", s.SubmissionAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		r := &rawConn{t: t, r: bufio.NewReader(c)}
		r.expectPrefix("220 smtp.gmail.com ESMTP ")
		io.WriteString(c, "EHLO x\r\n")
		var lines []string
		for {
			l := r.line()
			lines = append(lines, strings.TrimRight(l, "\r\n"))
			if l[3] == ' ' {
				break
			}
		}
		joined := strings.Join(lines, "\n")
		if !strings.Contains(joined, "250-STARTTLS") || strings.Contains(joined, "AUTH") {
			t.Fatalf("plaintext EHLO:\n%s", joined)
		}
		io.WriteString(c, "AUTH XOAUTH2 "+xoauth2(alice, s.AccessToken(alice))+"\r\n")
		r.expectPrefix("530 5.7.0 Must issue a STARTTLS command first.")
	})
	t.Run("microsoft", func(t *testing.T) {
		ms := start(t, Options{Microsoft: true})
		r := dialRaw(t, ms, ms.SMTPAddr())
		r.line()
		r.ehlo()
		r.send("AUTH XOAUTH2 " + xoauth2(alice, "bogus"))
		r.expect("535 5.7.3 Authentication unsuccessful")
	})
}

func TestSMTPRejectRecipientAndSize(t *testing.T) {
	s := start(t, Options{MaxMessageBytes: 2000})
	s.RejectRecipient("Nobody@Example.com", 550, "5.1.1 The email account that you tried to reach does not exist.")
	c := smtpLogin(t, s, alice, false)
	if err := c.Mail(alice, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("carol@example.com", nil); err != nil {
		t.Fatal(err)
	}
	err := c.Rcpt("nobody@example.com", nil)
	var serr *smtp.SMTPError
	if !errors.As(err, &serr) || serr.Code != 550 || serr.EnhancedCode != (smtp.EnhancedCode{5, 1, 1}) || serr.Message != "The email account that you tried to reach does not exist." {
		t.Fatalf("rejected RCPT: %#v", err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, testMsg)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	sent := s.Sent()
	if len(sent) != 1 || len(sent[0].To) != 1 || sent[0].To[0] != "carol@example.com" {
		t.Fatalf("sent %+v", sent)
	}

	// SIZE: announced too big, and sent too big.
	err = c.Mail(alice, &smtp.MailOptions{Size: 5000})
	if !errors.As(err, &serr) || serr.Code != 552 {
		t.Fatalf("MAIL SIZE=5000: %v", err)
	}
	err = send(c, alice, []string{"carol@example.com"}, testMsg+strings.Repeat("0123456789\r\n", 300))
	if !errors.As(err, &serr) || serr.Code != 552 {
		t.Fatalf("oversized DATA: %v", err)
	}
	if len(s.Sent()) != 1 {
		t.Fatal("oversized message accepted")
	}
	s.RejectRecipient("nobody@example.com", 0, "")
	if err := send(c, alice, []string{"nobody@example.com"}, testMsg); err != nil {
		t.Fatalf("after lifting the rejection: %v", err)
	}
}

func TestSMTPFaults(t *testing.T) {
	for _, tc := range []struct {
		name      string
		fault     Fault
		delivered bool
	}{
		{"mail-close", Fault{Proto: ProtoSMTP, OnCommand: "MAIL", Kick: KickClose}, false},
		{"rcpt-no-reply", Fault{Proto: ProtoSMTP, OnCommand: "RCPT", Kick: KickNoReply}, false},
		{"data-mid", Fault{Proto: ProtoSMTP, OnCommand: "DATA", Kick: KickMidResponse}, false},
		{"data-end-close", Fault{User: alice, Proto: ProtoSMTP, OnCommand: "DATA-END", Kick: KickClose}, false},
		{"data-end-no-reply", Fault{User: alice, Proto: ProtoSMTP, OnCommand: "DATA-END", Kick: KickNoReply}, true},
		{"data-end-bye", Fault{User: alice, Proto: ProtoSMTP, OnCommand: "DATA-END", Kick: KickGmailBye}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t, Options{})
			c := smtpLogin(t, s, alice, tc.name == "data-mid")
			fired := s.ArmFault(tc.fault)
			err := send(c, alice, []string{"carol@example.com"}, testMsg)
			if err == nil {
				t.Fatal("send succeeded through a cut")
			}
			if tc.name == "data-end-bye" {
				var serr *smtp.SMTPError
				if !errors.As(err, &serr) || serr.Code != 421 || serr.Message != "Session expired, please login again." {
					t.Fatalf("got %#v", err)
				}
			}
			<-fired
			if tc.delivered {
				if _, err := s.WaitSent(context.Background(), 1); err != nil {
					t.Fatal(err)
				}
			} else if n := len(s.Sent()); n != 0 {
				t.Fatalf("%d messages delivered", n)
			}
		})
	}
}

func TestSMTPKick(t *testing.T) {
	s := start(t, Options{})
	r := dialRaw(t, s, s.SMTPAddr())
	r.line()
	r.ehlo()
	r.send("AUTH XOAUTH2 " + xoauth2(alice, s.AccessToken(alice)))
	r.expect("235 2.0.0 Authentication succeeded")
	s.Kick(alice, KickGmailBye)
	if got := r.expectEOF(); got != "421 4.7.0 Session expired, please login again.\r\n" {
		t.Fatalf("got %q", got)
	}
}
