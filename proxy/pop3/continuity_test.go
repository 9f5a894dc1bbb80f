package pop3_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/oauthbridge/oauthbridge/internal/fakegmail"
	"github.com/oauthbridge/oauthbridge/internal/metrics"
	"github.com/oauthbridge/oauthbridge/proxy"
	"github.com/oauthbridge/oauthbridge/proxy/pop3"
	"github.com/oauthbridge/oauthbridge/proxy/proxytest"
)

// assertStored checks that exactly the messages want (by index into
// msgs) are left in the maildrop, in order.
func (e *upstreamEnv) assertStored(t *testing.T, msgs [][]byte, want ...int) {
	t.Helper()
	got := e.stored(t)
	ok := len(got) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = bytes.Equal(got[i], msgs[want[i]])
	}
	if !ok {
		var names []string
		for _, g := range got {
			names = append(names, subject(g))
		}
		t.Errorf("maildrop holds %q, want messages %v", names, want)
	}
}

func subject(m []byte) string {
	_, after, _ := bytes.Cut(m, []byte("Subject: "))
	s, _, _ := bytes.Cut(after, []byte("\r\n"))
	return string(s)
}

// DELE marks survive an upstream cut between commands (each kind of
// kick), and QUIT commits exactly the marked messages, once.
func TestResumeKeepsDeleteMarks(t *testing.T) {
	for _, mode := range []fakegmail.KickMode{fakegmail.KickGmailBye, fakegmail.KickServerShutdown, fakegmail.KickClose} {
		t.Run(mode.String(), func(t *testing.T) {
			proxytest.VerifyNoLeaks(t)
			m := metrics.New()
			e := startEnv(t, envOptions{bridgeOptions: bridgeOptions{tune: func(s *pop3.Server) { s.Metrics = m }}})
			msgs := e.appendN(t, 5)
			c := e.login(t)
			uidl := c.multi("UIDL")
			c.ok("DELE 1")
			c.ok("DELE 4")
			if n := e.fg.Kick(user, mode); n != 1 {
				t.Fatalf("kicked %d sessions", n)
			}
			// The client notices nothing: numbers, sizes, UIDLs and marks
			// are as before.
			if got := c.retr(2); !bytes.Equal(got, msgs[1]) {
				t.Errorf("RETR 2 after the cut: %q", got)
			}
			size := len(msgs[1]) + len(msgs[2]) + len(msgs[4])
			if got := c.ok("STAT"); got != fmt.Sprintf("+OK 3 %d", size) {
				t.Errorf("STAT = %q", got)
			}
			if got := c.multi("UIDL"); strings.Join(got, "|") != strings.Join([]string{uidl[1], uidl[2], uidl[4]}, "|") {
				t.Errorf("UIDL = %q, want %q without 1 and 4", got, uidl)
			}
			if got := c.multi("LIST"); len(got) != 3 || got[2] != fmt.Sprintf("5 %d", len(msgs[4])) {
				t.Errorf("LIST = %q", got)
			}
			if got := c.cmd("RETR 4"); got != "-ERR Message 4 already deleted" {
				t.Errorf("RETR 4 = %q", got)
			}
			c.ok("DELE 5")
			c.ok("QUIT")
			c.closed()
			e.assertStored(t, msgs, 1, 2)
			if n := e.fg.Logins(user, "pop3"); n != 2 {
				t.Errorf("%d upstream logins, want 2", n)
			}
			if n := e.fg.MaxConnections(user, "pop3"); n != 1 {
				t.Errorf("%d upstream sessions at once, want 1", n)
			}
			if n := counter(t, m, "oauthbridge_resumes_total", "outcome", "ok"); n != 1 {
				t.Errorf("resumes ok = %v", n)
			}
			if lines := e.logs.Lines("msg=resume", "deletes_replayed=2", "duration="); len(lines) != 1 {
				t.Errorf("resume log: %q", e.logs.Lines("resume"))
			}
		})
	}
}

// A read-only command in flight when the upstream cuts is replayed on
// the new session; the client gets the right bytes.
func TestInFlightCommandReplayed(t *testing.T) {
	for _, mode := range []fakegmail.KickMode{fakegmail.KickClose, fakegmail.KickGmailBye} {
		for _, cmd := range []string{"RETR", "TOP", "LIST", "UIDL", "STAT", "NOOP", "DELE"} {
			t.Run(mode.String()+"/"+cmd, func(t *testing.T) {
				proxytest.VerifyNoLeaks(t)
				e := startEnv(t, envOptions{})
				msgs := e.appendN(t, 3)
				c := e.login(t)
				fired := e.fg.ArmFault(fakegmail.Fault{User: user, Proto: "pop3", OnCommand: cmd, Kick: mode})
				switch cmd {
				case "RETR":
					if got := c.retr(2); !bytes.Equal(got, msgs[1]) {
						t.Errorf("RETR 2 = %q", got)
					}
				case "TOP":
					c.ok("TOP 3 0")
					if got := c.body(); !bytes.HasPrefix(msgs[2], got) || !bytes.HasSuffix(got, []byte("\r\n\r\n")) {
						t.Errorf("TOP 3 0 = %q", got)
					}
				case "LIST", "UIDL":
					if got := c.multi(cmd); len(got) != 3 {
						t.Errorf("%s = %q", cmd, got)
					}
				case "STAT":
					if got := c.ok("STAT"); !strings.HasPrefix(got, "+OK 3 ") {
						t.Errorf("STAT = %q", got)
					}
				case "NOOP":
					c.ok("NOOP")
				case "DELE":
					c.ok("DELE 2")
				}
				// The fake closes the channel after it cut the session, which
				// may be after the bridge already answered from a new one.
				select {
				case <-fired:
				case <-time.After(opTimeout):
					t.Fatal("the fault never fired: the test proves nothing")
				}
				c.ok("QUIT")
				c.closed()
				if cmd == "DELE" {
					e.assertStored(t, msgs, 0, 2)
				} else {
					e.assertStored(t, msgs, 0, 1, 2)
				}
				if n := e.fg.Logins(user, "pop3"); n != 2 {
					t.Errorf("%d upstream logins, want 2", n)
				}
			})
		}
	}
}

// A cut inside a multi-line answer that already reached the client in
// part closes the client: the bytes cannot be taken back.
func TestCutMidResponseClosesClient(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	e := startEnv(t, envOptions{})
	msgs := [][]byte{message("big", 1<<20)}
	e.appendMessages(t, msgs...)
	c := e.login(t)
	c.ok("DELE 1")
	c.ok("RSET")
	fired := e.fg.ArmFault(fakegmail.Fault{User: user, Proto: "pop3", OnCommand: "RETR", Kick: fakegmail.KickMidResponse})
	c.send("RETR 1")
	rest := c.closed()
	<-fired
	if !strings.HasPrefix(rest, "+OK") || strings.HasSuffix(rest, "\r\n.\r\n") || len(rest) >= len(msgs[0]) {
		t.Errorf("client got %d bytes ending %q: want a truncated answer", len(rest), rest[max(0, len(rest)-20):])
	}
	e.assertStored(t, msgs, 0)
	if lines := e.logs.Lines("upstream lost mid-response"); len(lines) != 1 {
		t.Errorf("log: %q", lines)
	}
}

// A message expunged upstream while the session was cut answers -ERR;
// the others keep their numbers.
func TestVanishedMessage(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	e := startEnv(t, envOptions{})
	msgs := e.appendN(t, 4)
	uids := make([]uint32, 0, 4)
	stored, _, err := e.fg.Messages(user, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range stored {
		uids = append(uids, m.UID)
	}
	c := e.login(t)
	c.ok("DELE 4")
	e.fg.Kick(user, fakegmail.KickClose)
	if err := e.fg.Expunge(user, "INBOX", uids[1]); err != nil {
		t.Fatal(err)
	}
	// A message arriving meanwhile stays hidden until the next login.
	e.appendMessages(t, message("new", 100))

	if got := c.cmd("RETR 2"); got != "-ERR No such message" {
		t.Errorf("RETR 2 (expunged) = %q", got)
	}
	if got := c.retr(3); !bytes.Equal(got, msgs[2]) {
		t.Errorf("RETR 3 = %q", got)
	}
	for _, cmd := range []string{"LIST 2", "UIDL 2", "DELE 2", "TOP 2 0", "RETR 5", "LIST 5"} {
		if got := c.cmd(cmd); got != "-ERR No such message" {
			t.Errorf("%s = %q", cmd, got)
		}
	}
	if got := c.multi("LIST"); strings.Join(got, "|") != fmt.Sprintf("1 %d|3 %d", len(msgs[0]), len(msgs[2])) {
		t.Errorf("LIST = %q", got)
	}
	c.ok("DELE 3")
	c.ok("QUIT")
	c.closed()
	left := e.stored(t)
	if len(left) != 2 || !bytes.Equal(left[0], msgs[0]) || subject(left[1]) != "new" {
		t.Errorf("left: %d messages", len(left))
	}
}

// A cut during QUIT: before it took effect, or after it committed but
// before the reply. Either way each marked message is deleted exactly
// once and the client gets +OK.
func TestCutDuringQuit(t *testing.T) {
	for _, mode := range []fakegmail.KickMode{fakegmail.KickClose, fakegmail.KickNoReply, fakegmail.KickServerShutdown} {
		t.Run(mode.String(), func(t *testing.T) {
			proxytest.VerifyNoLeaks(t)
			e := startEnv(t, envOptions{})
			msgs := e.appendN(t, 4)
			c := e.login(t)
			c.ok("DELE 1")
			c.ok("DELE 3")
			fired := e.fg.ArmFault(fakegmail.Fault{User: user, Proto: "pop3", OnCommand: "QUIT", Kick: mode})
			if got := c.cmd("QUIT"); got != "+OK Bye" {
				t.Errorf("QUIT = %q", got)
			}
			<-fired
			c.closed()
			e.assertStored(t, msgs, 1, 3)
			if lines := e.logs.Lines("msg=\"resume during QUIT\"", "marked=2"); len(lines) != 1 {
				t.Errorf("log: %q", e.logs.Lines("QUIT"))
			}
		})
	}
}

// Without marks a lost QUIT needs no new session.
func TestCutDuringQuitWithoutMarks(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	e := startEnv(t, envOptions{})
	msgs := e.appendN(t, 2)
	c := e.login(t)
	e.fg.ArmFault(fakegmail.Fault{User: user, Proto: "pop3", OnCommand: "QUIT", Kick: fakegmail.KickClose})
	if got := c.cmd("QUIT"); got != "+OK Bye" {
		t.Errorf("QUIT = %q", got)
	}
	e.assertStored(t, msgs, 0, 1)
	if n := e.fg.Logins(user, "pop3"); n != 1 {
		t.Errorf("%d logins", n)
	}
}

// When the session cannot be resumed (the grant was revoked meanwhile),
// the client gets -ERR [AUTH] with the fix, and is closed.
func TestResumeFails(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	e := startEnv(t, envOptions{})
	e.appendN(t, 2)
	c := e.login(t)
	e.oauth.Revoke(user)
	e.fg.Kick(user, fakegmail.KickClose)
	want := "-ERR [AUTH] OAuth grant for alice@gmail.com is missing, revoked or expired: run 'oauthbridge authorize alice@gmail.com' on the bridge host"
	if got := c.cmd("STAT"); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	c.closed()
	if lines := e.logs.Lines("resume failed"); len(lines) != 1 {
		t.Errorf("log: %q", e.logs.Lines("resume"))
	}
}

// Planned rotation: a session about to outlive its token switches to a
// new upstream session at a command boundary. The old one is RSET and
// QUIT first (never two at once: a maildrop lock would refuse the second),
// marks are replayed, and QUIT commits them once.
func TestPlannedRotation(t *testing.T) {
	proxytest.VerifyNoLeaks(t)
	e := startEnv(t, envOptions{
		tokenLifetime: 2 * time.Second,
		refreshMargin: 500 * time.Millisecond,
		bridgeOptions: bridgeOptions{session: proxy.SessionPolicy{RotateBefore: 1500 * time.Millisecond}},
	})
	msgs := e.appendN(t, 3)
	c := e.login(t)
	c.ok("DELE 2")
	// Rotation is due half way through the token's life (1s); keep the
	// session busy until the bridge has logged in a second time.
	deadline := time.Now().Add(opTimeout)
	for e.fg.Logins(user, "pop3") < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no rotation")
		}
		c.ok("NOOP")
		time.Sleep(50 * time.Millisecond) // pacing the NOOPs, not synchronisation
	}
	if got := c.retr(3); !bytes.Equal(got, msgs[2]) {
		t.Errorf("RETR 3 after rotation = %q", got)
	}
	c.ok("QUIT")
	c.closed()
	e.assertStored(t, msgs, 0, 2)
	if n := e.fg.MaxConnections(user, "pop3"); n != 1 {
		t.Errorf("%d upstream sessions at once, want 1", n)
	}
	// The bridge refreshed the token for the new session (one that
	// expired within the rotation margin would be due again at once).
	if n := e.oauth.Refreshes(user); n < 1 {
		t.Errorf("%d refreshes", n)
	}
	lines := e.logs.Lines("msg=rotation", "reason=token_expiry")
	if len(lines) == 0 {
		t.Errorf("no rotation log line: %q", e.logs.Lines("rotation"))
	}
	for _, l := range lines {
		if !strings.Contains(l, "deletes_replayed=1") {
			t.Errorf("rotation did not replay the mark: %q", l)
		}
	}
}

// A cut while the bridge takes its own listing right after login (the
// client has seen no message number yet) is resumed too.
func TestCutDuringInitialListing(t *testing.T) {
	for _, cmd := range []string{"UIDL", "LIST"} {
		t.Run(cmd, func(t *testing.T) {
			proxytest.VerifyNoLeaks(t)
			e := startEnv(t, envOptions{})
			msgs := e.appendN(t, 2)
			fired := e.fg.ArmFault(fakegmail.Fault{User: user, Proto: "pop3", OnCommand: cmd, Kick: fakegmail.KickGmailBye})
			c := e.login(t)
			<-fired
			if got := c.retr(2); !bytes.Equal(got, msgs[1]) {
				t.Errorf("RETR 2 = %q", got)
			}
			if got := c.multi("UIDL"); len(got) != 2 {
				t.Errorf("UIDL = %q", got)
			}
			c.ok("QUIT")
			if n := e.fg.Logins(user, "pop3"); n != 2 {
				t.Errorf("%d upstream logins, want 2", n)
			}
		})
	}
}
