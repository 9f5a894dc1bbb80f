package smtp

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// wire is a raw client for byte-exact transcripts.
type wire struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

func dialWire(t testing.TB, addr string) *wire {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return &wire{t: t, conn: c, r: bufio.NewReader(c)}
}

// reply reads one complete (possibly multi-line) reply, verbatim.
func (w *wire) reply() string {
	w.t.Helper()
	var sb strings.Builder
	for {
		line, err := w.r.ReadString('\n')
		sb.WriteString(line)
		if err != nil {
			w.t.Fatalf("reading reply: %v (got %q)", err, sb.String())
		}
		if len(line) < 4 || line[3] != '-' {
			return sb.String()
		}
	}
}

func (w *wire) send(line string) {
	w.t.Helper()
	if _, err := io.WriteString(w.conn, line); err != nil {
		w.t.Fatal(err)
	}
}

// expect sends line and checks the reply byte for byte.
func (w *wire) expect(line, want string) {
	w.t.Helper()
	w.send(line)
	if got := w.reply(); got != want {
		w.t.Fatalf("after %q:\ngot  %q\nwant %q", line, got, want)
	}
}

// ehlo says EHLO and returns the reply, which must be a 250.
func (w *wire) ehlo() string {
	w.t.Helper()
	w.send("EHLO client.test\r\n")
	r := w.reply()
	if !strings.HasPrefix(r, "250-Hello client.test\r\n") {
		w.t.Fatalf("EHLO: %q", r)
	}
	return r
}

func (w *wire) startTLS(cfg *tls.Config) {
	w.t.Helper()
	w.expect("STARTTLS\r\n", "220 2.0.0 Ready to start TLS\r\n")
	tc := tls.Client(w.conn, cfg)
	if err := tc.Handshake(); err != nil {
		w.t.Fatalf("TLS handshake: %v", err)
	}
	w.conn = tc
	w.r = bufio.NewReader(tc)
}

// closed checks the server closes the connection (after any bytes).
func (w *wire) closed() {
	w.t.Helper()
	w.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	rest, err := io.ReadAll(w.r)
	if err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			w.t.Fatalf("connection not closed (read %q)", rest)
		}
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
