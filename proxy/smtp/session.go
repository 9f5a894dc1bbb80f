package smtp

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/oauthbridge/oauthbridge/proxy"
)

// session is one client connection's state. It is go-smtp's Backend (for
// this one connection) and its Session: NewSession returns the session
// itself, again after a STARTTLS.
//
// go-smtp calls the Session methods on the connection's goroutine, except
// Data for BDAT, which runs on a goroutine of its own while the
// connection's goroutine feeds it; mu serialises them.
type session struct {
	srv *Server
	pc  *proxy.Conn
	cc  *clientConn
	gs  *gosmtp.Server // this connection's go-smtp server; fields changed only on its goroutine
	ctx context.Context
	log *slog.Logger

	conn *gosmtp.Conn // go-smtp's connection; used on its goroutine only

	upMu sync.Mutex // guards hard and upc: the drain watcher reads them
	hard time.Time  // after shutdown began: no upstream wait beyond this
	upc  *upConn    // the current upstream connection, for the drain to cap

	// logoutAfterData is a Logout that came while Data held mu.
	logoutAfterData atomic.Bool

	mu      sync.Mutex // guards everything below; Data holds it for a whole message
	ended   bool
	acct    *proxy.Account
	relay   bool
	release func()
	alog    *slog.Logger // log with account and upstream
	loginAt time.Time
	msgs    int

	up     *upstream
	upLost string // why up was dropped ("" when on purpose): the next connect is a resume

	// The transaction, as the client sees it: accepted MAIL and RCPTs, to
	// replay on a new upstream connection (DESIGN §4 continuity 5).
	inTx   bool // MAIL was accepted
	from   string
	mailOp *gosmtp.MailOptions
	rcpts  []rcpt
	txErr  error // the transaction could not be restored: refuse the rest
	spool  *spool
}

type rcpt struct {
	to   string
	opts *gosmtp.RcptOptions
}

var (
	_ gosmtp.Backend     = (*session)(nil)
	_ gosmtp.AuthSession = (*session)(nil)
)

func newSession(ctx context.Context, srv *Server, pc *proxy.Conn, cc *clientConn, log *slog.Logger) *session {
	return &session{
		srv:   srv,
		pc:    pc,
		cc:    cc,
		ctx:   context.WithoutCancel(ctx), // values (proto, session) only: the drain is handled by drain()
		log:   log,
		alog:  log,
		spool: newSpool(srv.SpoolDir, orDefault(srv.SpoolMemory, DefaultSpoolMemory)),
	}
}

// NewSession is called by go-smtp at EHLO/HELO, and again at the first
// EHLO after a STARTTLS.
//
// The session's debug lines (EHLO, AUTH, MAIL, RCPT, the message line)
// are its transcript. go-smtp's raw Debug writer is not used: it gets the
// client's bytes and the replies on one stream without saying which is
// which, message bodies included, so masking AUTH in it would rest on
// guessing the direction.
func (s *session) NewSession(c *gosmtp.Conn) (gosmtp.Session, error) {
	s.conn = c
	s.cc.setTop(c.Conn())
	s.log.Debug("EHLO", "helo", c.Hostname(), "tls", tlsActive(c, s.pc))
	if s.cc.isDraining() {
		s.cc.closeAtNextRead()
		return nil, errShutdown
	}
	return s, nil
}

// drain is called once when the server shuts down gracefully.
func (s *session) drain() {
	s.upMu.Lock()
	s.hard = time.Now().Add(orDefault(s.srv.DrainTimeout, DefaultDrainTimeout))
	upc, hard := s.upc, s.hard
	s.upMu.Unlock()
	if upc != nil {
		upc.capDeadlines(hard)
	}
	s.cc.drain("421 4.3.2 " + s.srv.hostname() + " " + proxy.ClientMessage(proxy.ErrShuttingDown, "") + "\r\n")
}

func (s *session) hardDeadline() time.Time {
	s.upMu.Lock()
	defer s.upMu.Unlock()
	return s.hard
}

func (s *session) trackUpstream(u *upConn) {
	s.upMu.Lock()
	s.upc = u
	s.upMu.Unlock()
}

// Reset ends the transaction (RSET, EHLO, and after every DATA/BDAT reply).
func (s *session) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cc.setInData(false)
	s.inTx, s.from, s.mailOp, s.rcpts, s.txErr = false, "", nil, nil, nil
	if s.up != nil && s.up.txOpen {
		if err := s.up.c.Reset(); err != nil {
			s.dropUpstream(lostReason(err))
			return
		}
		s.up.txOpen = false
	}
}

// Logout is called by go-smtp when the connection closes, and at STARTTLS
// (RFC 3207 §4.2: the client must authenticate again over TLS).
func (s *session) Logout() error {
	s.cc.setTop(nil) // after a STARTTLS, unknown until the next EHLO
	if !s.mu.TryLock() {
		// Only Data of a BDAT transfer holds mu while go-smtp's goroutine
		// runs (STARTTLS or a close between chunks). Waiting here would
		// deadlock: go-smtp closes the chunk pipe that ends Data only
		// after Logout returns. Data logs out as it ends instead.
		s.logoutAfterData.Store(true)
		return nil
	}
	defer s.mu.Unlock()
	s.logoutLocked()
	return nil
}

// end runs after go-smtp is done with the connection: whatever Logout did
// not get to (go-smtp skips it when no EHLO came) is released here.
func (s *session) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ended = true
	s.logoutLocked()
	if err := s.spool.reset(); err != nil {
		s.log.Warn("spool cleanup failed", "err", err)
	}
}

func (s *session) logoutLocked() {
	if s.acct == nil {
		return
	}
	if s.up != nil {
		s.up.quit(s.hardDeadline())
		s.up = nil
	}
	s.release()
	s.alog.Info("logout", "messages", s.msgs, "duration", time.Since(s.loginAt).Round(time.Millisecond))
	s.acct, s.release, s.relay, s.alog, s.msgs = nil, nil, false, s.log, 0
	s.inTx, s.from, s.mailOp, s.rcpts, s.txErr, s.upLost = false, "", nil, nil, nil, ""
}

// begin makes acct the session's account: per-account session slot, then
// the upstream connection, so login problems are reported now (at AUTH,
// or at MAIL for a relay client).
func (s *session) begin(ctx context.Context, acct *proxy.Account, relay bool) error {
	release, err := s.srv.Limits.AcquireAccount(proto, acct.Name)
	if err != nil {
		return err
	}
	start := time.Now()
	up, err := s.connect(ctx, acct)
	if err != nil {
		release()
		return err
	}
	s.acct, s.relay, s.release, s.up, s.upLost = acct, relay, release, up, ""
	s.loginAt = time.Now()
	s.alog = s.log.With("account", acct.Name, "upstream", acct.SMTP.Addr)
	s.cc.setLoginDeadline(time.Time{})
	// From now on this session's limits are its upstream's.
	s.gs.MaxMessageBytes = limitOf(up.caps, s.srv.maxMessageBytes())
	s.gs.EnableSMTPUTF8 = up.caps.utf8
	s.alog.Info("login", "relay", relay, "upstream_size", up.caps.size, "duration", time.Since(start).Round(time.Millisecond))
	return nil
}

// connect opens an authenticated upstream connection for acct, refreshing
// the token once if the upstream refuses it.
func (s *session) connect(ctx context.Context, acct *proxy.Account) (*upstream, error) {
	start := time.Now()
	var up *upstream
	tok, err := proxy.AuthenticateUpstream(ctx, acct.Tokens, func(accessToken string) error {
		u, err := s.dial(ctx, acct, accessToken)
		if err == nil {
			up = u
		}
		return err
	})
	s.srv.Metrics.UpstreamConnect(proto, time.Since(start), err == nil)
	if err != nil {
		return nil, err
	}
	pol := acct.Session
	switch {
	case pol.Lifetime > 0:
		up.ends = start.Add(pol.Lifetime)
	case tok != nil && !tok.Expiry.IsZero():
		up.ends = tok.Expiry
	}
	if !up.ends.IsZero() {
		up.ends = up.ends.Add(-pol.RotateBefore)
	}
	s.srv.sizes.learn(acct.SMTP.Addr, up.caps)
	return up, nil
}

func (s *session) upstreamCtx() (context.Context, context.CancelFunc) {
	d := earliest(time.Now().Add(orDefault(s.srv.UpstreamTimeout, DefaultUpstreamTimeout)), s.hardDeadline())
	return context.WithDeadline(s.ctx, d)
}

// dropUpstream closes a lost upstream connection; reason says why (metrics
// reason of the resume that follows), "" when closed on purpose.
func (s *session) dropUpstream(reason string) {
	if s.up != nil {
		s.up.close()
		s.up = nil
	}
	s.upLost = reason
}

// rotateIfDue replaces an upstream session that is past its token's
// lifetime (or the provider's session lifetime) between transactions: the
// same reconnect as a resume, done before the upstream ends it.
func (s *session) rotateIfDue() {
	if s.up == nil || s.up.ends.IsZero() || time.Now().Before(s.up.ends) {
		return
	}
	reason := "token_expiry"
	if s.acct.Session.Lifetime > 0 {
		reason = "session_lifetime"
	}
	start := time.Now()
	ctx, cancel := s.upstreamCtx()
	up, err := s.connect(ctx, s.acct)
	cancel()
	s.srv.Metrics.Rotation(proto, err == nil, reason)
	if err != nil {
		// Keep the old session: it may still work, and if not, the
		// command on it fails and a resume follows.
		s.alog.Info("upstream rotation failed", "reason", reason, "err", err, "duration", time.Since(start).Round(time.Millisecond))
		return
	}
	old := s.up
	s.up = up
	old.quit(s.hardDeadline())
	s.alog.Info("upstream rotated", "reason", reason, "duration", time.Since(start).Round(time.Millisecond))
}

// do runs op, one upstream command of the transaction, on the upstream
// connection. When the connection is missing or turns out lost, it
// resumes (new connection, replay of the transaction so far) and runs op
// once more. It returns nil, the upstream's own refusal (relayed to the
// client as it is), or an *SMTPError for a connection that could not be
// restored.
func (s *session) do(phase string, op func(*upstream) error) error {
	if s.up != nil {
		err := op(s.up)
		if !isConnLost(err) {
			return err
		}
		s.dropUpstream(lostReason(err))
	}
	if err := s.resume(phase); err != nil {
		return err
	}
	err := op(s.up)
	if isConnLost(err) {
		s.dropUpstream(lostReason(err))
		return errUpstreamLost(err)
	}
	return err
}

// resume connects again and replays the open transaction (MAIL and the
// accepted RCPTs). It retries with backoff while the failure is
// temporary, for at most the account's Session.ResumeWithin. A resume
// after a lost connection is logged and counted; a plain reconnect (the
// connection was closed on purpose, e.g. after an aborted message) is not.
func (s *session) resume(phase string) error {
	reason := s.upLost
	start := time.Now()
	within := orDefault(s.acct.Session.ResumeWithin, DefaultResumeWithin)
	backoff := 100 * time.Millisecond
	var err error
	for {
		// Recomputed each round: a drain that began meanwhile shortens it.
		giveUp := earliest(start.Add(within), s.hardDeadline())
		ctx, cancel := context.WithDeadline(s.ctx, earliest(giveUp, time.Now().Add(orDefault(s.srv.UpstreamTimeout, DefaultUpstreamTimeout))))
		var up *upstream
		up, err = s.connect(ctx, s.acct)
		cancel()
		if err == nil {
			if err = s.replay(up); err == nil {
				s.up, s.upLost = up, ""
				if reason != "" {
					s.srv.Metrics.Resume(proto, true, reason)
					s.alog.Info("upstream resumed", "reason", reason, "phase", phase, "duration", time.Since(start).Round(time.Millisecond))
				}
				return nil
			}
			up.close()
			if !isConnLost(err) {
				break // the upstream refused part of the replay: cannot restore
			}
		} else if proxy.Classify(err) != proxy.FailUnavailable {
			break // consent, refused token, limits: waiting will not help
		}
		if time.Now().Add(backoff).After(giveUp) {
			break
		}
		t := time.NewTimer(backoff)
		<-t.C
		backoff = min(2*backoff, 2*time.Second)
	}
	if reason != "" {
		s.srv.Metrics.Resume(proto, false, reason)
		s.alog.Info("upstream resume failed", "reason", reason, "phase", phase, "err", err, "duration", time.Since(start).Round(time.Millisecond))
	} else {
		s.alog.Info("upstream reconnect failed", "phase", phase, "err", err, "duration", time.Since(start).Round(time.Millisecond))
	}
	return s.resumeError(err)
}

// replay restores the client's open transaction on a new connection.
func (s *session) replay(up *upstream) error {
	if !s.inTx {
		return nil
	}
	if err := up.c.Mail(s.from, s.mailOp); err != nil {
		return err
	}
	up.txOpen = true
	for _, r := range s.rcpts {
		if err := up.c.Rcpt(r.to, r.opts); err != nil {
			return err
		}
	}
	return nil
}

// resumeError maps a failed resume to the client's reply. A transaction
// the client believes open but that could not be restored fails as a
// whole, so no recipient it was told "250" about is silently dropped.
func (s *session) resumeError(err error) error {
	if s.inTx {
		s.txErr = errTxLost
	}
	if !isConnLost(err) && isReply(err) {
		return errTxLost
	}
	return s.txFailure(err)
}
