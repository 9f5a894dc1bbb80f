package pop3_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/oauthbridge/oauthbridge/internal/testpeers"
	"github.com/oauthbridge/oauthbridge/proxy"
	"github.com/oauthbridge/oauthbridge/proxy/proxytest"
	"golang.org/x/oauth2"
)

// Dovecot 2.3 as a real XOAUTH2 upstream: a second, independent POP3
// implementation (with a maildrop lock, unlike Gmail) to prove the
// bridge's handshake, relay and resume against.

func startDovecotBridge(t *testing.T, tls proxy.UpstreamTLS) (*testpeers.Dovecot, *bridge) {
	t.Helper()
	d := testpeers.StartDovecot(t, testpeers.DovecotOptions{Users: []string{user}})
	addr := d.POP3Addr()
	if tls == proxy.UpstreamStartTLS {
		addr = d.POP3PlainAddr()
	}
	b := startBridge(t, bridgeOptions{
		endpoint: proxy.Endpoint{Addr: addr, TLS: tls, TLSConfig: d.TLSConfig()},
		session:  proxy.SessionPolicy{ResumeWithin: 20 * time.Second},
		tokens: func(context.Context, bool) (*oauth2.Token, error) {
			return &oauth2.Token{AccessToken: d.Token(user), Expiry: time.Now().Add(time.Hour)}, nil
		},
	})
	return d, b
}

func TestDovecotUpstream(t *testing.T) {
	for name, mode := range map[string]proxy.UpstreamTLS{"implicit TLS": proxy.UpstreamImplicitTLS, "STLS": proxy.UpstreamStartTLS} {
		t.Run(name, func(t *testing.T) {
			proxytest.VerifyNoLeaks(t)
			d, b := startDovecotBridge(t, mode)
			msgs := [][]byte{message("one", 200), message("big", 3<<20), message("three", 4000), message("four", 100)}
			for _, m := range msgs {
				if err := d.Deliver(user, m); err != nil {
					t.Fatal(err)
				}
			}
			stored, err := d.Messages(user, "INBOX")
			if err != nil {
				t.Fatal(err)
			}
			c := greeted(t, b.addr)
			c.ok("USER " + user)
			if got := c.cmd("PASS " + appPassword); got != "+OK Logged in" {
				t.Fatalf("login: %q\n%s", got, d.Log())
			}
			for i, m := range stored {
				if got := c.retr(i + 1); !bytes.Equal(got, m.Text) {
					t.Errorf("RETR %d: %d bytes, want %d", i+1, len(got), len(m.Text))
				}
			}
			uidl := c.multi("UIDL")
			c.ok("DELE 1")
			c.ok("DELE 3")
			// doveadm kick: Dovecot's "-ERR [SYS/TEMP] Server shutting
			// down." and a close; the bridge resumes at the next command.
			if err := d.Kick(user); err != nil {
				t.Fatal(err)
			}
			waitKicked(t, d)
			if got := c.retr(2); !bytes.Equal(got, stored[1].Text) {
				t.Errorf("RETR 2 after kick: %d bytes", len(got))
			}
			if got := c.multi("UIDL"); strings.Join(got, "|") != uidl[1]+"|"+uidl[3] {
				t.Errorf("UIDL after kick = %q, want %q", got, []string{uidl[1], uidl[3]})
			}
			c.ok("QUIT")
			c.closed()
			left, err := d.Messages(user, "INBOX")
			if err != nil {
				t.Fatal(err)
			}
			if len(left) != 2 || !bytes.Equal(left[0].Text, stored[1].Text) || !bytes.Equal(left[1].Text, stored[3].Text) {
				t.Errorf("%d messages left, want messages 2 and 4", len(left))
			}
			if lines := b.logs.Lines("msg=resume", "deletes_replayed=2"); len(lines) != 1 {
				t.Errorf("resume log: %q", b.logs.Lines("resume"))
			}
		})
	}
}

// waitKicked waits until Dovecot's log shows the kicked pop3 process
// gone. doveadm kick only signals it; a command sent before it exits is
// served by the dying session, whose answer may stop halfway (which the
// bridge must answer by closing the client: see
// TestCutMidResponseClosesClient). There is no event to wait on but the
// log line.
func waitKicked(t *testing.T, d *testpeers.Dovecot) {
	t.Helper()
	deadline := time.Now().Add(opTimeout)
	for !strings.Contains(d.Log(), "Disconnected: Server shutting down") {
		if time.Now().After(deadline) {
			t.Fatal("dovecot never logged the kicked session's end")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
