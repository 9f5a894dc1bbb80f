// Command oauthbridge-bench measures the bridge against the direct path to
// the same upstream and prints a Markdown table of the results against
// the targets of DESIGN §7. See package bench.
//
//	go run ./bench/cmd/oauthbridge-bench            # full run (several minutes)
//	go run ./bench/cmd/oauthbridge-bench -quick     # about a minute
//	go run ./bench/cmd/oauthbridge-bench -upstream dovecot -only fetch,latency -out results.md
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/oauthbridge/oauthbridge/bench"
)

func main() {
	bench.RunChild()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("oauthbridge-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: oauthbridge-bench [flags]\n\n"+
			"Measures the bridge against the direct path to the same upstream and prints\n"+
			"a Markdown table. Full preset: 50 MiB FETCH and RETR x10, 5,000 latency samples,\n"+
			"500 logins, 1,000 SMTP messages, 1,000 and 10,000 idle sessions, 1,000 active\n"+
			"sessions for 1m. -quick: x5, 1,000, 100, 300, 100 and 1,000 idle, 100 active for 10s.\n\n")
		fs.PrintDefaults()
	}
	quick := fs.Bool("quick", false, "the quick preset (see above)")
	upstreams := fs.String("upstream", "", "fakegmail, dovecot or both (comma-separated); default both when dovecot is installed")
	only := fs.String("only", "", "comma-separated measurements: "+strings.Join(bench.AllMeasurements, ","))
	out := fs.String("out", "", "also write the Markdown report to this file")
	profile := fs.String("profile", "", "write the bridge's CPU profile of each measurement and heap profiles at each idle level to this directory")
	verbose := fs.Bool("v", false, "progress and the children's logs on stderr")
	// Overrides of the preset.
	fetchMiB := fs.Int("fetch-mib", 0, "size of the fetched message in MiB")
	reps := fs.Int("reps", 0, "timed FETCH/RETR repetitions per path")
	latency := fs.Int("latency-samples", 0, "samples per command and path")
	logins := fs.Int("login-samples", 0, "logins per path")
	idle := fs.String("idle", "", "idle session counts, ascending, comma-separated (e.g. 1000,10000)")
	active := fs.Int("active", 0, "concurrent active sessions")
	activeFor := fs.Duration("active-duration", 0, "how long the active sessions run")
	smtpN := fs.Int("smtp-messages", 0, "SMTP messages per path")
	workers := fs.Int("workers", 0, "client goroutines opening sessions")
	bridgeLog := fs.String("bridge-log", "", "the bridge's log level: info (as deployed, default) or off")
	rtt := fs.Duration("upstream-rtt", 0, "reach the upstream through a relay adding this round trip (both paths alike; e.g. 20ms, as to a real provider); not for idle/active")
	bridgeGOGC := fs.Int("bridge-gogc", 0, "the bridge process's GOGC (default: the runtime's, 100); trades CPU for RSS")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "oauthbridge-bench: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cfg := bench.DefaultConfig(*quick)
	if *upstreams != "" {
		cfg.Upstreams = strings.Split(*upstreams, ",")
	}
	if *only != "" {
		cfg.Only = strings.Split(*only, ",")
	}
	cfg.ProfileDir = *profile
	if *verbose {
		cfg.Log = stderr
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "quick", "upstream", "only", "out", "profile", "v":
		default:
			cfg.ExtraArgs = append(cfg.ExtraArgs, "-"+f.Name+"="+f.Value.String())
		}
	})
	setInt := func(dst *int, v int) {
		if v != 0 {
			*dst = v
		}
	}
	setInt(&cfg.FetchSize, *fetchMiB<<20)
	setInt(&cfg.Reps, *reps)
	setInt(&cfg.LatencySamples, *latency)
	setInt(&cfg.LoginSamples, *logins)
	setInt(&cfg.ActiveSessions, *active)
	setInt(&cfg.SMTPMessages, *smtpN)
	setInt(&cfg.Workers, *workers)
	if *activeFor != 0 {
		cfg.ActiveDuration = *activeFor
	}
	cfg.BridgeGOGC = *bridgeGOGC
	cfg.UpstreamRTT = *rtt
	if *bridgeLog != "" {
		cfg.BridgeLog = *bridgeLog
	}
	if *idle != "" {
		cfg.IdleSessions = nil
		for _, s := range strings.Split(*idle, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil {
				fmt.Fprintf(stderr, "oauthbridge-bench: -idle: %v\n", err)
				return 2
			}
			cfg.IdleSessions = append(cfg.IdleSessions, n)
		}
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "oauthbridge-bench: %v\n", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	start := time.Now()
	rep, err := bench.Run(ctx, cfg)
	if rep == nil {
		fmt.Fprintf(stderr, "oauthbridge-bench: %v\n", err)
		return 1
	}
	if err != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("run interrupted after %s: %v", time.Since(start).Round(time.Second), err))
	}
	if err := rep.WriteMarkdown(stdout); err != nil {
		fmt.Fprintf(stderr, "oauthbridge-bench: %v\n", err)
		return 1
	}
	if *out != "" {
		f, err := os.Create(*out)
		if err == nil {
			err = rep.WriteMarkdown(f)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintf(stderr, "oauthbridge-bench: -out: %v\n", err)
			return 1
		}
	}
	return 0
}
