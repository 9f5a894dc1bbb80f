package fakegmail

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
)

const alice = "alice@gmail.com"

// start runs a fake with alice (and bob) and closes it at the end.
func start(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Users == nil {
		opts.Users = []string{alice, "bob@gmail.com"}
	}
	s, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// xoauth2 is the test's own XOAUTH2 payload encoder (the fake's parser
// and this encoder are written independently of the bridge's).
func xoauth2(user, token string) string {
	return base64.StdEncoding.EncodeToString([]byte("user=" + user + "\x01auth=Bearer " + token + "\x01\x01"))
}

// saslXOAuth2 is a go-sasl client that answers the error challenge with an
// empty response (see FACTS.md).
type saslXOAuth2 struct {
	user, token string
	challenge   []byte
}

var _ sasl.Client = (*saslXOAuth2)(nil)

func (x *saslXOAuth2) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + x.user + "\x01auth=Bearer " + x.token + "\x01\x01"), nil
}

func (x *saslXOAuth2) Next(ch []byte) ([]byte, error) {
	x.challenge = append([]byte(nil), ch...)
	return []byte{}, nil
}

// rawConn is a line-oriented TLS client for byte-exact transcripts.
type rawConn struct {
	t testing.TB
	c *tls.Conn
	r *bufio.Reader
}

func dialRaw(t testing.TB, s *Server, addr string) *rawConn {
	t.Helper()
	c, err := tls.Dial("tcp", addr, s.ClientTLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, r: bufio.NewReader(c)}
}

func (r *rawConn) send(line string) {
	r.t.Helper()
	if _, err := io.WriteString(r.c, line+"\r\n"); err != nil {
		r.t.Fatalf("send %q: %v", line, err)
	}
}

// line reads one line, CRLF included.
func (r *rawConn) line() string {
	r.t.Helper()
	l, err := r.r.ReadString('\n')
	if err != nil {
		r.t.Fatalf("read line (got %q): %v", l, err)
	}
	return l
}

// expect reads one line and compares it byte for byte (CRLF added).
func (r *rawConn) expect(want string) {
	r.t.Helper()
	if got := r.line(); got != want+"\r\n" {
		r.t.Fatalf("got %q, want %q", got, want+"\r\n")
	}
}

// expectPrefix reads one line and checks its start.
func (r *rawConn) expectPrefix(prefix string) string {
	r.t.Helper()
	got := r.line()
	if !strings.HasPrefix(got, prefix) {
		r.t.Fatalf("got %q, want prefix %q", got, prefix)
	}
	return got
}

// expectEOF reads until the connection ends and returns what came.
func (r *rawConn) expectEOF() string {
	r.t.Helper()
	b, err := io.ReadAll(r.r)
	if err != nil && !isClosedErr(err) {
		r.t.Fatalf("reading to EOF: %v (got %q)", err, b)
	}
	return string(b)
}

// isClosedErr accepts the ways a TLS client sees a server close: EOF
// (close_notify), or an unexpected EOF / reset (a bare TCP close).
func isClosedErr(err error) bool {
	if err == nil || err == io.EOF || err == io.ErrUnexpectedEOF {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "connection reset") || strings.Contains(s, "unexpected EOF") || strings.Contains(s, "broken pipe")
}
