package smtp

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/oauthbridge/oauthbridge/internal/fakegmail"
	"github.com/oauthbridge/oauthbridge/proxy"
	"github.com/oauthbridge/oauthbridge/proxy/proxytest"
)

// Every scenario checks the two promises of DESIGN §7: no message lost,
// none acknowledged (250) without the upstream's 250.

func (b *bridge) resumes(outcome string) float64 {
	return b.counter("oauthbridge_resumes_total", map[string]string{"proto": "smtp", "outcome": outcome})
}

// TestResumeBeforeMail: the upstream ends an idle session (Gmail's 421,
// or a silent close); the next MAIL reconnects and the message goes out.
func TestResumeBeforeMail(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	for _, mode := range []fakegmail.KickMode{fakegmail.KickGmailBye, fakegmail.KickClose} {
		t.Run(mode.String(), func(t *testing.T) {
			b := startBridge(t, bridgeOpts{})
			c := b.login(alice, alicePW)
			if n := b.fg.Kick(alice, mode); n != 1 {
				t.Fatalf("kicked %d sessions", n)
			}
			msg := testMessage("after kick", 3)
			if err := send(c, alice, []string{"x@example.com"}, msg); err != nil {
				t.Fatal(err)
			}
			if got := b.waitSent(1); len(got) != 1 || !bytes.Equal(got[0].Data, msg) {
				t.Fatalf("sent %d", len(got))
			}
			if b.resumes("ok") != 1 || b.resumes("error") != 0 {
				t.Errorf("resumes ok=%v error=%v", b.resumes("ok"), b.resumes("error"))
			}
			if len(b.logs.Lines("upstream resumed", "phase=mail", "account=alice@gmail.com")) != 1 {
				t.Errorf("resume not logged: %s", b.logs.String())
			}
			b.logs.AssertNoSecrets(t, b.secrets()...)
		})
	}
}

// TestResumeBeforeData: the connection is cut when DATA arrives upstream
// (or while idle after the RCPTs): MAIL and only the accepted RCPTs are
// replayed on a new connection, and the message goes out once.
func TestResumeBeforeData(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	const gone = "gone@example.com"
	for _, how := range []string{"fault at DATA", "kick after RCPT"} {
		t.Run(how, func(t *testing.T) {
			b := startBridge(t, bridgeOpts{})
			b.fg.RejectRecipient(gone, 550, "5.1.1 No such user")
			c := b.login(alice, alicePW)
			if err := c.Mail(alice, nil); err != nil {
				t.Fatal(err)
			}
			for _, r := range []string{"a@example.com", gone, "b@example.com"} {
				err := c.Rcpt(r, nil)
				if (r == gone) != (smtpCode(err) == 550) {
					t.Fatalf("RCPT %s: %v", r, err)
				}
			}
			if how == "fault at DATA" {
				b.fg.ArmFault(fakegmail.Fault{User: alice, Proto: fakegmail.ProtoSMTP, OnCommand: "DATA", Kick: fakegmail.KickClose})
			} else {
				b.fg.Kick(alice, fakegmail.KickClose)
			}
			w, err := c.Data()
			if err != nil {
				t.Fatal(err)
			}
			msg := testMessage("replayed", 20)
			w.Write(msg)
			if err := w.Close(); err != nil {
				t.Fatalf("DATA: %v", err)
			}
			got := b.waitSent(1)
			if len(got) != 1 || strings.Join(got[0].To, ",") != "a@example.com,b@example.com" || !bytes.Equal(got[0].Data, msg) {
				t.Fatalf("sent %d, to %q", len(got), got[0].To)
			}
			if b.resumes("ok") != 1 {
				t.Errorf("resumes ok=%v", b.resumes("ok"))
			}
		})
	}
}

// TestRetryDuringData: the connection breaks while the message is being
// sent; the bridge receives the rest into its spool, sends it again on a
// new connection, and it is delivered exactly once. The spool went to
// disk and is gone afterwards.
func TestRetryDuringData(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	t.Run("fake cuts after 354", func(t *testing.T) {
		b := startBridge(t, bridgeOpts{configure: func(s *Server) { s.SpoolMemory = 256 << 10 }})
		c := b.login(alice, alicePW)
		b.fg.ArmFault(fakegmail.Fault{User: alice, Proto: fakegmail.ProtoSMTP, OnCommand: "DATA", Kick: fakegmail.KickMidResponse})
		// Large enough that the fake's close (at the first body bytes)
		// comes back as a failed write while the message is still being
		// sent, not only as a missing reply after the dot.
		msg := bigMessage(4 << 20)
		if err := send(c, alice, []string{"x@example.com"}, msg); err != nil {
			t.Fatalf("DATA: %v", err)
		}
		got := b.waitSent(1)
		if len(got) != 1 || !bytes.Equal(got[0].Data, msg) {
			t.Fatalf("sent %d", len(got))
		}
		if len(b.logs.Lines("message relayed", "retried=true", "spool=disk")) != 1 {
			t.Errorf("log: %s", b.logs.Lines("message"))
		}
		assertEmptyDir(t, b.srv.SpoolDir)
	})
	t.Run("connection cut mid-message", func(t *testing.T) {
		fd := &faultDialer{}
		b := startBridge(t, bridgeOpts{dial: fd.dial, configure: func(s *Server) { s.SpoolMemory = 4 << 10 }})
		c := b.login(alice, alicePW)
		fd.cutNextAfter(20 << 10)             // handshake, AUTH and envelope are far below
		b.fg.Kick(alice, fakegmail.KickClose) // so the next MAIL dials (with the cut armed)
		msg := testMessage("cut", 5000)       // ~100 KiB
		if err := send(c, alice, []string{"x@example.com"}, msg); err != nil {
			t.Fatalf("send: %v", err)
		}
		got := b.waitSent(1)
		if len(got) != 1 || !bytes.Equal(got[0].Data, msg) {
			t.Fatalf("sent %d", len(got))
		}
		if fd.cuts() != 1 {
			t.Fatalf("cut %d connections", fd.cuts())
		}
		if b.resumes("ok") != 2 { // before MAIL (kick), during DATA (cut)
			t.Errorf("resumes ok=%v", b.resumes("ok"))
		}
		assertEmptyDir(t, b.srv.SpoolDir)
	})
}

// TestCutAfterFinalDot: the final dot went out and no reply came. The
// client must not get 250 (the bridge does not know) and gets 451 4.4.0
// saying the message may have been delivered: with KickNoReply the fake
// accepted it (1 copy), with KickClose it did not (0 copies). Sending
// again may duplicate; never losing it silently is the promise
// (at-least-once).
func TestCutAfterFinalDot(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	for _, tc := range []struct {
		mode   fakegmail.KickMode
		copies int
	}{
		{fakegmail.KickNoReply, 1},
		{fakegmail.KickClose, 0},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			b := startBridge(t, bridgeOpts{})
			c := b.login(alice, alicePW)
			fired := b.fg.ArmFault(fakegmail.Fault{User: alice, Proto: fakegmail.ProtoSMTP, OnCommand: "DATA-END", Kick: tc.mode})
			err := send(c, alice, []string{"x@example.com"}, testMessage("no reply", 3))
			se, ok := err.(*gosmtp.SMTPError)
			if !ok || se.Code != 451 || se.EnhancedCode != (gosmtp.EnhancedCode{4, 4, 0}) || !strings.Contains(se.Message, "may have been delivered") {
				t.Fatalf("client got %#v, want 451 4.4.0", err)
			}
			<-fired
			if n := len(b.fg.Sent()); n != tc.copies {
				t.Fatalf("%d copies upstream, want %d", n, tc.copies)
			}
			// The session goes on, on a new upstream connection.
			if err := c.Reset(); err != nil {
				t.Fatal(err)
			}
			if err := send(c, alice, []string{"x@example.com"}, testMessage("next", 3)); err != nil {
				t.Fatal(err)
			}
			b.waitSent(tc.copies + 1)
			assertEmptyDir(t, b.srv.SpoolDir)
		})
	}
}

// TestResumeGivesUp: when the upstream stays unreachable, the resume
// stops after Session.ResumeWithin and the client gets a temporary
// failure, not a hang and not a 250.
func TestResumeGivesUp(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	fd := &faultDialer{}
	b := startBridge(t, bridgeOpts{dial: fd.dial, session: proxy.SessionPolicy{ResumeWithin: 500 * time.Millisecond}})
	c := b.login(alice, alicePW)
	fd.setDown(true)
	b.fg.Kick(alice, fakegmail.KickClose)
	start := time.Now()
	err := c.Mail(alice, nil)
	if se, ok := err.(*gosmtp.SMTPError); !ok || se.Code != 451 || se.EnhancedCode != (gosmtp.EnhancedCode{4, 4, 1}) {
		t.Fatalf("MAIL: %#v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("gave up after %v", d)
	}
	if b.resumes("error") != 1 {
		t.Errorf("resume errors %v", b.resumes("error"))
	}
	// Once the upstream is back, the same session works again.
	fd.setDown(false)
	if err := send(c, alice, []string{"x@example.com"}, testMessage("back", 2)); err != nil {
		t.Fatal(err)
	}
	b.waitSent(1)
}

// TestRotation: an upstream session past its lifetime is replaced between
// transactions, never holding more than two upstream connections.
func TestRotation(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	b := startBridge(t, bridgeOpts{session: proxy.SessionPolicy{Lifetime: time.Nanosecond}})
	c := b.login(alice, alicePW)
	for i := range 2 {
		if err := send(c, alice, []string{"x@example.com"}, testMessage("rot", 2)); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	b.waitSent(2)
	rot := b.counter("oauthbridge_rotations_total", map[string]string{"proto": "smtp", "outcome": "ok", "reason": "session_lifetime"})
	if rot != 2 {
		t.Errorf("rotations %v, want 2", rot)
	}
	if n := b.fg.Logins(alice, "smtp"); n != 3 {
		t.Errorf("upstream logins %d, want 3", n)
	}
	if n := b.fg.MaxConnections(alice, "smtp"); n > 2 {
		t.Errorf("max upstream connections %d", n)
	}
	if len(b.logs.Lines("upstream rotated", "reason=session_lifetime")) != 2 {
		t.Errorf("rotation log: %s", b.logs.Lines("rotat"))
	}
}

// faultDialer dials for real and can cut one connection after a number of
// bytes written, or refuse to dial.
type faultDialer struct {
	mu       sync.Mutex // guards the fields below
	cutAfter int64
	down     bool
	nCuts    int
}

func (f *faultDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, errors.New("test: upstream unreachable")
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil || f.cutAfter == 0 {
		return c, err
	}
	cc := &cutConn{Conn: c, left: f.cutAfter, f: f}
	f.cutAfter = 0
	return cc, nil
}

func (f *faultDialer) cutNextAfter(n int64) {
	f.mu.Lock()
	f.cutAfter = n
	f.mu.Unlock()
}

func (f *faultDialer) setDown(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}

func (f *faultDialer) cuts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nCuts
}

// cutConn writes left bytes, then closes the connection as a network
// failure would, in the middle of whatever was being written.
type cutConn struct {
	net.Conn
	f    *faultDialer
	mu   sync.Mutex // guards left
	left int64
}

func (c *cutConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.left < 0:
		return 0, errors.New("test: connection cut")
	case int64(len(p)) <= c.left:
		c.left -= int64(len(p))
		return c.Conn.Write(p)
	}
	n, _ := c.Conn.Write(p[:c.left])
	c.left = -1
	c.Conn.Close()
	c.f.mu.Lock()
	c.f.nCuts++
	c.f.mu.Unlock()
	return n, errors.New("test: connection cut")
}
