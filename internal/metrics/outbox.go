package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailsts/mailsts/internal/outgoing/outbox"
)

// Outbox holds the metrics of the TLS report outbox (prefix
// mailsts_tlsrpt_outbox_); it implements outbox.Observer:
//   - deliveries_total{scheme,outcome}: delivery attempts by the rua's
//     scheme (mailto, https) and what became of the delivery: sent,
//     failed (to be retried), given_up, suppressed (not attempted: its
//     destination is suppressed);
//   - attempt_seconds{scheme}: how long attempts that reached out took.
type Outbox struct {
	deliveries *prometheus.CounterVec
	seconds    *prometheus.HistogramVec
}

// NewOutbox creates the outbox metrics and registers them with reg.
func NewOutbox(reg prometheus.Registerer) (*Outbox, error) {
	m := &Outbox{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: "tlsrpt_outbox",
			Name: "deliveries_total", Help: "TLS report delivery attempts, by rua scheme (mailto, https) and outcome (sent, failed, given_up, suppressed)."},
			[]string{"scheme", "outcome"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Subsystem: "tlsrpt_outbox",
			Name: "attempt_seconds", Help: "Duration of TLS report delivery attempts, by rua scheme.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}},
			[]string{"scheme"}),
	}
	for _, c := range []prometheus.Collector{m.deliveries, m.seconds} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Every series exists from the start, at zero, so that a rate or an
	// alert on failures works before the first failure.
	for _, s := range []string{"mailto", "https"} {
		for _, o := range []string{"sent", "failed", "given_up", "suppressed"} {
			m.deliveries.WithLabelValues(s, o)
		}
	}
	return m, nil
}

// DeliveryAttempt implements outbox.Observer.
func (m *Outbox) DeliveryAttempt(scheme string, st outbox.State, took time.Duration) {
	if scheme != "mailto" && scheme != "https" {
		scheme = "other" // bounded label values whatever a record holds
	}
	var outcome string
	switch st {
	case outbox.StateSent:
		outcome = "sent"
	case outbox.StateRetrying:
		outcome = "failed"
	case outbox.StateGivenUp:
		outcome = "given_up"
	case outbox.StateSuppressed:
		outcome = "suppressed"
	default:
		outcome = "other"
	}
	m.deliveries.WithLabelValues(scheme, outcome).Inc()
	if took > 0 {
		m.seconds.WithLabelValues(scheme).Observe(took.Seconds())
	}
}

var _ outbox.Observer = (*Outbox)(nil)
