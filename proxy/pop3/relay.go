package pop3

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/oauthbridge/oauthbridge/proxy"
)

// The TRANSACTION state (RFC 1939 §5): client commands are validated,
// their message numbers mapped to the current upstream session, and sent
// upstream one at a time; answers are relayed byte for byte (multi-line
// ones in bulk, see multiline.go). When the upstream session is lost the
// bridge resumes on a new one (resume.go) and replays the command if
// nothing of its answer reached the client yet.

// maxReplays bounds how often one command is replayed on new upstream
// sessions: an upstream that drops the connection every time it sees
// the command must not keep the bridge reconnecting forever.
const maxReplays = 3

// transaction serves the authenticated client until it quits or the
// session ends.
func (s *session) transaction() {
	if err := s.takeView(); err != nil {
		s.fail(err)
		return
	}
	for {
		line, err := s.readLine(maxCommandLine, time.Now().Add(s.srv.idleTimeout()))
		if err != nil {
			s.endReason = readErrReason(err)
			switch {
			case errors.Is(err, errShutdown):
				s.writeLine("-ERR [SYS/TEMP] " + proxy.ClientMessage(proxy.ErrShuttingDown, ""))
			case errors.Is(err, errLineTooLong):
				s.writeLine("-ERR Line too long")
			}
			// An idle timeout closes without a word (RFC 1939 §3
			// autologout), and an upstream session let go this way
			// commits nothing.
			return
		}
		cmd, err := parseCommand(line)
		if err != nil {
			if s.writeLine("-ERR Empty command") != nil {
				return
			}
			continue
		}
		if s.debug {
			s.trace("C", redactCommand(cmd, line))
		}
		if done := s.dispatch(cmd); done {
			return
		}
	}
}

// dispatch handles one command; done reports that the session is over.
func (s *session) dispatch(cmd command) (done bool) {
	var reply string
	switch cmd.Keyword {
	case "USER", "PASS", "APOP", "AUTH", "STLS":
		reply = "-ERR Already authenticated"
	default:
		tc, known, err := validateTxn(cmd)
		switch {
		case !known:
			reply = "-ERR Unknown command"
		case err != nil:
			reply = "-ERR Invalid arguments"
		default:
			return s.run(tc)
		}
	}
	return s.writeLine(reply) != nil
}

// run executes a validated command, resuming on a new upstream session
// and replaying the command when the upstream is lost before any of the
// answer reached the client.
func (s *session) run(tc txnCommand) (done bool) {
	if s.rotationDue() && tc.Keyword != "QUIT" {
		if err := s.resume(s.rotateReason, true); err != nil {
			return s.fail(err)
		}
	}
	for replays := 0; ; replays++ {
		err := s.exec(tc)
		if err == nil {
			if tc.Keyword == "QUIT" {
				s.endReason = "quit"
				return true
			}
			return false
		}
		var cut *cutError
		if !errors.As(err, &cut) {
			// The client is gone (a failed write); nothing to say.
			s.endReason = "client_gone"
			return true
		}
		switch {
		case cut.touched:
			// Part of a multi-line answer is out; it cannot be unsent.
			s.log.Warn("upstream lost mid-response, closing client", "command", tc.Keyword, "err", cut)
			s.srv.Metrics.Resume("pop3", false, cut.reason)
			s.endReason = "upstream_lost"
			return true
		case tc.Keyword == "QUIT":
			s.endReason = "quit"
			s.quitAfterCut(cut)
			return true
		case replays >= maxReplays:
			s.log.Warn("upstream keeps failing on a command, giving up", "command", tc.Keyword, "err", cut)
			return s.fail(cut)
		}
		if err := s.resume(cut.reason, false); err != nil {
			return s.fail(err)
		}
	}
}

// fail tells the client the session cannot go on, and ends it.
func (s *session) fail(err error) (done bool) {
	s.endReason = "upstream_lost"
	s.writeLine("-ERR " + respCode(err) + " " + proxy.ClientMessage(err, s.acct.Name))
	return true
}

// exec runs a command once on the current upstream session. It returns
// nil when the command was answered (positively or not), a *cutError
// when the upstream was lost, or a client write error.
func (s *session) exec(tc txnCommand) error {
	if s.up == nil {
		return &cutError{reason: "error", err: errUpstreamClosed}
	}
	v := s.view
	remapped := v != nil && v.remapped
	switch {
	case tc.Keyword == "CAPA":
		return s.capa()
	case remapped && (tc.Keyword == "STAT" || tc.Keyword == "LIST" || tc.Keyword == "UIDL"):
		return s.answerFromView(tc)
	}
	num := tc.Msg
	if remapped && tc.Msg > 0 {
		msg, st := v.lookup(tc.Msg)
		if st != msgOK {
			return s.writeLine(lookupError(st, tc.Msg))
		}
		num = msg.cur
	}

	u := s.up
	if err := u.send(tc.line(num)); err != nil {
		return newCut(err, false)
	}
	status, err := u.peekLine()
	if err != nil {
		return newCut(err, false)
	}
	ok := isOK(status)
	if !ok && !isERR(status) {
		// Not a status line: the stream is out of step, and the only
		// way back into step is a new session.
		return newCut(fmt.Errorf("%w: %q", errUpstreamProtocol, truncate(trimEOL(status))), false)
	}
	if !ok {
		if s.upstreamGone(tc, status) {
			return newCut(errUpstreamClosed, false)
		}
		// upstreamGone may have read more into the buffer, which moves
		// what is buffered: take the line again.
		status, _ = u.r.Peek(len(status))
	}
	if ok && tc.multiLine() {
		return s.relayMulti(len(status))
	}
	// A single-line answer, relayed as the upstream wrote it.
	if err := s.write(status); err != nil {
		return err
	}
	u.r.Discard(len(status))
	u.idle = true
	if ok && v != nil {
		switch tc.Keyword {
		case "DELE":
			v.mark(tc.Msg)
		case "RSET":
			v.reset()
		}
	}
	if tc.Keyword == "QUIT" {
		// The upstream answered QUIT (+OK: committed; -ERR: RFC 1939
		// §6 "some deleted messages not removed"); either way its
		// session is over and nothing more may be sent on it.
		u.close()
		s.up = nil
	}
	return nil
}

// upstreamGone decides whether an -ERR answer to tc was the upstream
// ending the session rather than refusing the command (upstream.ended).
// The command should have succeeded unless the bridge's view says the
// client had an -ERR coming (a message number out of range or already
// deleted), or it is QUIT (whose -ERR is a real answer, RFC 1939 §6).
// Without a view no resume is possible, so only [SYS/TEMP] counts.
func (s *session) upstreamGone(tc txnCommand, status []byte) bool {
	unexpected := s.view != nil && tc.Keyword != "QUIT"
	if unexpected && tc.Msg > 0 {
		_, st := s.view.lookup(tc.Msg)
		unexpected = st == msgOK
	}
	return s.up.ended(status, unexpected)
}

// lookupError is the -ERR for a message number the view cannot serve.
func lookupError(st msgState, n int) string {
	if st == msgDeleted {
		return "-ERR Message " + strconv.Itoa(n) + " already deleted"
	}
	return "-ERR No such message"
}

// answerFromView answers STAT, LIST and UIDL from the client's view after
// a resume (see maildrop.remapped).
func (s *session) answerFromView(tc txnCommand) error {
	v := s.view
	switch {
	case tc.Keyword == "STAT":
		n, size := v.stat()
		return s.writeLine("+OK " + strconv.Itoa(n) + " " + strconv.FormatInt(size, 10))
	case tc.Msg > 0:
		msg, st := v.lookup(tc.Msg)
		if st != msgOK {
			return s.writeLine(lookupError(st, tc.Msg))
		}
		return s.writeLine("+OK " + scanLine(tc.Msg, msg, tc.Keyword == "UIDL"))
	case tc.Keyword == "LIST":
		n, size := v.stat()
		return s.writeMulti("+OK "+strconv.Itoa(n)+" messages ("+strconv.FormatInt(size, 10)+" octets)", v.scan(false))
	}
	return s.writeMulti("+OK", v.scan(true))
}

// capa answers CAPA after login: the bridge's lines merged with the
// upstream's (capa.go). The upstream's list is fetched each time rather
// than cached: CAPA after login is rare, and the answer then reflects the
// upstream session the client is actually on.
func (s *session) capa() error {
	u := s.up
	if err := u.send([]byte("CAPA")); err != nil {
		return newCut(err, false)
	}
	status, err := u.readLine()
	if err != nil {
		return newCut(err, false)
	}
	var lines []string
	if isOK(status) {
		body, err := u.readMulti(100)
		if err != nil {
			return newCut(err, false)
		}
		for _, l := range body {
			lines = append(lines, string(l))
		}
	} else {
		u.idle = true
	}
	return s.writeMulti(capaStatus, s.mergeCaps(lines))
}

// respCode maps a failure to its RFC 2449 / RFC 3206 response code (see
// the table at proxy.Failure).
func respCode(err error) string {
	switch proxy.Classify(err) {
	case proxy.FailBadCredentials, proxy.FailConsent, proxy.FailRefused:
		return "[AUTH]"
	case proxy.FailLimit:
		return "[IN-USE]"
	}
	return "[SYS/TEMP]"
}
