package bench

import (
	"fmt"
	"time"

	"github.com/oauthbridge/oauthbridge/bench/wire"
)

// Latency targets per command, DESIGN §7 (added on loopback).
const (
	addedP50Target = 100 * time.Microsecond
	addedP99Target = time.Millisecond
)

// measureLatency times NOOP and UID FETCH of one small message on one
// direct and one bridged session, one command at a time, alternating
// direct and bridged (and which goes first) so that noise from the
// machine's other tenants falls on both alike.
func (t *target) measureLatency() error {
	direct, bridged, err := t.imapPair(fetchUser, 64<<10)
	if err != nil {
		return err
	}
	defer direct.Close()
	defer bridged.Close()
	uids := t.up.info.UIDs[fetchUser][1:]
	type command struct {
		name string
		line func(i int) string
	}
	commands := []command{
		{"NOOP", func(int) string { return "NOOP" }},
		{fmt.Sprintf("UID FETCH BODY.PEEK[] of one %d KiB message", smallMessageSize>>10),
			func(i int) string { return fmt.Sprintf("UID FETCH %d BODY.PEEK[]", uids[i%len(uids)]) }},
	}
	timed := func(c *wire.IMAP, line string) (time.Duration, error) {
		start := time.Now()
		_, err := c.Do(line, nil)
		return time.Since(start), err
	}
	n := t.cfg.LatencySamples
	warm := min(n/10+10, 500)
	samples := make([][2][]time.Duration, len(commands))
	for k := range samples {
		samples[k] = [2][]time.Duration{make([]time.Duration, 0, n), make([]time.Duration, 0, n)}
	}
	stop := func() {}
	var bridgeCPU time.Duration
	for i := -warm; i < n; i++ {
		if i == 0 {
			stop = t.profile(MeasureLatency)
			bridgeCPU = cpuTime(t.br.info.PID)
		}
		for k, cmd := range commands {
			line := cmd.line(i + warm)
			order := [2]int{0, 1}
			if i%2 != 0 {
				order = [2]int{1, 0}
			}
			for _, p := range order {
				c := direct
				if p == 1 {
					c = bridged
				}
				d, err := timed(c, line)
				if err != nil {
					stop()
					return fmt.Errorf("bench: %s: %w", cmd.name, err)
				}
				if i >= 0 {
					samples[k][p] = append(samples[k][p], d)
				}
			}
		}
	}
	bridgeCPU = cpuTime(t.br.info.PID) - bridgeCPU
	stop()
	for k, cmd := range commands {
		for _, q := range []struct {
			p      float64
			target time.Duration
		}{{50, addedP50Target}, {99, addedP99Target}} {
			d := percentile(samples[k][0], q.p)
			b := percentile(samples[k][1], q.p)
			t.rep.add(Row{
				Upstream: t.name(),
				What:     fmt.Sprintf("%s, p%.0f latency (%d samples per path)", cmd.name, q.p, n),
				Direct:   fmtDur(d), Bridge: fmtDur(b), Delta: fmtDelta(b - d),
				Target: "added ≤ " + fmtDur(q.target), Met: verdict(b-d <= q.target),
				Command: t.cfg.command(t.name(), MeasureLatency),
			})
		}
	}
	if bridgeCPU > 0 {
		t.rep.add(Row{Upstream: t.name(), Command: t.cfg.command(t.name(), MeasureLatency),
			What:   "… bridge CPU per relayed command (both kinds, mean)",
			Bridge: fmtDur(bridgeCPU / time.Duration(n*len(commands)))})
	}
	return nil
}
