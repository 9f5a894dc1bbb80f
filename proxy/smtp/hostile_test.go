package smtp

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/oauthbridge/oauthbridge/proxy"
	"github.com/oauthbridge/oauthbridge/proxy/proxytest"
)

func TestOverlongLineClosesConnection(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	b := startBridge(t, bridgeOpts{})
	w := dialWire(t, b.addr)
	w.reply()
	w.send("EHLO " + strings.Repeat("a", 5000) + "\r\n")
	if got := w.reply(); got != "500 5.4.0 Too long line, closing connection\r\n" {
		t.Fatalf("got %q", got)
	}
	w.closed()
}

// clientHello captures the first flight of a real TLS client.
func clientHello(t *testing.T) []byte {
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	go tls.Client(c1, &tls.Config{ServerName: "localhost"}).Handshake()
	buf := make([]byte, 4096)
	n, err := c2.Read(buf)
	if err != nil || n < 5 || buf[0] != 0x16 {
		t.Fatalf("no ClientHello: %v %x", err, buf[:n])
	}
	return buf[:n]
}

// TestTLSOnPlaintextPort: a TLS client on the plaintext port (it sends
// its ClientHello without waiting for the greeting) gets one clear line
// and a closed connection at once, not a wait for a CRLF that never comes.
func TestTLSOnPlaintextPort(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	b := startBridge(t, bridgeOpts{})
	hello := clientHello(t)
	c, err := net.Dial("tcp", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second)) // far below the 5 min read timeout
	if _, err := c.Write(hello); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("not closed: %v (read %q)", err, got)
	}
	want := greeting + "500 5.5.1 TLS handshake on a plaintext port: use STARTTLS or the implicit TLS port\r\n"
	if string(got) != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

// TestBinaryGarbageCloses: bytes that are no SMTP at all end in a closed
// connection after go-smtp's error limit, not a loop.
func TestBinaryGarbageCloses(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	b := startBridge(t, bridgeOpts{})
	w := dialWire(t, b.addr)
	w.reply()
	garbage := bytes.Repeat([]byte("\x00\xff\x01 \r\n"), 10)
	w.conn.Write(garbage)
	w.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	rest, err := io.ReadAll(w.r)
	if err != nil {
		t.Fatalf("not closed: %v (read %q)", err, rest)
	}
	if !strings.Contains(string(rest), "500 5.5.1 Too many errors") {
		t.Fatalf("got %q", rest)
	}
}

// TestSlowloris: a client trickling a command gets "421 4.4.2" when the
// per-command read timeout passes (go-smtp sets it once per line, so
// trickling does not extend it), and one that never logs in is closed at
// the login timeout although it keeps sending commands.
func TestSlowloris(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	b := startBridge(t, bridgeOpts{configure: func(s *Server) {
		s.ReadTimeout = 400 * time.Millisecond
		s.LoginTimeout = 1500 * time.Millisecond
	}})

	t.Run("trickle", func(t *testing.T) {
		w := dialWire(t, b.addr)
		w.reply()
		start := time.Now()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		cmd := "EHLO a-very-long-client-name.example\r\n"
		var got []byte
		done := make(chan struct{})
		go func() {
			defer close(done)
			got, _ = io.ReadAll(w.r)
		}()
	loop:
		for i := 0; i < len(cmd); i++ {
			select {
			case <-done:
				break loop
			case <-tick.C:
				w.conn.Write([]byte{cmd[i]})
			}
		}
		<-done
		if string(got) != "421 4.4.2 bridge.test Idle timeout, closing connection\r\n" {
			t.Fatalf("got %q", got)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("closed after %v", d)
		}
	})

	t.Run("never logs in", func(t *testing.T) {
		w := dialWire(t, b.addr)
		w.reply()
		start := time.Now()
		var last string
		for time.Since(start) < 10*time.Second {
			w.send("NOOP\r\n")
			line, err := w.r.ReadString('\n')
			if err != nil {
				break
			}
			last = line
			if strings.HasPrefix(line, "421") {
				break
			}
		}
		if last != "421 4.4.2 bridge.test Login timeout, closing connection\r\n" {
			t.Fatalf("last reply %q", last)
		}
		if d := time.Since(start); d < time.Second || d > 5*time.Second {
			t.Fatalf("closed after %v, want about the 1.5s login timeout", d)
		}
		w.closed()
	})
}

// TestNoOpenRelay: a client outside relay_without_auth.from cannot get a
// message out without AUTH, however it orders or pipelines the commands,
// and the upstream is never contacted.
func TestNoOpenRelay(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	b := startBridge(t, bridgeOpts{configure: func(s *Server) {
		s.RelayFrom = mustPrefix("192.0.2.50/32")
		s.RelayAccount = scanner
	}})
	w := dialWire(t, b.addr)
	w.reply()
	w.expect("EHLO client.test\r\n", ehloTLS)
	// Pipelined (RFC 2920): every command answered in order, none accepted.
	w.send("MAIL FROM:<ceo@gmail.com>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\nSubject: spam\r\n\r\nbuy\r\n.\r\n")
	for _, want := range []string{
		"530 5.7.0 Authentication required\r\n",
		"502 5.5.1 Missing MAIL FROM command.\r\n",
		"502 5.5.1 Missing RCPT TO command.\r\n",
	} {
		if got := w.reply(); got != want {
			t.Fatalf("got %q want %q", got, want)
		}
	}
	// The message lines that followed are commands now: refused, and the
	// error limit closes the connection.
	w.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	rest, _ := io.ReadAll(w.r)
	if strings.Contains(string(rest), "250 2.0.0 OK") || strings.Contains(string(rest), "354") {
		t.Fatalf("something was accepted: %q", rest)
	}
	// A failed AUTH does not open the door either.
	w2 := dialWire(t, b.addr)
	w2.reply()
	w2.expect("EHLO client.test\r\n", ehloTLS)
	w2.expect("AUTH PLAIN "+b64("\x00"+alice+"\x00guess")+"\r\n", "535 5.7.8 Invalid credentials\r\n")
	w2.expect("MAIL FROM:<alice@gmail.com>\r\n", "530 5.7.0 Authentication required\r\n")
	w2.expect("RCPT TO:<victim@example.net>\r\n", "502 5.5.1 Missing MAIL FROM command.\r\n")
	for _, u := range []string{alice, bob, scanner} {
		if n := b.fg.Logins(u, "smtp"); n != 0 {
			t.Errorf("%s logged in upstream %d times", u, n)
		}
	}
	if n := len(b.fg.Sent()); n != 0 {
		t.Errorf("%d messages reached the upstream", n)
	}
}

// TestMaxRecipients: go-smtp's cap answers 452 4.5.3 (RFC 5321
// §4.5.3.1.10) and the extra recipient never reaches the upstream.
func TestMaxRecipients(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	b := startBridge(t, bridgeOpts{configure: func(s *Server) { s.MaxRecipients = 2 }})
	c := b.login(alice, alicePW)
	if err := c.Mail(alice, nil); err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{0, 0, 452} {
		if got := smtpCode(c.Rcpt(fmt.Sprintf("r%d@example.com", i), nil)); got != want {
			t.Fatalf("RCPT %d: code %d, want %d", i, got, want)
		}
	}
	w, _ := c.Data()
	w.Write(testMessage("capped", 1))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := b.waitSent(1)[0]; len(got.To) != 2 {
		t.Fatalf("delivered to %q", got.To)
	}
}

// TestReject: a connection over the listener's caps gets one 421 greeting.
func TestReject(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	srv := &Server{Auth: proxytest.NewAuthenticator(), Hostname: "bridge.test"}
	l := proxytest.Start(t, proxy.ListenerConfig{Info: proxy.ListenerInfo{Protocol: proto},
		Limiter: proxy.NewLimiter(proxy.Limits{MaxConnections: 1})}, srv)
	first := dialWire(t, l.Addr().String())
	if got := first.reply(); got != greeting {
		t.Fatalf("first: %q", got)
	}
	second := dialWire(t, l.Addr().String())
	if got := second.reply(); got != "421 4.7.0 bridge.test Too many concurrent sessions, close another client first\r\n" {
		t.Fatalf("second: %q", got)
	}
	second.closed()
}
