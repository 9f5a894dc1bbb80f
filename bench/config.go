package bench

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Measurements, by the name -only takes.
const (
	MeasureFetch   = "fetch"   // 50 MiB UID FETCH throughput
	MeasureRETR    = "retr"    // 50 MiB maildrop RETR throughput
	MeasureLatency = "latency" // NOOP and small UID FETCH, p50/p99
	MeasureLogin   = "login"   // warm-token login, and login + LOGOUT
	MeasureSMTP    = "smtp"    // small messages over one session
	MeasureIdle    = "idle"    // RSS per idle IMAP session
	MeasureActive  = "active"  // concurrent sessions doing mixed commands
)

// AllMeasurements in the order they run. The first five run against every
// upstream; idle and active always against a fakegmail child (Dovecot
// runs a process per session: 10,000 of them would measure Dovecot).
var AllMeasurements = []string{MeasureFetch, MeasureRETR, MeasureLatency, MeasureLogin, MeasureSMTP, MeasureIdle, MeasureActive}

// Upstreams the benchmark knows.
const (
	UpstreamFakeGmail = "fakegmail"
	UpstreamDovecot   = "dovecot"
)

// Config is one benchmark run. DefaultConfig gives the full or quick
// preset; the command's flags override single fields.
type Config struct {
	Upstreams []string // UpstreamFakeGmail and/or UpstreamDovecot
	Only      []string // measurements to run; empty means all
	Quick     bool     // the preset the fields came from (for the report)

	FetchSize    int // octets of the message fetched whole
	RETRMessages int // the maildrop: this many messages ...
	RETRSize     int // ... of this size
	Reps         int // timed repetitions per path of FETCH and RETR

	LatencySamples int // per command and path
	LoginSamples   int // per path

	IdleSessions   []int // session counts at which RSS is read, ascending
	ActiveSessions int
	ActiveDuration time.Duration
	Users          int // upstream users the idle and active sessions spread over
	SMTPMessages   int
	Workers        int // client goroutines that open idle sessions

	BridgeLog  string // the bridge's log level: "info" (as deployed) or "off"
	BridgeGOGC int    // the bridge's GC percent; 0 leaves the runtime default
	// UpstreamRTT, when set, puts the upstream that far away (a relay
	// in this process delays each direction by half) for the per-upstream
	// measurements, on both paths alike. Idle and active sessions are
	// measured without it.
	UpstreamRTT time.Duration
	ProfileDir  string    // when set, CPU and heap profiles of the bridge go here
	Log         io.Writer // progress and the children's stderr; nil: quiet

	// ExtraArgs are the flags given beyond -quick, -upstream and -only,
	// repeated in each row's command.
	ExtraArgs []string
}

// DefaultConfig returns the full preset (the sizes: 1,000 and
// 10,000 idle sessions, 1,000 active for a minute) or, with quick, one a
// few times shorter (100 and 1,000 idle, 100 active for 10 s).
func DefaultConfig(quick bool) Config {
	c := Config{
		Upstreams:    []string{UpstreamFakeGmail},
		Quick:        quick,
		FetchSize:    50 << 20,
		RETRMessages: 5,
		RETRSize:     10 << 20,
		Users:        100,
		Workers:      8,
		BridgeLog:    "info",
	}
	if DovecotAvailable() {
		c.Upstreams = append(c.Upstreams, UpstreamDovecot)
	}
	if quick {
		c.Reps, c.LatencySamples, c.LoginSamples = 5, 1000, 100
		c.IdleSessions, c.ActiveSessions, c.ActiveDuration = []int{100, 1000}, 100, 10*time.Second
		c.SMTPMessages = 300
	} else {
		c.Reps, c.LatencySamples, c.LoginSamples = 10, 5000, 500
		c.IdleSessions, c.ActiveSessions, c.ActiveDuration = []int{1000, 10000}, 1000, time.Minute
		c.SMTPMessages = 1000
	}
	return c
}

// Validate checks names and sizes.
func (c *Config) Validate() error {
	for _, u := range c.Upstreams {
		if u != UpstreamFakeGmail && u != UpstreamDovecot {
			return fmt.Errorf("unknown upstream %q (want %s or %s)", u, UpstreamFakeGmail, UpstreamDovecot)
		}
	}
	for _, m := range c.Only {
		if !slices.Contains(AllMeasurements, m) {
			return fmt.Errorf("unknown measurement %q (want one of %s)", m, strings.Join(AllMeasurements, ", "))
		}
	}
	if c.FetchSize < 1024 || c.RETRSize < 1024 || c.RETRMessages < 1 || c.Reps < 1 {
		return fmt.Errorf("sizes and repetitions must be positive (message sizes at least 1 KiB)")
	}
	if c.LatencySamples < 1 || c.LoginSamples < 1 || c.SMTPMessages < 1 || c.Users < 1 || c.Workers < 1 {
		return fmt.Errorf("sample counts, users and workers must be positive")
	}
	if !slices.IsSorted(c.IdleSessions) || (len(c.IdleSessions) > 0 && c.IdleSessions[0] < 1) {
		return fmt.Errorf("idle session counts must be positive and ascending")
	}
	if c.BridgeLog != "info" && c.BridgeLog != "off" {
		return fmt.Errorf("bridge log level %q: want info or off", c.BridgeLog)
	}
	return nil
}

func (c *Config) wants(m string) bool { return len(c.Only) == 0 || slices.Contains(c.Only, m) }

// command is the shell command that reproduces the rows of measurement m
// against upstream u.
func (c *Config) command(u, m string) string {
	parts := []string{"go run ./bench/cmd/oauthbridge-bench"}
	if c.Quick {
		parts = append(parts, "-quick")
	}
	parts = append(parts, "-upstream", u, "-only", m)
	parts = append(parts, c.ExtraArgs...)
	return strings.Join(parts, " ")
}
