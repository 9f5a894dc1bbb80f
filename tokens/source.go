package tokens

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// Source gives the access tokens of one account (and, for service
// accounts, one subject). It satisfies proxy.TokenSource. The tokens it
// returns carry no refresh token; callers must not modify them.
type Source struct {
	m       *Manager
	account string // the spec's Name
	subject string // service accounts: the JWT sub; "" for other flows

	mu sync.Mutex // guards every field below
	// tok is the current access token (no refresh token inside); nil
	// when there is none.
	tok *oauth2.Token
	// loaded: the store was read at least once (stored flows).
	loaded bool
	// version of the token file as last read or written by this process;
	// a different one on disk means another process wrote it.
	version fileVersion
	// consent: the grant is gone or was never made; no refresh is tried
	// until the token file changes.
	consent bool
	// rtUsed is when the refresh token was last known to work (keepalive).
	rtUsed time.Time
	// err is the last failure, nil after a success.
	err error
	// failures counts consecutive failures, for the backoff; no refresh
	// starts before retryAt.
	failures int
	retryAt  time.Time
	// refreshing is non-nil while a refresh runs; it is closed when the
	// refresh has ended and its result is in the fields above.
	refreshing chan struct{}
	// lastUse is the last Token call, lastAttempt the last refresh start.
	lastUse, lastAttempt time.Time
	// unsaved is a refreshed record that the store failed to write (disk
	// full...): its rotated refresh token exists nowhere else, so the next
	// refresh uses it instead of the stored one, whose refresh token is
	// unsavedFrom, and writes it first.
	unsaved     *Record
	unsavedFrom string
}

type refreshKind int

const (
	refreshIfStale   refreshKind = iota // refresh when not fresh
	refreshRejected                     // the upstream refused token `rejected`
	refreshKeepalive                    // also refresh to use an idle refresh token
)

// Token returns a valid access token: from memory while it is more than
// RefreshBefore from expiry (no I/O, no allocation beyond the copy). A
// token inside the margin is returned at once while a refresh runs in the
// background. Without a valid token, the caller waits for the one shared
// refresh (or until ctx is done). During a token-endpoint outage a still
// valid token keeps being served.
func (s *Source) Token(ctx context.Context) (*oauth2.Token, error) {
	return s.get(ctx, false, "")
}

// ForceRefresh is called when the upstream refused `rejected`. If the
// current token is already another valid one (another session refreshed
// first) it is returned; otherwise a refresh runs (shared with concurrent
// callers) even if the token looks valid.
func (s *Source) ForceRefresh(ctx context.Context, rejected string) (*oauth2.Token, error) {
	return s.get(ctx, true, rejected)
}

func (s *Source) get(ctx context.Context, force bool, rejected string) (*oauth2.Token, error) {
	margin := s.m.opts.RefreshBefore
	for round := 0; ; round++ {
		s.mu.Lock()
		now := s.m.now()
		s.lastUse = now
		tok := s.tok
		usable := tok != nil && now.Before(tok.Expiry) && (!force || tok.AccessToken != rejected)
		if usable && (force || tok.Expiry.Sub(now) > margin) {
			t := *tok
			s.mu.Unlock()
			return &t, nil
		}
		var ch chan struct{}
		var err error
		if round < 2 {
			kind := refreshIfStale
			if force {
				kind = refreshRejected
			}
			ch, err = s.startLocked(now, kind, rejected)
		} else if err = s.err; err == nil {
			err = &Error{Account: s.account, Op: "token", Description: "no valid token after refresh", temporary: true}
		}
		if ch == nil || usable {
			// No refresh to wait for (consent required, backing off,
			// closed, or done waiting), or a still valid token to serve
			// while the refresh runs ahead of expiry.
			var t *oauth2.Token
			if usable {
				c := *tok
				t, err = &c, nil
			}
			s.mu.Unlock()
			return t, err
		}
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, &Error{Account: s.account, Op: "token", Description: "gave up waiting for a refresh",
				temporary: true, err: context.Cause(ctx)}
		}
	}
}

// startLocked starts a refresh, or returns the one already running. It
// returns a nil channel and the reason when none may start now.
func (s *Source) startLocked(now time.Time, kind refreshKind, rejected string) (chan struct{}, error) {
	if s.refreshing != nil {
		return s.refreshing, nil
	}
	a := s.m.account(s.account)
	if a == nil {
		return nil, &Error{Account: s.account, Op: "token", Description: "account is no longer configured"}
	}
	if s.consent {
		// Nothing to try until someone authorizes again; a stat tells
		// whether the authorize CLI has written the file meanwhile.
		if v, err := s.m.store.version(s.account); err != nil || v == s.version {
			return nil, s.err
		}
	} else if now.Before(s.retryAt) {
		return nil, s.err
	}
	ch := make(chan struct{})
	unsaved, from := s.unsaved, s.unsavedFrom
	if !s.m.startRefresh(func() { s.run(a, kind, rejected, unsaved, from, ch) }) {
		return nil, ErrClosed
	}
	s.refreshing = ch
	s.lastAttempt = now
	return ch, nil
}

// background is Run's per-source check.
func (s *Source) background() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refreshing != nil {
		return
	}
	a := s.m.account(s.account)
	if a == nil {
		return
	}
	now := s.m.now()
	stale := !s.loaded && a.spec.Flow.persisted() || s.tok == nil || s.tok.Expiry.Sub(now) <= s.m.opts.RefreshBefore
	switch {
	case s.consent:
		_, _ = s.startLocked(now, refreshIfStale, "") // only when the file changed
	case !a.spec.Flow.persisted():
		// Grants are renewed ahead only for subjects in use.
		if stale && s.tok != nil && now.Sub(s.lastUse) < idleSubject {
			_, _ = s.startLocked(now, refreshIfStale, "")
		}
	case stale:
		_, _ = s.startLocked(now, refreshIfStale, "")
	case now.Sub(s.rtUsed) >= s.m.opts.Keepalive:
		_, _ = s.startLocked(now, refreshKeepalive, "")
	default:
		// Another process (a second daemon, the CLI) may have refreshed
		// or re-authorized: adopt its token without a request.
		if v, err := s.m.store.version(s.account); err == nil && v != s.version {
			_, _ = s.startLocked(now, refreshIfStale, "")
		}
	}
}

// idle reports whether the Source has been unused long enough to be
// dropped.
func (s *Source) idle(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refreshing == nil && now.Sub(s.lastUse) > idleSubject
}

// result is what a refresh goroutine hands back.
type result struct {
	rec         *Record     // stored flows: the record now current (read or written)
	version     fileVersion // of rec's file; meaningful with rec or notFound
	notFound    bool        // no token file
	tok         *oauth2.Token
	err         error
	unsaved     *Record
	unsavedFrom string
}

func (s *Source) run(a *account, kind refreshKind, rejected string, unsaved *Record, unsavedFrom string, done chan struct{}) {
	ctx, cancel := context.WithTimeout(s.m.ctx, s.m.opts.RefreshTimeout)
	defer cancel()
	var res result
	if a.spec.Flow.persisted() {
		res = s.refreshStored(ctx, a, kind, rejected, unsaved, unsavedFrom)
	} else {
		res = s.refreshGrant(ctx, a)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if res.rec != nil || res.notFound {
		s.version, s.loaded = res.version, true
	}
	if res.rec != nil {
		s.tok = accessOf(res.rec)
		s.consent = res.rec.ConsentRequired
		s.rtUsed = res.rec.refreshTokenUsed()
	}
	if res.notFound {
		s.tok, s.consent = nil, true
	}
	if res.tok != nil {
		s.tok = res.tok
	}
	s.unsaved, s.unsavedFrom = res.unsaved, res.unsavedFrom
	if res.err == nil {
		s.err, s.failures, s.retryAt = nil, 0, time.Time{}
	} else {
		s.err = res.err
		if IsConsentRequired(res.err) {
			s.consent = true
		} else {
			s.failures++
			s.retryAt = s.m.now().Add(s.m.backoff(s.failures))
		}
	}
	s.refreshing = nil
	close(done)
}

// backoff is exponential from MinBackoff, capped at MaxBackoff, with
// jitter in [d/2, d) so that accounts failing together spread out.
func (m *Manager) backoff(failures int) time.Duration {
	d := m.opts.MinBackoff << min(failures-1, 30)
	if d <= 0 || d > m.opts.MaxBackoff {
		d = m.opts.MaxBackoff
	}
	return d/2 + rand.N(d/2+1)
}

func accessOf(r *Record) *oauth2.Token {
	if r.AccessToken == "" {
		return nil
	}
	return &oauth2.Token{AccessToken: r.AccessToken, TokenType: r.TokenType, Expiry: r.Expiry}
}

// expiryOf places a new token's expiry on the Manager's clock. A token
// response without expires_in is taken to last an hour: x/oauth2 would
// call it eternal, and sessions are rotated by it.
func (m *Manager) expiryOf(t *oauth2.Token) time.Time {
	switch {
	case t.ExpiresIn > 0:
		return m.now().Add(time.Duration(t.ExpiresIn) * time.Second)
	case !t.Expiry.IsZero():
		return m.now().Add(time.Until(t.Expiry))
	}
	return m.now().Add(time.Hour)
}

// refreshStored is one read-refresh-write cycle of a stored account under
// the cross-process lock. The record is read after taking the lock:
// another process may have refreshed already, and refreshing again with
// the same rotating refresh token would be a replay that kills the grant.
func (s *Source) refreshStored(ctx context.Context, a *account, kind refreshKind, rejected string, unsaved *Record, unsavedFrom string) result {
	m, name := s.m, a.spec.Name
	unlock, err := m.store.Lock(ctx, name)
	if err != nil {
		return result{err: &Error{Account: name, Op: "lock", Description: err.Error(), temporary: true, err: err},
			unsaved: unsaved, unsavedFrom: unsavedFrom}
	}
	defer unlock()

	rec, ver, err := m.store.load(name)
	if unsaved != nil {
		if err == nil && rec.RefreshToken != unsavedFrom {
			// Someone wrote a newer record (authorize): ours is stale.
			unsaved = nil
		} else {
			rec, err = unsaved, nil
			if v, serr := m.store.save(name, unsaved); serr == nil {
				ver, unsaved = v, nil
			}
		}
	}
	keep := func(r result) result { r.unsaved, r.unsavedFrom = unsaved, unsavedFrom; return r }
	if errors.Is(err, ErrNoToken) {
		return result{notFound: true, err: notAuthorized(a)}
	}
	if err != nil {
		return keep(result{err: &Error{Account: name, Op: "load", Description: err.Error(), err: err}})
	}
	res := keep(result{rec: rec, version: ver})
	if rec.ConsentRequired {
		res.err = consentFromRecord(a, rec)
		return res
	}
	now := m.now()
	fresh := rec.AccessToken != "" && rec.Expiry.Sub(now) > m.opts.RefreshBefore
	need := !fresh ||
		kind == refreshRejected && rec.AccessToken == rejected ||
		kind == refreshKeepalive && now.Sub(rec.refreshTokenUsed()) >= m.opts.Keepalive
	if !need {
		m.log.Debug("token adopted from store", "account", name)
		return res
	}
	if rec.RefreshToken == "" {
		res.err = &Error{Account: name, Op: "refresh", Description: "no refresh token stored",
			Fix: authorizeFix(name), consent: true}
		return res
	}

	start := time.Now()
	tok, err := a.refreshGrant(ctx, rec.RefreshToken)
	next := *rec
	next.LastRefreshAt = now
	if err != nil {
		e := classify(a, "refresh", err)
		m.metric(e)
		next.LastError = e.Error()
		next.ConsentRequired = e.consent
		// Only the error is recorded; the tokens stay as they were.
		if v, serr := m.store.save(name, &next); serr == nil {
			res.rec, res.version = &next, v
		} else {
			m.log.Error("cannot record refresh error", "account", name, "err", serr)
		}
		res.err = e
		m.logFailure(a, "", e)
		return res
	}
	m.metric(nil)
	next.AccessToken, next.TokenType, next.Expiry = tok.AccessToken, tok.TokenType, m.expiryOf(tok)
	rotated := tok.RefreshToken != "" && tok.RefreshToken != rec.RefreshToken
	if rotated {
		next.RefreshToken, next.RefreshTokenIssuedAt = tok.RefreshToken, now
	}
	next.RefreshTokenLastUsed, next.LastError, next.ConsentRequired = now, "", false
	// Persist before anyone sees the new access token: a crash after this
	// point loses nothing.
	res.rec = &next
	if v, serr := m.store.save(name, &next); serr != nil {
		m.log.Error("cannot store refreshed token; keeping it in memory", "account", name, "err", serr)
		res.unsaved, res.unsavedFrom = &next, rec.RefreshToken
	} else {
		res.version, res.unsaved, res.unsavedFrom = v, nil, ""
	}
	m.log.Info("token refreshed", "account", name, "rotated", rotated,
		"expires_in", next.Expiry.Sub(now).Round(time.Second), "took", time.Since(start).Round(time.Millisecond))
	return res
}

// consentFromRecord rebuilds the error of a record marked consent_required
// (by this or another process).
func consentFromRecord(a *account, rec *Record) *Error {
	desc := "authorization is no longer valid"
	if rec.LastError != "" {
		desc = "last refresh failed: " + rec.LastError
	}
	return &Error{Account: a.spec.Name, Op: "token", Description: desc, Fix: authorizeFix(a.spec.Name), consent: true}
}

// refreshGrant obtains a new token for a grant flow (no store, no lock).
func (s *Source) refreshGrant(ctx context.Context, a *account) result {
	m := s.m
	start := time.Now()
	tok, err := a.grant(ctx, s.subject)
	if err != nil {
		e := classify(a, "grant", err)
		m.metric(e)
		m.logFailure(a, s.subject, e)
		return result{err: e}
	}
	m.metric(nil)
	t := &oauth2.Token{AccessToken: tok.AccessToken, TokenType: tok.TokenType, Expiry: m.expiryOf(tok)}
	args := []any{"account", a.spec.Name, "flow", string(a.spec.Flow), "expires_in", t.Expiry.Sub(m.now()).Round(time.Second),
		"took", time.Since(start).Round(time.Millisecond)}
	if s.subject != "" {
		args = append(args, "subject", s.subject)
	}
	m.log.Info("token granted", args...)
	return result{tok: t}
}

func (m *Manager) metric(e *Error) {
	switch {
	case e == nil:
		m.opts.Metrics.Refresh("ok")
	case e.consent:
		m.opts.Metrics.Refresh("consent_required")
	case e.temporary:
		m.opts.Metrics.Refresh("temporary_error")
	default:
		m.opts.Metrics.Refresh("error")
	}
}

func (m *Manager) logFailure(a *account, subject string, e *Error) {
	args := []any{"account", a.spec.Name, "err", e.Error()}
	if subject != "" {
		args = append(args, "subject", subject)
	}
	switch {
	case e.consent:
		m.log.Error("token refresh failed: consent required", args...)
	case e.temporary:
		m.log.Warn("token refresh failed, will retry", args...)
	default:
		m.log.Error("token refresh failed", args...)
	}
}
