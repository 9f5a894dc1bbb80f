package pop3_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/oauthbridge/oauthbridge/proxy"
	"github.com/oauthbridge/oauthbridge/proxy/pop3"
	"github.com/oauthbridge/oauthbridge/proxy/proxytest"
	"golang.org/x/oauth2"
)

// scriptConn is a net.Conn whose reads return a fixed script then EOF
// and whose writes are recorded: a whole session runs synchronously on
// the fuzzing goroutine.
type scriptConn struct {
	in  *bytes.Reader
	out bytes.Buffer
}

func (c *scriptConn) Read(p []byte) (int, error)  { return c.in.Read(p) }
func (c *scriptConn) Write(p []byte) (int, error) { return c.out.Write(p) }
func (c *scriptConn) Close() error                { return nil }
func (c *scriptConn) LocalAddr() net.Addr         { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 110} }
func (c *scriptConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzPreauthSession runs the AUTHORIZATION state on arbitrary client
// bytes. Whatever comes in, the session ends (at EOF), never panics, and
// answers only with well-formed lines of printable ASCII: the bridge
// never reflects client bytes before login, so nothing a client sends can
// split a response or smuggle text into another client's view.
func FuzzPreauthSession(f *testing.F) {
	for _, s := range []string{
		"CAPA\r\nQUIT\r\n",
		"USER alice@gmail.com\r\nPASS nope\r\nPASS x\r\n",
		"AUTH PLAIN\r\n*\r\nAUTH LOGIN\r\n" + b64(user) + "\r\n" + b64("pw") + "\r\n",
		"AUTH PLAIN " + b64("\x00"+user+"\x00"+appPassword) + "\r\nSTAT\r\n",
		"AUTH\r\nSTLS\r\nAPOP a b\r\nRETR 1\r\n\x16\x03\x01\x02\x00",
		"USER\r\n\r\n \r\nxyzzy\r\n" + string(bytes.Repeat([]byte("A"), 5000)),
		"auth login =\r\n=\r\n",
	} {
		f.Add([]byte(s))
	}
	auth := proxytest.NewAuthenticator()
	tokens := &countingTokens{get: func(ctx context.Context, force bool) (*oauth2.Token, error) { return nil, errNoTokens }}
	auth.Add(user, appPassword, &proxy.Account{Name: user, UpstreamUser: user, Tokens: tokens, POP3: proxy.Endpoint{Addr: "127.0.0.1:1"}})
	srv := &pop3.Server{Auth: auth}
	info := &proxy.ListenerInfo{Protocol: "pop3", Loopback: true}
	f.Fuzz(func(t *testing.T, in []byte) {
		conn := &scriptConn{in: bytes.NewReader(in)}
		srv.ServeConn(context.Background(), &proxy.Conn{Conn: conn, Remote: loopback, Listener: info, ID: "fuzz"})
		out := conn.out.Bytes()
		if !bytes.HasPrefix(out, []byte("+OK oauthbridge POP3 ready\r\n")) {
			t.Fatalf("no greeting: %q", out)
		}
		for len(out) > 0 {
			i := bytes.Index(out, []byte("\r\n"))
			if i < 0 {
				t.Fatalf("unterminated output %q", out)
			}
			for _, b := range out[:i] {
				if b < 0x20 || b > 0x7e {
					t.Fatalf("byte %#x in reply line %q", b, out[:i])
				}
			}
			if i > 510 {
				t.Fatalf("reply line of %d octets", i)
			}
			out = out[i+2:]
		}
		_, err := conn.in.Read(make([]byte, 1))
		if err != io.EOF && len(in) < 64<<10 {
			// The session stopped early: only for a reason it gives.
			if !bytes.Contains(conn.out.Bytes(), []byte("+OK Bye")) &&
				!bytes.Contains(conn.out.Bytes(), []byte("-ERR")) {
				t.Fatalf("session ended with input left and no reason: %q", conn.out.Bytes())
			}
		}
	})
}
