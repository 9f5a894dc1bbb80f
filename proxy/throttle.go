package proxy

import (
	"context"
	"net/netip"
	"sync"
	"time"
)

// ThrottleConfig is config `throttle`: how failed logins from one client
// address slow down and then ban that address.
type ThrottleConfig struct {
	// Delay is the wait imposed on an address's next attempt after its
	// first failure; it doubles with each further failure (no success in
	// between) up to MaxDelay. Zero disables delays.
	Delay, MaxDelay time.Duration
	// BanAfter failures (counted until Window passes without a failure)
	// ban the address for BanFor: its attempts get ErrThrottled without a
	// password check. Zero disables bans.
	BanAfter int
	BanFor   time.Duration
	Window   time.Duration
	// MaxEntries bounds the table of tracked addresses (zero: 65536, a
	// few MB at most). When it is full, expired entries go first, then the
	// unbanned entries closest to expiry.
	MaxEntries int
}

const defaultThrottleEntries = 1 << 16

// throttle tracks failures per client network: an IPv4 address, or the
// /64 of an IPv6 address (one host usually owns a whole /64, so per
// address counting would be trivial to evade).
//
// A success resets the growing delay of its own address only, and not the
// failure count: a client with one valid password cannot interleave
// successes to keep guessing other accounts at full speed.
type throttle struct {
	now func() time.Time

	mu      sync.Mutex // guards cfg and entries
	cfg     ThrottleConfig
	entries map[netip.Prefix]*throttleEntry
}

type throttleEntry struct {
	failures    int       // failures since the count was last reset (Window without failure, or a ban)
	consecutive int       // failures since the last success: the delay's exponent
	last        time.Time // last failure
	next        time.Time // attempts wait until then
	bannedUntil time.Time
}

func newThrottle(cfg ThrottleConfig) *throttle {
	return &throttle{now: time.Now, cfg: cfg, entries: make(map[netip.Prefix]*throttleEntry)}
}

func (t *throttle) setConfig(cfg ThrottleConfig) {
	t.mu.Lock()
	t.cfg = cfg
	t.mu.Unlock()
}

func throttleKey(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p
	}
	p, _ := a.Prefix(a.BitLen())
	return p
}

// expiry is when e no longer affects anything.
func (t *throttle) expiry(e *throttleEntry) time.Time {
	exp := e.last.Add(t.cfg.Window)
	if e.bannedUntil.After(exp) {
		exp = e.bannedUntil
	}
	if e.next.After(exp) {
		exp = e.next
	}
	return exp
}

// admit says whether an attempt from a may proceed: ErrThrottled while a
// is banned, else how long the attempt must wait first.
func (t *throttle) admit(a netip.Addr) (wait time.Duration, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := throttleKey(a)
	e := t.entries[k]
	if e == nil {
		return 0, nil
	}
	now := t.now()
	if !t.expiry(e).After(now) {
		delete(t.entries, k)
		return 0, nil
	}
	if now.Before(e.bannedUntil) {
		return 0, ErrThrottled
	}
	return max(e.next.Sub(now), 0), nil
}

// wait blocks for d or until ctx ends; it holds no lock.
func (t *throttle) wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fail records a failed attempt from a and reports whether it started a
// ban.
func (t *throttle) fail(a netip.Addr) (banned bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	k := throttleKey(a)
	e := t.entries[k]
	if e != nil && !t.expiry(e).After(now) {
		e = nil // expired: start over
	}
	if e == nil {
		t.makeRoom(now)
		e = &throttleEntry{}
		t.entries[k] = e
	}
	if now.Sub(e.last) > t.cfg.Window {
		e.failures = 0
	}
	e.failures++
	e.consecutive++
	e.last = now
	e.next = now.Add(t.delay(e.consecutive))
	if t.cfg.BanAfter > 0 && e.failures >= t.cfg.BanAfter {
		e.bannedUntil = now.Add(t.cfg.BanFor)
		e.failures = 0
		return true
	}
	return false
}

// succeed clears a's growing delay (see throttle).
func (t *throttle) succeed(a netip.Addr) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.entries[throttleKey(a)]; e != nil {
		e.consecutive = 0
		e.next = time.Time{}
	}
}

// delay is Delay doubled n-1 times, capped at MaxDelay (MaxDelay below
// Delay means the delay does not grow).
func (t *throttle) delay(n int) time.Duration {
	d := t.cfg.Delay
	if d <= 0 {
		return 0
	}
	limit := max(t.cfg.MaxDelay, d)
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// makeRoom keeps the table below MaxEntries; t.mu is held. The scans are
// O(n) but run only when the table is full, on the failure path, which
// has just cost an argon2 run.
func (t *throttle) makeRoom(now time.Time) {
	limit := t.cfg.MaxEntries
	if limit <= 0 {
		limit = defaultThrottleEntries
	}
	if len(t.entries) < limit {
		return
	}
	for k, e := range t.entries {
		if !t.expiry(e).After(now) {
			delete(t.entries, k)
		}
	}
	// Still full: evict the entry closest to expiry, sparing active bans
	// while there is anything else, so a flood from fresh addresses cannot
	// lift a ban.
	for len(t.entries) >= limit {
		var victim netip.Prefix
		var victimExp time.Time
		victimBanned, found := false, false
		for k, e := range t.entries {
			banned := now.Before(e.bannedUntil)
			exp := t.expiry(e)
			if !found || (!banned && victimBanned) || (banned == victimBanned && exp.Before(victimExp)) {
				victim, victimExp, victimBanned, found = k, exp, banned, true
			}
		}
		delete(t.entries, victim)
	}
}

func (t *throttle) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.entries)
}
