package imap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/oauthbridge/oauthbridge/internal/fakegmail"
	"github.com/oauthbridge/oauthbridge/proxy"
)

// dialGate lets a test hold the bridge's upstream connects: while closed,
// a dial waits (after announcing itself on attempts) until opened.
type dialGate struct {
	mu       sync.Mutex
	open     chan struct{}
	attempts chan struct{}
}

func newDialGate() *dialGate {
	g := &dialGate{open: make(chan struct{}), attempts: make(chan struct{}, 16)}
	close(g.open)
	return g
}

func (g *dialGate) close() {
	g.mu.Lock()
	g.open = make(chan struct{})
	g.mu.Unlock()
}

func (g *dialGate) release() {
	g.mu.Lock()
	close(g.open)
	g.mu.Unlock()
}

func (g *dialGate) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	select {
	case <-open:
	default:
		select {
		case g.attempts <- struct{}{}:
		default:
		}
		select {
		case <-open:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

func withDialGate(g *dialGate) envOption {
	return func(_ *fakegmail.Options, s *Server, _ *proxy.Account) {
		s.Dialer.Dial = g.dial
	}
}

// recorder collects the unilateral data a client sees, in order.
type recorder struct {
	mu     sync.Mutex
	events []string
	notify chan struct{}
}

func newRecorder() *recorder { return &recorder{notify: make(chan struct{}, 64)} }

func (r *recorder) add(ev string) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ev := r.events
	r.events = nil
	return ev
}

// waitEvents waits until at least n events were recorded.
func (r *recorder) waitEvents(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		r.mu.Lock()
		got := len(r.events)
		r.mu.Unlock()
		if got >= n {
			return r.take()
		}
		select {
		case <-r.notify:
		case <-deadline:
			t.Fatalf("saw %d events, want %d: %v", got, n, r.take())
		}
	}
}

func (r *recorder) options() *imapclient.Options {
	return &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Expunge: func(n uint32) { r.add("EXPUNGE " + itoa(n)) },
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				r.add("EXISTS " + itoa(*d.NumMessages))
			}
		},
	}}
}

func itoa(n uint32) string { return string(appendUint(nil, uint64(n))) }

// waitLogins waits until the fake counted n IMAP logins for the user.
func waitLogins(t *testing.T, fg *fakegmail.Server, n int) {
	t.Helper()
	if err := waitFor(15*time.Second, func() bool { return fg.Logins(testUser, fakegmail.ProtoIMAP) >= n }); err != nil {
		t.Fatalf("upstream logins %d, want %d", fg.Logins(testUser, fakegmail.ProtoIMAP), n)
	}
}

func TestResumeBetweenCommands(t *testing.T) {
	for _, mode := range []fakegmail.KickMode{fakegmail.KickGmailBye, fakegmail.KickMicrosoftBye, fakegmail.KickClose} {
		t.Run(mode.String(), func(t *testing.T) {
			e := newEnv(t)
			c := e.login(t, nil)
			if _, err := c.Select("INBOX", nil).Wait(); err != nil {
				t.Fatal(err)
			}
			e.fg.Kick(testUser, mode)
			waitLogins(t, e.fg, 2)
			if err := c.Noop().Wait(); err != nil {
				t.Fatalf("NOOP after the upstream ended: %v", err)
			}
			msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{UID: true}).Collect()
			if err != nil || len(msgs) != 1 {
				t.Fatalf("FETCH after resume: %v %v", msgs, err)
			}
		})
	}
}

func TestResumeCommandSentIntoTheCut(t *testing.T) {
	// The client's NOOP reaches a dying upstream: the bridge replays it.
	e := newEnv(t)
	c := e.selected(t, nil)
	e.fg.ArmFault(fakegmail.Fault{User: testUser, Proto: fakegmail.ProtoIMAP, OnCommand: "NOOP", Kick: fakegmail.KickGmailBye})
	if err := c.Noop().Wait(); err != nil {
		t.Fatalf("NOOP cut upstream: %v", err)
	}
}

func TestIdleAcrossKick(t *testing.T) {
	e := newEnv(t)
	rec := newRecorder()
	c := e.login(t, rec.options())
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	e.fg.Kick(testUser, fakegmail.KickGmailBye)
	waitLogins(t, e.fg, 2)
	if err := e.fg.WaitConnections(testUser, fakegmail.ProtoIMAP, 1, 10*time.Second); !err {
		t.Fatal("no upstream session after the kick")
	}
	if _, err := e.fg.Append(testUser, "INBOX", bigMessage(200)); err != nil {
		t.Fatal(err)
	}
	if ev := rec.waitEvents(t, 1); ev[0] != "EXISTS 4" {
		t.Fatalf("client saw %v, want EXISTS 4", ev)
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatalf("IDLE across a kick ended with %v", err)
	}
}

func TestFetchInFlightReplayed(t *testing.T) {
	e := newEnv(t)
	c := e.selected(t, nil)
	stored, _, _ := e.fg.Messages(testUser, "INBOX")
	e.fg.ArmFault(fakegmail.Fault{User: testUser, Proto: fakegmail.ProtoIMAP, OnCommand: "FETCH", Kick: fakegmail.KickGmailBye})
	msgs, err := c.Fetch(imap.SeqSetNum(3), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil {
		t.Fatalf("FETCH cut upstream: %v", err)
	}
	if len(msgs) != 1 || string(firstBody(msgs[0])) != string(stored[2].Data) {
		t.Fatalf("replayed FETCH returned wrong data")
	}
	if e.fg.Logins(testUser, fakegmail.ProtoIMAP) != 2 {
		t.Fatalf("logins = %d, want 2 (one resume)", e.fg.Logins(testUser, fakegmail.ProtoIMAP))
	}
}

func firstBody(m *imapclient.FetchMessageBuffer) []byte {
	for _, b := range m.BodySection {
		return b.Bytes
	}
	return nil
}

func TestStoreInFlightUnavailable(t *testing.T) {
	e := newEnv(t)
	c := e.selected(t, nil)
	e.fg.ArmFault(fakegmail.Fault{User: testUser, Proto: fakegmail.ProtoIMAP, OnCommand: "STORE", Kick: fakegmail.KickGmailBye})
	store := &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}
	_, err := c.Store(imap.SeqSetNum(1), store, nil).Collect()
	var ie *imap.Error
	if !errors.As(err, &ie) || ie.Type != imap.StatusResponseTypeNo || ie.Code != imap.ResponseCodeUnavailable {
		t.Fatalf("STORE cut upstream: %v, want NO [UNAVAILABLE]", err)
	}
	if _, err := c.Store(imap.SeqSetNum(1), store, nil).Collect(); err != nil {
		t.Fatalf("STORE retry: %v", err)
	}
	stored, _, _ := e.fg.Messages(testUser, "INBOX")
	if !strings.Contains(strings.Join(stored[0].Flags, " "), "Flagged") {
		t.Fatalf("flags after retry: %v", stored[0].Flags)
	}
}

func TestAppendInFlightUnavailable(t *testing.T) {
	e := newEnv(t)
	c := e.login(t, nil)
	e.fg.ArmFault(fakegmail.Fault{User: testUser, Proto: fakegmail.ProtoIMAP, OnCommand: "APPEND", Kick: fakegmail.KickGmailBye})
	msg := bigMessage(2000)
	appendMsg := func() error {
		cmd := c.Append("INBOX", int64(len(msg)), nil)
		cmd.Write(msg)
		cmd.Close()
		_, err := cmd.Wait()
		return err
	}
	err := appendMsg()
	var ie *imap.Error
	if !errors.As(err, &ie) || ie.Code != imap.ResponseCodeUnavailable {
		t.Fatalf("APPEND cut upstream: %v, want NO [UNAVAILABLE]", err)
	}
	if err := appendMsg(); err != nil {
		t.Fatalf("APPEND retry: %v", err)
	}
	stored, _, _ := e.fg.Messages(testUser, "INBOX")
	if len(stored) != 4 {
		t.Fatalf("INBOX has %d messages, want 4 (3 seeded + 1 appended once)", len(stored))
	}
}

func TestCutInsideLiteralClosesClient(t *testing.T) {
	// Raw client: go-imap's client races with itself on a truncated
	// literal, and the point here is the bytes the bridge sends.
	e := newEnv(t)
	r := rawSelected(t, e.addr)
	e.fg.ArmFault(fakegmail.Fault{User: testUser, Proto: fakegmail.ProtoIMAP, OnCommand: "FETCH", Kick: fakegmail.KickMidResponse})
	r.send(t, "c FETCH 3 BODY.PEEK[]")
	r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	rest, err := io.ReadAll(r.br)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("client not closed after a cut inside a literal")
	}
	// The fake, like Dovecot, writes its BYE inside the literal's bytes:
	// the bridge cannot tell them from message text and relays them, then
	// closes. What must not happen is a completion.
	if strings.Contains(string(rest), "c OK") || strings.Contains(string(rest), "c NO") {
		t.Fatalf("client got a completion after a partial response: %q", tail(rest))
	}
}

func tail(b []byte) []byte {
	if len(b) > 200 {
		return b[len(b)-200:]
	}
	return b
}

func TestReconcileExpungeAndAppendWhileCut(t *testing.T) {
	gate := newDialGate()
	e := newEnv(t, withDialGate(gate))
	rec := newRecorder()
	c := e.login(t, rec.options())
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	before, _, _ := e.fg.Messages(testUser, "INBOX")
	if _, err := c.Fetch(imap.SeqSetNum(1, 2, 3), &imap.FetchOptions{UID: true}).Collect(); err != nil {
		t.Fatal(err)
	}
	var newUID uint32
	e.whileCut(t, gate, func() {
		// While the bridge is cut off: message 2 goes, a new one arrives.
		if err := e.fg.Expunge(testUser, "INBOX", before[1].UID); err != nil {
			t.Fatal(err)
		}
		var err error
		if newUID, err = e.fg.Append(testUser, "INBOX", bigMessage(300)); err != nil {
			t.Fatal(err)
		}
	})
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	if ev := rec.take(); strings.Join(ev, ",") != "EXPUNGE 2,EXISTS 3" {
		t.Fatalf("client saw %v, want [EXPUNGE 2 EXISTS 3]", ev)
	}
	// The client's numbers now match the server's: message 3 is the new one.
	msgs, err := c.Fetch(imap.SeqSetNum(1, 2, 3), &imap.FetchOptions{UID: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	want := []imap.UID{imap.UID(before[0].UID), imap.UID(before[2].UID), imap.UID(newUID)}
	for i, m := range msgs {
		if m.UID != want[i] {
			t.Fatalf("message %d has UID %d, want %d", i+1, m.UID, want[i])
		}
	}
	store := &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}
	if _, err := c.Store(imap.UIDSetNum(imap.UID(newUID)), store, nil).Collect(); err != nil {
		t.Fatal(err)
	}
	after, _, _ := e.fg.Messages(testUser, "INBOX")
	for _, m := range after {
		flagged := strings.Contains(strings.Join(m.Flags, " "), "Flagged")
		if flagged != (m.UID == newUID) {
			t.Fatalf("UID %d flagged=%v", m.UID, flagged)
		}
	}
}

func TestReconcileSeqCommandWhileLagging(t *testing.T) {
	// After a resume the client's first command names messages by number
	// (FETCH, which may not see EXPUNGE): the bridge translates it.
	gate := newDialGate()
	e := newEnv(t, withDialGate(gate))
	c := e.selected(t, nil)
	before, _, _ := e.fg.Messages(testUser, "INBOX")
	if _, err := c.Fetch(imap.SeqSetNum(1, 2, 3), &imap.FetchOptions{UID: true}).Collect(); err != nil {
		t.Fatal(err)
	}
	e.whileCut(t, gate, func() {
		if err := e.fg.Expunge(testUser, "INBOX", before[0].UID); err != nil {
			t.Fatal(err)
		}
	})
	waitLogins(t, e.fg, 2)
	// Client message 3 is still UID before[2] in the client's view.
	msgs, err := c.Fetch(imap.SeqSetNum(3), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || msgs[0].SeqNum != 3 || msgs[0].UID != imap.UID(before[2].UID) || string(firstBody(msgs[0])) != string(before[2].Data) {
		t.Fatalf("FETCH 3 while lagging: %+v", msgs)
	}
	res, err := c.Search(&imap.SearchCriteria{SeqNum: []imap.SeqSet{imap.SeqSetNum(2, 3)}}, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if got := res.AllSeqNums(); len(got) != 2 || got[0] != 2 || got[1] != 3 {
		t.Fatalf("SEARCH 2:3 while lagging: %v", got)
	}
}

func TestUIDValidityChangeGivesBye(t *testing.T) {
	gate := newDialGate()
	e := newEnv(t, withDialGate(gate))
	c := e.selected(t, nil)
	e.whileCut(t, gate, func() {
		if _, err := e.fg.RecreateMailbox(testUser, "INBOX"); err != nil {
			t.Fatal(err)
		}
	})
	if err := c.Noop().Wait(); err == nil {
		t.Fatal("NOOP succeeded after UIDVALIDITY changed")
	}
}

// TestPipelinedSeqCommandsWhileLagging: two translated commands arrive in
// one packet while the view lags; the second waits for the first, which
// must therefore reach the upstream rather than sit in the bridge's write
// buffer (before the fix, the session stalled until the upstream ended).
func TestPipelinedSeqCommandsWhileLagging(t *testing.T) {
	gate := newDialGate()
	e := newEnv(t, withDialGate(gate))
	before, _, _ := e.fg.Messages(testUser, "INBOX")
	r := rawSelected(t, e.addr)
	e.whileCut(t, gate, func() {
		if err := e.fg.Expunge(testUser, "INBOX", before[0].UID); err != nil {
			t.Fatal(err)
		}
	})
	r.sendRaw(t, "f1 FETCH 3 (UID)\r\nf2 FETCH 2 (UID)\r\n")
	r.expectExact(t, fmt.Sprintf("* 3 FETCH (UID %d)", before[2].UID))
	r.expect(t, "f1 OK ")
	r.expectExact(t, fmt.Sprintf("* 2 FETCH (UID %d)", before[1].UID))
	r.expect(t, "f2 OK ")
}
