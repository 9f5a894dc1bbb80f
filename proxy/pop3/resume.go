package pop3

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/oauthbridge/oauthbridge/proxy"
	"golang.org/x/oauth2"
)

// Session continuity. One mechanism serves three cases:
//
//   - reactive resume: the upstream session was lost (EOF, read or write
//     error, timeout, an -ERR followed by a close). The bridge connects
//     again with backoff for up to Account.Session.ResumeWithin, logs in,
//     takes the new session's UIDL listing, maps the client's message
//     numbers to the new ones by UIDL, and replays the client's DELE marks;
//     marks of the lost session were never committed, because only QUIT
//     commits (RFC 1939 §6).
//   - planned resume (rotation): when a session would outlive its token or
//     the provider's session lifetime, the bridge switches at the next
//     command boundary. The old session must go first: RFC 1939 §8 lets a
//     server lock the maildrop per session, so a second login would fail
//     with [IN-USE] while the old one lives (Gmail does not lock, Dovecot
//     does). And it must not commit: QUIT enters the UPDATE state and
//     deletes the marked messages, which the client may still RSET. So the
//     old session gets RSET, then QUIT (nothing marked, nothing deleted,
//     lock released), and the new one replays the marks.
//   - a cut during QUIT: if the upstream's answer to QUIT was lost, the
//     bridge cannot know whether the deletions were committed. It logs in
//     again and deletes those of the marked UIDLs that still exist, then
//     QUITs; a message is thus deleted exactly once whichever way the lost
//     QUIT went.
//
// Proactive rotation matters less for POP3 than for IMAP (fetchers keep
// sessions short), so it is checked only at command boundaries and never
// needs a timer or a second goroutine.

// Backoff between reconnect attempts.
const (
	resumeBackoff    = 100 * time.Millisecond
	maxResumeBackoff = 2 * time.Second
)

var errNoContinuity = errors.New("pop3: session continuity unavailable (upstream has no UIDL)")

// takeView takes the upstream's listing right after login: the client's
// view of its maildrop.
func (s *session) takeView() error {
	l, err := s.up.takeListing()
	switch {
	case err == nil:
		s.view = newMaildrop(l)
		return nil
	case errors.Is(err, errNoUIDL):
		s.log.Warn("upstream refused UIDL: no session continuity for this session", "err", err)
		s.noContinuity = true
		s.rotateAt = time.Time{}
		return nil
	}
	// Lost before the client saw a single message number: a new
	// session's listing is as good as this one's (resume builds the view
	// when there is none).
	return s.resume(newCut(err, false).reason, false)
}

// rotationDue reports whether the upstream session should be replaced
// before the next command.
func (s *session) rotationDue() bool {
	return !s.rotateAt.IsZero() && s.view != nil && !time.Now().Before(s.rotateAt)
}

// setRotation schedules the planned switch for a session that logged in
// at with tok.
func (s *session) setRotation(tok *oauth2.Token, at time.Time) {
	s.rotateAt = rotationTime(s.acct.Session, tok, at)
	s.rotateReason = "token_expiry"
	if s.acct.Session.Lifetime > 0 {
		s.rotateReason = "session_lifetime"
	}
}

// rotationTime is when a session that logged in at with tok should be
// replaced: RotateBefore ahead of its end (the provider's session
// lifetime, or else the token's expiry). It is never earlier than half
// way to the end, so a token that is already short-lived cannot make the
// bridge switch sessions at every command. Zero means never.
func rotationTime(p proxy.SessionPolicy, tok *oauth2.Token, at time.Time) time.Time {
	if p.RotateBefore <= 0 {
		return time.Time{}
	}
	var end time.Time
	switch {
	case p.Lifetime > 0:
		end = at.Add(p.Lifetime)
	case tok != nil && !tok.Expiry.IsZero():
		end = tok.Expiry
	default:
		return time.Time{}
	}
	if !end.After(at) {
		return time.Time{}
	}
	rot := end.Add(-p.RotateBefore)
	if half := at.Add(end.Sub(at) / 2); rot.Before(half) {
		rot = half
	}
	return rot
}

// resume replaces the upstream session. planned says the old session is
// still healthy (rotation) and is retired politely; otherwise it is
// already lost and just closed. reason is the metrics and log word.
func (s *session) resume(reason string, planned bool) error {
	start := time.Now()
	if s.up != nil {
		if planned {
			s.up.retire()
		} else {
			s.up.close()
		}
		s.up = nil
	}
	var vanished, replayed int
	attempts, err := 0, error(errNoContinuity)
	if !s.noContinuity {
		attempts, err = s.reconnect(func(up *upstream, l []entry) error {
			if s.view == nil {
				s.view = newMaildrop(l)
				return nil
			}
			vanished = s.view.remap(l)
			var err error
			replayed, err = s.replayDeletes(up)
			return err
		})
	}
	d := time.Since(start).Round(time.Millisecond)
	what := "resume"
	if planned {
		what = "rotation"
		s.srv.Metrics.Rotation("pop3", err == nil, reason)
	} else {
		s.srv.Metrics.Resume("pop3", err == nil, reason)
	}
	if err != nil {
		s.log.Warn(what+" failed", "reason", reason, "duration", d, "attempts", attempts, "err", err)
		return err
	}
	s.resumes++
	s.log.Info(what, "reason", reason, "duration", d, "attempts", attempts,
		"vanished", vanished, "deletes_replayed", replayed)
	return nil
}

// replayDeletes marks on the new upstream session the messages the client
// marked deleted. A DELE the new session refuses makes that message
// vanish from the client's view (it will not be deleted at QUIT).
func (s *session) replayDeletes(up *upstream) (n int, err error) {
	msgs := s.view.msgs
	for i := range msgs {
		msg := &msgs[i]
		if !msg.deleted || msg.cur == 0 {
			continue
		}
		ok, reply, err := up.simple([]byte("DELE " + strconv.Itoa(msg.cur)))
		if err != nil {
			return n, err
		}
		if !ok && up.ended(reply, true) {
			return n, errUpstreamClosed // lost again: the next attempt remaps
		}
		if !ok {
			s.log.Warn("upstream refused a replayed DELE; the message will not be deleted",
				"msg", i+1, "reply", truncate(reply))
			msg.cur = 0
			continue
		}
		n++
	}
	return n, nil
}

// reconnect logs in to the upstream again, with backoff, until apply
// accepts the new session's listing or Account.Session.ResumeWithin has
// passed. On success s.up is the new session. A failure that retrying
// cannot mend (consent needed, token refused, a broken listing) ends the
// attempts at once.
//
// Graceful shutdown does not cut this short: it belongs to the command
// in progress, which the bridge finishes (proxy.Handler).
func (s *session) reconnect(apply func(up *upstream, l []entry) error) (attempts int, err error) {
	within := s.acct.Session.ResumeWithin
	if within <= 0 {
		within = DefaultResumeWithin
	}
	deadline := time.Now().Add(within)
	ctx, cancel := context.WithDeadline(context.WithoutCancel(s.ctx), deadline)
	defer cancel()
	backoff := resumeBackoff
	for {
		attempts++
		err = s.tryReconnect(ctx, deadline, apply)
		if err == nil || permanent(err) {
			return attempts, err
		}
		s.log.Debug("upstream reconnect failed, retrying", "attempt", attempts, "err", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return attempts, err
		}
		backoff = min(2*backoff, maxResumeBackoff)
	}
}

func (s *session) tryReconnect(ctx context.Context, deadline time.Time, apply func(*upstream, []entry) error) error {
	at := time.Now()
	up, tok, err := s.connect(ctx, s.acct, minTime(deadline, at.Add(s.srv.upstreamTimeout())))
	if err != nil {
		return err
	}
	l, err := up.takeListing()
	if err == nil {
		err = apply(up, l)
	}
	if err != nil {
		up.close()
		return err
	}
	s.up = up
	s.setRotation(tok, at)
	return nil
}

// permanent reports a reconnect failure that retrying will not mend.
func permanent(err error) bool {
	switch proxy.Classify(err) {
	case proxy.FailConsent, proxy.FailRefused, proxy.FailBadCredentials:
		return true
	}
	return errors.Is(err, errUpstreamProtocol) || errors.Is(err, errNoUIDL)
}

// quitAfterCut answers a QUIT whose upstream answer was lost (see the
// comment at the top of this file).
func (s *session) quitAfterCut(cut *cutError) {
	if s.up != nil {
		s.up.close()
		s.up = nil
	}
	if s.view == nil {
		s.writeLine("-ERR [SYS/TEMP] Connection to the mail server lost during QUIT; deleted messages may not have been removed")
		return
	}
	marked := s.view.markedUIDLs()
	if len(marked) == 0 {
		// Nothing to commit: a session lost without QUIT deletes nothing,
		// which is all the client asked for.
		s.writeLine("+OK Bye")
		return
	}
	start := time.Now()
	var deleted int
	attempts, err := s.reconnect(func(up *upstream, l []entry) error {
		var err error
		deleted, err = commitDeletes(up, l, marked)
		return err
	})
	if s.up != nil {
		s.up.close() // its QUIT is done
		s.up = nil
	}
	s.srv.Metrics.Resume("pop3", err == nil, cut.reason)
	d := time.Since(start).Round(time.Millisecond)
	if err != nil {
		s.log.Warn("resume during QUIT failed", "reason", cut.reason, "duration", d, "attempts", attempts, "err", err)
		s.writeLine("-ERR [SYS/TEMP] Connection to the mail server lost during QUIT; some deleted messages were not removed")
		return
	}
	s.resumes++
	s.log.Info("resume during QUIT", "reason", cut.reason, "duration", d, "attempts", attempts,
		"marked", len(marked), "deleted_now", deleted)
	s.writeLine("+OK Bye")
}

var errQuitRefused = errors.New("pop3: upstream refused QUIT")

// commitDeletes deletes, on a fresh session with listing l, those of the
// marked UIDLs that still exist, and QUITs to commit. A UIDL no longer
// listed was committed by the lost QUIT (or vanished otherwise).
func commitDeletes(up *upstream, l []entry, marked []string) (n int, err error) {
	present := make(map[string]int, len(l))
	for _, e := range l {
		present[e.uidl] = e.num
	}
	for _, id := range marked {
		num, ok := present[id]
		if !ok {
			continue
		}
		if _, _, err := up.simple([]byte("DELE " + strconv.Itoa(num))); err != nil {
			return n, err
		}
		n++
	}
	ok, reply, err := up.simple([]byte("QUIT"))
	if err != nil {
		return n, err
	}
	if !ok {
		return n, fmt.Errorf("%w: %q", errQuitRefused, truncate(reply))
	}
	return n, nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
