package smtp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/oauth2"

	"github.com/oauthbridge/oauthbridge/internal/fakegmail"
	"github.com/oauthbridge/oauthbridge/internal/metrics"
	"github.com/oauthbridge/oauthbridge/proxy"
	"github.com/oauthbridge/oauthbridge/proxy/proxytest"
)

const (
	alice    = "alice@gmail.com"
	bob      = "bob@gmail.com"
	scanner  = "scanner@gmail.com"
	alicePW  = "alice-app-password-1"
	bobPW    = "bob-app-password-2"
	unusedPW = "scanner-app-password-3"
)

// bridge is an SMTP bridge on 127.0.0.1:0 in front of a fake Gmail.
type bridge struct {
	t       testing.TB
	fg      *fakegmail.Server
	srv     *Server
	addr    string
	auth    *proxytest.Authenticator
	logs    *proxytest.LogBuffer
	metrics *metrics.Metrics
	tokens  map[string]*proxytest.Tokens
	accts   map[string]*proxy.Account
	ca      *fakegmail.CA // signs the bridge's own certificate (local TLS)
	ln      *proxy.Listener
}

type bridgeOpts struct {
	starttlsUpstream bool               // upstream via SubmissionAddr (587) instead of SMTPAddr (465)
	listener         proxy.ListenerInfo // Protocol and Addr are filled in
	localTLS         proxy.TLSMode      // local listener TLS mode
	direct           bool               // serve without proxy.Listener, ListenerInfo as given (Loopback false allowed)
	configure        func(*Server)      // adjust the Server before it serves
	fg               *fakegmail.Options // fake Gmail options (Users filled in)
	dial             func(ctx context.Context, network, addr string) (net.Conn, error)
	session          proxy.SessionPolicy
}

func startBridge(t testing.TB, o bridgeOpts) *bridge {
	t.Helper()
	fo := fakegmail.Options{}
	if o.fg != nil {
		fo = *o.fg
	}
	fo.Users = []string{alice, bob, scanner}
	fg, err := fakegmail.Start(fo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fg.Close() })
	b := &bridge{
		t: t, fg: fg,
		auth:    proxytest.NewAuthenticator(),
		logs:    proxytest.NewLogBuffer(),
		metrics: metrics.New(),
		tokens:  map[string]*proxytest.Tokens{},
		accts:   map[string]*proxy.Account{},
	}
	ep := proxy.Endpoint{Addr: fg.SMTPAddr(), TLS: proxy.UpstreamImplicitTLS, TLSConfig: &tls.Config{RootCAs: fg.RootCAs()}}
	if o.starttlsUpstream {
		ep = proxy.Endpoint{Addr: fg.SubmissionAddr(), TLS: proxy.UpstreamStartTLS, TLSConfig: &tls.Config{RootCAs: fg.RootCAs()}}
	}
	for user, pw := range map[string]string{alice: alicePW, bob: bobPW, scanner: unusedPW} {
		tt := &proxytest.Tokens{Issue: func() (string, time.Time) {
			access := fg.AccessToken(user)
			return access, fg.Tokens().Expiry(access)
		}}
		acct := &proxy.Account{Name: user, ConfigName: user, UpstreamUser: user, Tokens: tt, SMTP: ep, Session: o.session}
		b.tokens[user], b.accts[user] = tt, acct
		b.auth.Add(user, pw, acct)
	}
	b.srv = &Server{
		Auth:     b.auth,
		Dialer:   &proxy.Dialer{Dial: o.dial, Timeout: 10 * time.Second},
		Logger:   b.logs.Logger(),
		Metrics:  b.metrics,
		Hostname: "bridge.test",
		SpoolDir: t.TempDir(),
	}
	if o.configure != nil {
		o.configure(b.srv)
	}
	info := o.listener
	info.Protocol = proto
	if o.localTLS != proxy.TLSNone {
		b.ca, err = fakegmail.NewCA()
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := b.ca.Leaf()
		if err != nil {
			t.Fatal(err)
		}
		info.TLS = o.localTLS
		if info.TLSConfig == nil {
			info.TLSConfig = fakegmail.ServerConfig(leaf)
		}
	}
	if o.direct {
		b.addr = serveDirect(t, b.srv, info)
	} else {
		b.ln = proxytest.Start(t, proxy.ListenerConfig{Info: info, Logger: b.logs.Logger(), Metrics: b.metrics}, b.srv)
		b.addr = b.ln.Addr().String()
	}
	return b
}

// serveDirect serves srv on 127.0.0.1:0 without proxy.Listener, handing
// every connection the ListenerInfo as given (so Loopback can be false).
func serveDirect(t testing.TB, srv *Server, info proxy.ListenerInfo) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(proxy.WithProto(context.Background(), proto))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				ap := c.RemoteAddr().(*net.TCPAddr).AddrPort()
				pc := &proxy.Conn{Conn: c, Remote: ap.Addr().Unmap(), Listener: &info, ID: fmt.Sprintf("direct%d", i)}
				if info.TLS == proxy.TLSImplicit {
					tc := tls.Server(c, info.TLSConfig)
					if tc.Handshake() != nil {
						return
					}
					pc.Conn = tc
				}
				srv.ServeConn(ctx, pc)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		cancel()
		wg.Wait()
	})
	return ln.Addr().String()
}

// client dials the bridge with go-smtp's client (the "legacy client").
func (b *bridge) client() *gosmtp.Client {
	b.t.Helper()
	c, err := gosmtp.Dial(b.addr)
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(func() { c.Close() })
	c.CommandTimeout = time.Minute
	c.SubmissionTimeout = time.Minute
	return c
}

// login dials and authenticates with AUTH PLAIN.
func (b *bridge) login(user, pw string) *gosmtp.Client {
	b.t.Helper()
	c := b.client()
	if err := c.Auth(sasl.NewPlainClient("", user, pw)); err != nil {
		b.t.Fatalf("AUTH PLAIN %s: %v", user, err)
	}
	return c
}

// clientTLS is the client TLS config trusting the bridge's own CA.
func (b *bridge) clientTLS() *tls.Config {
	return &tls.Config{RootCAs: b.ca.Pool(), ServerName: "127.0.0.1"}
}

// secrets are every password and token the session could leak.
func (b *bridge) secrets() []string {
	s := []string{alicePW, bobPW, unusedPW}
	for _, tt := range b.tokens {
		s = append(s, tt.Issued()...)
	}
	return s
}

// send runs one transaction on c and returns the DATA reply error.
func send(c *gosmtp.Client, from string, to []string, msg []byte) error {
	if err := c.Mail(from, nil); err != nil {
		return fmt.Errorf("MAIL: %w", err)
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return fmt.Errorf("RCPT %s: %w", r, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("DATA write: %w", err)
	}
	return w.Close()
}

func testMessage(subject string, bodyLines int) []byte {
	var sb strings.Builder
	fmt.Fprintf(&sb, "From: alice@gmail.com\r\nTo: x@example.com\r\nSubject: %s\r\n\r\n", subject)
	for i := range bodyLines {
		fmt.Fprintf(&sb, "line %d of %s\r\n", i, subject)
	}
	sb.WriteString(".leading dot line\r\n")
	return []byte(sb.String())
}

func smtpCode(err error) int {
	var se *gosmtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

// counter reads a counter of the bridge's metrics (0 when absent).
func (b *bridge) counter(name string, labels map[string]string) float64 {
	mfs, err := b.metrics.Registry().Gather()
	if err != nil {
		b.t.Fatal(err)
	}
	var total float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if matchLabels(m, labels) {
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total
}

func matchLabels(m *dto.Metric, want map[string]string) bool {
	for k, v := range want {
		found := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == k && lp.GetValue() == v {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func mustPrefix(s string) []netip.Prefix { return []netip.Prefix{netip.MustParsePrefix(s)} }

// staticToken is a token source that always gives tok.
func staticToken(tok string) proxy.TokenSource {
	return proxy.TokenFunc(func(context.Context, bool) (*oauth2.Token, error) {
		return &oauth2.Token{AccessToken: tok, Expiry: time.Now().Add(time.Hour)}, nil
	})
}
