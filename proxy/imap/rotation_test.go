package imap

import (
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/oauthbridge/oauthbridge/internal/fakegmail"
	"github.com/oauthbridge/oauthbridge/proxy"
)

// shortTokens makes the fake issue 3-second tokens and end every session
// when its token expires, as Microsoft does; the bridge rotates 1 s ahead.
func shortTokens() envOption {
	return func(o *fakegmail.Options, _ *Server, a *proxy.Account) {
		o.TokenLifetime = 3 * time.Second
		a.Session = proxy.SessionPolicy{RotateBefore: time.Second, ResumeWithin: 10 * time.Second}
	}
}

func TestIdleAcrossRotation(t *testing.T) {
	e := newEnv(t, shortTokens())
	e.fg.SetSessionLifetime(fakegmail.LifetimeToken)
	rec := newRecorder()
	c := e.login(t, rec.options())
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	// Two rotations happen under the idling client.
	waitLogins(t, e.fg, 3)
	if _, err := e.fg.Append(testUser, "INBOX", bigMessage(500)); err != nil {
		t.Fatal(err)
	}
	if ev := rec.waitEvents(t, 1); ev[0] != "EXISTS 4" {
		t.Fatalf("client saw %v, want EXISTS 4", ev)
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatalf("IDLE across rotations ended with %v", err)
	}
	if n := e.fg.MaxConnections(testUser, fakegmail.ProtoIMAP); n > 2 {
		t.Fatalf("%d upstream connections at once, want at most 2", n)
	}
	if n := len(e.logs.Lines("rotated upstream session")); n < 2 {
		t.Fatalf("%d rotations logged, want >= 2", n)
	}
}

func TestRotationUnderContinuousLoad(t *testing.T) {
	d := 60 * time.Second
	if testing.Short() {
		d = 10 * time.Second
	}
	e := newEnv(t, shortTokens())
	e.fg.SetSessionLifetime(fakegmail.LifetimeToken)
	c := e.selected(t, nil)
	stored, _, _ := e.fg.Messages(testUser, "INBOX")
	sums := map[imap.UID][32]byte{}
	for _, m := range stored {
		sums[imap.UID(m.UID)] = sha256.Sum256(m.Data)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	deadline := time.Now().Add(d)
	ops := 0
	for time.Now().Before(deadline) {
		ops++
		var err error
		switch rng.IntN(6) {
		case 0:
			err = c.Noop().Wait()
		case 1, 2:
			var msgs []*imapclientFetchBuffer
			msgs, err = fetchAll(c)
			for _, m := range msgs {
				want, ok := sums[m.UID]
				if !ok || sha256.Sum256(firstBody(m)) != want {
					t.Fatalf("op %d: message UID %d came back wrong", ops, m.UID)
				}
			}
		case 3:
			_, err = c.UIDSearch(&imap.SearchCriteria{}, nil).Wait()
		case 4:
			store := &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}}
			_, err = c.Store(imap.SeqSetNum(1), store, nil).Collect()
		case 5:
			_, err = c.List("", "*", nil).Collect()
		}
		if err != nil {
			t.Fatalf("op %d failed after %s: %v", ops, time.Until(deadline), err)
		}
	}
	rotations := len(e.logs.Lines("rotated upstream session"))
	if min := int(d/(2*time.Second)) - 2; rotations < min {
		t.Fatalf("%d rotations in %s, want >= %d", rotations, d, min)
	}
	if n := e.fg.MaxConnections(testUser, fakegmail.ProtoIMAP); n > 2 {
		t.Fatalf("%d upstream connections at once, want at most 2", n)
	}
	t.Logf("%d operations, %d rotations, %d resumes", ops, rotations, len(e.logs.Lines("resumed upstream session")))
}

func fetchAll(c *imapclientClient) ([]*imapclientFetchBuffer, error) {
	return c.Fetch(imap.SeqSetNum(1, 2, 3), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
}

// TestRotationOfNeverQuietClient: a client that always has commands in
// flight (pipelining ten at a time) still gets its upstream rotated: the
// bridge holds its next command until the in-flight ones finish, swaps,
// and lets it go. Every command is answered OK, in a session that lives
// through several token lifetimes.
func TestRotationOfNeverQuietClient(t *testing.T) {
	e := newEnv(t, shortTokens())
	e.fg.SetSessionLifetime(fakegmail.LifetimeToken)
	r := rawSelected(t, e.addr)
	const depth = 10
	sent, done := 0, 0
	send := func() {
		sent++
		r.send(t, fmt.Sprintf("p%d UID FETCH 1:* (FLAGS)", sent))
	}
	for i := 0; i < depth; i++ {
		send()
	}
	deadline := time.Now().Add(8 * time.Second)
	for done < sent {
		l := r.readLine(t)
		if !strings.HasPrefix(l, "p") {
			if strings.HasPrefix(l, "* BYE") {
				t.Fatalf("client got %q", l)
			}
			continue
		}
		tag, rest, _ := strings.Cut(l, " ")
		if !strings.HasPrefix(rest, "OK") {
			t.Fatalf("%s: %s", tag, rest)
		}
		done++
		if time.Now().Before(deadline) {
			send() // keep ten in flight
		}
	}
	if n := len(e.logs.Lines("rotated upstream session")); n < 2 {
		t.Fatalf("%d rotations in 8 s of 3 s tokens, want >= 2 (resumes: %d)", n, len(e.logs.Lines("resumed upstream session")))
	}
	if failed := e.logs.Lines("upstream rotation failed"); len(failed) > 0 {
		t.Fatalf("a rotation failed: %s", failed[0])
	}
	if n := e.fg.MaxConnections(testUser, fakegmail.ProtoIMAP); n > 2 {
		t.Fatalf("%d upstream connections at once", n)
	}
	t.Logf("%d pipelined commands answered", done)
}
