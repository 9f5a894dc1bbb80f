// Package tokens owns the bridge's OAuth tokens: an encrypted on-disk
// Store, a Manager that hands out always-valid access tokens (refreshing
// ahead of expiry, one refresh at a time per account across goroutines and
// processes), and the flows that obtain consent (authorization code with
// PKCE and a loopback redirect, device flow) or grants (Google service
// accounts, client credentials).
//
// Typical use in the daemon:
//
//	store, err := tokens.OpenStore(cfg.StateDir, cfg.MasterKeyFile)
//	m := tokens.NewManager(store, tokens.Options{Logger: log, Metrics: met})
//	defer m.Close()
//	if err := m.SetAccounts(specs); err != nil { ... } // again on SIGHUP
//	go m.Run(ctx)                                      // refresh ahead, keepalive, notice the CLI's writes
//	src, err := m.Source("alice@gmail.com", "")        // a proxy.TokenSource
//	tok, err := src.Token(ctx)                         // microseconds when warm
//
// and in the CLI:
//
//	err := m.AuthorizeCode(ctx, spec, tokens.AuthCodeOptions{Out: os.Stdout, In: os.Stdin})
//	for _, st := range m.Status() { ... }
//
// Failures are *Error values with ConsentRequired() and Temporary().
package tokens

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/oauthbridge/oauthbridge/internal/metrics"
)

// Options tune a Manager. The zero value is usable.
type Options struct {
	// RefreshBefore: an access token is refreshed this long before it
	// expires (5m).
	RefreshBefore time.Duration
	// Keepalive: a refresh token unused this long is used once, so that
	// providers that expire idle refresh tokens (Microsoft: 90 days) never
	// do (168h).
	Keepalive time.Duration
	// CheckInterval is Run's period: refresh ahead, keepalive, and a stat
	// of each token file to notice another process's writes (30s).
	CheckInterval time.Duration
	// RefreshTimeout bounds one refresh, waiting for the cross-process
	// lock included (60s).
	RefreshTimeout time.Duration
	// MinBackoff and MaxBackoff bound the jittered exponential backoff
	// after failed refreshes (1s, 5m).
	MinBackoff, MaxBackoff time.Duration
	// HTTPClient for every token request; nil builds one per account with
	// its RootCAs and a 30 s timeout.
	HTTPClient *http.Client
	// Now is the clock (time.Now). Expiry decisions use it.
	Now func() time.Time
	// Logger; nil discards. No token or secret is ever logged.
	Logger *slog.Logger
	// Metrics counts refreshes by outcome and gets per-account gauges
	// (token state, access token expiry); nil is fine.
	Metrics *metrics.Metrics
}

// Manager hands out token Sources for the configured accounts and keeps
// their tokens fresh. Safe for concurrent use.
//
// Lock order: a Source's mu may be held while taking Manager.mu, never the
// reverse.
type Manager struct {
	store *Store
	opts  Options
	log   *slog.Logger
	now   func() time.Time

	// ctx lives until Close. Refreshes run under it, not under a caller's
	// context: a caller giving up must not abort a refresh whose rotated
	// refresh token the provider has already issued.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // refresh goroutines

	mu       sync.Mutex // guards accounts, order, sources, closed
	accounts map[string]*account
	order    []string // account names in SetAccounts order, for Status
	sources  map[sourceKey]*Source
	closed   bool
}

type sourceKey struct{ account, subject string }

// NewManager returns a Manager on store with no accounts; call SetAccounts.
func NewManager(store *Store, opts Options) *Manager {
	if opts.RefreshBefore <= 0 {
		opts.RefreshBefore = 5 * time.Minute
	}
	if opts.Keepalive <= 0 {
		opts.Keepalive = 168 * time.Hour
	}
	if opts.CheckInterval <= 0 {
		opts.CheckInterval = 30 * time.Second
	}
	if opts.RefreshTimeout <= 0 {
		opts.RefreshTimeout = time.Minute
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = time.Second
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(5*time.Minute, opts.MinBackoff)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{
		store: store, opts: opts, log: log, now: opts.Now,
		ctx: ctx, cancel: cancel,
		accounts: map[string]*account{},
		sources:  map[sourceKey]*Source{},
	}
	m.registerCollector()
	return m
}

// SetAccounts replaces the account list (at start and on reload). It is
// all or nothing: on any invalid spec nothing changes. Sources of removed
// accounts fail from then on; stored tokens are never deleted.
func (m *Manager) SetAccounts(specs []AccountSpec) error {
	accounts := make(map[string]*account, len(specs))
	order := make([]string, 0, len(specs))
	for _, spec := range specs {
		if _, dup := accounts[spec.Name]; dup {
			return fmt.Errorf("tokens: account %q listed twice", spec.Name)
		}
		a, err := newAccount(spec, m.opts.HTTPClient)
		if err != nil {
			return err
		}
		accounts[spec.Name] = a
		order = append(order, spec.Name)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.sources {
		// Sources of removed accounts, or of accounts whose flow changed
		// (their subject keys differ), go; the others keep their tokens
		// and use the new spec from their next refresh on.
		if a, old := accounts[k.account], m.accounts[k.account]; a == nil || old == nil || a.spec.Flow != old.spec.Flow {
			delete(m.sources, k)
		}
	}
	m.accounts, m.order = accounts, order
	return nil
}

func (m *Manager) account(name string) *account {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.accounts[name]
}

// Source returns the token source of an account for subject, the upstream
// identity: a service account has one token per subject (for a wildcard
// account "*@example.com" the login name, which must be in the domain;
// "" means the spec's Subject), every other flow one token per account
// whatever the subject. Sources are shared: every session of the account
// gets the same one, so they share one refresh.
func (m *Manager) Source(name, subject string) (*Source, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.accounts[name]
	if a == nil {
		return nil, fmt.Errorf("tokens: unknown account %q", name)
	}
	sub, err := a.subjectKey(subject)
	if err != nil {
		return nil, err
	}
	return m.sourceLocked(sourceKey{name, sub}), nil
}

func (m *Manager) sourceLocked(k sourceKey) *Source {
	s := m.sources[k]
	if s == nil {
		s = &Source{m: m, account: k.account, subject: k.subject}
		m.sources[k] = s
	}
	return s
}

// Run keeps tokens fresh until ctx is done: every CheckInterval it
// refreshes tokens that expire within RefreshBefore, uses refresh tokens
// idle for Keepalive, and notices token files written by another process
// (the authorize CLI) so that a daemon picks them up without a restart.
func (m *Manager) Run(ctx context.Context) error {
	t := time.NewTicker(m.opts.CheckInterval)
	defer t.Stop()
	for {
		m.tick()
		select {
		case <-ctx.Done():
			return nil
		case <-m.ctx.Done():
			return ErrClosed
		case <-t.C:
		}
	}
}

// idleSubject: a wildcard account's subject unused this long is dropped
// from memory (it would otherwise keep every login name seen). Other
// Sources live as long as their account: the daemon may hold them.
const idleSubject = time.Hour

func (m *Manager) tick() {
	m.mu.Lock()
	for name, a := range m.accounts {
		if a.spec.Flow.persisted() {
			m.sourceLocked(sourceKey{account: name})
		}
	}
	srcs := make([]*Source, 0, len(m.sources))
	wildcard := map[*Source]bool{}
	for k, s := range m.sources {
		srcs = append(srcs, s)
		if a := m.accounts[k.account]; a != nil {
			wildcard[s] = a.spec.Wildcard
		}
	}
	m.mu.Unlock()

	now := m.now()
	for _, s := range srcs {
		if wildcard[s] && s.idle(now) {
			m.mu.Lock()
			if m.sources[sourceKey{s.account, s.subject}] == s {
				delete(m.sources, sourceKey{s.account, s.subject})
			}
			m.mu.Unlock()
			continue
		}
		s.background()
	}
}

// Close stops Run and any refresh in flight, and waits for them. Sources
// fail with ErrClosed afterwards.
func (m *Manager) Close() error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.cancel()
	m.wg.Wait()
	return nil
}

// Shutdown lets refreshes in flight finish (so that a rotated refresh
// token the provider already issued is stored) until ctx is done, then
// closes.
func (m *Manager) Shutdown(ctx context.Context) error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	done := make(chan struct{})
	go func() {
		m.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	m.cancel()
	<-done
	return err
}

// startRefresh registers a refresh goroutine, unless the Manager is
// closed.
func (m *Manager) startRefresh(run func()) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		run()
	}()
	return true
}

// State of an account's authorization.
type State string

const (
	StateAuthorized      State = "authorized"       // tokens stored (or grant credentials configured)
	StateConsentRequired State = "consent_required" // invalid_grant seen: authorize again
	StateNotAuthorized   State = "not_authorized"   // no tokens stored yet
	StateError           State = "error"            // the token file cannot be read (see LastError)
)

// AccountStatus is one account for "oauthbridge status" and the status
// page. It holds no secret.
type AccountStatus struct {
	Account string `json:"account"`
	Flow    Flow   `json:"flow"`
	State   State  `json:"state"`
	// AccessExpiry of the current access token (for a wildcard account the
	// latest of its subjects').
	AccessExpiry         time.Time `json:"access_expiry,omitzero"`
	ObtainedAt           time.Time `json:"obtained_at,omitzero"`
	RefreshTokenIssuedAt time.Time `json:"refresh_token_issued_at,omitzero"`
	RefreshTokenLastUsed time.Time `json:"refresh_token_last_used,omitzero"`
	LastRefreshAt        time.Time `json:"last_refresh_at,omitzero"`
	LastError            string    `json:"last_error,omitempty"`
	// Subjects: service accounts, how many subjects have a token in memory.
	Subjects int `json:"subjects,omitempty"`
}

// Status reports every configured account. Stored flows are read from the
// store, so the CLI gets the truth without a running daemon; grant flows
// (which are not stored) from this process's memory.
func (m *Manager) Status() []AccountStatus {
	m.mu.Lock()
	accounts := make([]*account, 0, len(m.order))
	for _, name := range m.order {
		accounts = append(accounts, m.accounts[name])
	}
	bySpec := map[string][]*Source{}
	for k, s := range m.sources {
		bySpec[k.account] = append(bySpec[k.account], s)
	}
	m.mu.Unlock()

	out := make([]AccountStatus, 0, len(accounts))
	for _, a := range accounts {
		st := AccountStatus{Account: a.spec.Name, Flow: a.spec.Flow}
		if a.spec.Flow.persisted() {
			rec, err := m.store.Load(a.spec.Name)
			switch {
			case errors.Is(err, ErrNoToken):
				st.State = StateNotAuthorized
			case err != nil:
				st.State, st.LastError = StateError, err.Error()
			default:
				st.State = StateAuthorized
				if rec.ConsentRequired {
					st.State = StateConsentRequired
				}
				st.AccessExpiry, st.ObtainedAt, st.LastRefreshAt, st.LastError =
					rec.Expiry, rec.ObtainedAt, rec.LastRefreshAt, rec.LastError
				st.RefreshTokenIssuedAt, st.RefreshTokenLastUsed = rec.RefreshTokenIssuedAt, rec.RefreshTokenLastUsed
			}
		} else {
			st.State = StateAuthorized
			srcs := bySpec[a.spec.Name]
			slices.SortFunc(srcs, func(x, y *Source) int { return strings.Compare(x.subject, y.subject) })
			for _, s := range srcs {
				s.mu.Lock()
				if s.tok != nil {
					st.Subjects++
					if s.tok.Expiry.After(st.AccessExpiry) {
						st.AccessExpiry = s.tok.Expiry
					}
				}
				if s.err != nil && st.LastError == "" {
					st.LastError = s.err.Error()
				}
				if s.lastAttempt.After(st.LastRefreshAt) {
					st.LastRefreshAt = s.lastAttempt
				}
				s.mu.Unlock()
			}
		}
		out = append(out, st)
	}
	return out
}
