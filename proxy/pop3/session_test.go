package pop3_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oauthbridge/oauthbridge/internal/fakegmail"
	"github.com/oauthbridge/oauthbridge/internal/metrics"
	"github.com/oauthbridge/oauthbridge/proxy"
	"github.com/oauthbridge/oauthbridge/proxy/pop3"
	"github.com/oauthbridge/oauthbridge/proxy/proxytest"
)

// A whole session through the bridge: every transaction command, a 10 MiB
// message byte for byte, deletion committed at QUIT.
func TestSession(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	m := metrics.New()
	e := startEnv(t, envOptions{bridgeOptions: bridgeOptions{tune: func(s *pop3.Server) { s.Metrics = m }}})
	msgs := [][]byte{message("one", 300), message("big", 10<<20), message("three", 5000)}
	e.appendMessages(t, msgs...)

	c := e.login(t)
	var total int
	for _, m := range msgs {
		total += len(m)
	}
	if got, want := c.ok("STAT"), fmt.Sprintf("+OK 3 %d", total); got != want {
		t.Errorf("STAT = %q, want %q", got, want)
	}
	list := c.multi("LIST")
	for i, m := range msgs {
		if want := fmt.Sprintf("%d %d", i+1, len(m)); i >= len(list) || list[i] != want {
			t.Errorf("LIST = %q, want line %q", list, want)
		}
	}
	uidl := c.multi("UIDL")
	if len(uidl) != 3 {
		t.Fatalf("UIDL = %q", uidl)
	}
	if got := c.ok("UIDL 2"); got != "+OK "+uidl[1] {
		t.Errorf("UIDL 2 = %q, want %q", got, "+OK "+uidl[1])
	}
	if got := c.ok("LIST 3"); got != fmt.Sprintf("+OK 3 %d", len(msgs[2])) {
		t.Errorf("LIST 3 = %q", got)
	}
	for i, m := range msgs {
		if got := c.retr(i + 1); !bytes.Equal(got, m) {
			t.Errorf("RETR %d: %d bytes differ from the %d stored", i+1, len(got), len(m))
		}
	}
	c.ok("TOP 1 0")
	head := msgs[0][:bytes.Index(msgs[0], []byte("\r\n\r\n"))+4]
	if got := c.body(); !bytes.Equal(got, head) {
		t.Errorf("TOP 1 0 = %q, want %q", got, head)
	}
	c.ok("NOOP")
	c.ok("DELE 2")
	c.errReply("RETR 2")
	c.errReply("DELE 2")
	c.ok("RSET")
	c.ok("DELE 1")
	if got := c.ok("STAT"); got != fmt.Sprintf("+OK 2 %d", total-len(msgs[0])) {
		t.Errorf("STAT after DELE = %q", got)
	}
	c.errReply("RETR 9")
	c.errReply("LAST")
	c.errReply("RETR x")
	c.errReply("USER bob")
	c.ok("QUIT")
	c.closed()

	if got := e.stored(t); len(got) != 2 || !bytes.Equal(got[0], msgs[1]) || !bytes.Equal(got[1], msgs[2]) {
		t.Errorf("after QUIT %d messages left, want messages 2 and 3", len(got))
	}
	if !e.fg.WaitConnections(user, "pop3", 0, opTimeout) {
		t.Error("upstream session still open")
	}
	if n := counter(t, m, "oauthbridge_logins_total", "outcome", "ok"); n != 1 {
		t.Errorf("logins ok = %v, want 1", n)
	}
	if n := counter(t, m, "oauthbridge_relayed_bytes_total", "direction", "to_client"); n < float64(total) {
		t.Errorf("bytes to client = %v, want at least %d", n, total)
	}
	if lines := e.logs.Lines("msg=login", "proto=pop3", "account="+user, "upstream="+e.fg.POP3Addr(), "duration="); len(lines) != 1 {
		t.Errorf("login lines: %q", lines)
	}
	if lines := e.logs.Lines("msg=logout", "reason=quit", "duration="); len(lines) != 1 {
		t.Errorf("logout lines: %q", lines)
	}
}

// counter reads one sample of a counter family by one label.
func counter(t *testing.T, m *metrics.Metrics, name, label, value string) float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, mt := range mf.GetMetric() {
			for _, lp := range mt.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					sum += mt.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

// Every local mechanism logs in: AUTH PLAIN with an initial response and
// with a continuation, AUTH LOGIN with and without one.
func TestAuthMechanisms(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	e := startEnv(t, envOptions{})
	plain := b64("\x00" + user + "\x00" + appPassword)
	tests := map[string][]string{
		"PLAIN initial response": {"AUTH PLAIN " + plain},
		"PLAIN continuation":     {"AUTH PLAIN", plain},
		"PLAIN with authzid":     {"AUTH PLAIN " + b64(user+"\x00"+user+"\x00"+appPassword)},
		"LOGIN":                  {"AUTH LOGIN", b64(user), b64(appPassword)},
		"LOGIN initial response": {"AUTH LOGIN " + b64(user), b64(appPassword)},
		"lower case":             {"auth plain " + plain},
	}
	for name, steps := range tests {
		t.Run(name, func(t *testing.T) {
			c := greeted(t, e.addr)
			for i, s := range steps {
				got := c.cmd(s)
				if i < len(steps)-1 && !strings.HasPrefix(got, "+ ") {
					t.Fatalf("step %d: %q, want a challenge", i, got)
				}
				if i == len(steps)-1 && got != "+OK Logged in" {
					t.Fatalf("final: %q", got)
				}
			}
			c.ok("STAT")
			c.ok("QUIT")
		})
	}
}

// A revoked grant: the upstream refuses the token, the refresh gets
// invalid_grant, and the client is told to run "oauthbridge authorize".
func TestRevokedGrant(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	e := startEnv(t, envOptions{})
	e.oauth.Revoke(user)
	c := greeted(t, e.addr)
	c.ok("USER " + user)
	want := "-ERR [AUTH] OAuth grant for alice@gmail.com is missing, revoked or expired: run 'oauthbridge authorize alice@gmail.com' on the bridge host"
	if got := c.cmd("PASS " + appPassword); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if n := e.fg.Logins(user, "pop3"); n != 0 {
		t.Errorf("%d upstream logins", n)
	}
	if lines := e.logs.Lines("msg=\"upstream login failed\"", "outcome=consent_required"); len(lines) != 1 {
		t.Errorf("log: %q", e.logs.String())
	}
}

// A token the upstream rejects although it looked valid is refreshed
// once and the login retried (proxy.AuthenticateUpstream).
func TestRejectedTokenRefreshedOnce(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	e := startEnv(t, envOptions{})
	// The bridge's current access token stops validating; its refresh
	// token still works.
	e.src.mu.Lock()
	e.src.tok.AccessToken = "ya29.stale"
	e.src.mu.Unlock()
	c := e.login(t)
	c.ok("STAT")
	c.ok("QUIT")
	if n := e.oauth.Refreshes(user); n != 1 {
		t.Errorf("refreshes = %d, want 1", n)
	}
}

// STLS on a starttls listener, then a login and a session.
func TestSTLSThenLogin(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	srvTLS, cliTLS := testTLS(t)
	e := startEnv(t, envOptions{bridgeOptions: bridgeOptions{raw: true, info: proxy.ListenerInfo{TLS: proxy.TLSStartTLS, TLSConfig: srvTLS}}})
	e.appendMessages(t, message("one", 100))
	c := greeted(t, e.addr)
	c.ok("STLS")
	c.startTLS(cliTLS)
	c.ok("AUTH PLAIN " + b64("\x00"+user+"\x00"+appPassword))
	if got := c.retr(1); !bytes.Equal(got, message("one", 100)) {
		t.Errorf("RETR over TLS: %q", got)
	}
	c.ok("QUIT")
}

// Nothing secret reaches the logs at debug level across a full session:
// not the app password, the access or refresh token, nor the XOAUTH2 or
// SASL PLAIN strings, raw or base64.
func TestNoSecretsInDebugLogs(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	e := startEnv(t, envOptions{})
	e.appendMessages(t, message("one", 100), message("two", 100))
	c := greeted(t, e.addr)
	c.ok("AUTH PLAIN " + b64("\x00"+user+"\x00"+appPassword))
	c.multi("UIDL")
	c.retr(1)
	c.ok("DELE 1")
	e.fg.Kick(user, fakegmail.KickClose) // a resume logs in again
	c.retr(2)
	c.ok("QUIT")
	c.closed()
	c2 := greeted(t, e.addr)
	c2.send("AUTH LOGIN")
	c2.line()
	c2.send(b64(user))
	c2.line()
	c2.ok(b64(appPassword))
	c2.send("PAS " + appPassword) // a typo must not log the password either
	c2.line()
	c2.ok("QUIT")
	c2.closed()

	if !strings.Contains(e.logs.String(), "level=DEBUG") || len(e.logs.Lines("transcript")) == 0 {
		t.Fatal("no debug transcript was logged: the test proves nothing")
	}
	tok := e.src.current()
	secrets := []string{appPassword, tok.AccessToken, tok.RefreshToken,
		"\x00" + user + "\x00" + appPassword,
		string(proxy.XOAuth2Payload(user, tok.AccessToken)),
		base64.StdEncoding.EncodeToString(proxy.XOAuth2Payload(user, tok.AccessToken)),
	}
	e.logs.AssertNoSecrets(t, secrets...)
	if len(e.logs.Lines("AUTH XOAUTH2")) == 0 {
		t.Error("the upstream AUTH line is not in the transcript at all")
	}
}

// An authenticated client silent for IdleTimeout is closed without a
// word (RFC 1939 §3), and its upstream session ends without committing.
func TestIdleTimeout(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	e := startEnv(t, envOptions{bridgeOptions: bridgeOptions{tune: func(s *pop3.Server) { s.IdleTimeout = 300 * time.Millisecond }}})
	e.appendMessages(t, message("one", 100))
	c := e.login(t)
	c.ok("DELE 1")
	if rest := c.closed(); rest != "" {
		t.Errorf("idle close sent %q", rest)
	}
	if !e.fg.WaitConnections(user, "pop3", 0, opTimeout) {
		t.Fatal("upstream session still open")
	}
	if n := len(e.stored(t)); n != 1 {
		t.Errorf("%d messages left, want 1: a DELE without QUIT was committed", n)
	}
	if lines := e.logs.Lines("msg=logout", "reason=timeout"); len(lines) != 1 {
		t.Errorf("logout: %q", e.logs.Lines("logout"))
	}
}

// Overlong and unknown commands after login.
func TestHostileAfterLogin(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	e := startEnv(t, envOptions{})
	c := e.login(t)
	if got := c.cmd("XTND XLST"); got != "-ERR Unknown command" {
		t.Errorf("XTND: %q", got)
	}
	if got := c.cmd("TOP 1"); got != "-ERR Invalid arguments" {
		t.Errorf("TOP 1: %q", got)
	}
	if got := c.cmd("RETR " + strings.Repeat("1", 300)); got != "-ERR Line too long" {
		t.Errorf("long line: %q", got)
	}
	c.closed()
}

// Graceful shutdown: a client idle between commands gets the RFC 2449
// [SYS/TEMP] goodbye and is closed; its marks are not committed.
func TestShutdownIdleClient(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	e := startEnv(t, envOptions{})
	e.appendMessages(t, message("one", 100))
	l := proxytest.Start(t, proxy.ListenerConfig{Info: proxy.ListenerInfo{Protocol: "pop3"}}, e.srv)
	c := greeted(t, l.Addr().String())
	c.ok("USER " + user)
	c.ok("PASS " + appPassword)
	c.ok("DELE 1")
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := l.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if got := c.line(); got != "-ERR [SYS/TEMP] Server shutting down, reconnect shortly" {
		t.Errorf("goodbye %q", got)
	}
	c.closed()
	if n := len(e.stored(t)); n != 1 {
		t.Errorf("%d messages left, want 1", n)
	}
}

// Wire transcript of a whole session, byte for byte: the local dialogue
// before login, CAPA before and after login (the bridge's lines, then the
// fake Gmail's advisory EXPIRE and LOGIN-DELAY; its SASL, USER and
// X-GOOGLE-RICO lines dropped), relayed answers exactly as the upstream
// wrote them.
func TestSessionTranscript(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	e := startEnv(t, envOptions{})
	msg := []byte("Subject: hi\r\n\r\n.dot\r\nbody\r\n")
	e.appendMessages(t, msg)
	c := dialClient(t, e.addr)
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
		C: USER ` + user + `
		S: +OK Send PASS
		C: PASS ` + appPassword + `
		S: +OK Logged in
		C: CAPA
		S: +OK Capability list follows
		S: USER
		S: SASL PLAIN LOGIN
		S: TOP
		S: UIDL
		S: RESP-CODES
		S: AUTH-RESP-CODE
		S: PIPELINING
		S: EXPIRE 0
		S: LOGIN-DELAY 300
		S: .
		C: STAT
		S: +OK 1 27
		C: LIST
		S: +OK 1 messages (27 octets)
		S: 1 27
		S: .
		C: RETR 1
		S: +OK 27 octets
		S: Subject: hi
		S:
		S: ..dot
		S: body
		S: .
		C: DELE 1
		S: +OK message 1 deleted
		C: QUIT
		S: +OK Farewell.
	`)
	c.closed()
}

// Microsoft 365's wire behaviour upstream (another greeting, a refusal
// without an error challenge): logins work, and a revoked grant still
// reaches the client as the consent message.
func TestMicrosoftUpstream(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	e := startEnv(t, envOptions{fakeOpts: func(o *fakegmail.Options) { o.Microsoft = true }})
	msgs := e.appendN(t, 1)
	c := e.login(t)
	if got := c.retr(1); !bytes.Equal(got, msgs[0]) {
		t.Errorf("RETR 1 = %q", got)
	}
	c.ok("QUIT")
	e.oauth.Revoke(user)
	c = greeted(t, e.addr)
	c.ok("USER " + user)
	if got := c.cmd("PASS " + appPassword); !strings.HasPrefix(got, "-ERR [AUTH] OAuth grant for alice@gmail.com is missing") {
		t.Errorf("revoked: %q", got)
	}
}

// A client trickling a command after login is closed when IdleTimeout
// passes: the deadline covers the whole command line, not each byte.
func TestSlowlorisAfterLogin(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	const idle = 400 * time.Millisecond
	e := startEnv(t, envOptions{bridgeOptions: bridgeOptions{tune: func(s *pop3.Server) { s.IdleTimeout = idle }}})
	c := e.login(t)
	start := time.Now()
	c.dripUntilClosed(t, idle/8, 'N')
	if d := time.Since(start); d > idle+5*time.Second {
		t.Errorf("closed after %v", d)
	}
}

// appended is a helper for tests that only need n small messages.
func (e *upstreamEnv) appendN(t *testing.T, n int) [][]byte {
	t.Helper()
	msgs := make([][]byte, n)
	for i := range msgs {
		msgs[i] = message("msg"+strconv.Itoa(i+1), 200+i*50)
	}
	e.appendMessages(t, msgs...)
	return msgs
}
