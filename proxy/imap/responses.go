package imap

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
)

var (
	errUnsolicitedBye = errors.New("imap: upstream sent BYE")
	errLogoutDone     = errors.New("imap: client logged out")
)

// clientWriteError is a failure writing to the client: the session ends.
type clientWriteError struct{ err error }

func (e *clientWriteError) Error() string { return "imap: write to client: " + e.err.Error() }
func (e *clientWriteError) Unwrap() error { return e.err }

// upstreamLoop reads u's responses and relays them until u ends, then
// starts a resume unless the session or u is done with.
func (s *session) upstreamLoop(u *upstream) {
	defer s.wg.Done()
	reason, err := s.readResponses(u)
	u.close()
	u.markDead()
	s.mu.Lock()
	current := s.up == u && !s.closed && !u.retired.Load()
	s.cond.Broadcast()
	s.mu.Unlock()
	var cwe *clientWriteError
	switch {
	case !current:
	case errors.As(err, &cwe), errors.Is(err, errLogoutDone):
		s.close()
	case errors.Is(err, errViewBroken):
		s.fail("Mailbox state out of step with the server; please reconnect", err)
	default:
		s.startTask(func() { s.resumeTask(u, reason, err) })
	}
}

// readResponses relays responses until an error. reason names why the
// upstream session ended, for logs and metrics: "bye", "eof" or "error".
func (s *session) readResponses(u *upstream) (reason string, err error) {
	for {
		if u.br.Buffered() == 0 {
			if err := s.flushClient(); err != nil {
				return "client", err
			}
		}
		line, err := readLine(u.br, maxUpstreamLine, &u.scratch)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return "eof", err
			}
			return "error", err
		}
		if len(trimEOL(line)) == 0 {
			return "error", errors.New("imap: upstream sent an empty line")
		}
		if s.trace {
			s.log.Debug("S: " + truncate(string(trimEOL(line))))
		}
		if u.retired.Load() {
			// Replaced by a rotation: its LOGOUT answer and anything else
			// it still says are not the client's.
			if err := s.skipResponse(u, line); err != nil {
				return "eof", err
			}
			continue
		}
		switch line[0] {
		case '+':
			err = s.onContinuation(u, line)
		case '*':
			err = s.onUntagged(u, line)
		default:
			err = s.onTagged(u, line)
		}
		if cap(u.scratch) > 1<<20 {
			u.scratch = nil // do not keep a huge line buffer for the session's life
		}
		if err != nil {
			if errors.Is(err, errUnsolicitedBye) {
				return "bye", err
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return "eof", err
			}
			return "error", err
		}
	}
}

// flushClient flushes output buffered for the client.
func (s *session) flushClient() error {
	s.cwmu.Lock()
	defer s.cwmu.Unlock()
	if err := s.cl.flush(); err != nil {
		return &clientWriteError{err}
	}
	return nil
}

func (s *session) onContinuation(u *upstream, line []byte) error {
	s.mu.Lock()
	forward := true
	switch w, idle := s.contWaiter, s.idle; {
	case w != nil:
		s.contWaiter = nil
		forward = !w.replaying && !w.internal
		w.cont <- true
	case idle != nil && !idle.idleUp:
		idle.idleUp = true
		if idle.resuming != nil {
			close(idle.resuming)
			idle.resuming = nil
			forward = false
		}
	}
	s.cond.Broadcast()
	s.mu.Unlock()
	if !forward {
		return nil
	}
	s.cwmu.Lock()
	defer s.cwmu.Unlock()
	return s.relay(u, line, nil)
}

func (s *session) onUntagged(u *upstream, line []byte) error {
	body := untaggedBody(line)
	w1, rest := splitWord(body)
	if n, ok := parseNumber(w1); ok {
		typ, _ := splitWord(rest)
		switch upperASCII(typ) {
		case "EXISTS":
			return s.onExists(u, line, n)
		case "EXPUNGE":
			return s.onExpunge(u, line, n)
		case "FETCH":
			return s.onFetch(u, line, n)
		}
	} else {
		switch upperASCII(w1) {
		case "BYE":
			s.mu.Lock()
			logout := s.logoutInFlightLocked()
			s.mu.Unlock()
			if !logout {
				// Not forwarded: the client did not ask to leave, and the
				// bridge will resume (DESIGN §4).
				return errUnsolicitedBye
			}
		case "CAPABILITY":
			line = rewriteCapabilityLine(line)
		case "OK", "NO", "BAD":
			s.mu.Lock()
			if m := s.selecting; m != nil {
				if v, ok := respCodeNumber(rest, "UIDVALIDITY"); ok {
					m.uidValidity = v
				}
			}
			s.mu.Unlock()
			line = rewriteCapabilityCode(line)
		case "ENABLED":
			s.mu.Lock()
			for _, c := range strings.Fields(string(rest)) {
				s.addEnabledLocked(c)
			}
			s.mu.Unlock()
		case "SEARCH":
			s.mu.Lock()
			if s.translatedSearchLocked() && s.mbox != nil {
				line = translateSearchResult(s.mbox, line)
			}
			s.mu.Unlock()
		}
	}
	s.cwmu.Lock()
	defer s.cwmu.Unlock()
	return s.relay(u, line, nil)
}

func (s *session) addEnabledLocked(c string) {
	c = strings.ToUpper(c)
	for _, e := range s.enabled {
		if e == c {
			return
		}
	}
	s.enabled = append(s.enabled, c)
	if c == "CONDSTORE" {
		s.condstore = true
	}
}

// respCodeNumber finds "[NAME n]" in a status response text.
func respCodeNumber(text []byte, name string) (uint32, bool) {
	i := indexFold(text, "["+name+" ")
	if i < 0 {
		return 0, false
	}
	rest := text[i+len(name)+2:]
	end := bytes.IndexByte(rest, ']')
	if end < 0 {
		return 0, false
	}
	return parseNumber(rest[:end])
}

// currentMailboxLocked is the mailbox untagged data refers to now: the one
// being selected, else the selected one.
func (s *session) currentMailboxLocked() *mailbox {
	if s.selecting != nil {
		return s.selecting
	}
	return s.mbox
}

func (s *session) onExists(u *upstream, line []byte, n uint32) error {
	s.cwmu.Lock()
	defer s.cwmu.Unlock()
	s.mu.Lock()
	forward := true
	if m := s.currentMailboxLocked(); m != nil {
		if err := m.exists(n); err != nil {
			s.mu.Unlock()
			return err
		}
		switch {
		case m.lagging():
			forward = false // delivered with the pending changes
		case m == s.mbox && s.idle != nil && m.unknownN > 0:
			// New mail during IDLE: the bridge learns the UIDs first (it
			// suspends the IDLE for that), then announces it, so the
			// client's view never holds a message a resume could not
			// place.
			forward = false
			s.scheduleLearnLocked(0)
		default:
			m.showAll()
		}
	}
	s.mu.Unlock()
	if !forward {
		return nil
	}
	return s.relay(u, line, nil)
}

func (s *session) onExpunge(u *upstream, line []byte, n uint32) error {
	s.cwmu.Lock()
	defer s.cwmu.Unlock()
	s.mu.Lock()
	forward := true
	if m := s.currentMailboxLocked(); m != nil {
		shown := m.clientLen()
		if err := m.expunge(n); err != nil {
			s.mu.Unlock()
			return err
		}
		// Not forwarded when lagging (delivered later) or when the client
		// was never told about that message.
		forward = !m.lagging() && int(n) <= shown
	}
	s.mu.Unlock()
	if !forward {
		return nil
	}
	return s.relay(u, line, nil)
}

func (s *session) onFetch(u *upstream, line []byte, n uint32) error {
	s.cwmu.Lock()
	defer s.cwmu.Unlock()
	s.mu.Lock()
	m := s.mbox
	if m == nil || n == 0 {
		s.mu.Unlock()
		return s.relay(u, line, nil)
	}
	uid, onlyUID := fetchUID(line)
	if uid != 0 {
		if err := m.setUID(n, uid); err != nil {
			s.mu.Unlock()
			return err
		}
	}
	if onlyUID && s.internalFetchLocked() && !s.clientFetchLocked() {
		// The answer to the bridge's own FETCH (UID): not the client's.
		s.mu.Unlock()
		return s.skipResponse(u, line)
	}
	switch n2 := m.upToClient(n); {
	case n2 == 0:
		s.mu.Unlock()
		return s.skipResponse(u, line) // a message the client does not see yet
	case n2 != n:
		line = rewriteSeqPrefix(line, n2)
	}
	needUID := uid == 0 && n >= 1 && int(n) <= len(m.up) && m.up[n-1] == 0
	s.mu.Unlock()
	if !needUID {
		return s.relay(u, line, nil)
	}
	// The UID may follow a literal (BODY[] {n} ... UID 7): look for it in
	// the later segments.
	var later uint32
	err := s.relay(u, line, func(seg []byte) {
		if later == 0 {
			later, _ = fetchUID(seg)
		}
	})
	if later != 0 {
		s.mu.Lock()
		if s.mbox == m {
			if err2 := m.setUID(n, later); err2 != nil && err == nil {
				err = err2
			}
		}
		s.mu.Unlock()
	}
	return err
}

// fetchUID finds "UID n" among the items of a FETCH response segment.
// onlyUID reports that the response is exactly "* n FETCH (UID u)".
func fetchUID(seg []byte) (uid uint32, onlyUID bool) {
	i := indexFold(seg, "UID ")
	for i >= 0 {
		if i > 0 && (seg[i-1] == '(' || seg[i-1] == ' ') {
			rest := seg[i+4:]
			j := 0
			for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
				j++
			}
			if v, ok := parseNumber(rest[:j]); ok {
				open := bytes.IndexByte(seg, '(')
				only := open >= 0 && open == i-1 && bytes.Equal(trimEOL(rest[j:]), []byte(")"))
				return v, only
			}
		}
		next := indexFold(seg[i+1:], "UID ")
		if next < 0 {
			break
		}
		i += 1 + next
	}
	return 0, false
}

func (s *session) onTagged(u *upstream, line []byte) error {
	tag, rest := splitWord(trimEOL(line))
	status, _ := splitWord(rest)
	ok := len(status) == 2 && hasPrefixFold(status, "OK")

	s.cwmu.Lock()
	defer s.cwmu.Unlock()
	s.mu.Lock()
	cmd := s.takeInflightLocked(string(tag))
	if cmd == nil {
		s.mu.Unlock()
		return s.relay(u, line, nil)
	}
	if cmd.internal {
		cmd.done <- append([]byte(nil), line...)
		sel := cmd.heldFor
		if sel == nil || sel.heldOK == nil {
			s.cond.Broadcast()
			s.mu.Unlock()
			return nil
		}
		// The UIDs of the new mailbox are known: now the client may see
		// its SELECT complete.
		s.takeInflightLocked(sel.tag)
		cmd, line = sel, sel.heldOK
		tag, rest = splitWord(trimEOL(line))
		status, _ = splitWord(rest)
		ok = true
	} else if (cmd.class.kind == kindSelect || cmd.class.kind == kindExamine) && ok && cmd.learn != nil && cmd.heldOK == nil {
		// Hold the OK until the pipelined FETCH (UID) is answered; the
		// mailbox is selected upstream from now on.
		cmd.heldOK = append([]byte(nil), line...)
		if s.selecting != nil {
			s.selecting.sel = cmd.raw
			s.mbox = s.selecting
			s.selecting = nil
		}
		s.inflight = append([]*command{cmd}, s.inflight...)
		s.mu.Unlock()
		return nil
	}
	if s.contWaiter == cmd {
		s.contWaiter = nil
		cmd.cont <- false
	}
	if cmd.class.kind == kindIdle && cmd.suspending != nil && !cmd.doneSent {
		// The end of an IDLE the bridge suspended (DONE sent by the
		// bridge): the client is still idling and must not see it.
		close(cmd.suspending)
		cmd.suspending = nil
		cmd.idleUp = false
		s.cond.Broadcast()
		s.mu.Unlock()
		if !ok {
			return errors.New("imap: upstream refused to end IDLE: " + string(rest))
		}
		return nil
	}
	var logout bool
	switch cmd.class.kind {
	case kindSelect, kindExamine:
		if ok && s.selecting != nil {
			s.selecting.sel = cmd.raw
			s.mbox = s.selecting
		}
		s.selecting = nil
	case kindDeselect:
		if ok {
			s.mbox = nil
		}
	case kindIdle:
		if s.idle == cmd {
			s.idle = nil
		}
	case kindLogout:
		logout = true
	case kindID:
		if ok {
			s.idCmd = cmd.raw
		}
	}
	var deliver []byte
	if m := s.mbox; m != nil && m.lagging() && !cmd.class.noExpunge && !s.noExpungeInFlightLocked() {
		deliver = s.pendingLinesLocked()
	}
	if len(s.inflight) == 0 {
		s.scheduleLearnLocked(0)
	}
	s.cond.Broadcast()
	s.mu.Unlock()

	if len(deliver) > 0 {
		s.cl.bw.Write(deliver)
		addBytes(s.toCl, len(deliver))
	}
	if err := s.relay(u, rewriteCapabilityCode(line), nil); err != nil {
		return err
	}
	if logout {
		s.cl.flush()
		s.setEndReason("logout")
		return errLogoutDone
	}
	return nil
}

// takeInflightLocked removes and returns the in-flight command with tag.
func (s *session) takeInflightLocked(tag string) *command {
	for i, c := range s.inflight {
		if c.tag == tag {
			s.inflight = append(s.inflight[:i], s.inflight[i+1:]...)
			return c
		}
	}
	return nil
}

func (s *session) logoutInFlightLocked() bool {
	for _, c := range s.inflight {
		if c.class.kind == kindLogout {
			return true
		}
	}
	return false
}

func (s *session) noExpungeInFlightLocked() bool {
	for _, c := range s.inflight {
		if c.class.noExpunge {
			return true
		}
	}
	return false
}

func (s *session) internalFetchLocked() bool {
	for _, c := range s.inflight {
		if c.internal && c.name == "FETCH" {
			return true
		}
	}
	return false
}

// clientFetchLocked reports whether a client FETCH is in flight, whose
// answers must not be mistaken for the bridge's own.
func (s *session) clientFetchLocked() bool {
	for _, c := range s.inflight {
		if !c.internal && strings.HasSuffix(c.name, "FETCH") {
			return true
		}
	}
	return false
}

func (s *session) translatedSearchLocked() bool {
	for _, c := range s.inflight {
		if c.translated {
			return true
		}
	}
	return false
}

// pendingLinesLocked renders the changes the client has not been told
// about (EXPUNGEs high to low, then EXISTS) and marks them delivered. The
// caller holds cwmu and writes them before anything else.
func (s *session) pendingLinesLocked() []byte {
	m := s.mbox
	exp, exists := m.pending()
	var b []byte
	for _, n := range exp {
		b = append(b, "* "...)
		b = strconv.AppendUint(b, uint64(n), 10)
		b = append(b, " EXPUNGE\r\n"...)
	}
	if exists > 0 {
		b = append(b, "* "...)
		b = strconv.AppendUint(b, uint64(exists), 10)
		b = append(b, " EXISTS\r\n"...)
	}
	m.settle()
	if len(exp) > 0 || exists > 0 {
		s.log.Info("delivered changes made while the upstream was switched", "expunged", len(exp), "exists", exists)
	}
	return b
}

// relay writes one response, whose first line is line, to the client:
// the line, then each literal it announces and the line segment after it,
// as they arrive. scan, if set, sees each later line segment. The caller
// holds cwmu. Client write errors are *clientWriteError; anything else is
// the upstream's failure, and a response cut part-way leaves s.partial set
// so a resume knows the client cannot be kept.
func (s *session) relay(u *upstream, line []byte, scan func([]byte)) error {
	bw := s.cl.bw
	s.partial = true
	n := 0
	for {
		bw.Write(line)
		n += len(line)
		lit, ok, err := parseLiteral(line)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if err := s.copyLiteral(u, lit.size); err != nil {
			return err
		}
		n += int(lit.size)
		if line, err = readLine(u.br, maxUpstreamLine, &u.scratch); err != nil {
			return err
		}
		if scan != nil {
			scan(line)
		}
	}
	addBytes(s.toCl, n)
	s.partial = false
	if bw.Buffered() > 0 && bw.Available() < 512 {
		if err := s.cl.flush(); err != nil {
			return &clientWriteError{err}
		}
	}
	return nil
}

// skipResponse reads and drops one response whose first line is line.
func (s *session) skipResponse(u *upstream, line []byte) error {
	for {
		lit, ok, err := parseLiteral(line)
		if err != nil || !ok {
			return err
		}
		if _, err := io.CopyN(io.Discard, u.br, lit.size); err != nil {
			return err
		}
		if line, err = readLine(u.br, maxUpstreamLine, &u.scratch); err != nil {
			return err
		}
	}
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copyLiteral moves n literal octets from the upstream to the client.
// Small literals go through the client's buffered writer; large ones are
// copied in 32 KiB chunks straight to the connection.
func (s *session) copyLiteral(u *upstream, n int64) error {
	bw := s.cl.bw
	if n <= int64(bw.Available()) {
		_, err := u.br.copyN(bw, n)
		return err
	}
	if err := s.cl.flush(); err != nil {
		return &clientWriteError{err}
	}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	for n > 0 {
		chunk := buf
		if int64(len(chunk)) > n {
			chunk = chunk[:n]
		}
		// Fill the chunk (bounded by the literal) before writing: an
		// upstream sending small TLS records (Dovecot: 4 KiB) must not
		// become one client write each.
		r, err := io.ReadFull(u.br, chunk)
		if r > 0 {
			s.cl.extendWriteDeadline()
			if _, werr := s.cl.pc.Write(chunk[:r]); werr != nil {
				return &clientWriteError{werr}
			}
			n -= int64(r)
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			if n > 0 {
				return err
			}
		}
	}
	return nil
}

// untaggedBody is an untagged response line after "* ", without CRLF.
func untaggedBody(line []byte) []byte {
	b := trimEOL(line)
	if len(b) < 2 {
		return nil
	}
	return b[2:]
}
