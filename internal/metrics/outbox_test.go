package metrics

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailsts/mailsts/internal/outgoing/outbox"
)

// gatherOutbox returns the outbox metrics of reg: counters as
// name{label values in label name order: outcome, scheme} → value, histograms as name{scheme} → count and
// name_sum{scheme} → sum.
func gatherOutbox(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			k := f.GetName() + "{"
			for i, l := range m.GetLabel() {
				if i > 0 {
					k += ","
				}
				k += l.GetValue()
			}
			k += "}"
			if h := m.GetHistogram(); h != nil {
				got[k] = float64(h.GetSampleCount())
				got[f.GetName()+"_sum"+k[len(f.GetName()):]] = h.GetSampleSum()
				continue
			}
			got[k] = m.GetCounter().GetValue()
		}
	}
	return got
}

// Each outcome of a delivery attempt lands in its own series, by scheme;
// the series exist at zero before any attempt; attempts that reached out
// are timed; odd schemes and states stay within bounded labels.
func TestOutboxMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m, err := NewOutbox(reg)
	if err != nil {
		t.Fatal(err)
	}
	var obs outbox.Observer = m
	before := gatherOutbox(t, reg)
	if len(before) != 8 || before["mailsts_tlsrpt_outbox_deliveries_total{failed,https}"] != 0 {
		t.Errorf("before any attempt: %v, want 8 series at zero (2 schemes × 4 outcomes)", before)
	}
	obs.DeliveryAttempt("https", outbox.StateSent, 250*time.Millisecond)
	obs.DeliveryAttempt("https", outbox.StateRetrying, time.Second)
	obs.DeliveryAttempt("https", outbox.StateRetrying, time.Second)
	obs.DeliveryAttempt("mailto", outbox.StateGivenUp, 3*time.Second)
	obs.DeliveryAttempt("mailto", outbox.StateSuppressed, 0)
	obs.DeliveryAttempt("gopher", outbox.State("weird"), 0)
	got := gatherOutbox(t, reg)
	for k, want := range map[string]float64{
		"mailsts_tlsrpt_outbox_deliveries_total{sent,https}":        1,
		"mailsts_tlsrpt_outbox_deliveries_total{failed,https}":      2,
		"mailsts_tlsrpt_outbox_deliveries_total{given_up,https}":    0,
		"mailsts_tlsrpt_outbox_deliveries_total{given_up,mailto}":   1,
		"mailsts_tlsrpt_outbox_deliveries_total{suppressed,mailto}": 1,
		"mailsts_tlsrpt_outbox_deliveries_total{sent,mailto}":       0,
		"mailsts_tlsrpt_outbox_deliveries_total{other,other}":       1,
		// The suppressed and the odd attempt took no time: not timed.
		"mailsts_tlsrpt_outbox_attempt_seconds{https}":      3,
		"mailsts_tlsrpt_outbox_attempt_seconds_sum{https}":  2.25,
		"mailsts_tlsrpt_outbox_attempt_seconds{mailto}":     1,
		"mailsts_tlsrpt_outbox_attempt_seconds_sum{mailto}": 3,
	} {
		if v, ok := got[k]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", k, v, ok, want)
		}
	}
	if _, ok := got["mailsts_tlsrpt_outbox_attempt_seconds{other}"]; ok {
		t.Error("an attempt without a duration was timed")
	}
	if _, err := NewOutbox(reg); err == nil {
		t.Error("registering twice on one registry succeeded")
	}
}
