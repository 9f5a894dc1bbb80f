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

// background is a client run in its own goroutine, owned by the test:
// every path out of the test cancels it and waits for it (stop).
type background struct {
	cancel      context.CancelFunc
	done        chan struct{} // closed when the run has returned
	out, errOut string        // valid after done
	err         error         // valid after done
}

func runInBackground(t *testing.T, c testpeers.Cmd) *background {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	b := &background{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(b.done)
		b.out, b.errOut, b.err = c.Run(t, ctx)
	}()
	return b
}

// stop kills the run if it is still going and waits for it.
func (b *background) stop() {
	b.cancel()
	<-b.done
}

// waitMaildir waits until the run has stored n messages in the Maildir
// folder dir. No event tells how far a client got: it polls the Maildir.
func (b *background) waitMaildir(t *testing.T, dir string, n int) int {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		if have := countMaildir(dir); have >= n {
			return have
		}
		select {
		case <-b.done:
			t.Fatalf("client ended (%v) before %d messages arrived (%d did)", b.err, n, countMaildir(dir))
		case <-time.After(2 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d messages after a minute", countMaildir(dir), n)
		}
	}
}

// testMbsyncKick syncs the 1,000-message mailbox with mbsync and, a third
// of the way through, has the upstream end the bridge's session (fakegmail:
// Gmail's "* BYE Session expired", written between responses; Dovecot:
// doveadm kick). The bridge must resume upstream without mbsync noticing
// (DESIGN §4 continuity): the sync completes and the Maildir holds exactly
// the upstream's messages.
//
// PipelineDepth 1 makes mbsync fetch one message at a time, so the kick
// lands among the fetches: with its default (unlimited pipelining) mbsync
// has every UID FETCH answered long before it has stored a third of them,
// and the kick would hit an idle session.
func (e *env) testMbsyncKick(t *testing.T) {
	src, user, inbox, cmd := e.mbsyncOneAtATime(t)
	resumed := e.b.logLines("resumed upstream session", "account="+user)

	run := runInBackground(t, cmd)
	defer run.stop()
	at := run.waitMaildir(t, inbox, syncMailboxSize/3)
	e.up.kick(t, user)
	t.Logf("kicked the upstream session with %d of %d messages synced", at, syncMailboxSize)
	<-run.done
	if run.err != nil {
		t.Fatalf("mbsync after the kick: %v", run.err)
	}
	if got := e.b.logLines("resumed upstream session", "account="+user); got != resumed+1 {
		t.Errorf("the bridge logged %d resumes, want 1", got-resumed)
	}
	compareMessages(t, "mbsync Maildir", stripAll(readMaildir(t, inbox), "X-TUID"), src)
}

// mbsyncOneAtATime seeds the sync mailbox and prepares an mbsync run
// with PipelineDepth 1 (one message fetched at a time, so a fault lands
// among the fetches) into an empty Maildir: it returns the source
// messages, the upstream user, the Maildir's INBOX and the command.
func (e *env) mbsyncOneAtATime(t *testing.T) (src [][]byte, user, inbox string, cmd testpeers.Cmd) {
	t.Helper()
	testpeers.Require(t, "mbsync")
	src = e.syncSource(t)
	user = e.up.user("sync")
	dir := t.TempDir()
	rc := mbsyncrc(t, dir, e.b.imap, user, "PipelineDepth 1")
	inbox = filepath.Join(dir, "mail", "INBOX")
	if err := os.MkdirAll(filepath.Join(dir, "mail"), 0o700); err != nil {
		t.Fatal(err)
	}
	return src, user, inbox, testpeers.Cmd{Name: "mbsync", Args: []string{"-c", rc, "-V", "inbox"}, Env: home(dir)}
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
	cutter := e.up.(midFetchCutter)
	src, user, inbox, cmd := e.mbsyncOneAtATime(t)
	closed := e.b.logLines("closing client session", "account="+user)

	run := runInBackground(t, cmd)
	defer run.stop()
	run.waitMaildir(t, inbox, syncMailboxSize/3)
	fired := cutter.cutNextFetch(user)
	<-run.done
	// The fake closes fired once its cut is complete, which may be after
	// mbsync saw the connection end.
	select {
	case <-fired:
	case <-time.After(10 * time.Second):
		t.Fatalf("mbsync finished (%v) without another UID FETCH: the cut never happened", run.err)
	}
	if run.err == nil {
		t.Errorf("mbsync exited 0 although its session was closed inside a FETCH response")
	}
	if got := e.b.logLines("closing client session", "account="+user); got != closed+1 {
		t.Errorf("the bridge logged closing %d client sessions, want 1", got-closed)
	}
	partial := stripAll(readMaildir(t, inbox), "X-TUID")
	t.Logf("first run: %v, %d of %d messages stored; mbsync said:\n%s", run.err, len(partial), syncMailboxSize, run.errOut)
	want := make(map[[32]byte]bool, len(src))
	for _, m := range src {
		want[digest(m)] = true
	}
	for _, m := range partial {
		if !want[digest(m)] {
			t.Errorf("mbsync stored a message that is not the upstream's: %s", describe(m))
		}
	}

	if _, _, err := cmd.Run(t, clientCtx(t, 2*time.Minute)); err != nil {
		t.Fatalf("second mbsync run: %v", err)
	}
	compareMessages(t, "mbsync Maildir after the second run", stripAll(readMaildir(t, inbox), "X-TUID"), src)
}
