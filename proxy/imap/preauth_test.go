package imap

import (
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/oauthbridge/oauthbridge/internal/fakegmail"
	"github.com/oauthbridge/oauthbridge/proxy"
	"github.com/oauthbridge/oauthbridge/proxy/proxytest"
)

const greeting = "* OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR ID AUTH=PLAIN AUTH=LOGIN] oauthbridge ready"

// TestPreauthTranscript is the byte-exact pre-auth dialogue, then the
// capability filtering after login and COMPRESS refused.
func TestPreauthTranscript(t *testing.T) {
	e := newEnv(t, func(o *fakegmail.Options, _ *Server, _ *proxy.Account) {
		o.ExtraIMAPCaps = []string{"X-GM-EXT-1", "QRESYNC", "SEARCHRES"}
	})
	r := rawDial(t, e.addr)
	r.expectExact(t, greeting)
	r.send(t, "a CAPABILITY")
	r.expectExact(t, "* CAPABILITY IMAP4rev1 LITERAL+ SASL-IR ID AUTH=PLAIN AUTH=LOGIN")
	r.expectExact(t, "a OK CAPABILITY completed")
	r.send(t, "b NOOP")
	r.expectExact(t, "b OK NOOP completed")
	r.send(t, `c ID ("name" "test")`)
	r.expectExact(t, "* ID NIL")
	r.expectExact(t, "c OK ID completed")
	r.send(t, "d SELECT INBOX")
	r.expectExact(t, "d BAD Command not valid before login")
	r.send(t, "e STARTTLS")
	r.expectExact(t, "e BAD STARTTLS not available")
	r.send(t, "f AUTHENTICATE CRAM-MD5")
	r.expectExact(t, "f NO [CANNOT] Unsupported mechanism, use PLAIN or LOGIN")
	r.send(t, "g LOGIN "+testUser+" "+testPass)
	ok := r.expect(t, "g OK [CAPABILITY ")
	caps := strings.TrimSuffix(strings.TrimPrefix(ok, "g OK [CAPABILITY "), "] Logged in")
	for _, c := range strings.Fields(caps) {
		u := strings.ToUpper(c)
		if strings.HasPrefix(u, "AUTH=") || strings.HasPrefix(u, "COMPRESS") || u == "QRESYNC" || u == "SEARCHRES" || u == "LOGINDISABLED" || u == "STARTTLS" || u == "SASL-IR" {
			t.Errorf("capability %s reached the client", c)
		}
	}
	if !strings.Contains(caps, "X-GM-EXT-1") || !strings.Contains(caps, "IDLE") {
		t.Errorf("capabilities lost on the way: %s", caps)
	}
	r.send(t, "h CAPABILITY")
	r.expectExact(t, "* CAPABILITY "+caps)
	r.expect(t, "h OK")
	r.send(t, "i COMPRESS DEFLATE")
	r.expectExact(t, "i NO [CANNOT] COMPRESS is not available through this bridge")
	r.send(t, "j STARTTLS")
	r.expectExact(t, "j BAD STARTTLS is only valid before login")
	r.send(t, "_ob1 NOOP")
	r.expectExact(t, "_ob1 BAD Tags starting with _ob are reserved by the bridge")
	// QRESYNC is not offered (a resumed session could not have it): a client
	// enabling it anyway gets nothing enabled.
	r.send(t, "l ENABLE QRESYNC")
	r.expectExact(t, "* ENABLED")
	r.expectExact(t, "l OK ENABLE completed")
	r.send(t, "k LOGOUT")
	r.expect(t, "* BYE")
	r.expect(t, "k OK")
	r.expectClosed(t)
}

func TestAuthenticateLoginAndCancel(t *testing.T) {
	e := newEnv(t)
	r := rawDial(t, e.addr)
	r.expectExact(t, greeting)
	r.send(t, "a AUTHENTICATE PLAIN")
	r.expectExact(t, "+ ")
	r.send(t, "*")
	r.expectExact(t, "a BAD AUTHENTICATE cancelled")
	r.send(t, "b AUTHENTICATE LOGIN")
	r.expectExact(t, "+ VXNlcm5hbWU6")
	r.send(t, b64(testUser))
	r.expectExact(t, "+ UGFzc3dvcmQ6")
	r.send(t, b64(testPass))
	r.expect(t, "b OK [CAPABILITY ")
	// SASL-IR form of LOGIN carries the user name.
	r2 := rawDial(t, e.addr)
	r2.expectExact(t, greeting)
	r2.send(t, "c AUTHENTICATE LOGIN "+b64(testUser))
	r2.expectExact(t, "+ UGFzc3dvcmQ6")
	r2.send(t, b64(testPass))
	r2.expect(t, "c OK [CAPABILITY ")
	r3 := rawDial(t, e.addr)
	r3.expectExact(t, greeting)
	r3.send(t, "d AUTHENTICATE PLAIN !!!notbase64")
	r3.expectExact(t, "d BAD Invalid SASL response")
	r3.send(t, "e AUTHENTICATE PLAIN "+b64("someone-else\x00"+testUser+"\x00"+testPass))
	r3.expectExact(t, "e BAD Invalid SASL response")
}

func TestStartTLSListener(t *testing.T) {
	cfg, pool := proxytest.ServerTLS(t, "1.2")
	e := newEnvInfo(t, proxy.ListenerInfo{Protocol: "imap", TLS: proxy.TLSStartTLS, TLSConfig: cfg, Loopback: false})
	r := rawDial(t, e.addr)
	r.expectExact(t, "* OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR ID STARTTLS LOGINDISABLED] oauthbridge ready")
	r.send(t, "a LOGIN "+testUser+" "+testPass)
	r.expectExact(t, "a NO [PRIVACYREQUIRED] Use STARTTLS before LOGIN")
	r.send(t, "b AUTHENTICATE PLAIN "+b64("\x00"+testUser+"\x00"+testPass))
	r.expectExact(t, "b NO [PRIVACYREQUIRED] Use STARTTLS before AUTHENTICATE")
	if n := e.auth.Calls(); n != 0 {
		t.Fatalf("password checked %d times before TLS", n)
	}
	r.send(t, "c STARTTLS")
	r.expectExact(t, "c OK Begin TLS negotiation now")
	tc := tls.Client(r.c, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	r = &rawConn{c: tc, br: newReader(tc)}
	r.send(t, "d CAPABILITY")
	r.expectExact(t, "* CAPABILITY IMAP4rev1 LITERAL+ SASL-IR ID AUTH=PLAIN AUTH=LOGIN")
	r.expect(t, "d OK")
	r.send(t, "e LOGIN "+testUser+" "+testPass)
	r.expect(t, "e OK [CAPABILITY ")
}

func TestStartTLSRefusesPipelinedData(t *testing.T) {
	cfg, _ := proxytest.ServerTLS(t, "1.2")
	e := newEnvInfo(t, proxy.ListenerInfo{Protocol: "imap", TLS: proxy.TLSStartTLS, TLSConfig: cfg})
	r := rawDial(t, e.addr)
	r.readLine(t)
	// CVE-2011-0411: a command injected behind STARTTLS must not be
	// executed as if it came over TLS.
	r.sendRaw(t, "a STARTTLS\r\nb LOGIN "+testUser+" "+testPass+"\r\n")
	r.expectExact(t, "* BYE Data after STARTTLS")
	r.expectClosed(t)
}

func TestHostilePreauthInput(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	e := newEnv(t, func(_ *fakegmail.Options, s *Server, _ *proxy.Account) { s.LoginTimeout = 2 * time.Second })
	t.Run("overlong line", func(t *testing.T) {
		r := rawDial(t, e.addr)
		r.readLine(t)
		r.send(t, "a LOGIN "+strings.Repeat("x", 20000))
		r.expectExact(t, "* BAD Line too long")
		r.send(t, "b NOOP")
		r.expectExact(t, "b OK NOOP completed")
	})
	t.Run("literal too large", func(t *testing.T) {
		r := rawDial(t, e.addr)
		r.readLine(t)
		r.send(t, "a LOGIN {100000}")
		r.expectExact(t, "a BAD Literal too large")
		r.send(t, "b NOOP")
		r.expectExact(t, "b OK NOOP completed")
		r.send(t, "c LOGIN {100000+}")
		r.expectExact(t, "* BYE Literal too large")
		r.expectClosed(t)
	})
	t.Run("garbage", func(t *testing.T) {
		r := rawDial(t, e.addr)
		r.readLine(t)
		for i := 0; i < maxBadCommands+1; i++ {
			r.sendRaw(t, "\x00\xff\x13 garbage {\r\n")
			if l := r.readLine(t); !strings.Contains(l, "BAD") && !strings.Contains(l, "BYE") {
				t.Fatalf("garbage answered with %q", l)
			}
		}
		r.expectClosed(t)
	})
	t.Run("tls on plain port", func(t *testing.T) {
		c, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		if err := tc.Handshake(); err == nil {
			t.Fatal("TLS handshake succeeded on a plaintext IMAP port")
		}
	})
	t.Run("slowloris", func(t *testing.T) {
		r := rawDial(t, e.addr)
		r.readLine(t)
		start := time.Now()
		r.sendRaw(t, "a LOG")
		r.expectClosed(t)
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("closed after %s, want the 2 s login timeout", d)
		}
	})
	t.Run("early disconnects", func(t *testing.T) {
		for _, prefix := range []string{"", "a LOGIN", "a LOGIN {5}\r\n", "a AUTHENTICATE PLAIN\r\n", "a LOGIN " + testUser + " " + testPass + "\r\n"} {
			c, err := net.Dial("tcp", e.addr)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprint(c, prefix)
			c.Close()
		}
	})
}
