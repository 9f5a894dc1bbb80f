package proxy

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// fakeClock is advanced by the test; the throttle never sleeps on it.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTestThrottle(cfg ThrottleConfig) (*throttle, *fakeClock) {
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	th := newThrottle(cfg)
	th.now = clk.now
	return th, clk
}

var testThrottleCfg = ThrottleConfig{Delay: time.Second, MaxDelay: 16 * time.Second, BanAfter: 10, BanFor: 15 * time.Minute, Window: 15 * time.Minute}

func TestThrottleDelayGrows(t *testing.T) {
	th, _ := newTestThrottle(testThrottleCfg)
	a := netip.MustParseAddr("192.0.2.7")
	other := netip.MustParseAddr("192.0.2.8")
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 16 * time.Second}
	for i, w := range want {
		th.fail(a)
		got, err := th.admit(a)
		if err != nil || got != w {
			t.Fatalf("after %d failures: wait %v, %v; want %v", i+1, got, err, w)
		}
		if got, err := th.admit(other); got != 0 || err != nil {
			t.Fatalf("other address: wait %v, %v", got, err)
		}
	}
	// A success clears the delay of its own address only.
	th.fail(other)
	th.succeed(a)
	if got, _ := th.admit(a); got != 0 {
		t.Fatalf("after success: wait %v", got)
	}
	if got, _ := th.admit(other); got != time.Second {
		t.Fatalf("other address after a's success: wait %v, want 1s", got)
	}
	// ... and the next failure starts the doubling again.
	th.fail(a)
	if got, _ := th.admit(a); got != time.Second {
		t.Fatalf("first failure after success: wait %v, want 1s", got)
	}
}

func TestThrottleBan(t *testing.T) {
	cfg := testThrottleCfg
	cfg.BanAfter = 3
	th, clk := newTestThrottle(cfg)
	a := netip.MustParseAddr("192.0.2.7")
	other := netip.MustParseAddr("198.51.100.1")
	for i := 1; i <= 3; i++ {
		if _, err := th.admit(a); err != nil {
			t.Fatalf("attempt %d refused before the ban: %v", i, err)
		}
		if banned := th.fail(a); banned != (i == 3) {
			t.Fatalf("failure %d: banned = %v", i, banned)
		}
	}
	if _, err := th.admit(a); !errors.Is(err, ErrThrottled) {
		t.Fatalf("banned address admitted: %v", err)
	}
	if w, err := th.admit(other); w != 0 || err != nil {
		t.Fatalf("other address affected by the ban: %v, %v", w, err)
	}
	clk.advance(cfg.BanFor - time.Second)
	if _, err := th.admit(a); !errors.Is(err, ErrThrottled) {
		t.Fatal("ban ended early")
	}
	clk.advance(time.Second)
	if _, err := th.admit(a); err != nil {
		t.Fatalf("ban did not end: %v", err)
	}
}

func TestThrottleSuccessDoesNotResetBanCount(t *testing.T) {
	cfg := testThrottleCfg
	cfg.BanAfter = 3
	th, _ := newTestThrottle(cfg)
	a := netip.MustParseAddr("192.0.2.7")
	for range 2 {
		th.fail(a)
		th.succeed(a)
	}
	if !th.fail(a) {
		t.Fatal("interleaved successes evaded the ban")
	}
}

func TestThrottleWindow(t *testing.T) {
	cfg := testThrottleCfg
	cfg.BanAfter = 3
	th, clk := newTestThrottle(cfg)
	a := netip.MustParseAddr("192.0.2.7")
	th.fail(a)
	th.fail(a)
	clk.advance(cfg.Window + time.Second)
	if th.fail(a) {
		t.Fatal("failures older than the window counted")
	}
	if th.len() != 1 {
		t.Fatalf("entries = %d", th.len())
	}
	clk.advance(cfg.Window + cfg.MaxDelay + time.Second)
	th.admit(a) // an expired entry is dropped on sight
	if th.len() != 0 {
		t.Fatalf("expired entry kept: %d entries", th.len())
	}
}

func TestThrottleIPv6Prefix(t *testing.T) {
	th, _ := newTestThrottle(testThrottleCfg)
	th.fail(netip.MustParseAddr("2001:db8:1:2::1"))
	tests := []struct {
		addr string
		wait time.Duration
	}{
		{"2001:db8:1:2::1", time.Second},
		{"2001:db8:1:2:ffff::9", time.Second}, // same /64
		{"2001:db8:1:3::1", 0},                // next /64
	}
	for _, tt := range tests {
		if got, _ := th.admit(netip.MustParseAddr(tt.addr)); got != tt.wait {
			t.Errorf("%s: wait %v, want %v", tt.addr, got, tt.wait)
		}
	}
	// IPv4-mapped addresses count as their IPv4 address.
	th.fail(netip.MustParseAddr("::ffff:192.0.2.1"))
	if got, _ := th.admit(netip.MustParseAddr("192.0.2.1")); got != time.Second {
		t.Errorf("mapped address not unified: wait %v", got)
	}
}

func TestThrottleBoundedTable(t *testing.T) {
	cfg := testThrottleCfg
	cfg.MaxEntries = 8
	cfg.BanAfter = 2
	th, clk := newTestThrottle(cfg)
	banned := netip.MustParseAddr("203.0.113.1")
	th.fail(banned)
	th.fail(banned)
	for i := range 100 {
		th.fail(netip.MustParseAddr(fmt.Sprintf("192.0.2.%d", i)))
		clk.advance(time.Millisecond)
		if n := th.len(); n > cfg.MaxEntries {
			t.Fatalf("%d entries, cap %d", n, cfg.MaxEntries)
		}
	}
	if _, err := th.admit(banned); !errors.Is(err, ErrThrottled) {
		t.Fatal("a flood of new addresses evicted an active ban")
	}
}

func TestThrottleDelayValues(t *testing.T) {
	tests := []struct {
		cfg  ThrottleConfig
		n    int
		want time.Duration
	}{
		{ThrottleConfig{}, 5, 0},
		{ThrottleConfig{Delay: time.Second}, 5, time.Second}, // no MaxDelay: no growth
		{ThrottleConfig{Delay: time.Second, MaxDelay: 3 * time.Second}, 3, 3 * time.Second},
		{ThrottleConfig{Delay: time.Second, MaxDelay: time.Hour}, 1000, time.Hour}, // no overflow
	}
	for _, tt := range tests {
		th := newThrottle(tt.cfg)
		if got := th.delay(tt.n); got != tt.want {
			t.Errorf("%+v delay(%d) = %v, want %v", tt.cfg, tt.n, got, tt.want)
		}
	}
}
