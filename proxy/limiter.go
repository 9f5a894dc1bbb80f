package proxy

import (
	"fmt"
	"hash/maphash"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
)

// Limits are the concurrent session caps of config `limits`. A value <= 0
// means "no cap".
type Limits struct {
	MaxConnections int // all client connections of the process (limits.max_connections)
	PerAddress     int // connections from one client address (limits.per_address)
	PerAccount     int // sessions of one account and protocol (limits.per_account)
}

// Limiter enforces Limits. It is on every connect, so it is cheap: the
// total is one atomic counter, and the per-address and per-account counts
// live in sharded maps whose mutexes are held for one map update.
//
// A nil *Limiter allows everything, so protocol packages may leave their
// Limits field unset in tests.
type Limiter struct {
	limits atomic.Pointer[Limits]
	total  atomic.Int64

	seed    maphash.Seed
	byAddr  [limiterShards]counterShard[netip.Addr]
	byAccnt [limiterShards]counterShard[accountKey]
}

const limiterShards = 32

type accountKey struct{ proto, account string }

// counterShard counts holders per key; mu guards n. Keys whose count drops
// to zero are deleted, so the maps hold only live sessions.
type counterShard[K comparable] struct {
	mu sync.Mutex
	n  map[K]int
}

// NewLimiter returns a Limiter enforcing l.
func NewLimiter(l Limits) *Limiter {
	lim := &Limiter{seed: maphash.MakeSeed()}
	lim.SetLimits(l)
	for i := range lim.byAddr {
		lim.byAddr[i].n = make(map[netip.Addr]int)
		lim.byAccnt[i].n = make(map[accountKey]int)
	}
	return lim
}

// SetLimits replaces the caps (config reload). Sessions already holding a
// slot keep it even when they are now over a lowered cap; new acquisitions
// see the new caps.
func (l *Limiter) SetLimits(lim Limits) {
	if l == nil {
		return
	}
	l.limits.Store(&lim)
}

// Limits returns the caps in force.
func (l *Limiter) Limits() Limits {
	if l == nil {
		return Limits{}
	}
	return *l.limits.Load()
}

// AcquireConn takes a connection slot for a client at addr, counting it
// against MaxConnections and PerAddress. It returns an error matching
// ErrTooManySessions when a cap is reached. release gives the slot back;
// calling it more than once is harmless.
func (l *Limiter) AcquireConn(addr netip.Addr) (release func(), err error) {
	if l == nil {
		return func() {}, nil
	}
	lim := l.limits.Load()
	if n := l.total.Add(1); lim.MaxConnections > 0 && n > int64(lim.MaxConnections) {
		l.total.Add(-1)
		return nil, fmt.Errorf("%w (max_connections %d reached)", ErrTooManySessions, lim.MaxConnections)
	}
	addr = addr.Unmap()
	sh := &l.byAddr[maphash.Comparable(l.seed, addr)%limiterShards]
	if !acquire(sh, addr, lim.PerAddress) {
		l.total.Add(-1)
		return nil, fmt.Errorf("%w (per_address %d reached for %s)", ErrTooManySessions, lim.PerAddress, addr)
	}
	return onceFunc(func() {
		releaseKey(sh, addr)
		l.total.Add(-1)
	}), nil
}

// AcquireAccount takes a session slot of account (the login name,
// compared case-insensitively) for protocol proto, counting it against
// PerAccount. Protocol packages call it after a successful local login and
// before dialing the upstream, and release when the client session ends.
// It returns an error matching ErrTooManySessions when the cap is reached;
// release is idempotent.
func (l *Limiter) AcquireAccount(proto, account string) (release func(), err error) {
	if l == nil {
		return func() {}, nil
	}
	lim := l.limits.Load()
	k := accountKey{proto: proto, account: strings.ToLower(account)}
	sh := &l.byAccnt[maphash.Comparable(l.seed, k)%limiterShards]
	if !acquire(sh, k, lim.PerAccount) {
		return nil, fmt.Errorf("%w (per_account %d reached for %s %s)", ErrTooManySessions, lim.PerAccount, proto, k.account)
	}
	return onceFunc(func() { releaseKey(sh, k) }), nil
}

// Conns returns the number of connection slots held now.
func (l *Limiter) Conns() int {
	if l == nil {
		return 0
	}
	return int(l.total.Load())
}

// AccountSessions returns the slots held now by account for proto.
func (l *Limiter) AccountSessions(proto, account string) int {
	if l == nil {
		return 0
	}
	k := accountKey{proto: proto, account: strings.ToLower(account)}
	sh := &l.byAccnt[maphash.Comparable(l.seed, k)%limiterShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.n[k]
}

func acquire[K comparable](sh *counterShard[K], k K, max int) bool {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	n := sh.n[k]
	if max > 0 && n >= max {
		return false
	}
	sh.n[k] = n + 1
	return true
}

func releaseKey[K comparable](sh *counterShard[K], k K) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if n := sh.n[k]; n > 1 {
		sh.n[k] = n - 1
	} else {
		delete(sh.n, k)
	}
}

// onceFunc is sync.OnceFunc without its panic bookkeeping: one atomic flag.
func onceFunc(f func()) func() {
	var done atomic.Bool
	return func() {
		if done.CompareAndSwap(false, true) {
			f()
		}
	}
}
