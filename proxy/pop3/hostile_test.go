package pop3_test

import (
	"crypto/tls"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oauthbridge/oauthbridge/proxy"
	"github.com/oauthbridge/oauthbridge/proxy/pop3"
	"github.com/oauthbridge/oauthbridge/proxy/proxytest"
)

func TestOverlongLine(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	b := startBridge(t, bridgeOptions{})
	for _, tc := range []struct {
		name string
		data string
	}{
		{"long line", "USER " + strings.Repeat("a", 3000) + "\r\n"},
		{"no line end", strings.Repeat("x", 64<<10)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := greeted(t, b.addr)
			// The bridge may close before reading everything; a reset
			// while writing is part of the expected outcome.
			go func() {
				c.conn.SetWriteDeadline(time.Now().Add(opTimeout))
				io.WriteString(c.conn, tc.data)
			}()
			if got := c.line(); got != "-ERR Line too long" {
				t.Errorf("got %q", got)
			}
			c.closed()
		})
	}
}

// Garbage gets -ERR per line, and the connection is closed after ten.
func TestGarbage(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	b := startBridge(t, bridgeOptions{})
	c := greeted(t, b.addr)
	junk := []string{"\x00\x01\x02", "GET / HTTP/1.1", "\xff\xfe", "A1 LOGIN x y", "EHLO x", "", "....", "+OK", "-ERR", "USER"}
	for i, j := range junk {
		got := c.cmd(j)
		if !strings.HasPrefix(got, "-ERR") {
			t.Fatalf("line %d %q: %q", i, j, got)
		}
	}
	if rest := c.closed(); rest != "" {
		t.Errorf("after garbage: %q", rest)
	}
}

// clientHello captures the first flight of a real TLS client.
func clientHello(t *testing.T) []byte {
	t.Helper()
	a, b := net.Pipe()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tls.Client(a, &tls.Config{ServerName: "localhost"}).Handshake()
	}()
	buf := make([]byte, 4096)
	b.SetReadDeadline(time.Now().Add(opTimeout))
	n, err := b.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	a.Close()
	wg.Wait()
	return buf[:n]
}

// A TLS client on the plaintext port gets -ERR and a close at once, not a
// wait for the login timeout.
func TestTLSClientHelloOnPlainPort(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	b := startBridge(t, bridgeOptions{tune: func(s *pop3.Server) { s.LoginTimeout = time.Minute }})
	hello := clientHello(t)
	c := greeted(t, b.addr)
	start := time.Now()
	c.conn.Write(hello)
	if got := c.line(); got != "-ERR TLS handshake on a plaintext port: use STLS, or the implicit-TLS port" {
		t.Errorf("got %q", got)
	}
	c.closed()
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("closed after %v", d)
	}
}

// A client trickling a byte at a time, or stalling mid-line, is closed
// when the login deadline passes: the deadline is absolute, not per read.
func TestSlowloris(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	const loginTimeout = 500 * time.Millisecond
	b := startBridge(t, bridgeOptions{tune: func(s *pop3.Server) { s.LoginTimeout = loginTimeout }})

	t.Run("stall", func(t *testing.T) {
		c := greeted(t, b.addr)
		io.WriteString(c.conn, "US")
		start := time.Now()
		c.closed()
		if d := time.Since(start); d > loginTimeout+5*time.Second {
			t.Errorf("closed after %v", d)
		}
	})
	t.Run("drip", func(t *testing.T) {
		c := greeted(t, b.addr)
		start := time.Now()
		c.dripUntilClosed(t, 20*time.Millisecond, 'x')
		if d := time.Since(start); d > loginTimeout+5*time.Second {
			t.Errorf("closed after %v", d)
		}
	})
}

// Clients that vanish at every step of the pre-login dialogue leave no
// goroutine behind (VerifyNoLeaks) and no handler running (the listener's
// shutdown in cleanup fails the test otherwise).
func TestEarlyDisconnects(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	srvTLS, _ := testTLS(t)
	b := startBridge(t, bridgeOptions{info: proxy.ListenerInfo{TLS: proxy.TLSStartTLS, TLSConfig: srvTLS}})
	steps := map[string]func(c *testClient){
		"before greeting": func(c *testClient) {},
		"after greeting":  func(c *testClient) { c.line() },
		"mid line":        func(c *testClient) { c.line(); io.WriteString(c.conn, "US") },
		"after USER":      func(c *testClient) { c.line(); c.ok("USER " + user) },
		"in AUTH PLAIN":   func(c *testClient) { c.line(); c.send("AUTH PLAIN"); c.line() },
		"in AUTH LOGIN":   func(c *testClient) { c.line(); c.send("AUTH LOGIN"); c.line(); c.send(b64(user)); c.line() },
		"in STLS":         func(c *testClient) { c.line(); c.ok("STLS") },
		"in CAPA":         func(c *testClient) { c.line(); c.send("CAPA") },
	}
	for name, step := range steps {
		t.Run(name, func(t *testing.T) {
			c := dialClient(t, b.addr)
			step(c)
			c.conn.Close()
		})
	}
}
