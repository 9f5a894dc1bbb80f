package proxy_test

import (
	"errors"
	"net/netip"
	"sync"
	"testing"

	"github.com/oauthbridge/oauthbridge/proxy"
)

func TestLimiterConn(t *testing.T) {
	a1 := netip.MustParseAddr("192.0.2.1")
	a2 := netip.MustParseAddr("192.0.2.2")
	a1mapped := netip.MustParseAddr("::ffff:192.0.2.1")
	tests := []struct {
		name   string
		limits proxy.Limits
		addrs  []netip.Addr
		want   []bool // acquisition succeeds
	}{
		{"no caps", proxy.Limits{}, []netip.Addr{a1, a1, a1, a2}, []bool{true, true, true, true}},
		{"total", proxy.Limits{MaxConnections: 2}, []netip.Addr{a1, a2, a2, a1}, []bool{true, true, false, false}},
		{"per address", proxy.Limits{PerAddress: 2}, []netip.Addr{a1, a1, a1, a2}, []bool{true, true, false, true}},
		{"mapped v4 counts as v4", proxy.Limits{PerAddress: 1}, []netip.Addr{a1, a1mapped}, []bool{true, false}},
		{"per address failure does not eat a total slot", proxy.Limits{MaxConnections: 2, PerAddress: 1}, []netip.Addr{a1, a1, a2}, []bool{true, false, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := proxy.NewLimiter(tt.limits)
			var releases []func()
			for i, a := range tt.addrs {
				rel, err := l.AcquireConn(a)
				if got := err == nil; got != tt.want[i] {
					t.Fatalf("acquire #%d (%s): err %v, want success %v", i, a, err, tt.want[i])
				}
				if err != nil {
					if !errors.Is(err, proxy.ErrTooManySessions) {
						t.Fatalf("error %v does not match ErrTooManySessions", err)
					}
					continue
				}
				releases = append(releases, rel)
			}
			if l.Conns() != len(releases) {
				t.Fatalf("Conns = %d, want %d", l.Conns(), len(releases))
			}
			for _, rel := range releases {
				rel()
				rel() // idempotent
			}
			if l.Conns() != 0 {
				t.Fatalf("Conns = %d after release", l.Conns())
			}
			// Everything released: the first acquisitions succeed again.
			if rel, err := l.AcquireConn(tt.addrs[0]); err != nil {
				t.Fatalf("after release: %v", err)
			} else {
				rel()
			}
		})
	}
}

func TestLimiterAccount(t *testing.T) {
	l := proxy.NewLimiter(proxy.Limits{PerAccount: 2})
	r1, err1 := l.AcquireAccount("imap", "alice@gmail.com")
	r2, err2 := l.AcquireAccount("imap", "Alice@Gmail.com")
	_, err3 := l.AcquireAccount("imap", "ALICE@gmail.com")
	r4, err4 := l.AcquireAccount("pop3", "alice@gmail.com")
	r5, err5 := l.AcquireAccount("imap", "bob@gmail.com")
	if err1 != nil || err2 != nil || err4 != nil || err5 != nil {
		t.Fatalf("unexpected errors %v %v %v %v", err1, err2, err4, err5)
	}
	if !errors.Is(err3, proxy.ErrTooManySessions) {
		t.Fatalf("third imap session: %v, want ErrTooManySessions", err3)
	}
	if n := l.AccountSessions("imap", "alice@gmail.com"); n != 2 {
		t.Fatalf("AccountSessions = %d", n)
	}
	r1()
	r1()
	if n := l.AccountSessions("imap", "alice@gmail.com"); n != 1 {
		t.Fatalf("AccountSessions after double release = %d, want 1", n)
	}
	r3, err := l.AcquireAccount("imap", "alice@gmail.com")
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	for _, r := range []func(){r2, r3, r4, r5} {
		r()
	}
	if n := l.AccountSessions("imap", "alice@gmail.com"); n != 0 {
		t.Fatalf("AccountSessions = %d after all released", n)
	}
}

func TestLimiterSetLimits(t *testing.T) {
	a := netip.MustParseAddr("192.0.2.1")
	l := proxy.NewLimiter(proxy.Limits{PerAddress: 3})
	r1, _ := l.AcquireConn(a)
	r2, _ := l.AcquireConn(a)
	l.SetLimits(proxy.Limits{PerAddress: 1})
	if got := l.Limits(); got.PerAddress != 1 {
		t.Fatalf("Limits = %+v", got)
	}
	if _, err := l.AcquireConn(a); err == nil {
		t.Fatal("acquired above a lowered cap")
	}
	r1()
	if _, err := l.AcquireConn(a); err == nil {
		t.Fatal("acquired while still at a lowered cap")
	}
	r2()
	if r, err := l.AcquireConn(a); err != nil {
		t.Fatalf("below the new cap: %v", err)
	} else {
		r()
	}
}

func TestLimiterNil(t *testing.T) {
	var l *proxy.Limiter
	r, err := l.AcquireConn(netip.MustParseAddr("192.0.2.1"))
	if err != nil {
		t.Fatal(err)
	}
	r()
	r, err = l.AcquireAccount("imap", "a")
	if err != nil {
		t.Fatal(err)
	}
	r()
	l.SetLimits(proxy.Limits{MaxConnections: 1})
}

func TestLimiterConcurrent(t *testing.T) {
	const workers, perWorker, cap = 8, 200, 5
	l := proxy.NewLimiter(proxy.Limits{PerAddress: cap, PerAccount: cap})
	a := netip.MustParseAddr("192.0.2.9")
	var wg sync.WaitGroup
	var mu sync.Mutex
	held, maxHeld := 0, 0
	for range workers {
		wg.Go(func() {
			for range perWorker {
				rel, err := l.AcquireConn(a)
				if err != nil {
					continue
				}
				mu.Lock()
				held++
				maxHeld = max(maxHeld, held)
				mu.Unlock()
				mu.Lock()
				held--
				mu.Unlock()
				rel()
			}
		})
	}
	wg.Wait()
	if maxHeld > cap {
		t.Fatalf("%d held at once, cap %d", maxHeld, cap)
	}
	if l.Conns() != 0 {
		t.Fatalf("Conns = %d after all released", l.Conns())
	}
}

func BenchmarkLimiterAcquireConn(b *testing.B) {
	l := proxy.NewLimiter(proxy.Limits{MaxConnections: 20000, PerAddress: 50, PerAccount: 7})
	a := netip.MustParseAddr("192.0.2.1")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rel, err := l.AcquireConn(a)
			if err == nil {
				rel()
			}
		}
	})
}
