package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestAlertsMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m, err := NewAlerts(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.Fired("reporter-silent")
	m.Open("reporter-silent", 1)
	m.Resolved("reporter-silent")
	m.Open("failure-rate", 2)
	m.Delivered("webhook", false)
	m.Delivered("webhook", false)
	m.Delivered("webhook", true)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		for _, mt := range f.GetMetric() {
			key := f.GetName()
			for _, l := range mt.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			if mt.Gauge != nil {
				got[key] = mt.GetGauge().GetValue()
			} else {
				got[key] = mt.GetCounter().GetValue()
			}
		}
	}
	want := map[string]float64{
		"mailsts_alerts_open,rule=reporter-silent":                       1,
		"mailsts_alerts_open,rule=failure-rate":                          2,
		"mailsts_alerts_fired_total,rule=reporter-silent":                1,
		"mailsts_alerts_resolved_total,rule=reporter-silent":             1,
		"mailsts_alerts_deliveries_total,notifier=webhook,result=failed": 2,
		"mailsts_alerts_deliveries_total,notifier=webhook,result=ok":     1,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("metrics %v", got)
	}
	if _, err := NewAlerts(reg); err == nil {
		t.Error("registered twice")
	}
}
