package pop3_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oauthbridge/oauthbridge/internal/fakegmail"
	"github.com/oauthbridge/oauthbridge/proxy"
	"github.com/oauthbridge/oauthbridge/proxy/pop3"
	"github.com/oauthbridge/oauthbridge/proxy/proxytest"
	"golang.org/x/oauth2"
)

const (
	user        = "alice@gmail.com"
	appPassword = "correct horse battery staple"
)

// countingTokens is the account's token source in tests: it counts every
// call, so a test can prove a wrong password never touched tokens.
type countingTokens struct {
	calls atomic.Int64
	// get returns the token; force is true for ForceRefresh.
	get func(ctx context.Context, force bool) (*oauth2.Token, error)
}

func (c *countingTokens) Token(ctx context.Context) (*oauth2.Token, error) {
	c.calls.Add(1)
	return c.get(ctx, false)
}

func (c *countingTokens) ForceRefresh(ctx context.Context, rejected string) (*oauth2.Token, error) {
	c.calls.Add(1)
	return c.get(ctx, true)
}

var errNoTokens = errors.New("test: no tokens here")

// bridge is a POP3 bridge under test.
type bridge struct {
	srv    *pop3.Server
	auth   *proxytest.Authenticator
	logs   *proxytest.LogBuffer
	acct   *proxy.Account
	tokens *countingTokens
	addr   string
}

type bridgeOptions struct {
	info proxy.ListenerInfo
	// raw serves without proxy.Listener so info is handed over as given
	// (the Listener marks loopback sockets Loopback, whatever the test
	// says).
	raw bool
	// endpoint is the account's upstream; zero means nothing listening.
	endpoint proxy.Endpoint
	session  proxy.SessionPolicy
	tokens   func(ctx context.Context, force bool) (*oauth2.Token, error)
	tune     func(*pop3.Server)
}

func startBridge(t testing.TB, o bridgeOptions) *bridge {
	t.Helper()
	b := &bridge{
		auth:   proxytest.NewAuthenticator(),
		logs:   proxytest.NewLogBuffer(),
		tokens: &countingTokens{get: o.tokens},
	}
	if b.tokens.get == nil {
		b.tokens.get = func(context.Context, bool) (*oauth2.Token, error) { return nil, errNoTokens }
	}
	if o.endpoint.Addr == "" {
		o.endpoint.Addr = "127.0.0.1:1" // refused at once
	}
	b.acct = &proxy.Account{
		Name: user, ConfigName: user, UpstreamUser: user,
		Tokens:  b.tokens,
		POP3:    o.endpoint,
		Session: o.session,
	}
	b.auth.Add(user, appPassword, b.acct)
	b.srv = &pop3.Server{
		Auth:            b.auth,
		Dialer:          &proxy.Dialer{Timeout: 10 * time.Second},
		Logger:          b.logs.Logger(),
		LoginTimeout:    15 * time.Second,
		IdleTimeout:     15 * time.Second,
		UpstreamTimeout: 10 * time.Second,
		WriteTimeout:    10 * time.Second,
	}
	if o.tune != nil {
		o.tune(b.srv)
	}
	o.info.Protocol = "pop3"
	if o.raw {
		b.addr = serveRaw(t, b.srv, o.info)
	} else {
		b.addr = proxytest.Serve(t, b.srv, o.info)
	}
	return b
}

// serveRaw accepts connections on 127.0.0.1:0 and serves each with h,
// handing info over unchanged. Cleanup cancels the handlers' ctx, closes
// the listener and waits for every handler.
func serveRaw(t testing.TB, h proxy.Handler, info proxy.ListenerInfo) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(proxy.WithProto(context.Background(), "pop3"))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				remote := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
				h.ServeConn(ctx, &proxy.Conn{Conn: c, Remote: remote, Listener: &info, ID: "raw"})
			}()
		}
	}()
	t.Cleanup(func() {
		cancel()
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// testTLS is a server TLS config for the bridge's listener and a client
// config trusting it.
func testTLS(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	ca, err := fakegmail.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Leaf()
	if err != nil {
		t.Fatal(err)
	}
	return fakegmail.ServerConfig(leaf), &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}
}

var loopback = netip.MustParseAddr("127.0.0.1")
