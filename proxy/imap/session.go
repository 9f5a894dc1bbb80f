package imap

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/oauthbridge/oauthbridge/internal/metrics"
	"github.com/oauthbridge/oauthbridge/proxy"
)

// session is one authenticated client and its upstream. Two goroutines
// move bytes: the client loop (ServeConn's goroutine) reads commands and
// forwards them upstream; the upstream loop reads responses and forwards
// them to the client. Tasks (learning UIDs, rotation, resume, shutdown)
// run in their own goroutines one at a time and take the "gate": the
// client loop holds the client's next command until they are done.
type session struct {
	srv   *Server
	log   *slog.Logger
	cl    *clientConn
	acct  *proxy.Account
	start time.Time
	toCl  prometheus.Counter // bytes to the client
	toUp  prometheus.Counter // bytes to the upstream

	// cwmu serializes writers of the client connection (cl.bw). It is held
	// for a whole response so that responses never interleave. Lock order:
	// cwmu before mu.
	cwmu sync.Mutex
	// partial: a response to the client is partly written (guarded by
	// cwmu: only the response writer sets it, on the relay's hot path).
	partial bool

	mu   sync.Mutex // guards the fields below
	cond *sync.Cond // broadcast on every change of them
	up   *upstream  // the current upstream session
	// inflight lists the commands sent to up whose tagged response has
	// not arrived, in the order sent.
	inflight []*command
	sending  *command // the client command being forwarded (between its first byte and its last)
	// contWaiter is the command waiting for a continuation ("+") to send
	// a synchronizing literal.
	contWaiter *command
	paused     bool     // a task holds the gate
	closed     bool     // the session is ending
	idle       *command // the client's IDLE, from its command to its tagged response
	mbox       *mailbox // the selected mailbox, nil when none
	selecting  *mailbox // a SELECT/EXAMINE in flight
	enabled    []string // extensions the client ENABLEd, restored upstream
	idCmd      []byte   // the client's last ID command (args), replayed upstream
	learning   bool     // a learn task is scheduled or running
	condstore  bool     // the client enabled CONDSTORE (RFC 7162 §3.1)
	timer      *time.Timer
	tasks      int // tasks started and not finished

	taskMu sync.Mutex     // held by the running task
	wg     sync.WaitGroup // upstream loops and tasks

	ctx    context.Context // cancelled when the session closes
	cancel context.CancelFunc

	// endReason says why the bridge ended the session ("logout",
	// "shutdown", a failure), for the logout line; guarded by mu.
	endReason string

	// trace is set at debug level: the transcript of command and response
	// lines (not literal contents), client lines masked.
	trace bool
}

// command is a client command (or one of the bridge's own) in flight.
type command struct {
	tag   string
	name  string
	class cmdClass
	// raw is the whole command after the tag (line text and literals, as
	// received) when it may be replayed; nil otherwise.
	raw []byte
	// incomplete: the client did not send the whole command (it was
	// waiting for a continuation the dead upstream never gave), so it
	// cannot be sent again; it gets NO [UNAVAILABLE].
	incomplete bool
	// unsent: writing it upstream failed (the upstream is gone). The
	// command may still be replayed if it is complete.
	unsent bool
	// cont receives true when the upstream asked for the literal, false
	// when the command ended (or the upstream died) first.
	cont chan bool
	// internal commands are the bridge's own; done receives their tagged
	// response line.
	internal bool
	done     chan []byte
	// replaying: the command is being sent again on a new upstream; its
	// continuation requests were already seen by the client.
	replaying bool
	// IDLE state (RFC 2177).
	idleUp     bool          // the upstream said "+ idling"
	doneSent   bool          // the client's DONE went upstream
	suspending chan struct{} // the bridge sent DONE itself; closed when the upstream ended the IDLE
	resuming   chan struct{} // the bridge re-sent IDLE; closed at the upstream's "+"
	// translated: a SEARCH rewritten to UID SEARCH whose results must be
	// mapped back.
	translated bool
	// learn is the bridge's FETCH (UID) pipelined behind a SELECT; the
	// SELECT's tagged response (heldOK) waits for it. heldFor links back.
	learn   *command
	heldFor *command
	heldOK  []byte
}

const maxReplayBytes = 64 << 10

func newSession(s *Server, cl *clientConn, lg *login, log *slog.Logger) *session {
	sess := &session{
		srv:   s,
		log:   log.With("account", lg.acct.Name, "upstream", lg.up.addr),
		cl:    cl,
		acct:  lg.acct,
		up:    lg.up,
		start: s.now(),
		toCl:  s.Metrics.Counter("imap", "to_client"),
		toUp:  s.Metrics.Counter("imap", "to_upstream"),
	}
	sess.cond = sync.NewCond(&sess.mu)
	sess.ctx, sess.cancel = context.WithCancel(context.Background())
	sess.trace = sess.log.Enabled(sess.ctx, slog.LevelDebug)
	return sess
}

// run relays until the client or the upstream ends the session.
func (s *session) run(ctx context.Context) {
	s.wg.Add(1)
	go s.upstreamLoop(s.up)
	s.mu.Lock()
	s.scheduleRotationLocked(s.up)
	s.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { s.startTask(s.shutdownTask) })
	if forced := s.cl.pc.Forced; forced != nil {
		// The client loop may be holding a command back (waiting for the
		// upstream), where closing the socket alone would not reach it.
		defer context.AfterFunc(forced, s.close)()
	}

	err := s.clientLoop()

	stop()
	s.close()
	s.wg.Wait()
	s.mu.Lock()
	reason := s.endReason
	s.mu.Unlock()
	switch {
	case reason != "":
	case err != nil && !isClosedErr(err):
		reason = err.Error()
	default:
		reason = "client closed"
	}
	s.log.Info("logout", "duration", s.srv.now().Sub(s.start).Round(time.Millisecond), "reason", reason)
}

// close ends the session: no more tasks or commands, upstream closed.
func (s *session) close() {
	s.mu.Lock()
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
	}
	up := s.up
	s.cond.Broadcast()
	s.mu.Unlock()
	s.cancel()
	up.close()
	s.cl.pc.Close()
}

// startTask runs f in its own goroutine under taskMu, unless the session
// is closing.
func (s *session) startTask(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.startTaskLocked(f)
}

// startTaskLocked is startTask with mu held.
func (s *session) startTaskLocked(f func()) {
	if s.closed {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.taskMu.Lock()
		defer s.taskMu.Unlock()
		s.mu.Lock()
		closed := s.closed
		s.mu.Unlock()
		if !closed {
			f()
		}
	}()
}

// writeClient writes a complete response (or several lines) of the
// bridge's own to the client, between upstream responses.
func (s *session) writeClient(text string) error {
	s.cwmu.Lock()
	defer s.cwmu.Unlock()
	s.cl.bw.WriteString(text)
	s.cl.bw.WriteString("\r\n")
	return s.cl.flush()
}

// fail closes the client connection after an unrecoverable problem,
// telling it why with an untagged BYE when possible.
func (s *session) fail(reason string, err error) {
	s.log.Warn("closing client session", "reason", reason, "error", errString(err))
	s.setEndReason(reason)
	s.cwmu.Lock()
	if !s.partial {
		s.cl.bw.WriteString("* BYE [UNAVAILABLE] " + reason + "\r\n")
		s.cl.flush()
	}
	s.cwmu.Unlock()
	s.close()
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

var errSessionClosed = errors.New("imap: session closed")

// addBytes counts relayed bytes.
func addBytes(c prometheus.Counter, n int) { metrics.AddBytes(c, n) }

// setEndReason records the first reason the session ends for.
func (s *session) setEndReason(r string) {
	s.mu.Lock()
	if s.endReason == "" {
		s.endReason = r
	}
	s.mu.Unlock()
}
