package imap

import (
	"bufio"
	"encoding/base64"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthbridge/oauthbridge/proxy"
)

// rawConn is a byte-level IMAP client for wire transcripts.
type rawConn struct {
	c  net.Conn
	br *bufio.Reader
}

func rawDial(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{c: c, br: bufio.NewReader(c)}
}

func (r *rawConn) send(t *testing.T, line string) {
	t.Helper()
	r.sendRaw(t, line+"\r\n")
}

func (r *rawConn) sendRaw(t *testing.T, s string) {
	t.Helper()
	r.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := r.c.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
}

// readLine returns the next line without CRLF.
func (r *rawConn) readLine(t *testing.T) string {
	t.Helper()
	r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	l, err := r.br.ReadString('\n')
	if err != nil {
		t.Fatalf("read: %v (got %q)", err, l)
	}
	return strings.TrimRight(l, "\r\n")
}

// expect reads one line and checks its prefix.
func (r *rawConn) expect(t *testing.T, prefix string) string {
	t.Helper()
	l := r.readLine(t)
	if !strings.HasPrefix(l, prefix) {
		t.Fatalf("got %q, want a line starting with %q", l, prefix)
	}
	return l
}

// expectExact reads one line and checks it.
func (r *rawConn) expectExact(t *testing.T, want string) {
	t.Helper()
	if l := r.readLine(t); l != want {
		t.Fatalf("got  %q\nwant %q", l, want)
	}
}

// expectClosed checks the connection is closed with no more lines.
func (r *rawConn) expectClosed(t *testing.T) {
	t.Helper()
	r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	l, err := r.br.ReadString('\n')
	if err == nil {
		t.Fatalf("got %q, want the connection closed", l)
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("connection still open")
	}
}

// rawLogin dials addr and logs in with LOGIN.
func rawLogin(t *testing.T, addr string) *rawConn {
	t.Helper()
	r := rawDial(t, addr)
	r.expect(t, "* OK")
	r.send(t, "a LOGIN "+testUser+" "+testPass)
	r.expect(t, "a OK")
	return r
}

// rawSelected is rawLogin, then SELECT INBOX (its untagged lines read).
func rawSelected(t *testing.T, addr string) *rawConn {
	t.Helper()
	r := rawLogin(t, addr)
	r.send(t, "b SELECT INBOX")
	for !strings.HasPrefix(r.readLine(t), "b OK") {
	}
	return r
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func xoauth2For(user, tok string) []byte { return proxy.XOAuth2Payload(user, tok) }

var oauth2TokenStale = oauth2.Token{AccessToken: "ya29.stale-token-the-upstream-does-not-know", Expiry: time.Now().Add(time.Hour)}

func newReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }
