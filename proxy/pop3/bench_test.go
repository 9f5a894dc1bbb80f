package pop3_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/oauthbridge/oauthbridge/proxy"
	"github.com/oauthbridge/oauthbridge/proxy/pop3"
)

// Throughput of RETR over a 50 MiB maildrop (five 10 MiB messages),
// directly from the fake Gmail over TLS versus through the bridge (the
// client on a plaintext loopback listener, as legacy clients use it; the
// bridge on TLS to the upstream). Run both in one go and compare MB/s:
//
//	go test -run '^$' -bench 'RETR' -benchtime 20x ./proxy/pop3/

const (
	benchMessages    = 5
	benchMessageSize = 10 << 20
)

// benchOptions: production logging (no debug transcripts).
var benchOptions = envOptions{bridgeOptions: bridgeOptions{tune: func(s *pop3.Server) { s.Logger = nil }}}

func benchEnv(b *testing.B) (*upstreamEnv, int64) {
	b.Helper()
	e := startEnv(b, benchOptions)
	var total int64
	for i := range benchMessages {
		m := message(fmt.Sprintf("bench%d", i), benchMessageSize)
		total += int64(len(m))
		e.appendMessages(b, m)
	}
	return e, total
}

func BenchmarkRETRDirect(b *testing.B) {
	e, total := benchEnv(b)
	runRETR(b, direct(b, e), total)
}

func BenchmarkRETRBridge(b *testing.B) {
	e, total := benchEnv(b)
	runRETR(b, bridged(b, e), total)
}

// Latency of one small command (NOOP), direct and through the bridge: the
// difference of the two is what the bridge adds per command.
//
//	go test -run '^$' -bench 'NOOP' ./proxy/pop3/
func BenchmarkNOOPDirect(b *testing.B) { runNOOP(b, direct(b, startEnv(b, benchOptions))) }
func BenchmarkNOOPBridge(b *testing.B) { runNOOP(b, bridged(b, startEnv(b, benchOptions))) }

func runNOOP(b *testing.B, c *benchClient) {
	b.ResetTimer()
	for range b.N {
		c.cmd("NOOP")
		c.expectOK()
	}
	b.StopTimer()
	c.cmd("QUIT")
}

// direct logs in to the fake Gmail with XOAUTH2 over TLS.
func direct(b *testing.B, e *upstreamEnv) *benchClient {
	conn, err := tls.Dial("tcp", e.fg.POP3Addr(), e.fg.ClientTLSConfig())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	c := newBenchClient(b, conn)
	c.expectOK()
	// XOAUTH2 in the two-step form (RFC 2449 line limit).
	c.cmd("AUTH XOAUTH2")
	if l := c.line(); !strings.HasPrefix(l, "+") {
		b.Fatalf("AUTH: %q", l)
	}
	c.cmd(base64.StdEncoding.EncodeToString(proxy.XOAuth2Payload(user, e.src.current().AccessToken)))
	c.expectOK()
	return c
}

// bridged logs in through the bridge's plaintext loopback listener.
func bridged(b *testing.B, e *upstreamEnv) *benchClient {
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	c := newBenchClient(b, conn)
	c.expectOK()
	c.cmd("USER " + user)
	c.expectOK()
	c.cmd("PASS " + appPassword)
	c.expectOK()
	return c
}

func runRETR(b *testing.B, c *benchClient, total int64) {
	b.SetBytes(total)
	b.ResetTimer()
	for range b.N {
		var got int64
		for i := 1; i <= benchMessages; i++ {
			c.cmd(fmt.Sprintf("RETR %d", i))
			c.expectOK()
			got += c.drainBody()
		}
		if got < total {
			b.Fatalf("read %d body bytes, want at least %d", got, total)
		}
	}
	b.StopTimer()
	c.cmd("QUIT")
}

// benchClient reads multi-line bodies in bulk, so the client's own cost
// stays small next to what is measured.
type benchClient struct {
	b    *testing.B
	conn net.Conn
	r    *bufio.Reader
}

func newBenchClient(b *testing.B, conn net.Conn) *benchClient {
	conn.SetDeadline(time.Now().Add(10 * time.Minute))
	return &benchClient{b: b, conn: conn, r: bufio.NewReaderSize(conn, 64<<10)}
}

func (c *benchClient) cmd(line string) {
	if _, err := io.WriteString(c.conn, line+"\r\n"); err != nil {
		c.b.Fatal(err)
	}
}

func (c *benchClient) line() string {
	l, err := c.r.ReadString('\n')
	if err != nil {
		c.b.Fatal(err)
	}
	return l
}

func (c *benchClient) expectOK() {
	if l := c.line(); !strings.HasPrefix(l, "+OK") {
		c.b.Fatalf("got %q", l)
	}
}

// drainBody consumes a multi-line body through its terminator and returns
// its length.
func (c *benchClient) drainBody() int64 {
	var n int64
	tail := []byte("\r\n") // the status line's end
	for {
		if c.r.Buffered() == 0 {
			if _, err := c.r.Peek(1); err != nil {
				c.b.Fatal(err)
			}
		}
		buf, _ := c.r.Peek(c.r.Buffered())
		probe := append(tail[:len(tail):len(tail)], buf[:min(len(buf), 4)]...)
		if i := bytes.Index(probe, []byte("\r\n.\r\n")); i >= 0 && i < len(tail) {
			end := i + 5 - len(tail)
			c.r.Discard(end)
			return n + int64(end)
		}
		if i := bytes.Index(buf, []byte("\r\n.\r\n")); i >= 0 {
			c.r.Discard(i + 5)
			return n + int64(i+5)
		}
		tail = append(tail[:0], buf[max(0, len(buf)-4):]...)
		n += int64(len(buf))
		c.r.Discard(len(buf))
	}
}
