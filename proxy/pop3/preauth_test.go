package pop3_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/oauthbridge/oauthbridge/proxy"
	"github.com/oauthbridge/oauthbridge/proxy/pop3"
	"github.com/oauthbridge/oauthbridge/proxy/proxytest"
	"golang.org/x/oauth2"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// The whole pre-login dialogue on a loopback plaintext listener, byte for
// byte: greeting, CAPA, the refusals, the SASL challenges.
func TestPreauthTranscript(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	b := startBridge(t, bridgeOptions{})
	c := dialClient(t, b.addr)
	c.transcript(`
		S: +OK oauthbridge POP3 ready
		C: CAPA
		S: +OK Capability list follows
		S: USER
		S: SASL PLAIN LOGIN
		S: TOP
		S: UIDL
		S: RESP-CODES
		S: AUTH-RESP-CODE
		S: PIPELINING
		S: .
		C: AUTH
		S: +OK
		S: PLAIN
		S: LOGIN
		S: .
		C: STAT
		S: -ERR Log in first
		C: PASS x
		S: -ERR Send USER first
		C: STLS
		S: -ERR STLS not available on this port
		C: APOP alice 0123456789abcdef0123456789abcdef
		S: -ERR APOP is not supported, use USER/PASS or AUTH
		C: AUTH CRAM-MD5
		S: -ERR Unsupported authentication mechanism
		C: AUTH PLAIN
		S: + 
		C: *
		S: -ERR Authentication cancelled
		C: AUTH LOGIN
		S: + VXNlcm5hbWU6
		C: *
		S: -ERR Authentication cancelled
		C: AUTH LOGIN ` + b64(user) + `
		S: + UGFzc3dvcmQ6
		C: *
		S: -ERR Authentication cancelled
		C: AUTH PLAIN not-base64!
		S: -ERR Malformed SASL response
		C: USER ` + user + `
		S: +OK Send PASS
		C: PASS wrong password
		S: -ERR [AUTH] Invalid credentials
		C: XYZZY
		S: -ERR Unknown command
		C: QUIT
		S: +OK Bye
	`)
	if rest := c.closed(); rest != "" {
		t.Errorf("after QUIT: %q", rest)
	}
	if n := b.tokens.calls.Load(); n != 0 {
		t.Errorf("token source called %d times for failed logins", n)
	}
}

// A wrong password, by each mechanism, is refused with [AUTH] and never
// reaches the token source; the third failure closes the connection.
func TestWrongPasswordLeavesTokensAlone(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	b := startBridge(t, bridgeOptions{})
	c := greeted(t, b.addr)
	c.ok("USER " + user)
	if got := c.cmd("PASS nope"); got != "-ERR [AUTH] Invalid credentials" {
		t.Errorf("USER/PASS: %q", got)
	}
	if got := c.cmd("AUTH PLAIN " + b64("\x00"+user+"\x00nope")); got != "-ERR [AUTH] Invalid credentials" {
		t.Errorf("AUTH PLAIN: %q", got)
	}
	c.send("AUTH LOGIN")
	if got := c.line(); got != "+ VXNlcm5hbWU6" {
		t.Fatalf("LOGIN challenge %q", got)
	}
	c.send(b64(user))
	if got := c.line(); got != "+ UGFzc3dvcmQ6" {
		t.Fatalf("LOGIN challenge %q", got)
	}
	if got := c.cmd(b64("nope")); got != "-ERR [AUTH] Invalid credentials" {
		t.Errorf("AUTH LOGIN: %q", got)
	}
	if rest := c.closed(); rest != "" {
		t.Errorf("after 3 failures: %q", rest)
	}
	if n := b.tokens.calls.Load(); n != 0 {
		t.Errorf("token source called %d times", n)
	}
	if n := b.auth.Calls(); n != 3 {
		t.Errorf("Authenticate called %d times, want 3", n)
	}
}

// Failures after a correct password map to RFC 2449/3206 codes with
// proxy.ClientMessage's text.
func TestLoginFailureCodes(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	consent := consentErr{}
	tests := []struct {
		name   string
		tokens func(context.Context, bool) (*oauth2.Token, error)
		tune   func(*pop3.Server)
		setup  func(b *bridge)
		want   string
	}{
		{
			name: "consent required",
			tokens: func(context.Context, bool) (*oauth2.Token, error) {
				return nil, fmt.Errorf("tokens: refresh: %w", consent)
			},
			want: "-ERR [AUTH] OAuth grant for alice@gmail.com is missing, revoked or expired: run 'oauthbridge authorize alice@gmail.com' on the bridge host",
		},
		{
			name: "upstream unreachable",
			tokens: func(context.Context, bool) (*oauth2.Token, error) {
				return &oauth2.Token{AccessToken: "tok", Expiry: time.Now().Add(time.Hour)}, nil
			},
			want: "-ERR [SYS/TEMP] Upstream temporarily unavailable, try again later",
		},
		{
			name:  "throttled",
			setup: func(b *bridge) { b.auth.Fail(proxy.ErrThrottled) },
			want:  "-ERR [SYS/TEMP] Too many failed logins from your address, try again later",
		},
		{
			name: "account session limit",
			tune: func(s *pop3.Server) {
				s.Limits = proxy.NewLimiter(proxy.Limits{PerAccount: 1})
				// Another session of the account holds the only slot.
				if _, err := s.Limits.AcquireAccount("pop3", user); err != nil {
					t.Fatal(err)
				}
			},
			want: "-ERR [IN-USE] Too many concurrent sessions, close another client first",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := startBridge(t, bridgeOptions{tokens: tt.tokens, tune: tt.tune})
			if tt.setup != nil {
				tt.setup(b)
			}
			c := greeted(t, b.addr)
			if got := c.cmd("AUTH PLAIN " + b64("\x00"+user+"\x00"+appPassword)); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
			c.ok("QUIT")
		})
	}
}

type consentErr struct{}

func (consentErr) Error() string         { return "invalid_grant" }
func (consentErr) ConsentRequired() bool { return true }

// On a listener where plaintext passwords are not allowed (not loopback,
// no allow_plaintext_auth), USER, PASS and AUTH are refused with [AUTH]
// naming STLS, CAPA hides them, and after STLS all works.
func TestPlaintextRefusedBeforeSTLS(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	srvTLS, cliTLS := testTLS(t)
	b := startBridge(t, bridgeOptions{raw: true, info: proxy.ListenerInfo{
		TLS: proxy.TLSStartTLS, TLSConfig: srvTLS, Loopback: false,
	}})
	c := dialClient(t, b.addr)
	refusal := "-ERR [AUTH] Plaintext authentication disallowed on non-TLS connections: use STLS first"
	c.transcript(`
		S: +OK oauthbridge POP3 ready
		C: CAPA
		S: +OK Capability list follows
		S: STLS
		S: TOP
		S: UIDL
		S: RESP-CODES
		S: AUTH-RESP-CODE
		S: PIPELINING
		S: .
		C: USER ` + user + `
		S: ` + refusal + `
		C: PASS ` + appPassword + `
		S: ` + refusal + `
		C: AUTH PLAIN ` + b64("\x00"+user+"\x00"+appPassword) + `
		S: ` + refusal + `
		C: STLS
		S: +OK Begin TLS negotiation
	`)
	if b.auth.Calls() != 0 {
		t.Fatalf("Authenticate called before TLS")
	}
	c.startTLS(cliTLS)
	c.transcript(`
		C: CAPA
		S: +OK Capability list follows
		S: USER
		S: SASL PLAIN LOGIN
		S: TOP
		S: UIDL
		S: RESP-CODES
		S: AUTH-RESP-CODE
		S: PIPELINING
		S: .
		C: STLS
		S: -ERR Already using TLS
		C: USER ` + user + `
		S: +OK Send PASS
		C: PASS nope
		S: -ERR [AUTH] Invalid credentials
		C: QUIT
		S: +OK Bye
	`)
}

// Bytes a client pipelines behind STLS are dropped, not executed inside
// the TLS session (the STARTTLS command injection class of bugs).
func TestSTLSDropsPipelinedPlaintext(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	srvTLS, cliTLS := testTLS(t)
	b := startBridge(t, bridgeOptions{info: proxy.ListenerInfo{TLS: proxy.TLSStartTLS, TLSConfig: srvTLS}})
	c := greeted(t, b.addr)
	c.send("STLS\r\nUSER injected")
	if got := c.line(); got != "+OK Begin TLS negotiation" {
		t.Fatalf("STLS: %q", got)
	}
	c.startTLS(cliTLS)
	// Had "USER injected" run, PASS would be accepted as its follow-up.
	if got := c.cmd("PASS " + appPassword); got != "-ERR Send USER first" {
		t.Fatalf("after STLS: %q", got)
	}
	c.ok("QUIT")
}

// Reject answers with one -ERR [SYS/TEMP] line.
func TestReject(t *testing.T) {
	srv := &pop3.Server{}
	a, b := net.Pipe()
	defer b.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Reject(&proxy.Conn{Conn: a}, proxy.ErrTooManySessions)
		a.Close()
	}()
	buf := make([]byte, 200)
	b.SetReadDeadline(time.Now().Add(opTimeout))
	n, _ := b.Read(buf)
	<-done
	want := "-ERR [SYS/TEMP] Too many concurrent sessions, close another client first\r\n"
	if got := string(buf[:n]); got != want {
		t.Errorf("Reject wrote %q, want %q", got, want)
	}
}

// USER/PASS of a password holding spaces passes it verbatim.
func TestPassKeepsSpaces(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	b := startBridge(t, bridgeOptions{})
	b.auth.Add("bob", " two  spaces ", b.acct)
	c := greeted(t, b.addr)
	c.ok("USER bob")
	// The account has no reachable upstream: getting past the password
	// check is what this test is about.
	if got := c.cmd("PASS  two  spaces "); !strings.HasPrefix(got, "-ERR [SYS/TEMP]") {
		t.Errorf("PASS with spaces: %q", got)
	}
}
