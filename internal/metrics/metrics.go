// Package metrics holds the bridge's Prometheus collectors.
//
// Typical use:
//
//	m := metrics.New()           // registers on its own registry
//	m.SessionOpened("imap")
//	defer m.SessionClosed("imap")
//	http.Handle("/metrics", m.Handler())
//
// Every method is safe on a nil *Metrics, so tests and tools that do not
// care pass nil. Label values are fixed words chosen by the callers
// (protocol, outcome, reason), never user input, so cardinality is bounded;
// the per-account gauges are the one exception and are bounded by the
// config's accounts. No label or value ever carries a secret.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is the set of collectors of one bridge process.
type Metrics struct {
	reg *prometheus.Registry

	sessionsOpen    *prometheus.GaugeVec     // proto
	logins          *prometheus.CounterVec   // proto, outcome
	upstreamConnect *prometheus.HistogramVec // proto, outcome
	rotations       *prometheus.CounterVec   // proto, outcome, reason
	resumes         *prometheus.CounterVec   // proto, outcome, reason
	refreshes       *prometheus.CounterVec   // outcome
	bytes           *prometheus.CounterVec   // proto, direction
}

// New creates the collectors on a fresh registry, together with the Go and
// process collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		sessionsOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "oauthbridge_sessions_open",
			Help: "Client sessions currently open, by protocol.",
		}, []string{"proto"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oauthbridge_logins_total",
			Help: "Client login attempts by protocol and outcome (ok, bad_credentials, throttled, limit, consent_required, upstream_refused, upstream_unavailable).",
		}, []string{"proto", "outcome"}),
		upstreamConnect: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "oauthbridge_upstream_connect_seconds",
			Help:    "Time to connect and authenticate to the upstream, by protocol and outcome.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"proto", "outcome"}),
		rotations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oauthbridge_rotations_total",
			Help: "Proactive upstream session rotations by protocol, outcome and reason.",
		}, []string{"proto", "outcome", "reason"}),
		resumes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oauthbridge_resumes_total",
			Help: "Reactive upstream session resumes by protocol, outcome and reason.",
		}, []string{"proto", "outcome", "reason"}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oauthbridge_token_refreshes_total",
			Help: "OAuth token refreshes by outcome (ok, consent_required, temporary_error).",
		}, []string{"outcome"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oauthbridge_relayed_bytes_total",
			Help: "Bytes relayed after login, by protocol and direction (to_client, to_upstream).",
		}, []string{"proto", "direction"}),
	}
	m.reg.MustRegister(m.sessionsOpen, m.logins, m.upstreamConnect, m.rotations,
		m.resumes, m.refreshes, m.bytes,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is where extra collectors (the token manager's per-account
// gauges) are registered.
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.reg
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

func (m *Metrics) SessionOpened(proto string) {
	if m != nil {
		m.sessionsOpen.WithLabelValues(proto).Inc()
	}
}

func (m *Metrics) SessionClosed(proto string) {
	if m != nil {
		m.sessionsOpen.WithLabelValues(proto).Dec()
	}
}

// Login counts a login attempt; outcome is one of the words listed in the
// metric's help.
func (m *Metrics) Login(proto, outcome string) {
	if m != nil {
		m.logins.WithLabelValues(proto, outcome).Inc()
	}
}

// UpstreamConnect observes one upstream connect+authenticate.
func (m *Metrics) UpstreamConnect(proto string, d time.Duration, ok bool) {
	if m != nil {
		m.upstreamConnect.WithLabelValues(proto, outcomeWord(ok)).Observe(d.Seconds())
	}
}

// Rotation counts a proactive rotation; reason is e.g. "token_expiry",
// "session_lifetime".
func (m *Metrics) Rotation(proto string, ok bool, reason string) {
	if m != nil {
		m.rotations.WithLabelValues(proto, outcomeWord(ok), reason).Inc()
	}
}

// Resume counts a reactive resume; reason is e.g. "bye", "eof", "error".
func (m *Metrics) Resume(proto string, ok bool, reason string) {
	if m != nil {
		m.resumes.WithLabelValues(proto, outcomeWord(ok), reason).Inc()
	}
}

// Refresh counts a token refresh; outcome is "ok", "consent_required" or
// "temporary_error".
func (m *Metrics) Refresh(outcome string) {
	if m != nil {
		m.refreshes.WithLabelValues(outcome).Inc()
	}
}

// Counter returns the byte counter for one protocol and direction
// ("to_client" or "to_upstream"), for relays to keep and Add to without a
// label lookup per write. It returns nil on a nil *Metrics; AddBytes
// accepts that.
func (m *Metrics) Counter(proto, direction string) prometheus.Counter {
	if m == nil {
		return nil
	}
	return m.bytes.WithLabelValues(proto, direction)
}

// AddBytes adds n to c when c is not nil.
func AddBytes(c prometheus.Counter, n int) {
	if c != nil && n > 0 {
		c.Add(float64(n))
	}
}

func outcomeWord(ok bool) string {
	if ok {
		return "ok"
	}
	return "error"
}
