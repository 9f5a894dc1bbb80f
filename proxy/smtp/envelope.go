package smtp

import (
	gosmtp "github.com/emersion/go-smtp"

	"github.com/oauthbridge/oauthbridge/proxy"
)

// Mail starts a transaction. Without AUTH it is refused (530, RFC 4954
// §6) unless the client is in relay_without_auth.from: then the session
// becomes the relay account's and its upstream identity sends. go-smtp
// does not enforce AUTH before MAIL itself (FACTS), so this check is what
// keeps the bridge from being an open relay: no RCPT is possible before an
// accepted MAIL.
//
// The MAIL goes upstream at once, so the client gets the upstream's own
// refusal (an authenticated session sends only as its own account: the
// upstream enforces its From rules).
func (s *session) Mail(from string, opts *gosmtp.MailOptions) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cc.isDraining() || s.cc.isClosing() {
		// RFC 5321 §3.8: no new transaction once shutdown began.
		s.cc.closeAtNextRead()
		return errShutdown
	}
	if s.acct == nil {
		if !s.srv.relayAllowed(s.pc.Remote) {
			s.log.Debug("MAIL refused: authentication required")
			return errAuthRequired
		}
		acct, err := s.srv.Auth.Account(s.srv.RelayAccount)
		if err == nil {
			ctx, cancel := s.upstreamCtx()
			err = s.begin(ctx, acct, true)
			cancel()
		}
		s.srv.Metrics.Login(proto, proxy.LoginOutcome(err))
		if err != nil {
			s.log.Info("relay upstream login failed", "account", s.srv.RelayAccount, "outcome", proxy.LoginOutcome(err), "err", err)
			return s.txFailure(err)
		}
	}
	if s.inTx {
		return errNestedMail
	}
	if opts != nil && opts.UTF8 && s.up != nil && !s.up.caps.utf8 {
		return errNoUTF8
	}
	s.rotateIfDue()
	err := s.do("mail", func(up *upstream) error {
		if opts != nil && opts.UTF8 && !up.caps.utf8 {
			return errNoUTF8
		}
		return up.c.Mail(from, opts)
	})
	s.alog.Debug("MAIL", "from", from, "reply", replyCode(err))
	if err != nil {
		return err
	}
	s.up.txOpen = true
	s.inTx, s.from, s.mailOp, s.rcpts, s.txErr = true, from, opts, nil, nil
	return nil
}

// Rcpt passes one recipient upstream, so each gets the upstream's own
// reply (go-smtp's client SendMail would stop at the first refusal).
// Only accepted recipients are kept for a replay.
func (s *session) Rcpt(to string, opts *gosmtp.RcptOptions) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cc.isClosing() {
		return errShutdown // not seen: the session is ending (a command fragment after a timeout)
	}
	if s.txErr != nil {
		return s.txErr
	}
	if s.acct == nil || !s.inTx {
		return errAuthRequired // unreachable: go-smtp wants MAIL first, and MAIL wants an account
	}
	err := s.do("rcpt", func(up *upstream) error { return up.c.Rcpt(to, opts) })
	s.alog.Debug("RCPT", "to", to, "reply", replyCode(err))
	if err != nil {
		return err
	}
	s.rcpts = append(s.rcpts, rcpt{to: to, opts: opts})
	return nil
}
