// Package bench is the benchmark harness behind cmd/oauthbridge-bench: it
// measures the bridge against the direct path to the same upstream, in
// one run, and writes a Markdown table of the results next to the
// targets of DESIGN §7.
//
// Typical use (what the command does):
//
//	func main() {
//		bench.RunChild() // first: the same binary serves as the upstream and bridge children
//		cfg := bench.DefaultConfig(quick)
//		rep, err := bench.Run(ctx, cfg)
//		...
//		rep.WriteMarkdown(os.Stdout)
//	}
//
// Processes: the benchmark's clients run in the calling process; the
// fake Gmail (internal/fakegmail) and the bridge (the proxy/imap, pop3
// and smtp Servers on proxy.Listeners with LocalAuth, as the daemon wires
// them) each run in a child process started from the same executable
// (RunChild), so the bridge's VmRSS is its own and no Go runtime is
// shared between what measures and what is measured. Dovecot, when
// installed, is started through internal/testpeers. The bridge child
// serves net/http/pprof and runtime statistics on a loopback debug port.
//
// Each comparison alternates direct and bridged operations (and which of
// the two goes first), so that noise from other tenants of the machine
// falls on both alike.
package bench
