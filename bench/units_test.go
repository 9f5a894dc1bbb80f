package bench

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	var s []time.Duration
	for i := 100; i >= 1; i-- {
		s = append(s, time.Duration(i))
	}
	for _, tt := range []struct {
		p    float64
		want time.Duration
	}{{50, 50}, {99, 99}, {100, 100}, {1, 1}, {0.5, 1}} {
		if got := percentile(s, tt.p); got != tt.want {
			t.Errorf("p%v = %d, want %d", tt.p, got, tt.want)
		}
	}
	if percentile(nil, 50) != 0 {
		t.Error("empty")
	}
	if got := median([]float64{3, 1, 2, 10}); got != 2.5 {
		t.Errorf("median = %v", got)
	}
}

func TestMessage(t *testing.T) {
	for _, size := range []int{1024, 2 << 10, 1<<20 + 7, 10 << 20} {
		m := message("u@bench.test", 1, size)
		if len(m) != size {
			t.Fatalf("size %d: got %d", size, len(m))
		}
		if !bytes.HasSuffix(m, []byte("\r\n")) || bytes.Contains(bytes.ReplaceAll(m, []byte("\r\n"), nil), []byte("\n")) {
			t.Fatalf("size %d: not CRLF-terminated lines", size)
		}
		if !bytes.Contains(m, []byte("\r\n\r\n")) {
			t.Fatalf("size %d: no header/body separator", size)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := DefaultConfig(true)
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*Config){
		"upstream":    func(c *Config) { c.Upstreams = []string{"gmail"} },
		"measurement": func(c *Config) { c.Only = []string{"speed"} },
		"idle order":  func(c *Config) { c.IdleSessions = []int{1000, 100} },
		"reps":        func(c *Config) { c.Reps = 0 },
		"log level":   func(c *Config) { c.BridgeLog = "debug" },
	} {
		c := DefaultConfig(true)
		mutate(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestWriteMarkdown(t *testing.T) {
	rep := &Report{Preset: "quick", LoadStart: "1.00 1.00 1.00", LoadEnd: "2.00 1.50 1.00", Machine: machine{CPU: "cpu", Cores: 2}}
	rep.add(Row{Upstream: "fakegmail", What: "a", Direct: "1", Bridge: "2", Delta: "2.000×", Target: "≥ 0.95× direct", Met: Met, Command: "cmd a"})
	rep.add(Row{Upstream: "fakegmail", What: "b", Bridge: "3", Met: Missed, Command: "cmd a"})
	rep.add(Row{Upstream: "dovecot", What: "c", Command: "cmd c"})
	rep.note("a note")
	var b bytes.Buffer
	rep.WriteMarkdown(&b)
	out := b.String()
	for _, s := range []string{
		"| 1 | fakegmail | a | 1 | 2 | 2.000× | ≥ 0.95× direct | yes |",
		"| 2 | fakegmail | b | — | 3 | — | — | **no** |",
		"| 3 | dovecot | c | — | — | — | — | — |",
		"- rows 1–2: `cmd a`", "- row 3: `cmd c`", "- a note", "at start 1.00 1.00 1.00, at end 2.00 1.50 1.00",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("missing %q in:\n%s", s, out)
		}
	}
	if !rep.Missed() {
		t.Error("Missed() = false")
	}
}

func TestHarnessTBAborts(t *testing.T) {
	tb := &harnessTB{}
	ran := false
	tb.Cleanup(func() { ran = true })
	func() {
		defer func() {
			if r, ok := recover().(tbAbort); !ok || string(r) != "boom 1" {
				t.Errorf("recovered %v", r)
			}
		}()
		tb.Fatalf("boom %d", 1)
	}()
	tb.runCleanups()
	if !ran {
		t.Error("cleanup did not run")
	}
}
