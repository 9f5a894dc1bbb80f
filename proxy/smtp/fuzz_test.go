package smtp

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/oauthbridge/oauthbridge/proxy"
	"github.com/oauthbridge/oauthbridge/proxy/proxytest"
)

var replyLine = regexp.MustCompile(`^[2-5][0-9][0-9][ -]`)

// FuzzClientSession feeds arbitrary client bytes to a whole session (no
// upstream: it is unreachable, so AUTH with the right password fails with
// 454). Whatever the input, the session ends, every line the client gets
// is a reply line, and no internal error text (Go error strings) reaches
// it.
func FuzzClientSession(f *testing.F) {
	pw := "fuzz-pw"
	for _, s := range []string{
		"EHLO x\r\nAUTH PLAIN " + b64("\x00u@x\x00"+pw) + "\r\nMAIL FROM:<a@b>\r\nQUIT\r\n",
		"EHLO x\r\nAUTH LOGIN\r\n" + b64("u@x") + "\r\n" + b64(pw) + "\r\nRCPT TO:<a@b>\r\nDATA\r\n",
		"HELO x\r\nMAIL FROM:<a@b> SIZE=99999999999\r\nBDAT 10 LAST\r\n0123456789",
		"EHLO x\r\nAUTH PLAIN =\r\nAUTH PLAIN\r\n*\r\nSTARTTLS\r\nVRFY x\r\nNOOP\r\nRSET\r\n",
		"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
		"EHLO " + strings.Repeat("x", 3000) + "\r\n",
		"AUTH PLAIN !!!\r\nEHLO x\r\nAUTH XOAUTH2 abc\r\nAUTH LOGIN " + b64("u@x") + "\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	auth := proxytest.NewAuthenticator()
	auth.Add("u@x", pw, &proxy.Account{Name: "u@x", UpstreamUser: "u@x",
		Tokens: staticToken("tok"), SMTP: proxy.Endpoint{Addr: "upstream.invalid:465"}})
	srv := &Server{
		Auth:         auth,
		Dialer:       &proxy.Dialer{Dial: failDial},
		Hostname:     "fuzz.test",
		ReadTimeout:  2 * time.Second,
		LoginTimeout: 2 * time.Second,
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		client, server := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer server.Close()
			srv.ServeConn(context.Background(), &proxy.Conn{Conn: server, Remote: netip.MustParseAddr("127.0.0.1"),
				Listener: &proxy.ListenerInfo{Protocol: proto, Loopback: true}, ID: "fuzz"})
		}()
		out := make(chan string, 1)
		go func() {
			b, _ := io.ReadAll(client)
			out <- string(b)
		}()
		client.SetWriteDeadline(time.Now().Add(5 * time.Second))
		client.Write(in) // may fail when the server closed early
		client.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("session did not end")
		}
		sc := bufio.NewScanner(strings.NewReader(<-out))
		for sc.Scan() {
			line := sc.Text()
			if !replyLine.MatchString(line) {
				t.Fatalf("not a reply line: %q", line)
			}
			for _, leak := range []string{"smtp: ", "proxy: ", "sasl: ", "Error: transaction failed", "test:"} {
				if strings.Contains(line, leak) {
					t.Fatalf("internal text reached the client: %q", line)
				}
			}
		}
	})
}

func failDial(ctx context.Context, network, addr string) (net.Conn, error) {
	return nil, errors.New("test: no upstream")
}
