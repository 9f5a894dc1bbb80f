package bench

import (
	"fmt"
	"time"

	"github.com/oauthbridge/oauthbridge/bench/wire"
)

const (
	fetchUser = "fetch@" + benchDomain // the 50 MiB message, then small ones
	popUser   = "pop@" + benchDomain   // the RETR maildrop
	smtpUser  = "smtp@" + benchDomain  // the SMTP sender

	smallMessages    = 20
	smallMessageSize = 2 << 10
	bulkBuffer       = 256 << 10 // client read buffer for bulk transfers
)

// targetSpec is what each upstream holds for the per-upstream
// measurements.
func targetSpec(cfg *Config) upstreamSpec {
	fetch := []int{cfg.FetchSize}
	for range smallMessages {
		fetch = append(fetch, smallMessageSize)
	}
	pop := make([]int, cfg.RETRMessages)
	for i := range pop {
		pop[i] = cfg.RETRSize
	}
	return upstreamSpec{Mailboxes: []mailboxSpec{
		{User: fetchUser, Sizes: fetch},
		{User: popUser, Sizes: pop},
		{User: smtpUser},
	}}
}

// interleave runs direct and bridged reps times each, alternating which
// goes first, so that machine noise (other tenants, CPU frequency) falls
// on both alike. Each function returns one sample.
func interleave(reps int, direct, bridged func() (float64, error)) (d, b []float64, err error) {
	for i := range reps {
		first, second := direct, bridged
		if i%2 == 1 {
			first, second = bridged, direct
		}
		x, err := first()
		if err != nil {
			return nil, nil, err
		}
		y, err := second()
		if err != nil {
			return nil, nil, err
		}
		if i%2 == 1 {
			x, y = y, x
		}
		d, b = append(d, x), append(b, y)
	}
	return d, b, nil
}

// throughputRow is a row comparing MiB/s medians against ≥ min× direct.
func (t *target) throughputRow(what, m string, d, b []float64, min float64) {
	md, mb := median(d), median(b)
	ratio := mb / md
	t.rep.add(Row{
		Upstream: t.name(), What: what,
		Direct: fmt.Sprintf("%.0f MiB/s", md), Bridge: fmt.Sprintf("%.0f MiB/s", mb),
		Delta: fmtRatio(ratio), Target: fmt.Sprintf("≥ %.2f× direct", min), Met: verdict(ratio >= min),
		Command: t.cfg.command(t.name(), m),
	})
}

// measureFetch: UID FETCH BODY.PEEK[] of the big message, whole.
func (t *target) measureFetch() error {
	uid := t.up.info.UIDs[fetchUser][0]
	size := t.cfg.FetchSize
	direct, bridged, err := t.imapPair(fetchUser, bulkBuffer)
	if err != nil {
		return err
	}
	defer direct.Close()
	defer bridged.Close()
	cmd := fmt.Sprintf("UID FETCH %d BODY.PEEK[]", uid)
	meter := t.cpuMeter()
	var cpu [2]cpuUse // direct, bridged
	fetch := func(c *wire.IMAP, cpu *cpuUse) func() (float64, error) {
		return func() (float64, error) {
			c.Timeout = 10 * time.Minute
			start := time.Now()
			var res wire.Result
			err := meter.span(cpu, func() (err error) {
				res, err = c.Do(cmd, nil)
				return err
			})
			el := time.Since(start)
			if err != nil {
				return 0, fmt.Errorf("bench: FETCH: %w", err)
			}
			if res.LiteralBytes != int64(size) {
				return 0, fmt.Errorf("bench: FETCH returned %d octets, want %d", res.LiteralBytes, size)
			}
			return float64(size) / (1 << 20) / el.Seconds(), nil
		}
	}
	if _, _, err := interleave(1, fetch(direct, &cpu[0]), fetch(bridged, &cpu[1])); err != nil { // warm-up
		return err
	}
	cpu = [2]cpuUse{}
	stop := t.profile(MeasureFetch)
	d, b, err := interleave(t.cfg.Reps, fetch(direct, &cpu[0]), fetch(bridged, &cpu[1]))
	stop()
	if err != nil {
		return err
	}
	t.throughputRow(fmt.Sprintf("UID FETCH of one %d MiB message (MiB/s, median of %d)", size>>20, t.cfg.Reps), MeasureFetch, d, b, 0.95)
	t.cpuRow(MeasureFetch, cpu, float64(t.cfg.Reps*size)/(1<<20))
	return nil
}

// measureRETR: RETR of every message of the maildrop, one after another.
func (t *target) measureRETR() error {
	direct, err := wire.DialPOP3(t.up.info.POP3, t.up.tls, bulkBuffer)
	if err != nil {
		return err
	}
	defer direct.Close()
	if err := direct.AuthXOAuth2(popUser, t.up.info.Tokens[popUser]); err != nil {
		return fmt.Errorf("bench: direct POP3 login: %w", err)
	}
	bridged, err := wire.DialPOP3(t.br.info.POP3, nil, bulkBuffer)
	if err != nil {
		return err
	}
	defer bridged.Close()
	if err := bridged.Login(popUser, appPassword); err != nil {
		return fmt.Errorf("bench: bridge POP3 login: %w", err)
	}
	total := t.cfg.RETRMessages * t.cfg.RETRSize
	meter := t.cpuMeter()
	var cpu [2]cpuUse // direct, bridged
	retr := func(c *wire.POP3, cpu *cpuUse) func() (float64, error) {
		return func() (float64, error) {
			c.Timeout = 10 * time.Minute
			start := time.Now()
			var got int64
			err := meter.span(cpu, func() error {
				for i := 1; i <= t.cfg.RETRMessages; i++ {
					n, err := c.Retr(i)
					if err != nil {
						return fmt.Errorf("bench: RETR %d: %w", i, err)
					}
					got += n
				}
				return nil
			})
			el := time.Since(start)
			if err != nil {
				return 0, err
			}
			if got < int64(total) {
				return 0, fmt.Errorf("bench: RETR read %d octets, want at least %d", got, total)
			}
			return float64(total) / (1 << 20) / el.Seconds(), nil
		}
	}
	if _, _, err := interleave(1, retr(direct, &cpu[0]), retr(bridged, &cpu[1])); err != nil {
		return err
	}
	cpu = [2]cpuUse{}
	stop := t.profile(MeasureRETR)
	d, b, err := interleave(t.cfg.Reps, retr(direct, &cpu[0]), retr(bridged, &cpu[1]))
	stop()
	if err != nil {
		return err
	}
	t.throughputRow(fmt.Sprintf("POP3 RETR of a %d MiB maildrop, %d × %d MiB (MiB/s, median of %d)",
		total>>20, t.cfg.RETRMessages, t.cfg.RETRSize>>20, t.cfg.Reps), MeasureRETR, d, b, 0.95)
	t.cpuRow(MeasureRETR, cpu, float64(t.cfg.Reps*total)/(1<<20))
	direct.Cmd("QUIT")
	bridged.Cmd("QUIT")
	return nil
}

// cpuRow reports the CPU time each process spent per MiB on each path:
// on a machine where client, bridge and upstream share two cores, the
// bridged path's extra CPU (one more decrypt-and-copy stage) is taken from
// the upstream and the client, so the throughput ratio says as much about
// the machine as about the bridge; the bridge's own cost per MiB, and so
// what one core of it can relay, does not depend on that.
func (t *target) cpuRow(m string, cpu [2]cpuUse, mib float64) {
	per := func(d time.Duration) string {
		if d == 0 {
			return "?"
		}
		return fmt.Sprintf("%.2f", d.Seconds()*1000/mib)
	}
	up := func(u cpuUse) string {
		if t.up.info.PID == 0 {
			return "(not measured)"
		}
		return per(u[2])
	}
	row := Row{Upstream: t.name(), Command: t.cfg.command(t.name(), m),
		What:   "… CPU ms per MiB: client / bridge / upstream (the bridge's capacity: MiB/s per core)",
		Direct: per(cpu[0][0]) + " / — / " + up(cpu[0]),
		Bridge: per(cpu[1][0]) + " / " + per(cpu[1][1]) + " / " + up(cpu[1]),
	}
	if cpu[1][1] > 0 {
		row.Delta = fmt.Sprintf("bridge alone: %.0f MiB/s per core", mib/cpu[1][1].Seconds())
	}
	t.rep.add(row)
}
