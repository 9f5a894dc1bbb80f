package imap

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"time"

	"github.com/oauthbridge/oauthbridge/proxy"
)

// clientLoop reads the client's commands and forwards them upstream until
// the client goes away or the session is closed.
func (s *session) clientLoop() error {
	cl := s.cl
	for {
		cl.pc.SetReadDeadline(time.Now().Add(s.srv.idleTimeout()))
		line, err := readLine(cl.br, maxLine, &cl.scratch)
		if err == errLineTooLong {
			if err := s.writeClient("* BAD Line too long"); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		s.mu.Lock()
		idle := s.idle
		s.mu.Unlock()
		if idle != nil && !idle.doneSent {
			// RFC 2177 §3: during IDLE the client sends only "DONE".
			if err := s.forwardDone(idle, line); err != nil {
				return err
			}
			continue
		}
		if err := s.handleCommand(line); err != nil {
			return err
		}
	}
}

// handleCommand deals with one client command whose first line is line.
func (s *session) handleCommand(line []byte) error {
	if s.trace {
		s.log.Debug("C: " + truncate(string(trimEOL(proxy.RedactClientLine("imap", line)))))
	}
	tag, name, args := splitCommand(trimEOL(line))
	if tag == "" || name == "" {
		return s.refuse(line, "* BAD Invalid command")
	}
	if strings.HasPrefix(tag, tagPrefix) {
		return s.refuse(line, tag+" BAD Tags starting with "+tagPrefix+" are reserved by the bridge")
	}
	class := classify(name)
	switch class.kind {
	case kindStartTLS:
		return s.refuse(line, tag+" BAD STARTTLS is only valid before login")
	case kindCompress:
		// The bridge must keep seeing the stream to track the session.
		return s.refuse(line, tag+" NO [CANNOT] COMPRESS is not available through this bridge")
	case kindEnable:
		var kept bool
		if line, kept = rewriteEnable(line); !kept {
			// Nothing left to enable: answer as the server would (RFC 5161
			// §3.1: an ENABLED response listing none).
			return s.refuse(line, "* ENABLED\r\n"+tag+" OK ENABLE completed")
		}
	}
	cmd := &command{tag: tag, name: name, class: class}
	return s.forward(cmd, line, args)
}

// refuse answers a command the bridge does not forward, after consuming
// any literal it announced so the stream stays in step.
func (s *session) refuse(line []byte, reply string) error {
	for {
		lit, ok, err := parseLiteral(line)
		if err != nil {
			s.writeClient("* BYE Invalid literal")
			return err
		}
		if !ok {
			break
		}
		if !lit.nonSync {
			// Not sending "+" means the client will not send the literal
			// (RFC 3501 §7.5); the command ends here.
			break
		}
		if _, err := io.CopyN(io.Discard, s.cl.br, lit.size); err != nil {
			return err
		}
		if line, err = readLine(s.cl.br, maxLine, &s.cl.scratch); err != nil {
			return err
		}
	}
	return s.writeClient(reply)
}

// rewriteEnable drops extensions from an ENABLE command that the bridge
// does not advertise (see dropCap): a client asking for them anyway must
// not get them behind the bridge's back. kept is false when none is left.
func rewriteEnable(line []byte) (out []byte, kept bool) {
	body := trimEOL(line)
	tag, rest := splitWord(body)
	name, caps := splitWord(rest)
	out = append(append(append([]byte(nil), tag...), ' '), name...)
	for len(caps) > 0 {
		var c []byte
		c, caps = splitWord(caps)
		if len(c) == 0 || dropCap(c) {
			continue
		}
		out = append(append(out, ' '), c...)
		kept = true
	}
	return append(out, '\r', '\n'), kept
}

// forward sends one client command upstream: its first line (already
// read), then its literals and further lines as the client sends them.
func (s *session) forward(cmd *command, line []byte, args []byte) error {
	// While the mailbox view lags, starting a command may mean telling the
	// client about changes first, and that must not interleave with
	// responses: take the client writer's lock before mu (lock order).
	cwmuHeld, flushed := false, false
	s.mu.Lock()
	for {
		if s.closed {
			s.mu.Unlock()
			if cwmuHeld {
				s.cwmu.Unlock()
			}
			return errSessionClosed
		}
		lag := s.mbox != nil && s.mbox.lagging()
		if s.paused || lag && cmd.class.seq && len(s.inflight) > 0 {
			// Held by a task; or a translated command, whose responses
			// must not be confused with another's, waits for the others.
			if cwmuHeld {
				s.mu.Unlock()
				s.cwmu.Unlock()
				cwmuHeld = false
				s.mu.Lock()
				continue
			}
			s.waitLocked(&flushed)
			continue
		}
		if lag && !cwmuHeld {
			s.mu.Unlock()
			s.cwmu.Lock()
			cwmuHeld = true
			s.mu.Lock()
			continue
		}
		break
	}
	var deliver []byte
	if m := s.mbox; m != nil && m.lagging() {
		switch {
		case cmd.class.seq:
			tr, err := translateCommand(m, cmd.tag, strings.TrimPrefix(cmd.name, "UID "), trimEOL(args))
			if err == nil && cmd.class.kind == kindSearch && bytes.HasSuffix(trimEOL(line), []byte("}")) {
				err = errUntranslatable
			}
			if err != nil {
				s.mu.Unlock()
				s.cwmu.Unlock()
				s.fail("Mailbox state changed while the upstream reconnected; please reconnect", err)
				return errSessionClosed
			}
			line = append(tr, '\r', '\n')
			cmd.translated = cmd.class.kind == kindSearch
		case !cmd.class.noExpunge && !s.noExpungeInFlightLocked():
			// The command allows EXPUNGE and names no message by number:
			// deliver the pending changes now, before it runs.
			deliver = s.pendingLinesLocked()
		}
	}
	s.inflight = append(s.inflight, cmd)
	s.sending = cmd
	switch cmd.class.kind {
	case kindIdle:
		s.idle = cmd
	case kindSelect, kindExamine:
		s.mbox = nil // RFC 3501 §6.3.1: SELECT closes the current mailbox, even on failure
		s.selecting = &mailbox{readOnly: cmd.class.kind == kindExamine}
		if bytes.Contains(bytes.ToUpper(args), []byte("CONDSTORE")) {
			s.condstore = true
		}
		// The bridge's own "FETCH 1:* (UID)" is pipelined right behind the
		// SELECT, and the SELECT's OK is held until it completes: when the
		// client's SELECT completes, the bridge knows the UID of every
		// message in the client's view, so a resume can restore it
		// exactly. Its answers are not shown (see onFetch); if the SELECT
		// fails or the mailbox is empty, its failure is ignored.
		cmd.learn = &command{tag: u0tag(s.up), name: "FETCH", internal: true, done: make(chan []byte, 1), heldFor: cmd}
		s.inflight = append(s.inflight, cmd.learn)
	}
	u := s.up
	s.mu.Unlock()
	if cwmuHeld {
		var err error
		if len(deliver) > 0 {
			s.cl.bw.Write(deliver)
			addBytes(s.toCl, len(deliver))
			err = s.cl.flush()
		}
		s.cwmu.Unlock()
		if err != nil {
			return err
		}
	}

	err := s.sendCommand(u, cmd, line, s.cl)
	if learn := cmd.learn; learn != nil && err == nil && !cmd.unsent && !cmd.incomplete {
		text := learn.tag + " FETCH 1:* (UID)\r\n"
		if u.write([]byte(text)) == nil {
			addBytes(s.toUp, len(text))
		}
	}
	s.mu.Lock()
	s.sending = nil
	s.cond.Broadcast()
	s.mu.Unlock()
	return err
}

// waitLocked waits, with mu held, for the session's state to change, for
// a client command that cannot go upstream yet. The first time it only
// flushes the upstream: sendCommand leaves a command in the upstream
// buffer while more client input is pending, and what the caller waits
// for may be that command's answer. The caller re-checks its condition.
func (s *session) waitLocked(flushed *bool) {
	if *flushed {
		s.cond.Wait()
		return
	}
	*flushed = true
	u := s.up
	s.mu.Unlock()
	u.write(nil)
	s.mu.Lock()
}

func u0tag(u *upstream) string { return u.nextTag() }

// sendCommand writes a command to u: line, then for each literal it
// announces, the literal (waiting for the continuation of a synchronizing
// one) and the next line. src supplies the literals and lines: the client,
// or a replay buffer. Upstream write errors do not stop it: the rest of
// the command is read and dropped so the client stream stays in step, and
// the command is marked (unsent, or incomplete when the client could not
// send all of it) for the resume to handle. It returns only
// client-side errors.
func (s *session) sendCommand(u *upstream, cmd *command, line []byte, src lineSource) error {
	var werr error
	write := func(p []byte) {
		if werr == nil {
			_, werr = u.bw.Write(p)
			addBytes(s.toUp, len(p))
		}
	}
	u.wmu.Lock()
	locked := true
	unlock := func() {
		if locked {
			u.wmu.Unlock()
			locked = false
		}
	}
	defer unlock()
	for {
		if cmd.class.replay && !cmd.replaying {
			cmd.appendRaw(line)
		}
		write(line)
		lit, ok, err := parseLiteral(line)
		if err != nil {
			unlock()
			s.writeClient("* BYE Invalid literal")
			return err
		}
		if !ok {
			break
		}
		if !lit.nonSync {
			// Registered before the flush: the upstream's "+" (or its
			// tagged refusal) can arrive before the flush returns.
			s.expectContinuation(cmd)
			if werr == nil {
				werr = u.bw.Flush()
			}
			unlock()
			if werr != nil {
				// The client waits for a "+" that will not come.
				s.dropContinuation(cmd)
				s.markCmd(cmd, true)
				return nil
			}
			if got, dead := s.awaitContinuation(u, cmd); !got {
				// No "+": the client will not send the literal, the
				// command is over (rejected upstream, or the upstream is
				// gone and the resume answers it).
				if dead {
					s.markCmd(cmd, true)
				}
				return nil
			}
			u.wmu.Lock()
			locked = true
		}
		if err := src.copyLiteral(lit.size, func(p []byte) {
			if cmd.class.replay && !cmd.replaying {
				cmd.appendRaw(p)
			}
			write(p)
		}); err != nil {
			return err
		}
		if line, err = src.nextLine(); err != nil {
			return err
		}
	}
	if werr == nil && src.idle() {
		werr = u.bw.Flush()
	}
	if werr != nil {
		s.markCmd(cmd, false)
	}
	return nil
}

// expectContinuation makes cmd the command the upstream's next "+" is
// for; the upstream loop hands it over on cmd.cont (false when the
// command ends instead).
func (s *session) expectContinuation(cmd *command) {
	s.mu.Lock()
	if cmd.cont == nil {
		cmd.cont = make(chan bool, 1)
	}
	s.contWaiter = cmd
	s.mu.Unlock()
}

// dropContinuation undoes expectContinuation when no "+" will come.
func (s *session) dropContinuation(cmd *command) {
	s.mu.Lock()
	if s.contWaiter == cmd {
		s.contWaiter = nil
	}
	s.mu.Unlock()
}

// awaitContinuation waits until the upstream answers a synchronizing
// literal with "+" (got), or ends the command, or dies (dead).
func (s *session) awaitContinuation(u *upstream, cmd *command) (got, dead bool) {
	select {
	case ok := <-cmd.cont:
		return ok, false
	case <-u.dead:
		s.dropContinuation(cmd)
		return false, true
	}
}

// markCmd records that cmd could not be written upstream, and whether the
// client could not send all of it.
func (s *session) markCmd(cmd *command, incomplete bool) {
	s.mu.Lock()
	cmd.unsent = true
	cmd.incomplete = cmd.incomplete || incomplete
	s.mu.Unlock()
}

// appendRaw keeps the command's bytes for a replay, up to a bound.
func (c *command) appendRaw(p []byte) {
	if c.raw == nil && len(p) > 0 {
		// The first line: keep it without the tag; the replay adds it.
		_, rest := splitWord(p)
		c.raw = append(make([]byte, 0, len(rest)), rest...)
		return
	}
	if len(c.raw)+len(p) > maxReplayBytes {
		c.class.replay = false
		c.raw = nil
		return
	}
	c.raw = append(c.raw, p...)
}

// forwardDone sends the client's DONE (or whatever it sent) during IDLE.
func (s *session) forwardDone(idle *command, line []byte) error {
	s.mu.Lock()
	flushed := false
	for s.paused && !s.closed {
		s.waitLocked(&flushed)
	}
	if s.closed {
		s.mu.Unlock()
		return errSessionClosed
	}
	if s.idle != idle {
		// The IDLE ended meanwhile (the upstream terminated it, or the
		// resume answered it): this line is a new command.
		s.mu.Unlock()
		return s.handleCommand(line)
	}
	idle.doneSent = true
	s.sending = idle
	u := s.up
	s.mu.Unlock()
	err := u.write(line)
	addBytes(s.toUp, len(line))
	s.mu.Lock()
	s.sending = nil
	if err != nil {
		idle.unsent = true
	}
	s.cond.Broadcast()
	s.mu.Unlock()
	return nil
}

// lineSource supplies the rest of a command: literals and lines.
type lineSource interface {
	copyLiteral(n int64, emit func([]byte)) error
	nextLine() ([]byte, error)
	idle() bool // nothing more is buffered: time to flush
}

func (c *clientConn) copyLiteral(n int64, emit func([]byte)) error {
	for n > 0 {
		if c.br.Buffered() == 0 {
			c.pc.SetReadDeadline(time.Now().Add(5 * time.Minute))
		}
		chunk := int64(c.br.Buffered())
		if chunk == 0 {
			if _, err := c.br.Peek(1); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
			continue
		}
		if chunk > n {
			chunk = n
		}
		p, _ := c.br.Peek(int(chunk))
		emit(p)
		c.br.Discard(int(chunk))
		n -= chunk
	}
	return nil
}

func (c *clientConn) nextLine() ([]byte, error) {
	line, err := readLine(c.br, maxLine, &c.scratch)
	if err == errLineTooLong {
		return nil, errors.New("imap: command continuation line too long")
	}
	return line, err
}

func (c *clientConn) idle() bool { return c.br.Buffered() == 0 }

// replaySource replays the literals and lines of a stored command.
type replaySource struct{ rest []byte }

func (r *replaySource) copyLiteral(n int64, emit func([]byte)) error {
	if int64(len(r.rest)) < n {
		return io.ErrUnexpectedEOF
	}
	emit(r.rest[:n])
	r.rest = r.rest[n:]
	return nil
}

func (r *replaySource) nextLine() ([]byte, error) {
	i := bytes.IndexByte(r.rest, '\n')
	if i < 0 {
		return nil, io.ErrUnexpectedEOF
	}
	line := r.rest[:i+1]
	r.rest = r.rest[i+1:]
	return line, nil
}

func (r *replaySource) idle() bool { return true }
