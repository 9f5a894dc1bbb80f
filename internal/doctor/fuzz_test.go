package doctor

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/oauthbridge/oauthbridge/proxy"
)

// FuzzStartTLS feeds arbitrary server bytes to the hand-written STARTTLS
// exchanges: they must end (deadline), never panic, and only report a
// success after the protocol's go-ahead.
func FuzzStartTLS(f *testing.F) {
	f.Add(uint8(0), []byte("* OK ready\r\nD1 OK go\r\n"))
	f.Add(uint8(0), []byte("* OK ready\r\n* CAPABILITY x\r\nD1 NO\r\n"))
	f.Add(uint8(1), []byte("+OK\r\n+OK go\r\n"))
	f.Add(uint8(1), []byte("+OK\r\n-ERR no\r\n"))
	f.Add(uint8(2), []byte("220-a\r\n220 b\r\n250-x\r\n250 STARTTLS\r\n220 go\r\n"))
	f.Add(uint8(2), []byte("220 b\r\n250 STARTTLS\r\n454 no\r\n"))
	f.Add(uint8(2), []byte("22\r\n"))
	f.Add(uint8(2), []byte(strings.Repeat("250-"+strings.Repeat("x", 100)+"\r\n", 200)))
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		proto := []string{"imap", "pop3", "smtp"}[int(which)%3]
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		r := &run{c: &Checker{}, proto: proto, conn: &scriptConn{Reader: bytes.NewReader(data)}, ep: proxy.Endpoint{Addr: "x:1"}}
		s := startTLSStep(ctx, r)
		if s.OK {
			goAhead := map[string]string{"imap": "D1 OK", "pop3": "+OK", "smtp": "220"}[proto]
			if !strings.Contains(strings.ToUpper(string(data)), goAhead) {
				t.Fatalf("%s STARTTLS reported ok without %q in %q", proto, goAhead, data)
			}
		} else if s.Fix == "" {
			t.Fatalf("failure without a fix: %+v", s)
		}
	})
}

// scriptConn is a server that says data and then closes: reads return
// data then EOF, writes are accepted and dropped.
type scriptConn struct {
	*bytes.Reader
	net.Conn // nil: only the methods below are called
}

func (c *scriptConn) Read(p []byte) (int, error)  { return c.Reader.Read(p) }
func (c *scriptConn) Write(p []byte) (int, error) { return len(p), nil }
func (c *scriptConn) Close() error                { return nil }
func (c *scriptConn) SetDeadline(time.Time) error { return nil }
