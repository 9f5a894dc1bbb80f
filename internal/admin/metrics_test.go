package admin

import (
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/oauthbridge/oauthbridge/internal/metrics"
)

func TestMetricsParseAsPrometheusText(t *testing.T) {
	m := metrics.New()
	for range 3 {
		m.Login("imap", "ok")
	}
	m.Login("smtp", "bad_credentials")
	m.SessionOpened("imap")
	m.SessionOpened("imap")
	m.SessionClosed("imap")
	m.Resume("imap", true, "bye")
	m.Refresh("consent_required")
	m.UpstreamConnect("pop3", 40*time.Millisecond, true)
	metrics.AddBytes(m.Counter("imap", "to_client"), 1500)

	srv := serve(t, New(sampleSource(time.Now()), m, nil))
	resp, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("not Prometheus text: %v", err)
	}
	for _, tc := range []struct {
		family string
		labels map[string]string
		want   float64
	}{
		{"oauthbridge_logins_total", map[string]string{"proto": "imap", "outcome": "ok"}, 3},
		{"oauthbridge_logins_total", map[string]string{"proto": "smtp", "outcome": "bad_credentials"}, 1},
		{"oauthbridge_sessions_open", map[string]string{"proto": "imap"}, 1},
		{"oauthbridge_resumes_total", map[string]string{"proto": "imap", "outcome": "ok", "reason": "bye"}, 1},
		{"oauthbridge_token_refreshes_total", map[string]string{"outcome": "consent_required"}, 1},
		{"oauthbridge_relayed_bytes_total", map[string]string{"proto": "imap", "direction": "to_client"}, 1500},
		{"oauthbridge_upstream_connect_seconds", map[string]string{"proto": "pop3", "outcome": "ok"}, 1}, // sample count
	} {
		got, ok := value(fams[tc.family], tc.labels)
		if !ok {
			t.Errorf("%s%v missing", tc.family, tc.labels)
			continue
		}
		if got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.family, tc.labels, got, tc.want)
		}
	}
	if _, ok := fams["go_goroutines"]; !ok {
		t.Error("the Go collector's metrics are missing")
	}
}

// value finds the sample of fam with exactly labels: a counter's or
// gauge's value, a histogram's sample count.
func value(fam *dto.MetricFamily, labels map[string]string) (float64, bool) {
	if fam == nil {
		return 0, false
	}
	for _, m := range fam.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		match := true
		for _, l := range m.GetLabel() {
			if labels[l.GetName()] != l.GetValue() {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}
