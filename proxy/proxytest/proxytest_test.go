package proxytest_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/oauthbridge/oauthbridge/proxy"
	"github.com/oauthbridge/oauthbridge/proxy/proxytest"
)

// greeter writes one greeting line naming the listener's protocol and
// session, then closes.
type greeter struct{}

func (greeter) ServeConn(ctx context.Context, c *proxy.Conn) {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "hello %s %s\r\n", proxy.ProtoFrom(ctx), c.Listener.Protocol)
}

func (greeter) Reject(c *proxy.Conn, err error) { fmt.Fprintf(c, "reject %v\r\n", err) }

func TestServe(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	addr := proxytest.Serve(t, greeter{}, proxy.ListenerInfo{Protocol: "pop3"})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if line != "hello pop3 pop3\r\n" {
		t.Fatalf("got %q", line)
	}
}

func TestAuthenticator(t *testing.T) {
	a := proxytest.NewAuthenticator()
	acct := &proxy.Account{Name: "alice@gmail.com"}
	a.Add("Alice@Gmail.com", "pw1", acct)
	ctx := context.Background()
	ip := netip.MustParseAddr("127.0.0.1")
	tests := []struct {
		user, pw string
		want     error
	}{
		{"alice@gmail.com", "pw1", nil},
		{"ALICE@gmail.com", "pw1", nil},
		{"alice@gmail.com", "PW1", proxy.ErrBadCredentials},
		{"bob@gmail.com", "pw1", proxy.ErrBadCredentials},
	}
	for _, tt := range tests {
		got, err := a.Authenticate(ctx, ip, tt.user, tt.pw)
		if !errors.Is(err, tt.want) || (tt.want == nil && got != acct) {
			t.Errorf("Authenticate(%q, %q) = %v, %v; want %v", tt.user, tt.pw, got, err, tt.want)
		}
	}
	if a.Calls() != len(tests) {
		t.Errorf("Calls = %d, want %d", a.Calls(), len(tests))
	}
	a.Fail(proxy.ErrThrottled)
	if _, err := a.Authenticate(ctx, ip, "alice@gmail.com", "pw1"); !errors.Is(err, proxy.ErrThrottled) {
		t.Errorf("after Fail: %v", err)
	}
	if got, err := a.Account("alice@GMAIL.com"); err != nil || got != acct {
		t.Errorf("Account = %v, %v", got, err)
	}
	if _, err := a.Account("bob"); !errors.Is(err, proxy.ErrUnknownAccount) {
		t.Errorf("Account(bob) = %v", err)
	}
}

// fakeT records failures so AssertNoSecrets' own failures can be checked.
type fakeT struct {
	testing.TB
	failed []string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Errorf(format string, args ...any) {
	f.failed = append(f.failed, fmt.Sprintf(format, args...))
}

func TestLogBuffer(t *testing.T) {
	lb := proxytest.NewLogBuffer()
	log := lb.Logger().With("proto", "imap")
	log.Debug("login", "user", "alice", "blob", "c2VjcmV0LXB3") // base64("secret-pw")
	log.WithGroup("g").Info("other", "k", "v")
	if got := lb.Lines("login", "proto=imap"); len(got) != 1 {
		t.Fatalf("Lines = %q", got)
	}
	if got := lb.Lines("g.k=v"); len(got) != 1 {
		t.Fatalf("group line missing: %q", lb.String())
	}
	ft := &fakeT{TB: t}
	lb.AssertNoSecrets(ft, "not-there", "secret-pw", "")
	if len(ft.failed) != 1 || !strings.Contains(ft.failed[0], "secret #1") || strings.Contains(ft.failed[0], "secret-pw") {
		t.Fatalf("AssertNoSecrets failures = %q", ft.failed)
	}
}

func TestServerTLS(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	cfg, pool := proxytest.ServerTLS(t, "")
	addr := proxytest.Serve(t, greeter{}, proxy.ListenerInfo{Protocol: "imap", TLS: proxy.TLSImplicit, TLSConfig: cfg})
	for _, name := range []string{"127.0.0.1", "localhost"} {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: name})
		if err != nil {
			t.Fatalf("verify as %s: %v", name, err)
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if err != nil || line != "hello imap imap\r\n" {
			t.Fatalf("got %q, %v", line, err)
		}
	}
}
