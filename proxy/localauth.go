package proxy

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"
)

// LocalAccount is one configured account as LocalAuth sees it.
type LocalAccount struct {
	// Pattern is the login name ("alice@gmail.com") or a domain wildcard
	// ("*@example.com") matching every login in that domain. Matching is
	// case-insensitive; an exact name wins over a wildcard.
	Pattern string
	// Hashes are the account's app passwords as argon2id PHC strings
	// (from HashPassword / "oauthbridge hash-password").
	Hashes []string
	// New returns the Account for a successful login. loginName is the
	// Pattern for an exact account and the login name, lower-cased, for a
	// wildcard. It may return the same *Account every time.
	New func(loginName string) *Account
}

// LocalAuthOptions configures NewLocalAuth.
type LocalAuthOptions struct {
	Throttle ThrottleConfig
	// Logger gets one "login failed" warning per failed Authenticate; nil
	// discards.
	Logger *slog.Logger
	// MaxConcurrentHashes bounds concurrent argon2 runs, and so the memory
	// a guessing flood can take (each run holds its m KiB); zero means
	// GOMAXPROCS. Cached logins do not wait for it.
	MaxConcurrentHashes int
}

// LocalAuth is the daemon's Authenticator: argon2id app passwords with an
// in-memory cache of verified passwords, throttling per client address,
// and a fail2ban-friendly log line per failure.
//
// Logging contract: for every Authenticate that fails with
// ErrBadCredentials or ErrThrottled, LocalAuth writes exactly one line
//
//	level=WARN msg="login failed" proto=imap session=k3xq7tne client_ip=192.0.2.7 user=alice@gmail.com reason=bad_password
//
// (reason: bad_password, unknown_user, banned). proto and session come
// from the ctx (WithProto, WithSession; the Listener sets both on the ctx
// it passes to ServeConn). Protocol packages must not log another line
// with msg "login failed" for these errors. A fail2ban filter:
//
//	failregex = msg="login failed" .* client_ip=<HOST>
//
// Timing: a failed attempt costs the same argon2 work whether the user
// exists or not (unknown users are checked against a dummy hash, and every
// failure is padded to the largest number of hashes an account has), so
// response time does not reveal which users exist. A wrong password never
// reaches the account's TokenSource: LocalAuth only calls New after a
// verified password.
type LocalAuth struct {
	table    atomic.Pointer[authTable]
	throttle *throttle
	log      *slog.Logger
	macKey   []byte        // random per process: cache keys are useless elsewhere
	sem      chan struct{} // bounds concurrent argon2 runs

	cacheMu sync.RWMutex // guards cache
	// cache maps (account, HMAC(password)) to the PHC string that verified
	// it; it never holds a password.
	cache map[cacheKey]string

	argonRuns atomic.Int64 // argon2 runs, for tests
}

// maxCacheEntries bounds the verified-password cache. Entries are only
// made by successful logins, so only the configured accounts' users can
// fill it; when full it is cleared and refills at one argon2 run per login.
const maxCacheEntries = 10000

type cacheKey struct {
	account string // authEntry.key
	mac     [sha256.Size]byte
}

// authTable is an immutable snapshot of the accounts, swapped by Update.
type authTable struct {
	exact   map[string]*authEntry // by lower-cased name
	domains map[string]*authEntry // "*@domain" by lower-cased domain
	runs    int                   // argon2 runs every failed attempt costs
	dummy   *phcHash              // for unknown users and padding
}

type authEntry struct {
	key      string // lower-cased pattern
	pattern  string
	wildcard bool
	hashes   []*phcHash
	raw      []string
	new      func(string) *Account
}

var _ Authenticator = (*LocalAuth)(nil)

// NewLocalAuth builds a LocalAuth. It fails on a malformed pattern or
// hash, a duplicate pattern or a missing New, naming the account.
func NewLocalAuth(accounts []LocalAccount, opts LocalAuthOptions) (*LocalAuth, error) {
	t, err := buildAuthTable(accounts)
	if err != nil {
		return nil, err
	}
	n := opts.MaxConcurrentHashes
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &LocalAuth{
		throttle: newThrottle(opts.Throttle),
		log:      log,
		macKey:   make([]byte, 32),
		sem:      make(chan struct{}, n),
		cache:    make(map[cacheKey]string),
	}
	rand.Read(a.macKey)
	a.table.Store(t)
	return a, nil
}

func buildAuthTable(accounts []LocalAccount) (*authTable, error) {
	t := &authTable{exact: map[string]*authEntry{}, domains: map[string]*authEntry{}, runs: 1}
	for _, la := range accounts {
		e := &authEntry{key: strings.ToLower(la.Pattern), pattern: la.Pattern, new: la.New, raw: la.Hashes}
		if la.New == nil {
			return nil, fmt.Errorf("proxy: account %q: no New function", la.Pattern)
		}
		target := t.exact
		name := e.key
		if domain, ok := strings.CutPrefix(e.key, "*@"); ok {
			if domain == "" || strings.ContainsAny(domain, "@* ") {
				return nil, fmt.Errorf("proxy: account %q: a wildcard is \"*@domain\"", la.Pattern)
			}
			e.wildcard, target, name = true, t.domains, domain
		} else if name == "" || strings.ContainsAny(name, "* ") {
			return nil, fmt.Errorf("proxy: account %q: not a login name", la.Pattern)
		}
		if target[name] != nil {
			return nil, fmt.Errorf("proxy: account %q configured twice", la.Pattern)
		}
		for j, raw := range la.Hashes {
			h, err := parsePHC(raw)
			if err != nil {
				return nil, fmt.Errorf("proxy: account %q password %d: %w", la.Pattern, j+1, err)
			}
			e.hashes = append(e.hashes, h)
			if t.dummy == nil {
				t.dummy = dummyHash(h.Argon2Params)
			}
		}
		target[name] = e
		t.runs = max(t.runs, len(e.hashes))
	}
	if t.dummy == nil {
		t.dummy = dummyHash(DefaultArgon2)
	}
	return t, nil
}

// dummyHash is a hash nothing matches, with the cost of real ones.
func dummyHash(p Argon2Params) *phcHash {
	h := &phcHash{Argon2Params: p, salt: make([]byte, p.SaltLen), key: make([]byte, p.KeyLen)}
	rand.Read(h.salt)
	rand.Read(h.key)
	return h
}

// Update replaces the accounts (config reload) atomically. Cached
// verified passwords survive only where the account still has the hash
// that verified them, so a removed or changed password stops working at
// once. On error nothing changes.
func (a *LocalAuth) Update(accounts []LocalAccount) error {
	t, err := buildAuthTable(accounts)
	if err != nil {
		return err
	}
	a.cacheMu.Lock()
	defer a.cacheMu.Unlock()
	a.table.Store(t)
	for k, hash := range a.cache {
		if e := t.byKey(k.account); e == nil || !contains(e.raw, hash) {
			delete(a.cache, k)
		}
	}
	return nil
}

// SetThrottle replaces the throttle settings (config reload); the failure
// history is kept.
func (a *LocalAuth) SetThrottle(cfg ThrottleConfig) { a.throttle.setConfig(cfg) }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// lookup finds the account for a login name: exact first, then the
// domain wildcard.
func (t *authTable) lookup(username string) *authEntry {
	u := strings.ToLower(username)
	if e := t.exact[u]; e != nil {
		return e
	}
	at := strings.LastIndexByte(u, '@')
	if at <= 0 || !validLocalPart(u[:at]) {
		return nil
	}
	return t.domains[u[at+1:]]
}

// validLocalPart guards wildcard logins, whose login name becomes the
// upstream identity (and so the XOAUTH2 "user=" field, where a ^A would
// start a new field): at most 64 octets (RFC 5321 §4.5.3.1.1) of
// printable characters, no space and no second "@".
func validLocalPart(s string) bool {
	if s == "" || len(s) > 64 || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || r == '@' || unicode.IsControl(r) || unicode.IsSpace(r) {
			return false
		}
	}
	return true
}

func (t *authTable) byKey(key string) *authEntry {
	if d, ok := strings.CutPrefix(key, "*@"); ok {
		return t.domains[d]
	}
	return t.exact[key]
}

func (e *authEntry) account(username string) *Account {
	if e.wildcard {
		return e.new(strings.ToLower(username))
	}
	return e.new(e.pattern)
}

// Account implements Authenticator (relay_without_auth): the account for
// name without a password check.
func (a *LocalAuth) Account(name string) (*Account, error) {
	e := a.table.Load().lookup(name)
	if e == nil {
		return nil, fmt.Errorf("proxy: account %q: %w", name, ErrUnknownAccount)
	}
	return e.account(name), nil
}

// Authenticate implements Authenticator. See LocalAuth for the logging
// and timing guarantees. A banned address gets ErrThrottled at once; an
// address with recent failures first waits its delay (returning ctx's
// error if ctx ends first).
func (a *LocalAuth) Authenticate(ctx context.Context, client netip.Addr, username, password string) (*Account, error) {
	wait, err := a.throttle.admit(client)
	if err == nil && wait > 0 {
		if err := a.throttle.wait(ctx, wait); err != nil {
			return nil, fmt.Errorf("proxy: login delayed by throttling: %w", err)
		}
		// The address may have been banned while this attempt waited.
		_, err = a.throttle.admit(client)
	}
	if err != nil {
		a.logFailure(ctx, client, username, "banned")
		return nil, fmt.Errorf("proxy: login from %s: %w", client, ErrThrottled)
	}

	t := a.table.Load()
	e := t.lookup(username)
	var ck cacheKey
	if e != nil {
		ck = cacheKey{account: e.key, mac: a.mac(password)}
		if a.cached(ck) {
			a.throttle.succeed(client)
			return e.account(username), nil
		}
	}
	matched, err := a.check(ctx, t, e, password)
	if err != nil {
		return nil, err
	}
	if matched == "" {
		reason := "bad_password"
		if e == nil {
			reason = "unknown_user"
		}
		a.throttle.fail(client)
		a.logFailure(ctx, client, username, reason)
		return nil, fmt.Errorf("proxy: login %q: %w", truncateUser(username), ErrBadCredentials)
	}
	a.throttle.succeed(client)
	a.remember(ck, matched)
	return e.account(username), nil
}

// check runs argon2 against e's hashes (the dummy for an unknown user)
// and returns the PHC string that matched, or "". A failure always costs
// t.runs argon2 runs.
func (a *LocalAuth) check(ctx context.Context, t *authTable, e *authEntry, password string) (string, error) {
	select {
	case a.sem <- struct{}{}:
	case <-ctx.Done():
		return "", fmt.Errorf("proxy: waiting to check a password: %w", ctx.Err())
	}
	defer func() { <-a.sem }()
	runs := 0
	if e != nil {
		for i, h := range e.hashes {
			runs++
			if a.verify(h, password) {
				return e.raw[i], nil
			}
		}
	}
	for ; runs < t.runs; runs++ {
		a.verify(t.dummy, password)
	}
	return "", nil
}

func (a *LocalAuth) verify(h *phcHash, password string) bool {
	a.argonRuns.Add(1)
	return h.verify(password)
}

func (a *LocalAuth) mac(password string) [sha256.Size]byte {
	m := hmac.New(sha256.New, a.macKey)
	m.Write([]byte(password))
	var out [sha256.Size]byte
	m.Sum(out[:0])
	return out
}

func (a *LocalAuth) cached(k cacheKey) bool {
	a.cacheMu.RLock()
	defer a.cacheMu.RUnlock()
	hash, ok := a.cache[k]
	if !ok {
		return false
	}
	// The entry is valid only while its hash is still configured (Update
	// prunes, but a login racing with Update may have added one since).
	e := a.table.Load().byKey(k.account)
	return e != nil && contains(e.raw, hash)
}

func (a *LocalAuth) remember(k cacheKey, hash string) {
	a.cacheMu.Lock()
	defer a.cacheMu.Unlock()
	if len(a.cache) >= maxCacheEntries {
		clear(a.cache)
	}
	a.cache[k] = hash
}

func (a *LocalAuth) logFailure(ctx context.Context, client netip.Addr, username, reason string) {
	proto := ProtoFrom(ctx)
	if proto == "" {
		proto = "unknown"
	}
	attrs := []any{"proto", proto}
	if s := SessionFrom(ctx); s != "" {
		attrs = append(attrs, "session", s)
	}
	// client_ip comes before user: user is client-controlled text, and a
	// fail2ban regex should meet the real address first.
	attrs = append(attrs, "client_ip", addrString(client), "user", truncateUser(username), "reason", reason)
	a.log.Warn("login failed", attrs...)
}

// truncateUser bounds client-chosen text in logs and errors.
func truncateUser(s string) string {
	const max = 128
	s = strings.ToValidUTF8(s, "?")
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
