package bench

import (
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oauthbridge/oauthbridge/bench/wire"
)

// memoryTarget is DESIGN §7's bound on one idle authenticated IMAP
// session.
const memoryTarget = 48 // KiB

// scaleUsers are the upstream users many sessions spread over (sessions
// of one user see each other's flag changes, as on a real server, so a
// thousand on one user would measure that fan-out instead).
func scaleSpec(cfg *Config) upstreamSpec {
	var spec upstreamSpec
	for i := range cfg.Users {
		sizes := make([]int, 10)
		for j := range sizes {
			sizes[j] = smallMessageSize
		}
		spec.Mailboxes = append(spec.Mailboxes, mailboxSpec{User: userName("user", i), Sizes: sizes})
	}
	return spec
}

// idleClientBuffer is the read buffer of each idle client: small, so that
// ten thousand sessions cost the benchmark process little.
const idleClientBuffer = 1 << 10

// fdSlack is the descriptors of a bridge process that are not sessions'.
const fdSlack = 64

// openSession logs in as the i-th scale user and selects INBOX.
func (t *target) openSession(i int, direct bool) (*wire.IMAP, error) {
	user := userName("user", i%t.cfg.Users)
	var c *wire.IMAP
	var err error
	if direct {
		c, err = t.imapDirect(user, idleClientBuffer)
	} else {
		c, err = t.imapBridge(user, idleClientBuffer)
	}
	if err != nil {
		return nil, err
	}
	if _, err := c.Do("SELECT INBOX", nil); err != nil {
		c.Close()
		return nil, fmt.Errorf("bench: SELECT as %s: %w", user, err)
	}
	return c, nil
}

// parallel runs f(i) for i in [from, to) on workers goroutines and
// returns the number of failures and the first error.
func parallel(from, to, workers int, f func(i int) error) (int, error) {
	var next atomic.Int64
	next.Store(int64(from))
	var failed atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= to {
					return
				}
				if err := f(i); err != nil {
					failed.Add(1)
					once.Do(func() { firstErr = err })
				}
			}
		}()
	}
	wg.Wait()
	return int(failed.Load()), firstErr
}

// measureIdle opens idle sessions through the bridge, each logged in with
// INBOX selected, up to each level of cfg.IdleSessions, and reads the
// bridge process's VmRSS and its Go heap and stacks against the baseline
// with no session. Then it sends NOOP on every session to prove all are
// alive, and closes them.
func (t *target) measureIdle() error {
	levels := t.cfg.IdleSessions
	if len(levels) == 0 {
		return nil
	}
	// Each session holds a client and an upstream descriptor in the
	// bridge; beyond its RLIMIT_NOFILE accept fails. Measure at what fits
	// and say so, rather than report accept errors as the bridge's.
	if fit := int(t.br.info.FileLimit-fdSlack) / 2; t.br.info.FileLimit > fdSlack && levels[len(levels)-1] > fit {
		t.rep.note("idle: the bridge's RLIMIT_NOFILE is %d and cannot be raised here (two descriptors per session, %d kept for listeners and the runtime), so idle levels above %d sessions are measured at %d",
			t.br.info.FileLimit, fdSlack, fit, fit)
		capped := make([]int, 0, len(levels))
		for _, n := range levels {
			if n = min(n, fit); len(capped) == 0 || capped[len(capped)-1] < n {
				capped = append(capped, n)
			}
		}
		levels = capped
	}
	pid := t.br.info.PID
	// Warm-up: one session pays the argon2 run and loads the code paths.
	c, err := t.openSession(0, false)
	if err != nil {
		return err
	}
	c.Logout()
	c.Close()
	base, err := t.br.debug.stats(true)
	if err != nil {
		return err
	}
	rss0, err := readRSS(pid)
	if err != nil {
		return err
	}
	conns := make([]*wire.IMAP, levels[len(levels)-1])
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	open, openFailed := 0, 0
	cmd := t.cfg.command(UpstreamFakeGmail, MeasureIdle)
	for _, n := range levels {
		prev := open
		start := time.Now()
		failed, firstErr := parallel(open, n, t.cfg.Workers, func(i int) error {
			c, err := t.openSession(i, false)
			conns[i] = c
			return err
		})
		took := time.Since(start)
		if failed > 0 {
			t.rep.note("idle %d: %d of %d sessions failed to open; first error: %v", n, failed, n-prev, firstErr)
		}
		open, openFailed = n, openFailed+failed
		rss, err := readRSS(pid)
		if err != nil {
			return err
		}
		st, err := t.br.debug.stats(true)
		if err != nil {
			return err
		}
		live := n - openFailed
		perRSS := float64(rss-rss0) / float64(live)
		perRSSGC := float64(st.RSSKiB-base.RSSKiB) / float64(live)
		perHeap := float64(int64(st.HeapInuse)-int64(base.HeapInuse)) / 1024 / float64(live)
		perStack := float64(int64(st.StackInuse)-int64(base.StackInuse)) / 1024 / float64(live)
		t.rep.add(Row{Upstream: UpstreamFakeGmail, Command: cmd,
			What:   fmt.Sprintf("memory per idle IMAP session (logged in, INBOX selected) at %d sessions: bridge VmRSS growth / sessions, as is (both readings after a forced GC)", n),
			Bridge: fmt.Sprintf("%.1f KiB (%.1f KiB)", perRSS, perRSSGC),
			Target: fmt.Sprintf("≤ %d KiB", memoryTarget), Met: verdict(perRSS <= memoryTarget)})
		t.rep.add(Row{Upstream: UpstreamFakeGmail, Command: cmd,
			What:   fmt.Sprintf("… Go heap in use + goroutine stacks per session at %d (after a forced GC); goroutines per session", n),
			Bridge: fmt.Sprintf("%.1f + %.1f KiB; %.1f", perHeap, perStack, float64(st.Goroutines-base.Goroutines)/float64(live))})
		t.rep.add(Row{Upstream: UpstreamFakeGmail, Command: cmd,
			What:   fmt.Sprintf("opening sessions %d–%d (connect, LOGIN, SELECT; %d client goroutines): sessions/s", prev+1, n, t.cfg.Workers),
			Bridge: fmt.Sprintf("%.0f/s", float64(n-prev)/took.Seconds())})
		if t.cfg.ProfileDir != "" {
			file := filepath.Join(t.cfg.ProfileDir, fmt.Sprintf("fakegmail-idle-%d.heap.pprof", n))
			if err := t.br.debug.saveHeap(file); err != nil {
				t.rep.note("heap profile: %v", err)
			} else {
				t.rep.note("bridge heap profile at %d idle sessions: %s", n, file)
			}
			file = filepath.Join(t.cfg.ProfileDir, fmt.Sprintf("fakegmail-idle-%d.goroutines.txt", n))
			if err := t.br.debug.saveGoroutines(file); err != nil {
				t.rep.note("goroutine profile: %v", err)
			} else {
				t.rep.note("bridge goroutines at %d idle sessions: %s", n, file)
			}
		}
	}
	// Every session must still work.
	failed, firstErr := parallel(0, open, t.cfg.Workers, func(i int) error {
		if conns[i] == nil {
			return nil
		}
		_, err := conns[i].Do("NOOP", nil)
		return err
	})
	if failed > 0 {
		t.rep.note("idle: NOOP failed on %d sessions; first error: %v", failed, firstErr)
	}
	t.rep.add(Row{Upstream: UpstreamFakeGmail, Command: cmd,
		What:   fmt.Sprintf("%d idle sessions opened and held, then NOOP on each: errors (opening + NOOP)", open),
		Bridge: fmt.Sprintf("%d + %d", openFailed, failed), Target: "0", Met: verdict(openFailed+failed == 0)})
	return nil
}
