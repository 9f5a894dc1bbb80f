package bench

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Row is one line of the result table.
type Row struct {
	Upstream string
	What     string
	Direct   string
	Bridge   string
	Delta    string // ratio (bridge/direct) or difference (bridge − direct)
	Target   string // from DESIGN §7 (or the issue), "" when there is none
	Met      Verdict
	Command  string
}

// Verdict says whether a row meets its target.
type Verdict int

const (
	NoTarget Verdict = iota
	Met
	Missed
)

func (v Verdict) String() string {
	switch v {
	case Met:
		return "yes"
	case Missed:
		return "**no**"
	}
	return "—"
}

func verdict(ok bool) Verdict {
	if ok {
		return Met
	}
	return Missed
}

// Report is the outcome of a run.
type Report struct {
	Machine   machine
	LoadStart string
	LoadEnd   string
	Started   time.Time
	Took      time.Duration
	Preset    string
	FileLimit uint64
	RTT       time.Duration // Config.UpstreamRTT
	Rows      []Row
	Notes     []string // skipped measurements, errors, profile files
}

func (r *Report) add(row Row) { r.Rows = append(r.Rows, row) }
func (r *Report) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// Missed reports whether any row missed its target.
func (r *Report) Missed() bool {
	for _, row := range r.Rows {
		if row.Met == Missed {
			return true
		}
	}
	return false
}

// WriteMarkdown writes the report as Markdown: the machine, the table,
// the command for each row, and the notes.
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "## oauthbridge benchmark (%s)\n\n", r.Preset)
	fmt.Fprintf(&b, "- machine: %s, %d cores, %s RAM; %s; %s\n", m.CPU, m.Cores, m.MemTotal, m.Kernel, m.GoVersion)
	fmt.Fprintf(&b, "- started %s, took %s; load average (1/5/15 min) at start %s, at end %s\n",
		r.Started.UTC().Format(time.RFC3339), r.Took.Round(time.Second), r.LoadStart, r.LoadEnd)
	fmt.Fprintf(&b, "- every process (benchmark clients, bridge, fakegmail, Dovecot) on the same machine, over loopback; RLIMIT_NOFILE %d\n", r.FileLimit)
	b.WriteString("- direct: the benchmark's client to the upstream over TLS with XOAUTH2; bridge: the same client in plaintext to the bridge's loopback listener, the bridge (its own process, built as the daemon builds it: LocalAuth, Limiter, metrics, info-level log) over TLS with XOAUTH2 to the same upstream\n")
	b.WriteString("- direct and bridged operations alternate (and which goes first), so noise from other tenants falls on both; throughput is the median of the repetitions; latencies are per command, one at a time on one connection\n")
	if r.RTT > 0 {
		fmt.Fprintf(&b, "- the upstream is reached through a relay adding a %s round trip, on both paths\n", r.RTT)
	}
	b.WriteString("\n")
	b.WriteString("| # | upstream | what | direct | bridge | bridge vs direct | target | met? |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|\n")
	for i, row := range r.Rows {
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s | %s | %s |\n", i+1, row.Upstream, row.What,
			orDash(row.Direct), orDash(row.Bridge), orDash(row.Delta), orDash(row.Target), row.Met)
	}
	b.WriteString("\nTo reproduce a row (from the repository root):\n\n")
	last := ""
	for i, row := range r.Rows {
		if row.Command == last {
			continue
		}
		j := i
		for j+1 < len(r.Rows) && r.Rows[j+1].Command == row.Command {
			j++
		}
		rows := fmt.Sprintf("row %d", i+1)
		if j > i {
			rows = fmt.Sprintf("rows %d–%d", i+1, j+1)
		}
		fmt.Fprintf(&b, "- %s: `%s`\n", rows, row.Command)
		last = row.Command
	}
	if len(r.Notes) > 0 {
		b.WriteString("\nNotes:\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// Formatting helpers for cells.

func fmtDur(d time.Duration) string {
	switch {
	case d < 10*time.Microsecond:
		return fmt.Sprintf("%.1f µs", float64(d)/float64(time.Microsecond))
	case d < time.Millisecond:
		return fmt.Sprintf("%d µs", d.Microseconds())
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
	return d.Round(10 * time.Millisecond).String()
}

func fmtDelta(d time.Duration) string {
	if d < 0 {
		return "−" + fmtDur(-d)
	}
	return "+" + fmtDur(d)
}

func fmtRatio(x float64) string { return fmt.Sprintf("%.3f×", x) }
