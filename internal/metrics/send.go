package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailsts/mailsts/internal/outgoing"
	"github.com/mailsts/mailsts/internal/outgoing/libtlsrpt"
	"github.com/mailsts/mailsts/internal/outgoing/postfixlog"
)

// SendSources are the counters of `mailsts tlsrpt collect`, read at
// scrape time. Log is nil without a log follower, Journal without the
// journal follower.
type SendSources struct {
	Collector func() libtlsrpt.Stats
	Recorder  func() outgoing.RecorderStats
	Log       func() postfixlog.Stats
	Journal   func() postfixlog.JournalStats
}

type sendCollector struct {
	src                                 SendSources
	datagrams, ignored, results         *prometheus.Desc
	logLines, logSessions, logRotations *prometheus.Desc
	journalEntries, journalSkipped      *prometheus.Desc
	journalRestarts                     *prometheus.Desc
}

// RegisterSend registers the collection counters on reg:
// mailsts_tlsrpt_collect_datagrams_total,
// mailsts_tlsrpt_collect_datagrams_ignored_total{reason},
// mailsts_tlsrpt_collect_results_total{outcome} and, with a log follower,
// mailsts_tlsrpt_collect_log_lines_total,
// mailsts_tlsrpt_collect_log_sessions_total{outcome} and
// mailsts_tlsrpt_collect_log_rotations_total; with the journal follower
// mailsts_tlsrpt_collect_journal_entries_total,
// mailsts_tlsrpt_collect_journal_skipped_total and
// mailsts_tlsrpt_collect_journalctl_restarts_total.
func RegisterSend(reg prometheus.Registerer, src SendSources) error {
	c := &sendCollector{
		src: src,
		datagrams: prometheus.NewDesc("mailsts_tlsrpt_collect_datagrams_total",
			"libtlsrpt datagrams read from the socket.", nil, nil),
		ignored: prometheus.NewDesc("mailsts_tlsrpt_collect_datagrams_ignored_total",
			"Datagrams ignored or only partly used, by reason.", []string{"reason"}, nil),
		results: prometheus.NewDesc("mailsts_tlsrpt_collect_results_total",
			"Session results by what became of them: recorded (buffered), written (stored), dropped (buffer full), excluded (report deliveries), invalid (not reportable), lost (a failed database write).", []string{"outcome"}, nil),
		logLines: prometheus.NewDesc("mailsts_tlsrpt_collect_log_lines_total",
			"Mail log lines read.", nil, nil),
		logSessions: prometheus.NewDesc("mailsts_tlsrpt_collect_log_sessions_total",
			"Delivery attempts found in the mail log, by outcome.", []string{"outcome"}, nil),
		logRotations: prometheus.NewDesc("mailsts_tlsrpt_collect_log_rotations_total",
			"Mail log rotations and truncations followed.", nil, nil),
		journalEntries: prometheus.NewDesc("mailsts_tlsrpt_collect_journal_entries_total",
			"Journal entries read from journalctl.", nil, nil),
		journalSkipped: prometheus.NewDesc("mailsts_tlsrpt_collect_journal_skipped_total",
			"Journal entries skipped: oversized, malformed or without a cursor.", nil, nil),
		journalRestarts: prometheus.NewDesc("mailsts_tlsrpt_collect_journalctl_restarts_total",
			"Times journalctl was run again after it exited or failed.", nil, nil),
	}
	return reg.Register(c)
}

func (c *sendCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.datagrams, c.ignored, c.results, c.logLines, c.logSessions, c.logRotations,
		c.journalEntries, c.journalSkipped, c.journalRestarts} {
		ch <- d
	}
}

func (c *sendCollector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	if c.src.Collector != nil {
		s := c.src.Collector()
		counter(c.datagrams, s.Datagrams)
		for reason, v := range map[string]uint64{
			"malformed": s.Malformed, "too_large": s.TooLarge, "other_version": s.OtherVersion,
			"no_version": s.NoVersion, "unknown_code": s.UnknownCodes, "details_on_success": s.DetailsOnSuccess,
			"count_mismatch": s.CountMismatch,
		} {
			counter(c.ignored, v, reason)
		}
	}
	if c.src.Recorder != nil {
		r := c.src.Recorder()
		for outcome, v := range map[string]uint64{
			"recorded": r.Recorded, "written": r.Written, "dropped": r.Dropped,
			"excluded": r.Excluded, "invalid": r.Invalid, "lost": r.Lost,
		} {
			counter(c.results, v, outcome)
		}
	}
	if c.src.Log != nil {
		l := c.src.Log()
		counter(c.logLines, l.Lines)
		counter(c.logRotations, l.Rotations)
		for outcome, v := range map[string]uint64{
			"success": l.Sessions - l.Failures, "failure": l.Failures, "unjoined": l.Unjoined, "refused": l.Refused,
		} {
			counter(c.logSessions, v, outcome)
		}
	}
	if c.src.Journal != nil {
		j := c.src.Journal()
		counter(c.journalEntries, j.Entries)
		counter(c.journalSkipped, j.Skipped)
		counter(c.journalRestarts, j.Restarts)
	}
}
