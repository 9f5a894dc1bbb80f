package tokens

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// collector exports per-account token state, computed from Status at
// scrape time: one label value per configured account (bounded by the
// config), no secret in any label or value.
type collector struct{ m *Manager }

var (
	descState = prometheus.NewDesc("oauthbridge_account_token_state",
		"1 for the account's current token state (authorized, consent_required, not_authorized, error), 0 for the others.",
		[]string{"account", "state"}, nil)
	descExpiry = prometheus.NewDesc("oauthbridge_account_token_expiry_timestamp_seconds",
		"When the account's current access token expires (Unix time); absent without one.",
		[]string{"account"}, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descState
	ch <- descExpiry
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.m.Status() {
		for _, s := range []State{StateAuthorized, StateConsentRequired, StateNotAuthorized, StateError} {
			v := 0.0
			if st.State == s {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, v, st.Account, string(s))
		}
		if !st.AccessExpiry.IsZero() {
			ch <- prometheus.MustNewConstMetric(descExpiry, prometheus.GaugeValue,
				float64(st.AccessExpiry.UnixNano())/1e9, st.Account)
		}
	}
}

// registerCollector adds the per-account gauges to the Metrics registry.
// Only the first Manager on a registry registers (a CLI and tests may make
// several).
func (m *Manager) registerCollector() {
	reg := m.opts.Metrics.Registry()
	if reg == nil {
		return
	}
	if err := reg.Register(collector{m}); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
		m.log.Warn("cannot register token metrics", "err", err)
	}
}
