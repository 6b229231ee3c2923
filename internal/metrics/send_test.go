package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailsts/mailsts/internal/outgoing"
	"github.com/mailsts/mailsts/internal/outgoing/libtlsrpt"
	"github.com/mailsts/mailsts/internal/outgoing/postfixlog"
)

func TestSendMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	err := RegisterSend(reg, SendSources{
		Collector: func() libtlsrpt.Stats { return libtlsrpt.Stats{Datagrams: 10, Malformed: 2, OtherVersion: 1} },
		Recorder:  func() outgoing.RecorderStats { return outgoing.RecorderStats{Recorded: 7, Written: 6, Dropped: 1} },
		Log:       func() postfixlog.Stats { return postfixlog.Stats{Lines: 100, Sessions: 5, Failures: 2, Rotations: 1} },
		Journal:   func() postfixlog.JournalStats { return postfixlog.JournalStats{Entries: 90, Skipped: 4, Restarts: 2} },
	})
	if err != nil {
		t.Fatal(err)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			k := f.GetName()
			for _, l := range m.GetLabel() {
				k += "{" + l.GetValue() + "}"
			}
			got[k] = m.GetCounter().GetValue()
		}
	}
	for k, want := range map[string]float64{
		"mailsts_tlsrpt_collect_datagrams_total":                        10,
		"mailsts_tlsrpt_collect_datagrams_ignored_total{malformed}":     2,
		"mailsts_tlsrpt_collect_datagrams_ignored_total{other_version}": 1,
		"mailsts_tlsrpt_collect_results_total{written}":                 6,
		"mailsts_tlsrpt_collect_results_total{dropped}":                 1,
		"mailsts_tlsrpt_collect_log_lines_total":                        100,
		"mailsts_tlsrpt_collect_log_sessions_total{success}":            3,
		"mailsts_tlsrpt_collect_log_sessions_total{failure}":            2,
		"mailsts_tlsrpt_collect_log_rotations_total":                    1,
		"mailsts_tlsrpt_collect_journal_entries_total":                  90,
		"mailsts_tlsrpt_collect_journal_skipped_total":                  4,
		"mailsts_tlsrpt_collect_journalctl_restarts_total":              2,
	} {
		if v, ok := got[k]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", k, v, ok, want)
		}
	}
	if len(fams) != 9 {
		t.Errorf("%d metric families, want 9", len(fams))
	}
}
