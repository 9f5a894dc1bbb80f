package imap

import (
	"errors"
	"fmt"
	"time"
)

// quiesce takes the gate and waits for a quiet point on the current
// upstream: no client command being forwarded and none in flight, except
// an IDLE, which it suspends by sending DONE itself (the client stays in
// IDLE and sees nothing). It returns false, with the gate released, when
// the session closed or the upstream died meanwhile.
func (s *session) quiesce() bool {
	s.mu.Lock()
	s.paused = true
	u := s.up
	for {
		if s.closed || u.isDead() || s.up != u {
			s.paused = false
			s.cond.Broadcast()
			s.mu.Unlock()
			return false
		}
		if s.sending != nil {
			s.cond.Wait()
			continue
		}
		if len(s.inflight) == 0 {
			break
		}
		idle := s.idle
		if len(s.inflight) == 1 && s.inflight[0] == idle && idle.idleUp && !idle.doneSent && idle.suspending == nil {
			ch := make(chan struct{})
			idle.suspending = ch
			s.mu.Unlock()
			err := u.write([]byte("DONE\r\n"))
			if err == nil {
				select {
				case <-ch:
				case <-u.dead:
				}
			}
			s.mu.Lock()
			continue
		}
		s.cond.Wait()
	}
	s.mu.Unlock()
	return true
}

// release ends a task's hold of the gate, first putting a suspended IDLE
// back (the client's own tag, so the client's later DONE ends it).
func (s *session) release() {
	s.mu.Lock()
	s.resumeIdleLocked()
	s.paused = false
	s.cond.Broadcast()
	s.mu.Unlock()
}

// resumeIdleLocked re-sends the client's IDLE upstream when the client is
// idling but the upstream is not, and waits for the upstream's "+".
func (s *session) resumeIdleLocked() {
	idle := s.idle
	if idle == nil || idle.idleUp || idle.doneSent || s.closed {
		return
	}
	u := s.up
	ch := make(chan struct{})
	idle.resuming = ch
	idle.suspending = nil
	s.inflight = append(s.inflight, idle)
	s.mu.Unlock()
	err := u.write([]byte(idle.tag + " IDLE\r\n"))
	addBytes(s.toUp, len(idle.tag)+7)
	if err == nil {
		select {
		case <-ch:
		case <-u.dead:
		}
	}
	s.mu.Lock()
}

// internal sends one of the bridge's own commands on u (the gate held,
// u's reader running) and waits for its tagged response.
func (s *session) internal(u *upstream, name, text string) ([]byte, error) {
	cmd := &command{tag: u.nextTag(), name: name, internal: true, done: make(chan []byte, 1)}
	s.mu.Lock()
	s.inflight = append(s.inflight, cmd)
	s.mu.Unlock()
	if err := u.write([]byte(cmd.tag + " " + text + "\r\n")); err != nil {
		return nil, err
	}
	select {
	case line := <-cmd.done:
		return line, nil
	case <-u.dead:
		return nil, errUpstreamClosed
	}
}

// scheduleLearnLocked arranges for the bridge to learn the UIDs of
// messages it knows only by number (new arrivals), at the next quiet
// point, after delay (to give an IDLE client the chance to fetch them
// itself first).
func (s *session) scheduleLearnLocked(delay time.Duration) {
	m := s.mbox
	if m == nil || m.unknownN == 0 || s.learning || s.closed {
		return
	}
	s.learning = true
	if delay == 0 {
		s.startTaskLocked(s.learnTask)
		return
	}
	time.AfterFunc(delay, func() { s.startTask(s.learnTask) })
}

// learnTask fetches the UIDs of messages whose UID the bridge has not seen
// (a plain FETCH, during which the server may not send EXPUNGE, RFC 3501
// §7.4.1), so that the client's view can be restored exactly after a cut.
func (s *session) learnTask() {
	defer func() {
		s.mu.Lock()
		s.learning = false
		s.mu.Unlock()
	}()
	s.mu.Lock()
	m := s.mbox
	unknown := m != nil && m.unknownN > 0
	s.mu.Unlock()
	if !unknown || !s.quiesce() {
		return
	}
	defer s.release()
	// New mail may arrive while the bridge learns: go on until the view is
	// complete (bounded, in case the upstream keeps adding).
	for i := 0; i < 5; i++ {
		if s.learnLocked() != nil {
			return
		}
		s.announceLocked()
		s.mu.Lock()
		done := s.mbox == nil || s.mbox.unknownN == 0
		s.mu.Unlock()
		if done {
			return
		}
	}
}

// announceLocked tells the client about new messages held back until
// their UIDs were known (see onExists). The caller holds the gate.
func (s *session) announceLocked() {
	s.cwmu.Lock()
	defer s.cwmu.Unlock()
	s.mu.Lock()
	m := s.mbox
	var line []byte
	if m != nil && !m.lagging() && m.shown < len(m.up) && m.unknownN == 0 {
		m.showAll()
		line = fmt.Appendf(nil, "* %d EXISTS\r\n", len(m.up))
	}
	s.mu.Unlock()
	if line != nil {
		s.cl.bw.Write(line)
		addBytes(s.toCl, len(line))
		s.cl.flush()
	}
}

// learnLocked runs the learning FETCH; the caller holds the gate.
func (s *session) learnLocked() error {
	s.mu.Lock()
	m, u := s.mbox, s.up
	var first, last uint32
	if m != nil {
		first, last = m.unknown()
	}
	s.mu.Unlock()
	if first == 0 {
		return nil
	}
	line, err := s.internal(u, "FETCH", fmt.Sprintf("FETCH %d:%d (UID)", first, last))
	if err != nil {
		return err
	}
	if _, rest := splitWord(trimEOL(line)); !hasPrefixFold(rest, "OK") {
		return fmt.Errorf("imap: upstream refused FETCH (UID): %s", rest)
	}
	return nil
}

// scheduleRotationLocked sets the timer for u's proactive rotation:
// RotateBefore ahead of the end of u's session (its token's expiry, or its
// provider's session lifetime).
func (s *session) scheduleRotationLocked(u *upstream) {
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	p := s.acct.Session
	if p.RotateBefore <= 0 || s.closed {
		return
	}
	var end time.Time
	switch {
	case p.Lifetime > 0:
		end = u.loginAt.Add(p.Lifetime)
	case u.token != nil && !u.token.Expiry.IsZero():
		end = u.token.Expiry
	default:
		return
	}
	d := time.Until(end.Add(-p.RotateBefore))
	if d <= 0 {
		// The session is already inside its margin (a short-lived token):
		// rotate half-way to its end rather than in a tight loop.
		d = time.Until(end) / 2
		if d < 100*time.Millisecond {
			return // too late to rotate; a resume will handle the end
		}
	}
	s.timer = time.AfterFunc(d, func() { s.startTask(s.rotateTask) })
}

// errNoQuietPoint: the old upstream session ended before the commands in
// flight on it completed, so the rotation could not swap sessions.
var errNoQuietPoint = errors.New("imap: the upstream session ended before a quiet point")

// errUnreconcilable: the client's view cannot be mapped onto the new
// upstream session exactly.
var errUnreconcilable = errors.New("imap: mailbox view cannot be reconciled")

// switchTo makes r the session's upstream: the client's view of the
// selected mailbox is reconciled with r's, in-flight commands are handed
// over by the caller. The caller holds the gate and cwmu and mu.
func (s *session) switchToLocked(r *restored) error {
	if m := s.mbox; m != nil {
		old := m.clientView()
		if err := m.reconcile(append([]uint32(nil), old...), r.uids); err != nil {
			return err
		}
	}
	s.up = r.up
	return nil
}

// rotateTask replaces the upstream session before it expires: a new one
// is logged in with a fresh token and put in the same state, then swapped
// in at a quiet point, and the old one is logged out. At most two
// upstream connections exist for the session, and only briefly.
func (s *session) rotateTask() {
	start := time.Now()
	s.mu.Lock()
	old := s.up
	s.mu.Unlock()
	ctx, cancel := s.taskContext()
	defer cancel()

	// A fresh token first: the one behind the old session is about to
	// expire, and the token source may still consider it valid.
	if old.token != nil {
		if tok, err := s.acct.Tokens.Token(ctx); err == nil && !tok.Expiry.After(old.token.Expiry) {
			s.acct.Tokens.ForceRefresh(ctx, tok.AccessToken)
		}
	}
	s.mu.Lock()
	st := s.stateLocked()
	s.mu.Unlock()
	// Log in before taking the gate: the client waits only for the SELECT.
	nu, err := s.connect(ctx, st)
	if err != nil {
		s.rotationFailed(old, start, err)
		return
	}
	if !s.quiesce() {
		nu.close()
		s.mu.Lock()
		closed := s.closed
		s.mu.Unlock()
		if !closed {
			s.rotationFailed(old, start, errNoQuietPoint)
		}
		return
	}
	// Learn UIDs the old session announced only by number, so the client's
	// view is fully known before the switch. From here on the old session
	// can announce new messages (EXISTS) but no EXPUNGE: no command is in
	// progress (RFC 3501 §7.4.1).
	if err := s.learnLocked(); err != nil {
		nu.close()
		s.release()
		s.rotationFailed(old, start, err)
		return
	}
	s.mu.Lock()
	mbox := s.mbox
	s.mu.Unlock()
	r, err := s.selectOn(ctx, nu, mbox)
	if err != nil {
		nu.close()
		s.release()
		if errors.Is(err, errUIDValidity) {
			s.fail("Mailbox was recreated on the server (UIDVALIDITY changed); please reconnect", err)
			return
		}
		s.rotationFailed(old, start, err)
		return
	}
	s.cwmu.Lock()
	s.mu.Lock()
	if s.up != old || s.closed || old.isDead() {
		s.mu.Unlock()
		s.cwmu.Unlock()
		r.up.close()
		s.release()
		return
	}
	old.retired.Store(true)
	if m := s.mbox; m != nil && !m.lagging() && m.unknownN > 0 {
		// New mail the client was told about arrived on the old session
		// after the learn: its UIDs are in the new session's list above
		// the old ones.
		s.fillUnknownLocked(m, r.uids)
	}
	err = s.switchToLocked(r)
	var deliver []byte
	if err == nil && s.idle != nil && s.mbox != nil && s.mbox.lagging() {
		deliver = s.pendingLinesLocked() // IDLE is in progress: EXPUNGE allowed
	}
	s.mu.Unlock()
	if len(deliver) > 0 {
		s.cl.bw.Write(deliver)
		s.cl.flush()
	}
	s.cwmu.Unlock()
	if err != nil {
		r.up.close()
		s.fail("Mailbox changed while the upstream session was renewed; please reconnect", err)
		return
	}
	s.wg.Add(1)
	go s.upstreamLoop(r.up)
	s.srv.Metrics.Rotation("imap", true, "token_expiry")
	s.log.Info("rotated upstream session", "duration", time.Since(start).Round(time.Millisecond))
	s.mu.Lock()
	s.scheduleRotationLocked(r.up)
	s.mu.Unlock()
	s.release()
	s.retire(old)
}

// fillUnknownLocked fills the unknown tail of m.up from the new session's
// list when the count matches exactly; otherwise it leaves the view
// unknown and the switch fails safe.
func (s *session) fillUnknownLocked(m *mailbox, fresh []uint32) {
	first, _ := m.unknown()
	if first == 0 || int(first) > m.shown {
		return // unknown only beyond what the client saw: nothing to map
	}
	var max uint32
	for _, u := range m.up[:first-1] {
		if u > max {
			max = u
		}
	}
	var above []uint32
	for _, u := range fresh {
		if u > max {
			above = append(above, u)
		}
	}
	if len(above) != m.shown-int(first-1) {
		return
	}
	for i, u := range above {
		m.up[int(first-1)+i] = u
	}
	m.up = m.up[:m.shown] // the rest was never shown; the new session has it
	m.unknownN = 0
}

func (s *session) rotationFailed(old *upstream, start time.Time, err error) {
	s.srv.Metrics.Rotation("imap", false, "token_expiry")
	s.log.Warn("upstream rotation failed; will resume if the session ends", "error", err.Error(), "duration", time.Since(start).Round(time.Millisecond))
	// Try again shortly while the old session still lives.
	s.mu.Lock()
	if s.up == old && !s.closed {
		s.timer = time.AfterFunc(10*time.Second, func() { s.startTask(s.rotateTask) })
	}
	s.mu.Unlock()
}

// retire logs out a replaced upstream session in the background of its
// own reader, which drops everything it still sends.
func (s *session) retire(old *upstream) {
	old.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if err := old.write([]byte(old.nextTag() + " LOGOUT\r\n")); err != nil {
		old.close()
	}
}

// shutdownTask ends the session for a server shutdown at a command
// boundary: in-flight commands complete, then the client gets a BYE.
func (s *session) shutdownTask() {
	if !s.quiesce() {
		s.close()
		return
	}
	s.setEndReason("shutdown")
	s.writeClient("* BYE [UNAVAILABLE] Server shutting down, please reconnect")
	s.mu.Lock()
	u := s.up
	s.mu.Unlock()
	u.retired.Store(true)
	s.retire(u)
	s.close()
	s.log.Info("session ended by shutdown")
}

// resumeLine is what a client gets for a command the upstream cut off
// that the bridge cannot safely send again.
func resumeNo(tag string) string {
	return tag + " NO [UNAVAILABLE] Upstream connection lost while the command ran; it may or may not have taken effect, please check and retry"
}
