package interop

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/oauthbridge/oauthbridge/internal/fakegmail"
	"github.com/oauthbridge/oauthbridge/internal/testpeers"
)

// testMbsyncKick syncs the 1,000-message mailbox with mbsync and, a third
// of the way through, has the upstream end the bridge's session (fakegmail:
// Gmail's "* BYE Session expired", written between responses; Dovecot:
// doveadm kick). The bridge must resume upstream without mbsync noticing
// (DESIGN §4 continuity): the sync completes and the Maildir holds exactly
// the upstream's messages.
func (e *env) testMbsyncKick(t *testing.T) {
	testpeers.Require(t, "mbsync")
	src := e.syncSource(t)
	user := e.up.user("sync")
	dir := t.TempDir()
	rc := mbsyncrc(t, dir, e.b.imap, user, "PipelineDepth 1")
	inbox := filepath.Join(dir, "mail", "INBOX")
	if err := os.MkdirAll(filepath.Join(dir, "mail"), 0o700); err != nil {
		t.Fatal(err)
	}
	resumed := e.b.logLines("resumed upstream session")

	type result struct {
		out, errOut string
		err         error
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	done := make(chan result, 1)
	go func() {
		out, errOut, err := testpeers.Cmd{
			Name: "mbsync", Args: []string{"-c", rc, "-V", "inbox"},
			Env: []string{"HOME=" + dir},
		}.Run(t, ctx)
		done <- result{out, errOut, err}
	}()
	defer func() {
		cancel()
		<-done
		done <- result{} // for the deferred receive above when the test body already took it
	}()

	// No event tells how far mbsync got: poll its Maildir.
	deadline := time.Now().Add(time.Minute)
	for countMaildir(inbox) < syncMailboxSize/3 {
		select {
		case r := <-done:
			done <- r
			t.Fatalf("mbsync ended before a third of the mailbox arrived: %v", r.err)
		case <-time.After(2 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("mbsync: only %d messages after a minute", countMaildir(inbox))
		}
	}
	at := countMaildir(inbox)
	e.up.kick(t, user)
	t.Logf("kicked the upstream session with %d of %d messages synced", at, syncMailboxSize)
	r := <-done
	done <- r
	if r.err != nil {
		t.Fatalf("mbsync after the kick: %v", r.err)
	}
	if got := e.b.logLines("resumed upstream session"); got <= resumed {
		t.Errorf("the bridge logged no resume (%d resume lines before, %d after)", resumed, got)
	}
	compareMessages(t, "mbsync Maildir", stripAll(readMaildir(t, inbox), "X-TUID"), src)
}

// midFetchCutter is an upstream that can cut a session inside a FETCH
// response on demand (only the fake can: Dovecot's literals are too small
// for a doveadm kick to land inside one reliably).
type midFetchCutter interface {
	// cutNextFetch makes the next UID FETCH of user's session stop halfway
	// through its first literal; the channel is closed when it fired.
	cutNextFetch(user string) <-chan struct{}
}

func (f *fakeGmail) cutNextFetch(user string) <-chan struct{} {
	return f.fg.ArmFault(fakegmail.Fault{User: user, Proto: fakegmail.ProtoIMAP, OnCommand: "UID FETCH", Kick: fakegmail.KickMidResponse})
}

// testMbsyncCutMidFetch cuts the upstream session inside a message's
// literal while mbsync syncs. Part of that message already reached
// mbsync, so the bridge cannot resume invisibly: DESIGN §4 says the client
// is closed. What must hold: mbsync reports the failure (exit status 1)
// rather than storing a truncated message, every message it did store is
// intact, and a second run completes the mailbox.
func (e *env) testMbsyncCutMidFetch(t *testing.T) {
	testpeers.Require(t, "mbsync")
	cutter := e.up.(midFetchCutter)
	src := e.syncSource(t)
	user := e.up.user("sync")
	dir := t.TempDir()
	rc := mbsyncrc(t, dir, e.b.imap, user, "PipelineDepth 1")
	inbox := filepath.Join(dir, "mail", "INBOX")
	if err := os.MkdirAll(filepath.Join(dir, "mail"), 0o700); err != nil {
		t.Fatal(err)
	}
	closed := e.b.logLines("closing client session", user)
	run := testpeers.Cmd{Name: "mbsync", Args: []string{"-c", rc, "-V", "inbox"}, Env: []string{"HOME=" + dir}}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	done := make(chan error, 1)
	var firstErr string
	go func() {
		_, errOut, err := run.Run(t, ctx)
		firstErr = errOut
		done <- err
	}()
	var fired <-chan struct{}
	defer func() {
		cancel()
		if fired == nil { // the test body did not wait for mbsync
			<-done
		}
	}()
	deadline := time.Now().Add(time.Minute)
	for countMaildir(inbox) < syncMailboxSize/3 {
		select {
		case err := <-done:
			fired = make(chan struct{})
			t.Fatalf("mbsync ended before a third of the mailbox arrived: %v", err)
		case <-time.After(2 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("mbsync: only %d messages after a minute", countMaildir(inbox))
		}
	}
	fired = cutter.cutNextFetch(user)
	err := <-done
	select {
	case <-fired:
	default:
		t.Fatalf("mbsync finished (%v) without another UID FETCH: the cut never happened", err)
	}
	if err == nil {
		t.Errorf("mbsync exited 0 although its session was closed inside a FETCH response")
	}
	if got := e.b.logLines("closing client session", user); got <= closed {
		t.Errorf("the bridge did not log closing the client session")
	}
	partial := stripAll(readMaildir(t, inbox), "X-TUID")
	t.Logf("first run: %v, %d of %d messages stored; mbsync said:\n%s", err, len(partial), syncMailboxSize, firstErr)
	want := make(map[[32]byte]bool, len(src))
	for _, m := range src {
		want[digest(m)] = true
	}
	for _, m := range partial {
		if !want[digest(m)] {
			t.Errorf("mbsync stored a message that is not the upstream's: %s", describe(m))
		}
	}

	if _, _, err := run.Run(t, clientCtx(t, 2*time.Minute)); err != nil {
		t.Fatalf("second mbsync run: %v", err)
	}
	compareMessages(t, "mbsync Maildir after the second run", stripAll(readMaildir(t, inbox), "X-TUID"), src)
}
