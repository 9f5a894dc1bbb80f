package imap

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/oauthbridge/oauthbridge/internal/fakegmail"
	"github.com/oauthbridge/oauthbridge/proxy"
	"github.com/oauthbridge/oauthbridge/proxy/proxytest"
)

const (
	testUser = "alice@gmail.com"
	testPass = "app-password-1"
)

// env is a bridge in front of a fake Gmail, with one account.
type env struct {
	fg     *fakegmail.Server
	tokens *proxytest.Tokens
	acct   *proxy.Account
	auth   *proxytest.Authenticator
	srv    *Server
	addr   string
	logs   *proxytest.LogBuffer
}

type envOption func(*fakegmail.Options, *Server, *proxy.Account)

func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	return newEnvInfo(t, proxy.ListenerInfo{Protocol: "imap", Loopback: true}, opts...)
}

// newEnvInfo is newEnv with a listener of the given settings.
func newEnvInfo(t testing.TB, info proxy.ListenerInfo, opts ...envOption) *env {
	t.Helper()
	logs := proxytest.NewLogBuffer()
	fo := fakegmail.Options{Users: []string{testUser}, SeedMessages: true}
	acct := &proxy.Account{Name: testUser, ConfigName: testUser, UpstreamUser: testUser}
	srv := &Server{Dialer: &proxy.Dialer{Timeout: 10 * time.Second}, Logger: logs.Logger()}
	for _, o := range opts {
		o(&fo, srv, acct)
	}
	fg, err := fakegmail.Start(fo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fg.Close() })
	tokens := &proxytest.Tokens{Issue: func() (string, time.Time) {
		access := fg.AccessToken(testUser)
		return access, fg.Tokens().Expiry(access)
	}}
	acct.Tokens = tokens
	acct.IMAP = proxy.Endpoint{Addr: fg.IMAPAddr(), TLSConfig: &tls.Config{RootCAs: fg.RootCAs()}}
	auth := proxytest.NewAuthenticator()
	auth.Add(testUser, testPass, acct)
	srv.Auth = auth
	var h proxy.Handler = srv
	if !info.Loopback {
		h = asLAN{srv}
	}
	addr := proxytest.Serve(t, h, info)
	e := &env{fg: fg, tokens: tokens, acct: acct, auth: auth, srv: srv, addr: addr, logs: logs}
	e.dumpLogsOnFailure(t)
	return e
}

// dial connects an imapclient to the bridge (plaintext, loopback).
func (e *env) dial(t *testing.T, opts *imapclient.Options) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(e.addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// selected dials, logs in and selects INBOX.
func (e *env) selected(t *testing.T, opts *imapclient.Options) *imapclient.Client {
	t.Helper()
	c := e.login(t, opts)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	return c
}

// whileCut ends the upstream session and runs change while the bridge
// cannot reconnect (its dials wait at gate), then lets it reconnect.
func (e *env) whileCut(t *testing.T, gate *dialGate, change func()) {
	t.Helper()
	gate.close()
	e.fg.Kick(testUser, fakegmail.KickClose)
	<-gate.attempts
	change()
	gate.release()
}

// login dials and logs in with LOGIN.
func (e *env) login(t *testing.T, opts *imapclient.Options) *imapclient.Client {
	t.Helper()
	c := e.dial(t, opts)
	if err := c.Login(testUser, testPass).Wait(); err != nil {
		t.Fatalf("login: %v", err)
	}
	return c
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

var errTimeout = errors.New("timed out")

// waitFor polls cond until it holds or d passes; for conditions with no
// event to wait on (a count kept by another process's server).
func waitFor(d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return errTimeout
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// dumpLogsOnFailure prints the bridge's log when the test fails.
func (e *env) dumpLogsOnFailure(t testing.TB) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("bridge log:\n%s", e.logs.String())
		}
	})
}

type (
	imapclientClient      = imapclient.Client
	imapclientFetchBuffer = imapclient.FetchMessageBuffer
)

// asLAN makes connections look as if they came to a non-loopback listener
// (the Listener marks 127.0.0.1 listeners as loopback, rightly).
type asLAN struct{ *Server }

func (h asLAN) ServeConn(ctx context.Context, c *proxy.Conn) {
	info := *c.Listener
	info.Loopback = false
	c.Listener = &info
	h.Server.ServeConn(ctx, c)
}
