package bench

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"
)

// perUpstream are the measurements made against each upstream in turn.
var perUpstream = []string{MeasureFetch, MeasureRETR, MeasureLatency, MeasureLogin, MeasureSMTP}

// Run makes every measurement cfg asks for and returns the report. A
// measurement that fails is noted in the report and the run goes on; Run
// returns an error only when nothing could be set up. ctx cancels
// between measurements.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ProfileDir != "" {
		if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
			return nil, err
		}
	}
	preset := "full"
	if cfg.Quick {
		preset = "quick"
	}
	if len(cfg.ExtraArgs) > 0 {
		preset += ", with " + fmt.Sprint(cfg.ExtraArgs)
	}
	rep := &Report{Machine: describeMachine(), LoadStart: loadAverage(), Started: time.Now(), Preset: preset, RTT: cfg.UpstreamRTT}
	rep.FileLimit = raiseFileLimit()
	defer func() {
		rep.LoadEnd = loadAverage()
		rep.Took = time.Since(rep.Started)
	}()
	progress := func(format string, args ...any) {
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, "bench: "+format+"\n", args...)
		}
	}

	for _, u := range cfg.Upstreams {
		var todo []string
		for _, m := range perUpstream {
			if cfg.wants(m) {
				todo = append(todo, m)
			}
		}
		if len(todo) == 0 {
			break
		}
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		progress("%s: starting upstream and bridge", u)
		t, stop, err := setUp(&cfg, rep, u, targetSpec(&cfg), cfg.UpstreamRTT)
		if err != nil {
			rep.note("%s: not measured: %v", u, err)
			continue
		}
		for _, m := range todo {
			if ctx.Err() != nil {
				break
			}
			progress("%s: %s", u, m)
			if err := t.measure(m); err != nil {
				rep.note("%s %s: failed: %v", u, m, err)
			}
		}
		stop()
	}

	var scale []string
	for _, m := range []string{MeasureIdle, MeasureActive} {
		if cfg.wants(m) {
			scale = append(scale, m)
		}
	}
	if len(scale) > 0 && ctx.Err() == nil {
		if !slices.Contains(cfg.Upstreams, UpstreamFakeGmail) {
			rep.note("idle and active sessions are measured against fakegmail whatever -upstream says: Dovecot runs a process per session")
		}
		progress("fakegmail: starting a fresh upstream and bridge for %v", scale)
		t, stop, err := setUp(&cfg, rep, UpstreamFakeGmail, scaleSpec(&cfg), 0)
		if err != nil {
			rep.note("sessions: not measured: %v", err)
		} else {
			for _, m := range scale {
				if ctx.Err() != nil {
					break
				}
				progress("fakegmail: %s", m)
				if err := t.measure(m); err != nil {
					rep.note("%s: failed: %v", m, err)
				}
			}
			stop()
		}
	}
	return rep, ctx.Err()
}

// setUp starts upstream u seeded with spec and a bridge child in front of
// it; with rtt, the upstream is reached through delaying relays.
func setUp(cfg *Config, rep *Report, u string, spec upstreamSpec, rtt time.Duration) (*target, func(), error) {
	var up *upstream
	var err error
	switch u {
	case UpstreamFakeGmail:
		up, err = startFakeGmail(spec, cfg.Log)
	case UpstreamDovecot:
		if !DovecotAvailable() {
			return nil, nil, errNoDovecot
		}
		up, err = startDovecot(spec, cfg.Log)
	}
	if err != nil {
		return nil, nil, err
	}
	stopUp := up.stop
	if rtt > 0 {
		// Both paths reach the upstream through the same delaying relays.
		var proxies []*delayProxy
		stopUp = func() {
			for _, p := range proxies {
				p.close()
			}
			up.stop()
		}
		for _, addr := range []*string{&up.info.IMAP, &up.info.POP3, &up.info.SMTP} {
			p, err := startDelayProxy(*addr, rtt)
			if err != nil {
				stopUp()
				return nil, nil, err
			}
			proxies = append(proxies, p)
			*addr = p.addr()
		}
	}
	br, err := startBridge(up.info, cfg)
	if err != nil {
		stopUp()
		return nil, nil, err
	}
	t := &target{cfg: cfg, rep: rep, up: up, br: br}
	return t, func() { br.stop(); stopUp() }, nil
}

func (t *target) measure(m string) error {
	switch m {
	case MeasureFetch:
		return t.measureFetch()
	case MeasureRETR:
		return t.measureRETR()
	case MeasureLatency:
		return t.measureLatency()
	case MeasureLogin:
		return t.measureLogin()
	case MeasureSMTP:
		return t.measureSMTP()
	case MeasureIdle:
		return t.measureIdle()
	case MeasureActive:
		return t.measureActive()
	}
	return fmt.Errorf("bench: unknown measurement %q", m)
}
