package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Alerts holds the metrics of the report alerts of `mailsts serve`
// (prefix mailsts_alerts_); it implements alerts.Observer:
//   - open{rule}: alerts open now, per rule;
//   - fired_total{rule}, resolved_total{rule}: alerts that fired and
//     resolved;
//   - deliveries_total{notifier,result}: notices sent (ok) or not
//     (failed, retried later) by webhook or mail.
type Alerts struct {
	open       *prometheus.GaugeVec
	fired      *prometheus.CounterVec
	resolved   *prometheus.CounterVec
	deliveries *prometheus.CounterVec
}

// NewAlerts creates the alert metrics and registers them with reg.
func NewAlerts(reg prometheus.Registerer) (*Alerts, error) {
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: namespace, Subsystem: "alerts", Name: name, Help: help}
	}
	m := &Alerts{
		open:       prometheus.NewGaugeVec(prometheus.GaugeOpts(opts("open", "Alerts open now, by rule.")), []string{"rule"}),
		fired:      prometheus.NewCounterVec(prometheus.CounterOpts(opts("fired_total", "Alerts that fired, by rule.")), []string{"rule"}),
		resolved:   prometheus.NewCounterVec(prometheus.CounterOpts(opts("resolved_total", "Alerts that resolved, by rule.")), []string{"rule"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts(opts("deliveries_total", "Alert notices sent, by notifier and result (ok or failed).")), []string{"notifier", "result"}),
	}
	for _, c := range []prometheus.Collector{m.open, m.fired, m.resolved, m.deliveries} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Open sets the open alerts of a rule.
func (m *Alerts) Open(rule string, n int) { m.open.WithLabelValues(rule).Set(float64(n)) }

// Fired counts an alert that fired.
func (m *Alerts) Fired(rule string) { m.fired.WithLabelValues(rule).Inc() }

// Resolved counts an alert that resolved.
func (m *Alerts) Resolved(rule string) { m.resolved.WithLabelValues(rule).Inc() }

// Delivered counts a delivery attempt.
func (m *Alerts) Delivered(notifier string, ok bool) {
	m.deliveries.WithLabelValues(notifier, okLabel(ok)).Inc()
}
