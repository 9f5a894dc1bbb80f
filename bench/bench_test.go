package bench

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/oauthbridge/oauthbridge/internal/testpeers"
)

func TestMain(m *testing.M) {
	RunChild() // the test binary is also the upstream and bridge children
	os.Exit(m.Run())
}

// tiny is a configuration that exercises every measurement in seconds.
func tiny(upstreams ...string) Config {
	c := DefaultConfig(true)
	c.Upstreams = upstreams
	c.FetchSize, c.RETRMessages, c.RETRSize, c.Reps = 1<<20, 2, 256<<10, 1
	c.LatencySamples, c.LoginSamples, c.SMTPMessages = 50, 5, 20
	c.IdleSessions, c.ActiveSessions, c.ActiveDuration, c.Users = []int{5, 20}, 10, time.Second, 3
	c.BridgeLog = "off"
	return c
}

// TestRunFakeGmail runs every measurement against fakegmail at a tiny
// scale, in child processes as the command does, and checks that each
// produced its rows, that none failed, and that the session counts were
// error-free (those are correctness, not speed, so they hold on any
// machine).
func TestRunFakeGmail(t *testing.T) {
	cfg := tiny(UpstreamFakeGmail)
	cfg.ProfileDir = t.TempDir()
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range rep.Notes {
		if strings.Contains(n, "failed") || strings.Contains(n, "not measured") || strings.Contains(n, "error") {
			t.Errorf("note: %s", n)
		}
	}
	want := map[string]int{MeasureFetch: 2, MeasureRETR: 2, MeasureLatency: 5, MeasureLogin: 3, MeasureSMTP: 1, MeasureIdle: 7, MeasureActive: 4}
	got := map[string]int{}
	for _, r := range rep.Rows {
		for m := range want {
			if strings.Contains(r.Command, "-only "+m) {
				got[m]++
			}
		}
		if strings.Contains(r.What, "errors") && r.Met != Met {
			t.Errorf("row %q: direct %s, bridge %s", r.What, r.Direct, r.Bridge)
		}
		if r.Upstream != UpstreamFakeGmail {
			t.Errorf("row %q: upstream %q", r.What, r.Upstream)
		}
	}
	for m, n := range want {
		if got[m] != n {
			t.Errorf("%s: %d rows, want %d", m, got[m], n)
		}
	}
	var md bytes.Buffer
	if err := rep.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"| # | upstream | what |", "load average", "go run ./bench/cmd/oauthbridge-bench -quick -upstream fakegmail -only fetch", "bridge CPU profile:", "heap profile at 20 idle sessions"} {
		if !strings.Contains(md.String(), s) {
			t.Errorf("report lacks %q:\n%s", s, md.String())
		}
	}
	if t.Failed() {
		t.Logf("report:\n%s", md.String())
	}
}

// TestRunDovecot runs the per-upstream measurements against Dovecot.
func TestRunDovecot(t *testing.T) {
	testpeers.Require(t, "dovecot", "doveadm")
	cfg := tiny(UpstreamDovecot)
	cfg.Only = []string{MeasureFetch, MeasureRETR, MeasureLatency, MeasureLogin, MeasureSMTP}
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range rep.Notes {
		t.Errorf("note: %s", n)
	}
	if len(rep.Rows) != 13 {
		t.Errorf("%d rows, want 13", len(rep.Rows))
	}
	for _, r := range rep.Rows {
		if r.Upstream != UpstreamDovecot || r.Bridge == "" || (r.Direct == "" && !strings.HasPrefix(r.What, "…")) {
			t.Errorf("row %+v", r)
		}
	}
}
