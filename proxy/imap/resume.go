package imap

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/oauthbridge/oauthbridge/proxy"
)

// taskContext bounds a task's upstream work by the upstream timeout and
// the session's life.
func (s *session) taskContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.ctx, s.srv.upstreamTimeout())
}

// resumeWithin is how long a resume keeps trying.
func (s *session) resumeWithin() time.Duration {
	if d := s.acct.Session.ResumeWithin; d > 0 {
		return d
	}
	return 30 * time.Second
}

// resumeTask takes over after the upstream session ended without the
// client asking (an unsolicited BYE, EOF, a read error): it logs in a new
// upstream session, restores the client's state, reconciles the selected
// mailbox, answers or replays the commands that were in flight, and lets
// the client continue. The client sees nothing of it unless a response
// was cut part-way (it is closed: bytes sent cannot be taken back) or the
// mailbox cannot be reconciled exactly (BYE: a client must never act on a
// shifted sequence number).
func (s *session) resumeTask(old *upstream, reason string, cause error) {
	start := time.Now()
	s.cwmu.Lock()
	partial := s.partial
	s.cwmu.Unlock()
	s.mu.Lock()
	if s.up != old || s.closed {
		s.mu.Unlock()
		return
	}
	s.paused = true
	for _, c := range s.inflight {
		if c.class.kind == kindSelect || c.class.kind == kindExamine {
			// It is replayed: the mailbox it selects is chosen anew.
			s.mbox, s.selecting = nil, nil
		}
	}
	st := s.stateLocked()
	s.mu.Unlock()
	log := s.log.With("reason", reason)
	log.Info("upstream session ended; resuming", "error", errString(cause))
	if partial {
		s.srv.Metrics.Resume("imap", false, "partial_response")
		s.fail("Upstream connection lost in the middle of a response; please reconnect", cause)
		return
	}

	r, err := s.reconnect(st)
	if err != nil {
		s.srv.Metrics.Resume("imap", false, reason)
		msg := "Upstream unavailable; please reconnect later"
		if c := proxy.Classify(err); c == proxy.FailConsent || c == proxy.FailRefused {
			msg = proxy.ClientMessage(err, s.acct.Name)
		}
		if errors.Is(err, errUIDValidity) {
			msg = "Mailbox was recreated on the server (UIDVALIDITY changed); please reconnect"
		}
		s.fail(msg, err)
		return
	}

	// Wait until the client loop is between commands (it drops the rest of
	// a command the dead upstream could not take).
	s.mu.Lock()
	for s.sending != nil && !s.closed {
		s.cond.Wait()
	}
	s.mu.Unlock()

	s.cwmu.Lock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.cwmu.Unlock()
		r.up.close()
		return
	}
	if err := s.switchToLocked(r); err != nil {
		s.mu.Unlock()
		s.cwmu.Unlock()
		r.up.close()
		s.srv.Metrics.Resume("imap", false, "unreconcilable")
		s.fail("Mailbox changed while the upstream reconnected in a way the bridge cannot show exactly; please reconnect", err)
		return
	}
	var out []byte
	var replay []*command
	logout := false
	for _, c := range s.inflight {
		switch {
		case c.internal:
			// Its waiter saw the old upstream die.
		case c == s.idle:
			c.idleUp = false
			c.suspending = nil
			if c.doneSent {
				// The client already ended its IDLE; only the OK is owed.
				out = append(out, c.tag+" OK IDLE terminated\r\n"...)
				s.idle = nil
			}
		case c.class.kind == kindLogout:
			out = append(out, "* BYE Logging out\r\n"+c.tag+" OK LOGOUT completed\r\n"...)
			logout = true
		case c.class.replay && !c.incomplete && c.raw != nil:
			c.replaying = true
			c.heldOK = nil
			replay = append(replay, c)
		default:
			out = append(out, resumeNo(c.tag)+"\r\n"...)
		}
	}
	s.inflight = nil
	s.contWaiter = nil
	if s.idle != nil && s.mbox != nil && s.mbox.lagging() {
		// The client is in IDLE, which allows EXPUNGE: tell it now.
		out = append(out, s.pendingLinesLocked()...)
	}
	s.mu.Unlock()
	if len(out) > 0 {
		s.cl.bw.Write(out)
		addBytes(s.toCl, len(out))
	}
	ferr := s.cl.flush()
	s.cwmu.Unlock()
	if logout || ferr != nil {
		r.up.close()
		s.close()
		return
	}

	s.wg.Add(1)
	go s.upstreamLoop(r.up)
	for _, c := range replay {
		if err := s.replay(r.up, c); err != nil {
			break // the new upstream failed too: its loop resumes again
		}
	}
	// Counted and logged before the client goes on, so what the client
	// does next is always after the record of the resume.
	s.srv.Metrics.Resume("imap", true, reason)
	log.Info("resumed upstream session", "duration", time.Since(start).Round(time.Millisecond), "replayed", len(replay))
	s.mu.Lock()
	s.scheduleRotationLocked(r.up)
	s.mu.Unlock()
	s.release()
}

// reconnect logs in a new upstream session with bounded retries and
// jittered exponential backoff within resumeWithin, and restores st.
// Failures that retrying cannot fix (the grant is gone, the mailbox was
// recreated) end it at once.
func (s *session) reconnect(st sessionState) (*restored, error) {
	deadline := time.Now().Add(s.resumeWithin())
	backoff := 100 * time.Millisecond
	var lastErr error
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithDeadline(s.ctx, deadline)
		ctx2, cancel2 := context.WithTimeout(ctx, s.srv.upstreamTimeout())
		nu, err := s.connect(ctx2, st)
		var r *restored
		if err == nil {
			r, err = s.selectOn(ctx2, nu, st.mbox)
			if err != nil {
				nu.close()
			}
		}
		cancel2()
		cancel()
		if err == nil {
			return r, nil
		}
		lastErr = err
		if errors.Is(err, errUIDValidity) || proxy.ConsentRequired(err) || proxy.Classify(err) == proxy.FailRefused {
			return nil, err
		}
		wait := backoff/2 + rand.N(backoff)
		if time.Now().Add(wait).After(deadline) {
			return nil, lastErr
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-s.ctx.Done():
			t.Stop()
			return nil, s.ctx.Err()
		}
		if backoff < 5*time.Second {
			backoff *= 2
		}
	}
}

// replay sends a command that was in flight when the upstream was cut
// again on the new upstream u; its responses go to the client as if
// nothing happened. The caller holds the gate.
func (s *session) replay(u *upstream, c *command) error {
	raw := c.raw
	i := 0
	for i < len(raw) && raw[i] != '\n' {
		i++
	}
	line := append([]byte(c.tag+" "), raw[:i+1]...)
	_, _, args := splitCommand(trimEOL(line))

	s.cwmu.Lock()
	s.mu.Lock()
	if c.class.kind == kindSelect || c.class.kind == kindExamine {
		// What the cut attempt announced is void; start the mailbox anew.
		s.selecting = &mailbox{readOnly: c.class.kind == kindExamine}
	}
	var deliver []byte
	var err error
	if m := s.mbox; m != nil && m.lagging() {
		switch {
		case c.class.seq && !c.translated:
			var tr []byte
			if tr, err = translateCommand(m, c.tag, c.name, trimEOL(args)); err == nil {
				line = append(tr, '\r', '\n')
				c.translated = c.class.kind == kindSearch
			}
		case !c.class.noExpunge && !s.noExpungeInFlightLocked():
			deliver = s.pendingLinesLocked()
		}
	}
	if err == nil {
		s.inflight = append(s.inflight, c)
	}
	s.mu.Unlock()
	if len(deliver) > 0 {
		s.cl.bw.Write(deliver)
		addBytes(s.toCl, len(deliver))
		err = s.cl.flush()
	}
	s.cwmu.Unlock()
	if errors.Is(err, errUntranslatable) {
		s.fail("Mailbox state changed while the upstream reconnected; please reconnect", err)
	}
	if err != nil {
		return err
	}
	s.mu.Lock()
	c.unsent = false
	s.mu.Unlock()
	if err := s.sendCommand(u, c, line, &replaySource{rest: raw[i+1:]}); err != nil {
		return err
	}
	if c.unsent {
		return errUpstreamClosed
	}
	return nil
}
