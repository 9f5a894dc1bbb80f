// Package doctor diagnoses an account's upstream connections for
// "oauthbridge check --login ACCOUNT": for each protocol it walks the
// path a session takes — DNS, TCP connect, STARTTLS where the endpoint
// uses it, the TLS handshake with verification, an access token, and the
// protocol's real login (greeting and XOAUTH2) — and reports each step
// with a verdict and, when it fails, the fix.
//
// Typical use:
//
//	steps := doctor.Check(ctx, dialer, acct, []string{"imap", "pop3", "smtp"})
//	doctor.Report(os.Stdout, steps)
//	if !doctor.Passed(steps) {
//		os.Exit(1)
//	}
//
// or, to name the provider's config keys in the fixes:
//
//	c := &doctor.Checker{Dialer: dialer, Provider: acctCfg.Provider}
//	steps := c.Check(ctx, acct, protos)
//
// After a failed step the protocol's later steps are reported as skipped:
// they could only fail for the same reason. Each step opens its own
// connection, so a report names exactly the step that broke. Nothing a
// step reports holds a secret: tokens are used, never shown.
package doctor

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/oauthbridge/oauthbridge/proxy"
)

// Step is one checked step of one protocol.
type Step struct {
	Proto  string // "imap", "pop3", "smtp"
	Name   string // "dns", "connect", "starttls", "tls", "token", "login" (or "config")
	Detail string // what was found: addresses, certificate, expiry, capabilities, or the error
	OK     bool
	Fix    string // what to change when !OK (empty for skipped steps)
	// Skipped: not run because an earlier step of the protocol failed.
	// OK is false for a skipped step.
	Skipped bool
}

// Verdict is "ok", "FAIL" or "skipped".
func (s Step) Verdict() string {
	switch {
	case s.OK:
		return "ok"
	case s.Skipped:
		return "skipped"
	}
	return "FAIL"
}

// Step names, in the order they run.
const (
	StepConfig   = "config"
	StepDNS      = "dns"
	StepConnect  = "connect"
	StepStartTLS = "starttls"
	StepTLS      = "tls"
	StepToken    = "token"
	StepLogin    = "login"
)

// UpstreamCheck logs in to the protocol's upstream as a session would and
// returns what the server offers (capabilities): imap.CheckUpstream and
// its POP3 and SMTP counterparts.
type UpstreamCheck func(ctx context.Context, d *proxy.Dialer, acct *proxy.Account) (string, error)

// Checker runs the checks. The zero value works: system resolver, plain
// TCP dialer, the protocol packages' login checks.
type Checker struct {
	// Dialer is the one sessions use (its Dial function and Timeout);
	// nil means a default proxy.Dialer.
	Dialer *proxy.Dialer
	// Provider is the account's provider name in the config, so fixes
	// name the key ("providers.gmail.ca_file"); "" words them generally.
	Provider string
	// Resolver for the DNS step; nil means net.DefaultResolver.
	Resolver *net.Resolver
	// StepTimeout bounds each step (15s).
	StepTimeout time.Duration
	// Upstream maps a protocol to its login check; nil means
	// DefaultUpstreamChecks.
	Upstream map[string]UpstreamCheck
}

// Check runs every step for each of protos ("imap", "pop3", "smtp") of
// acct with a default Checker using d.
func Check(ctx context.Context, d *proxy.Dialer, acct *proxy.Account, protos []string) []Step {
	return (&Checker{Dialer: d}).Check(ctx, acct, protos)
}

// Check runs every step for each of protos of acct, protocols one after
// the other, and returns the steps in order.
func (c *Checker) Check(ctx context.Context, acct *proxy.Account, protos []string) []Step {
	var out []Step
	for _, p := range protos {
		out = append(out, c.checkProto(ctx, acct, strings.ToLower(p))...)
	}
	return out
}

// step is one named check. run returns the Step without Proto and Name.
type step struct {
	name string
	run  func(ctx context.Context, r *run) Step
}

// run is the state of one protocol's check. conn carries the connection
// from connect through starttls to tls, which closes it: the login step
// opens its own, as a session would.
type run struct {
	c     *Checker
	proto string
	acct  *proxy.Account
	ep    proxy.Endpoint
	host  string
	port  string
	conn  net.Conn
}

func (c *Checker) checkProto(ctx context.Context, acct *proxy.Account, proto string) []Step {
	r := &run{c: c, proto: proto, acct: acct}
	switch proto {
	case "imap":
		r.ep = acct.IMAP
	case "pop3":
		r.ep = acct.POP3
	case "smtp":
		r.ep = acct.SMTP
	default:
		return []Step{{Proto: proto, Name: StepConfig, Detail: fmt.Sprintf("unknown protocol %q", proto),
			Fix: "use imap, pop3 or smtp"}}
	}
	if r.ep.Addr == "" {
		return []Step{{Proto: proto, Name: StepConfig, Detail: "no " + proto + " endpoint configured",
			Fix: "set " + c.key(proto)}}
	}
	host, port, err := net.SplitHostPort(r.ep.Addr)
	if err != nil {
		return []Step{{Proto: proto, Name: StepConfig, Detail: fmt.Sprintf("endpoint %q is not host:port", r.ep.Addr),
			Fix: "set " + c.key(proto) + " to host:port"}}
	}
	r.host, r.port = host, port
	defer func() {
		if r.conn != nil {
			r.conn.Close()
		}
	}()

	steps := []step{{StepDNS, dnsStep}, {StepConnect, connectStep}}
	if r.ep.TLS == proxy.UpstreamStartTLS {
		steps = append(steps, step{StepStartTLS, startTLSStep})
	}
	steps = append(steps, step{StepTLS, tlsStep}, step{StepToken, tokenStep}, step{StepLogin, loginStep})
	out := make([]Step, 0, len(steps))
	failed := false
	for _, st := range steps {
		if failed {
			out = append(out, Step{Proto: proto, Name: st.name, Skipped: true, Detail: "skipped: an earlier step failed"})
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, c.stepTimeout())
		s := st.run(sctx, r)
		cancel()
		s.Proto, s.Name = proto, st.name
		failed = !s.OK
		out = append(out, s)
	}
	return out
}

func (c *Checker) stepTimeout() time.Duration {
	if c.StepTimeout > 0 {
		return c.StepTimeout
	}
	return 15 * time.Second
}

func (c *Checker) dialer() *proxy.Dialer {
	if c.Dialer != nil {
		return c.Dialer
	}
	return &proxy.Dialer{}
}

// key names the config key of a provider setting for fixes.
func (c *Checker) key(setting string) string {
	if c.Provider == "" {
		return "the provider's " + setting + " (providers.NAME." + setting + ")"
	}
	return "providers." + c.Provider + "." + setting
}

// accountName is the name "oauthbridge authorize" takes.
func accountName(acct *proxy.Account) string {
	if acct.ConfigName != "" {
		return acct.ConfigName
	}
	return acct.Name
}

// Passed reports whether no step failed.
func Passed(steps []Step) bool {
	for _, s := range steps {
		if !s.OK {
			return false
		}
	}
	return len(steps) > 0
}

// Report writes one line per step, and the fix under each failure:
//
//	imap  dns       ok       imap.gmail.com -> 142.250.1.108, 2a00:1450:4013:c00::6c
//	imap  tls       FAIL     certificate signed by unknown authority (...)
//	                fix:     set providers.example.ca_file to the PEM file of the CA that signed it
func Report(w io.Writer, steps []Step) error {
	for _, s := range steps {
		if _, err := fmt.Fprintf(w, "%-5s %-9s %-8s %s\n", s.Proto, s.Name, s.Verdict(), s.Detail); err != nil {
			return err
		}
		if !s.OK && s.Fix != "" {
			if _, err := fmt.Fprintf(w, "%-15s %-8s %s\n", "", "fix:", s.Fix); err != nil {
				return err
			}
		}
	}
	return nil
}
