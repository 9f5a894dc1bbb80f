package daemon

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/oauthbridge/oauthbridge/config"
	"github.com/oauthbridge/oauthbridge/proxy/proxytest"
)

// A client logs in through the daemon with an app password and reads the
// seeded INBOX: config -> LocalAuth -> token manager -> XOAUTH2 upstream.
func TestIMAPLoginThroughDaemon(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(t, []config.Listener{imapListener()}, "alice-pw", "bob-pw")
	e.authorize(t, cfg, alice)
	d := e.start(t, cfg)
	if err := d.Healthy(); err != nil {
		t.Fatalf("Healthy after Start: %v", err)
	}

	c := imapLogin(t, addr(t, d, "imap"), alice, "alice-pw")
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages != 3 {
		t.Errorf("INBOX has %d messages, want the 3 seeded ones", sel.NumMessages)
	}
	if got := d.Sessions()["imap"]; got != 1 {
		t.Errorf("Sessions()[imap] = %d, want 1", got)
	}
	if got := d.AccountSessions(alice)["imap"]; got != 1 {
		t.Errorf("AccountSessions(alice)[imap] = %d, want 1", got)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Fatal(err)
	}

	// bob has a password but no tokens: the client is told what to run.
	err = imapLoginErr(t, addr(t, d, "imap"), bob, "bob-pw")
	if err == nil || !strings.Contains(err.Error(), "oauthbridge authorize "+bob) {
		t.Errorf("login of an unauthorized account: %v, want a NO naming \"oauthbridge authorize %s\"", err, bob)
	}
}

// A wrong password is logged once for fail2ban and kept in RecentErrors,
// without the password.
func TestRecentErrorsKeepFailedLogin(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(t, []config.Listener{imapListener()}, "alice-pw", "bob-pw")
	d := e.start(t, cfg)
	if err := imapLoginErr(t, addr(t, d, "imap"), alice, "wrong-secret-pw"); err == nil {
		t.Fatal("login with a wrong password succeeded")
	}
	var found bool
	for _, r := range d.RecentErrors() {
		if r.Message == "login failed" {
			found = true
			if r.Attrs["client_ip"] != "127.0.0.1" || r.Attrs["user"] != alice || r.Attrs["proto"] != "imap" {
				t.Errorf("login failed entry attrs = %v", r.Attrs)
			}
		}
		for k, v := range r.Attrs {
			if strings.Contains(v, "wrong-secret-pw") {
				t.Errorf("recent error %q attr %s holds the password", r.Message, k)
			}
		}
	}
	if !found {
		t.Errorf("RecentErrors has no \"login failed\": %+v", d.RecentErrors())
	}
	if strings.Contains(e.logs.String(), "wrong-secret-pw") {
		t.Error("the log holds the password")
	}
}

// Reload: a listener is added and another removed, a password changes,
// and an IMAP session on the unchanged listener keeps working.
func TestReloadListenersAndPasswords(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(t, []config.Listener{imapListener(), pop3Listener()}, "alice-pw", "bob-pw")
	e.authorize(t, cfg, alice)
	d := e.start(t, cfg)
	imapAddr, pop3Addr := addr(t, d, "imap"), addr(t, d, "pop3")

	live := imapLogin(t, imapAddr, alice, "alice-pw")
	if _, err := live.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}

	cfg2 := e.config(t, []config.Listener{imapListener(), smtpListener()}, "alice-new-pw", "bob-pw")
	if err := d.Reload(cfg2); err != nil {
		t.Fatalf("Reload: %v", err)
	}

	if err := live.Noop().Wait(); err != nil {
		t.Errorf("NOOP on the session opened before the reload: %v", err)
	}
	if got := addr(t, d, "imap"); got != imapAddr {
		t.Errorf("unchanged imap listener moved from %s to %s", imapAddr, got)
	}
	if c, err := net.DialTimeout("tcp", pop3Addr, time.Second); err == nil {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, rerr := c.Read(make([]byte, 64))
		c.Close()
		if rerr == nil {
			t.Errorf("removed pop3 listener %s still serves", pop3Addr)
		}
	}
	smtpAddr := addr(t, d, "smtp")
	c, err := net.DialTimeout("tcp", smtpAddr, time.Second)
	if err != nil {
		t.Fatalf("added smtp listener: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	greeting := make([]byte, 3)
	if _, err := io.ReadFull(c, greeting); err != nil || string(greeting) != "220" {
		t.Errorf("added smtp listener greeting %q, %v", greeting, err)
	}
	c.Close()

	if err := imapLoginErr(t, imapAddr, alice, "alice-pw"); err == nil {
		t.Error("the old password still works after the reload")
	}
	imapLogin(t, imapAddr, alice, "alice-new-pw")
}

// A listener whose allow list changes gets a new proxy.Listener on the same
// socket: same port, live sessions untouched, new connections served.
func TestReloadChangedListenerKeepsPortAndSessions(t *testing.T) {
	e := newEnv(t)
	l := config.Listener{Protocol: "imap", Listen: freeAddr(t)}
	cfg := e.config(t, []config.Listener{l}, "alice-pw", "bob-pw")
	e.authorize(t, cfg, alice)
	d := e.start(t, cfg)
	live := imapLogin(t, l.Listen, alice, "alice-pw")

	l.Allow = []string{"127.0.0.1/32", "192.0.2.0/24"}
	if err := d.Reload(e.config(t, []config.Listener{l}, "alice-pw", "bob-pw")); err != nil {
		t.Fatal(err)
	}
	if err := live.Noop().Wait(); err != nil {
		t.Errorf("NOOP after the listener was replaced: %v", err)
	}
	imapLogin(t, l.Listen, alice, "alice-pw")
	if lines := e.logs.Lines("configuration reloaded", "listeners_replaced=1"); len(lines) != 1 {
		t.Errorf("want one reload replacing one listener, log:\n%s", e.logs.String())
	}
	if got := d.Sessions()["imap"]; got != 2 {
		t.Errorf("Sessions()[imap] = %d, want 2 (one on the old listener, one on the new)", got)
	}
}

// A config the daemon cannot build is refused as a whole: the error names
// the key path and the running config keeps serving.
func TestReloadKeepsOldConfigOnError(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(t, []config.Listener{imapListener()}, "alice-pw", "bob-pw")
	e.authorize(t, cfg, alice)
	d := e.start(t, cfg)
	imapAddr := addr(t, d, "imap")

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		name      string
		listeners []config.Listener
		want      string
	}{
		{"missing cert file", []config.Listener{imapListener(),
			{Protocol: "pop3", Listen: "127.0.0.1:0", TLS: "implicit", CertFile: "/nonexistent/c.pem", KeyFile: "/nonexistent/k.pem"}},
			"listeners[1].cert_file"},
		{"port in use", []config.Listener{imapListener(), pop3Listener(), {Protocol: "smtp", Listen: busy.Addr().String()}},
			"listeners[2].listen"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := d.Reload(e.config(t, tc.listeners, "changed-pw", "bob-pw"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Reload = %v, want an error naming %s", err, tc.want)
			}
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Errorf("error %T is not a *config.Error", err)
			}
			if got := d.Listeners(); len(got) != 1 || got[0].Addr != imapAddr {
				t.Errorf("listeners after a failed reload: %+v", got)
			}
			imapLogin(t, imapAddr, alice, "alice-pw") // the old password still works
			if imapLoginErr(t, imapAddr, alice, "changed-pw") == nil {
				t.Error("the refused config's password works")
			}
		})
	}
}

// Shutdown: an IMAP client in a session gets "* BYE" and the connection
// closes; Shutdown returns without force-closing.
func TestShutdownSendsBye(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	e := newEnv(t)
	cfg := e.config(t, []config.Listener{imapListener()}, "alice-pw", "bob-pw")
	e.authorize(t, cfg, alice)
	d, err := New(cfg, Options{Logger: e.logs.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	r := dialRaw(t, addr(t, d, "imap"))
	if l := r.cmd(t, "a1", "LOGIN "+alice+" alice-pw"); !strings.HasPrefix(l[len(l)-1], "a1 OK") {
		t.Fatalf("LOGIN: %q", l)
	}
	if l := r.cmd(t, "a2", "SELECT INBOX"); !strings.HasPrefix(l[len(l)-1], "a2 OK") {
		t.Fatalf("SELECT: %q", l)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Shutdown(ctx) }()
	lines, err := r.readAll()
	if !errors.Is(err, io.EOF) {
		t.Errorf("connection ended with %v, want EOF", err)
	}
	if len(lines) == 0 || !strings.HasPrefix(lines[len(lines)-1], "* BYE") {
		t.Errorf("lines before close = %q, want a final * BYE", lines)
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if d.Healthy() == nil {
		t.Error("Healthy after Shutdown")
	}
	if c, err := net.DialTimeout("tcp", r.conn.RemoteAddr().String(), time.Second); err == nil {
		c.Close()
		t.Error("the listener still accepts after Shutdown")
	}
}

// Tokens stored by another process (authorize while the daemon runs) are
// used by the next login, without a restart or reload.
func TestTokenAuthorizedByAnotherProcess(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(t, []config.Listener{imapListener()}, "alice-pw", "bob-pw")
	d := e.start(t, cfg)
	a := addr(t, d, "imap")
	if err := imapLoginErr(t, a, alice, "alice-pw"); err == nil || !strings.Contains(err.Error(), "authorize") {
		t.Fatalf("login before authorize: %v, want a NO naming authorize", err)
	}
	e.authorize(t, cfg, alice) // a second Manager on the same state dir
	c := imapLogin(t, a, alice, "alice-pw")
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	for _, st := range d.Accounts() {
		if st.Account == alice && st.State != "authorized" {
			t.Errorf("status of %s = %s, want authorized", alice, st.State)
		}
	}
}

// freeAddr returns a loopback address with a port free now, for configs
// that must name the same port twice.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

// New fails as a whole: the error names the key path and the sockets it
// had bound already are closed again.
func TestNewFailureReleasesEverything(t *testing.T) {
	e := newEnv(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	first := freeAddr(t)
	cfg := e.config(t, []config.Listener{{Protocol: "imap", Listen: first}, {Protocol: "pop3", Listen: busy.Addr().String()}}, "a", "b")
	cfg.HTTP.Listen = freeAddr(t)
	d, err := New(cfg, Options{})
	if err == nil {
		d.Close()
		t.Fatal("New succeeded on a busy port")
	}
	if !strings.Contains(err.Error(), "listeners[1].listen") {
		t.Errorf("New: %v, want the key path listeners[1].listen", err)
	}
	ln, err := net.Listen("tcp", first)
	if err != nil {
		t.Fatalf("the first listener's port is still bound after the failed New: %v", err)
	}
	ln.Close()
}
