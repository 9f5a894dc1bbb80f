package bench

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/oauthbridge/oauthbridge/bench/wire"
)

// activeResult is one path's run of the mixed-command load.
type activeResult struct {
	ops       int
	setupErrs int
	errs      int
	firstErr  error
	elapsed   time.Duration
	latency   []time.Duration
	cpu       cpuUse // client, bridge, upstream, during the timed run
}

// activeOps are the mixed commands, run round-robin from a per-session
// offset so every kind is in flight at any moment.
var activeOps = []string{"NOOP", "UID FETCH", "UID SEARCH", "UID STORE", "SELECT"}

// runActive opens n sessions (direct or through the bridge), then runs
// the mixed commands on all of them at once for d, one goroutine per
// session, one command at a time each. Any NO, BAD, BYE, I/O error or
// timeout is a protocol error; the session stops at its first.
func (t *target) runActive(n int, d time.Duration, direct bool, meter cpuMeter) activeResult {
	type session struct {
		c    *wire.IMAP
		uids []uint32
	}
	sessions := make([]*session, n)
	var mu sync.Mutex // guards res
	var res activeResult
	fail := func(err error, setup bool) {
		mu.Lock()
		defer mu.Unlock()
		if setup {
			res.setupErrs++
		} else {
			res.errs++
		}
		if res.firstErr == nil {
			res.firstErr = err
		}
	}
	parallel(0, n, t.cfg.Workers, func(i int) error {
		c, err := t.openSession(i, direct)
		if err != nil {
			fail(err, true)
			return err
		}
		s := &session{c: c}
		if _, err := c.Do("UID SEARCH ALL", func(line []byte) {
			s.uids = append(s.uids, searchUIDs(line)...)
		}); err != nil || len(s.uids) == 0 {
			c.Close()
			err = errors.Join(errors.New("bench: no UIDs from UID SEARCH"), err)
			fail(err, true)
			return err
		}
		sessions[i] = s
		return nil
	})
	cpu0 := meter.read()
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for i, s := range sessions {
		if s == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.c.Close()
			lat := make([]time.Duration, 0, 256)
			ops := 0
			defer func() {
				mu.Lock()
				res.ops += ops
				res.latency = append(res.latency, lat...)
				mu.Unlock()
			}()
			for k := i; time.Now().Before(deadline); k++ {
				uid := s.uids[k%len(s.uids)]
				var line string
				switch activeOps[k%len(activeOps)] {
				case "NOOP":
					line = "NOOP"
				case "UID FETCH":
					line = "UID FETCH " + strconv.FormatUint(uint64(uid), 10) + " BODY.PEEK[]"
				case "UID SEARCH":
					line = "UID SEARCH FLAGGED"
				case "UID STORE":
					sign := "+"
					if (k/len(activeOps))%2 == 1 {
						sign = "-"
					}
					line = "UID STORE " + strconv.FormatUint(uint64(uid), 10) + " " + sign + "FLAGS (\\Flagged)"
				case "SELECT":
					line = "SELECT INBOX"
				}
				t0 := time.Now()
				if _, err := s.c.Do(line, nil); err != nil {
					fail(fmt.Errorf("bench: session %d: %s: %w", i, line, err), false)
					return
				}
				lat = append(lat, time.Since(t0))
				ops++
			}
			s.c.Logout()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	cpu1 := meter.read()
	for i := range res.cpu {
		res.cpu[i] = cpu1[i] - cpu0[i]
	}
	return res
}

// searchUIDs parses "* SEARCH 1 2 3".
func searchUIDs(line []byte) []uint32 {
	rest, ok := bytes.CutPrefix(line, []byte("* SEARCH"))
	if !ok {
		return nil
	}
	var out []uint32
	for _, f := range bytes.Fields(rest) {
		if n, err := strconv.ParseUint(string(f), 10, 32); err == nil {
			out = append(out, uint32(n))
		}
	}
	return out
}

// measureActive runs the mixed load directly against the upstream, then
// through the bridge, and compares operations per second; errors must be
// zero on the bridge.
func (t *target) measureActive() error {
	n, d := t.cfg.ActiveSessions, t.cfg.ActiveDuration
	meter := t.cpuMeter()
	direct := t.runActive(n, d, true, meter)
	stop := profileBridge(t.cfg, t.rep, t.br, "fakegmail-active")
	bridged := t.runActive(n, d, false, meter)
	stop()
	for _, r := range []struct {
		name string
		res  activeResult
	}{{"direct", direct}, {"bridge", bridged}} {
		if r.res.firstErr != nil {
			t.rep.note("active %s: %d setup and %d protocol errors; first: %v", r.name, r.res.setupErrs, r.res.errs, r.res.firstErr)
		}
	}
	cmd := t.cfg.command(UpstreamFakeGmail, MeasureActive)
	dr := float64(direct.ops) / direct.elapsed.Seconds()
	br := float64(bridged.ops) / bridged.elapsed.Seconds()
	t.rep.add(Row{Upstream: UpstreamFakeGmail, Command: cmd,
		What:   fmt.Sprintf("%d concurrent sessions, mixed NOOP / UID FETCH / UID SEARCH / UID STORE / SELECT for %s: commands/s", n, d),
		Direct: fmt.Sprintf("%.0f/s", dr), Bridge: fmt.Sprintf("%.0f/s", br), Delta: fmtRatio(br / dr)})
	t.rep.add(Row{Upstream: UpstreamFakeGmail, Command: cmd,
		What:   "… command latency p50 / p99",
		Direct: fmtDur(percentile(direct.latency, 50)) + " / " + fmtDur(percentile(direct.latency, 99)),
		Bridge: fmtDur(percentile(bridged.latency, 50)) + " / " + fmtDur(percentile(bridged.latency, 99))})
	perOp := func(r activeResult, i int) string {
		if r.ops == 0 || r.cpu[i] == 0 {
			return "—"
		}
		return fmt.Sprintf("%.0f", float64(r.cpu[i].Microseconds())/float64(r.ops))
	}
	t.rep.add(Row{Upstream: UpstreamFakeGmail, Command: cmd,
		What:   "… CPU µs per command: client / bridge / upstream",
		Direct: perOp(direct, 0) + " / — / " + perOp(direct, 2),
		Bridge: perOp(bridged, 0) + " / " + perOp(bridged, 1) + " / " + perOp(bridged, 2)})
	t.rep.add(Row{Upstream: UpstreamFakeGmail, Command: cmd,
		What:   "… errors (session setup + protocol errors during the run)",
		Direct: fmt.Sprintf("%d + %d", direct.setupErrs, direct.errs),
		Bridge: fmt.Sprintf("%d + %d", bridged.setupErrs, bridged.errs),
		Target: "0", Met: verdict(bridged.setupErrs+bridged.errs == 0)})
	return nil
}
