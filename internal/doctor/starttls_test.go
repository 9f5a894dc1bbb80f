package doctor

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"strings"
	"testing"

	"github.com/oauthbridge/oauthbridge/proxy"
)

// loginStub stands in for the protocol's login check: these tests are
// about the STARTTLS and TLS steps before it.
func loginStub(context.Context, *proxy.Dialer, *proxy.Account) (string, error) { return "STUB", nil }

func TestHandwrittenStartTLS(t *testing.T) {
	ca, serverTLS := testCA(t)
	expect := func(br *bufio.Reader, want string) bool {
		l, err := br.ReadString('\n')
		return err == nil && l == want
	}
	handshake := func(c net.Conn) { tls.Server(c, serverTLS).Handshake() }
	for _, tc := range []struct {
		name, proto string
		serve       func(c net.Conn, br *bufio.Reader)
		starttls    bool // want the starttls step to pass
		detail      string
	}{
		{"imap", "imap", func(c net.Conn, br *bufio.Reader) {
			c.Write([]byte("* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready\r\n"))
			if expect(br, "D1 STARTTLS\r\n") {
				c.Write([]byte("* OK still here\r\nD1 OK Begin TLS negotiation now\r\n"))
				handshake(c)
			}
		}, true, `greeting "* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready"`},
		{"imap refused", "imap", func(c net.Conn, br *bufio.Reader) {
			c.Write([]byte("* OK ready\r\n"))
			if expect(br, "D1 STARTTLS\r\n") {
				c.Write([]byte("D1 BAD STARTTLS not available\r\n"))
			}
		}, false, `STARTTLS refused: "D1 BAD STARTTLS not available"`},
		{"imap injection", "imap", func(c net.Conn, br *bufio.Reader) {
			c.Write([]byte("* OK ready\r\n"))
			if expect(br, "D1 STARTTLS\r\n") {
				c.Write([]byte("D1 OK Begin TLS\r\n* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] injected\r\n"))
			}
		}, false, "sent data after accepting STARTTLS"},
		{"imap bye", "imap", func(c net.Conn, br *bufio.Reader) {
			c.Write([]byte("* BYE too many connections\r\n"))
		}, false, `unexpected greeting "* BYE too many connections"`},
		{"pop3", "pop3", func(c net.Conn, br *bufio.Reader) {
			c.Write([]byte("+OK POP3 ready\r\n"))
			if expect(br, "STLS\r\n") {
				c.Write([]byte("+OK Begin TLS\r\n"))
				handshake(c)
			}
		}, true, `greeting "+OK POP3 ready"`},
		{"pop3 refused", "pop3", func(c net.Conn, br *bufio.Reader) {
			c.Write([]byte("+OK POP3 ready\r\n"))
			if expect(br, "STLS\r\n") {
				c.Write([]byte("-ERR Command not permitted\r\n"))
			}
		}, false, `STLS refused: "-ERR Command not permitted"`},
		{"smtp without STARTTLS", "smtp", func(c net.Conn, br *bufio.Reader) {
			c.Write([]byte("220 mx.example.test ESMTP\r\n"))
			if expect(br, "EHLO oauthbridge-check\r\n") {
				c.Write([]byte("250-mx.example.test\r\n250-SIZE 1000\r\n250 AUTH PLAIN\r\n"))
			}
		}, false, "does not offer STARTTLS"},
		{"smtp garbage", "smtp", func(c net.Conn, br *bufio.Reader) {
			c.Write([]byte("HTTP/1.1 400 Bad Request\r\n"))
		}, false, "not an SMTP reply"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := startPlain(t, tc.serve)
			ep := proxy.Endpoint{Addr: addr, TLS: proxy.UpstreamStartTLS, TLSConfig: &tls.Config{RootCAs: ca.Pool()}}
			acct := &proxy.Account{Name: alice, UpstreamUser: alice, IMAP: ep, POP3: ep, SMTP: ep,
				Tokens: (&fgTokens{}).static()}
			c := &Checker{Provider: "example", Upstream: map[string]UpstreamCheck{tc.proto: loginStub}}
			steps := c.Check(context.Background(), acct, []string{tc.proto})
			st := find(t, steps, tc.proto, "starttls")
			if st.OK != tc.starttls || !strings.Contains(st.Detail, tc.detail) {
				t.Fatalf("starttls step %+v, want ok=%v with %q", st, tc.starttls, tc.detail)
			}
			tlsStep := find(t, steps, tc.proto, "tls")
			if tc.starttls && (!tlsStep.OK || !strings.Contains(tlsStep.Detail, "fakegmail test CA")) {
				t.Fatalf("tls after STARTTLS: %+v", tlsStep)
			}
			if !tc.starttls && (!tlsStep.Skipped || !strings.Contains(st.Fix, "providers.example."+tc.proto)) {
				t.Fatalf("after a failed STARTTLS: tls %+v, fix %q", tlsStep, st.Fix)
			}
		})
	}
}
