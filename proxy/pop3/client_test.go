package pop3_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testClient is the legacy client of the component tests: a raw POP3
// client on a real socket, so tests see exactly the bytes the bridge
// sends.
type testClient struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

// opTimeout bounds every client read and write in tests: a hang becomes
// a test failure, not a stuck run.
const opTimeout = 20 * time.Second

func dialClient(t testing.TB, addr string) *testClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, opTimeout)
	if err != nil {
		t.Fatalf("dial bridge: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return &testClient{t: t, conn: conn, r: bufio.NewReader(conn)}
}

// greeted dials and reads the greeting.
func greeted(t testing.TB, addr string) *testClient {
	t.Helper()
	c := dialClient(t, addr)
	if g := c.line(); !strings.HasPrefix(g, "+OK") {
		t.Fatalf("greeting %q", g)
	}
	return c
}

func (c *testClient) send(line string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(opTimeout))
	if _, err := io.WriteString(c.conn, line+"\r\n"); err != nil {
		c.t.Fatalf("send %q: %v", line, err)
	}
}

// line reads one line without its CRLF.
func (c *testClient) line() string {
	c.t.Helper()
	l, err := c.readLine()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return l
}

func (c *testClient) readLine() (string, error) {
	c.conn.SetReadDeadline(time.Now().Add(opTimeout))
	l, err := c.r.ReadString('\n')
	if err != nil {
		return l, err
	}
	if !strings.HasSuffix(l, "\r\n") {
		c.t.Errorf("line %q not terminated by CRLF", l)
	}
	return strings.TrimSuffix(l, "\r\n"), nil
}

// cmd sends a command and returns the status line.
func (c *testClient) cmd(line string) string {
	c.t.Helper()
	c.send(line)
	return c.line()
}

// ok sends a command and fails the test unless the answer is +OK.
func (c *testClient) ok(line string) string {
	c.t.Helper()
	st := c.cmd(line)
	if !strings.HasPrefix(st, "+OK") {
		c.t.Fatalf("%s: %q", line, st)
	}
	return st
}

// errReply sends a command and fails the test unless the answer is -ERR.
func (c *testClient) errReply(line string) string {
	c.t.Helper()
	st := c.cmd(line)
	if !strings.HasPrefix(st, "-ERR") {
		c.t.Fatalf("%s: %q, want -ERR", line, st)
	}
	return st
}

// rawBody reads a multi-line body up to and including the terminator and
// returns it raw (dot-stuffed, terminator included).
func (c *testClient) rawBody() []byte {
	c.t.Helper()
	var b []byte
	lineStart := true
	for {
		c.conn.SetReadDeadline(time.Now().Add(opTimeout))
		l, err := c.r.ReadSlice('\n')
		b = append(b, l...)
		if err == bufio.ErrBufferFull {
			lineStart = false
			continue
		}
		if err != nil {
			c.t.Fatalf("read body: %v", err)
		}
		if lineStart && bytes.Equal(l, []byte(".\r\n")) {
			return b
		}
		lineStart = true
	}
}

// body reads a multi-line body and undoes dot-stuffing (RFC 1939 §3).
func (c *testClient) body() []byte {
	c.t.Helper()
	return unstuff(c.rawBody())
}

// unstuff turns a raw multi-line body (terminator included) back into the
// message.
func unstuff(raw []byte) []byte {
	raw = bytes.TrimSuffix(raw, []byte(".\r\n"))
	var out []byte
	for len(raw) > 0 {
		line := raw
		if end := bytes.Index(raw, []byte("\r\n")); end >= 0 {
			line = raw[:end+2]
		}
		raw = raw[len(line):]
		if line[0] == '.' {
			line = line[1:]
		}
		out = append(out, line...)
	}
	return out
}

// multi sends a command expecting a multi-line answer and returns the
// lines of its body.
func (c *testClient) multi(line string) []string {
	c.t.Helper()
	c.ok(line)
	body := string(c.body())
	if body == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(body, "\r\n"), "\r\n")
}

// retr fetches message n and returns it unstuffed.
func (c *testClient) retr(n int) []byte {
	c.t.Helper()
	c.ok("RETR " + strconv.Itoa(n))
	return c.body()
}

// closed asserts the bridge closes the connection (after any bytes still
// in flight) within opTimeout, and returns what it sent before closing.
func (c *testClient) closed() string {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(opTimeout))
	rest, err := io.ReadAll(c.r)
	if err != nil && !isReset(err) {
		c.t.Fatalf("waiting for close: %v (got %q)", err, rest)
	}
	return string(rest)
}

// dripUntilClosed writes b every interval (a slowloris client) until the
// bridge closes the connection, which it asserts as closed does.
func (c *testClient) dripUntilClosed(t *testing.T, interval time.Duration, b byte) {
	t.Helper()
	stop := make(chan struct{})
	dripped := make(chan struct{})
	go func() {
		defer close(dripped)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			c.conn.SetWriteDeadline(time.Now().Add(opTimeout))
			if _, err := c.conn.Write([]byte{b}); err != nil {
				return
			}
		}
	}()
	c.closed()
	close(stop)
	<-dripped
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe"))
}

// startTLS upgrades the client after STLS was answered +OK.
func (c *testClient) startTLS(cfg *tls.Config) {
	c.t.Helper()
	if c.r.Buffered() > 0 {
		c.t.Fatalf("bytes after STLS +OK: %d", c.r.Buffered())
	}
	tc := tls.Client(c.conn, cfg)
	tc.SetDeadline(time.Now().Add(opTimeout))
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake: %v", err)
	}
	c.conn = tc
	c.r = bufio.NewReader(tc)
}

// transcript plays a dialogue: "C: line" is sent, a run of "S: line"
// lines must arrive exactly, byte for byte (CRLF line ends). Blank lines
// and leading whitespace of the script are ignored.
func (c *testClient) transcript(script string) {
	c.t.Helper()
	var want bytes.Buffer
	flush := func() {
		if want.Len() == 0 {
			return
		}
		got := make([]byte, want.Len())
		c.conn.SetReadDeadline(time.Now().Add(opTimeout))
		n, err := io.ReadFull(c.r, got)
		if err != nil || !bytes.Equal(got, want.Bytes()) {
			c.t.Fatalf("transcript mismatch:\n got: %q (err %v)\nwant: %q", got[:n], err, want.Bytes())
		}
		want.Reset()
	}
	for _, l := range strings.Split(script, "\n") {
		// Indentation goes, trailing blanks stay: "S: + " is a SASL
		// challenge with an empty payload.
		l = strings.TrimLeft(l, " \t")
		switch {
		case l == "":
		case strings.HasPrefix(l, "S: "), l == "S:":
			want.WriteString(strings.TrimPrefix(strings.TrimPrefix(l, "S:"), " ") + "\r\n")
		case strings.HasPrefix(l, "C: "):
			flush()
			c.send(strings.TrimPrefix(l, "C: "))
		default:
			c.t.Fatalf("bad transcript line %q", l)
		}
	}
	flush()
}
