// Package metrics is mailsts's only Prometheus code: it turns the small
// observer interfaces of the library packages (mtasts.Observer,
// postfix.Observer) and of the policy daemon (policyd.DaemonObserver) into
// Prometheus metrics, and serves them.
//
// Nothing registers itself globally: New takes the prometheus.Registerer to
// register with, so tests and embedders use their own registry, and Handler
// serves exactly that registry; Serve runs the opt-in metrics listener
// (with Go's profiler when asked).
//
// Metrics of the policy daemon (prefix mailsts_policyd_):
//   - queries_total{zone,answer}: answers by kind (ok_secure, ok_dane,
//     ok_dane_only, ok_may, notfound, temp, perm) and zone;
//   - query_duration_seconds{zone}: latency histogram of an answer;
//   - cache_lookups_total{result}: hit (answered from the store with no
//     policy fetch; a TXT id check may have run), miss (discovery ran and
//     found nothing cached), stale (a cached policy applied after a
//     failed discovery, RFC 8461 §3.3);
//   - fetches_total{result}: HTTPS policy fetches by outcome: ok, or the
//     RFC 8460 result type of the failure (sts-policy-fetch-error,
//     sts-policy-invalid, sts-webpki-invalid);
//   - fetch_duration_seconds: fetch latency histogram;
//   - refreshes_total{result}: background refreshes, ok or failed;
//   - mx_recoveries_total{result}: re-fetches triggered by an MX set that
//     left the cached policy, ok (a new policy was
//     fetched) or failed;
//   - dane_decisions_total{outcome}: DANE lookups by outcome;
//   - resolver_validates_dnssec: 1 when the resolver validates DNSSEC (an
//     answer with the AD bit), 0 when it is known not to (its answer for
//     the signed root has no AD bit: DANE cannot apply and dane: auto
//     zones skip the MX query), -1 while unknown;
//   - connections_open, protocol_errors_total: the socketmap/tcp_table side;
//   - cache_durable: 1 when the policy cache survives a restart (a SQLite
//     file or Redis), 0 when it lives in memory only;
//   - cache_degraded: 1 while the cache does not keep what it promises:
//     the configured SQLite file could not be opened and policyd fell back
//     to memory (cached policies will not survive a restart,
//     STS-CACHE-10), or the back store (SQLite or Redis) is failing and
//     policyd answers from memory and fresh lookups; alert on it;
//   - cache_entries: policies in the cache (its memory front);
//   - cache_repairs_total: damaged cache files set aside and rebuilt at
//     open;
//   - cache_unreadable_entries_total: entries that could not be read from
//     the cache file (a damaged page, an undecodable row), treated as
//     absent and fetched again.
//
// Metrics of `mailsts serve`'s checks of its hosted policies (prefix
// mailsts_publish_, see Publish): domain_ok, findings, cert_expiry_timestamp_seconds
// and checks_total.
//
// mailsts_build_info{version,commit,go_version} is 1 and says which build
// is running (the values `mailsts version` prints).
//
// Metrics of `mailsts tlsrpt collect` (prefix mailsts_tlsrpt_collect_,
// RegisterSend): datagrams_total, datagrams_ignored_total{reason},
// results_total{outcome}, log_lines_total, log_sessions_total{outcome},
// log_rotations_total.
package metrics

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mailsts/mailsts/internal/buildinfo"
	"github.com/mailsts/mailsts/mtasts"
	"github.com/mailsts/mailsts/postfix"
)

const namespace = "mailsts"
const subsystem = "policyd"

// Metrics holds the policy daemon's metrics. Its methods implement
// mtasts.Observer, postfix.Observer and policyd.DaemonObserver; all are safe
// for concurrent use and allocation-free on the hot path once a label set
// has been seen.
type Metrics struct {
	queries      *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	cacheLookups *prometheus.CounterVec
	fetches      *prometheus.CounterVec
	fetchTime    prometheus.Histogram
	refreshes    *prometheus.CounterVec
	recoveries   *prometheus.CounterVec
	dane         *prometheus.CounterVec
	validates    prometheus.Gauge
	conns        prometheus.Gauge
	protoErrors  prometheus.Counter
	durable      prometheus.Gauge
	degraded     prometheus.Gauge
	repairs      prometheus.Counter
	unreadable   prometheus.Counter
	entries      prometheus.GaugeFunc
	// entriesFn counts the cache's entries (CacheSize); nil: 0.
	entriesFn atomic.Pointer[func() int]
	// fellBack and backFailing are the two causes of cache_degraded.
	degradedMu            sync.Mutex
	fellBack, backFailing bool

	hit, miss, stale prometheus.Counter
}

// New creates the metrics and registers them with reg. It fails when reg
// already holds metrics of the same names.
func New(reg prometheus.Registerer) (*Metrics, error) {
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: namespace, Subsystem: subsystem, Name: name, Help: help}
	}
	m := &Metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts(opts("queries_total",
			"Postfix TLS policy lookups answered, by zone and answer.")), []string{"zone", "answer"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: subsystem, Name: "query_duration_seconds",
			Help:    "Time to answer one lookup, by zone.",
			Buckets: []float64{1e-6, 5e-6, 2e-5, 1e-4, 5e-4, 2e-3, 1e-2, 0.05, 0.25, 1, 5, 30},
		}, []string{"zone"}),
		cacheLookups: prometheus.NewCounterVec(prometheus.CounterOpts(opts("cache_lookups_total",
			"MTA-STS cache answers: hit (no network), miss (discovery ran), stale (cached policy applied after a failed discovery).")), []string{"result"}),
		fetches: prometheus.NewCounterVec(prometheus.CounterOpts(opts("fetches_total",
			"HTTPS policy fetches by outcome: ok or the RFC 8460 result type.")), []string{"result"}),
		fetchTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: subsystem, Name: "fetch_duration_seconds",
			Help:    "Duration of HTTPS policy fetches.",
			Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
		}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts(opts("refreshes_total",
			"Background policy refreshes, ok or failed.")), []string{"result"}),
		recoveries: prometheus.NewCounterVec(prometheus.CounterOpts(opts("mx_recoveries_total",
			"Forced re-fetches because the live MX set left the cached policy.")), []string{"result"}),
		dane: prometheus.NewCounterVec(prometheus.CounterOpts(opts("dane_decisions_total",
			"DANE lookups by outcome.")), []string{"outcome"}),
		validates: prometheus.NewGauge(prometheus.GaugeOpts(opts("resolver_validates_dnssec",
			"1 when the resolver validates DNSSEC, 0 when it does not (DANE cannot apply), -1 while unknown."))),
		conns: prometheus.NewGauge(prometheus.GaugeOpts(opts("connections_open",
			"Open Postfix connections."))),
		protoErrors: prometheus.NewCounter(prometheus.CounterOpts(opts("protocol_errors_total",
			"Malformed requests from clients."))),
		durable: prometheus.NewGauge(prometheus.GaugeOpts(opts("cache_durable",
			"1 when the policy cache survives a restart (SQLite file or Redis), 0 when it is in memory only."))),
		degraded: prometheus.NewGauge(prometheus.GaugeOpts(opts("cache_degraded",
			"1 while the policy cache is degraded: a fall back to memory at start, or a failing back store (answers from memory and fresh lookups)."))),
		repairs: prometheus.NewCounter(prometheus.CounterOpts(opts("cache_repairs_total",
			"Damaged cache files set aside and rebuilt from what could be read."))),
		unreadable: prometheus.NewCounter(prometheus.CounterOpts(opts("cache_unreadable_entries_total",
			"Cache entries that could not be read from the file, treated as absent and fetched again."))),
	}
	m.entries = prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts("cache_entries",
		"Policies in the policy cache (its memory front).")), func() float64 {
		if f := m.entriesFn.Load(); f != nil {
			return float64((*f)())
		}
		return 0
	})
	bi := buildinfo.Get()
	build := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "build_info",
		Help:        "Which mailsts build is running: version (release), commit and Go toolchain; always 1.",
		ConstLabels: prometheus.Labels{"version": bi.Version, "commit": bi.Commit, "go_version": bi.GoVersion}})
	build.Set(1)
	for _, c := range []prometheus.Collector{build, m.queries, m.latency, m.cacheLookups, m.fetches, m.fetchTime,
		m.refreshes, m.recoveries, m.dane, m.validates, m.conns, m.protoErrors, m.durable, m.degraded, m.repairs, m.unreadable, m.entries} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	m.hit = m.cacheLookups.WithLabelValues("hit")
	m.miss = m.cacheLookups.WithLabelValues("miss")
	m.stale = m.cacheLookups.WithLabelValues("stale")
	m.validates.Set(-1)
	return m, nil
}

// Handler serves the metrics of g (the registry New registered with).
func Handler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{})
}

// Query records one answer (policyd Observer).
func (m *Metrics) Query(zone, answer string, elapsed time.Duration) {
	m.queries.WithLabelValues(zone, answer).Inc()
	m.latency.WithLabelValues(zone).Observe(elapsed.Seconds())
}

// QueryFunc returns a recorder for queries of one zone and answer, with
// the label lookups done once (policyd memoises it with the answer).
func (m *Metrics) QueryFunc(zone, answer string) func(elapsed time.Duration) {
	c := m.queries.WithLabelValues(zone, answer)
	h := m.latency.WithLabelValues(zone)
	return func(elapsed time.Duration) {
		c.Inc()
		h.Observe(elapsed.Seconds())
	}
}

// MXRecovery records a forced re-fetch after an MX change (policyd
// Observer).
func (m *Metrics) MXRecovery(ok bool) {
	m.recoveries.WithLabelValues(okLabel(ok)).Inc()
}

// DANEDecision records a DANE lookup outcome (policyd Observer).
func (m *Metrics) DANEDecision(outcome string) {
	if outcome == "" {
		outcome = "skipped"
	}
	m.dane.WithLabelValues(outcome).Inc()
}

// ResolverValidates records whether the resolver validates DNSSEC
// (policyd.ValidationObserver): "yes", "no" or "unknown".
func (m *Metrics) ResolverValidates(state string) {
	switch state {
	case "yes":
		m.validates.Set(1)
	case "no":
		m.validates.Set(0)
	default:
		m.validates.Set(-1)
	}
}

// Refreshed records background refreshes.
func (m *Metrics) Refreshed(ok, failed int) {
	m.refreshes.WithLabelValues("ok").Add(float64(ok))
	m.refreshes.WithLabelValues("failed").Add(float64(failed))
}

// Answered implements mtasts.Observer.
func (m *Metrics) Answered(_ string, src mtasts.Source, err error) {
	switch {
	case src == mtasts.SourceStale:
		m.stale.Inc()
	case src == mtasts.SourceFetched, err != nil && src == mtasts.SourceNone && !mtasts.Remembered(err):
		m.miss.Inc()
	default:
		m.hit.Inc()
	}
}

// Fetched implements mtasts.Observer.
func (m *Metrics) Fetched(_ string, elapsed time.Duration, err error) {
	m.fetchTime.Observe(elapsed.Seconds())
	if err == nil {
		m.fetches.WithLabelValues("ok").Inc()
		return
	}
	m.fetches.WithLabelValues(string(mtasts.ResultType(err))).Inc()
}

// CacheOpened records the policy cache store policyd opened: whether it
// survives a restart, and whether it is a fall back to memory from a
// SQLite file that could not be opened.
func (m *Metrics) CacheOpened(durable, fellBack bool) {
	m.durable.Set(boolValue(durable))
	m.degradedMu.Lock()
	defer m.degradedMu.Unlock()
	m.fellBack = fellBack
	m.degraded.Set(boolValue(m.fellBack || m.backFailing))
}

// CacheSize sets how cache_entries counts the cache's entries (read at
// each scrape; policyd.CacheSizer).
func (m *Metrics) CacheSize(entries func() int) {
	m.entriesFn.Store(&entries)
}

// CacheDegraded records whether the cache's back store is failing (policyd
// answers from memory and fresh lookups meanwhile).
func (m *Metrics) CacheDegraded(failing bool) {
	m.degradedMu.Lock()
	defer m.degradedMu.Unlock()
	m.backFailing = failing
	m.degraded.Set(boolValue(m.fellBack || m.backFailing))
}

// CacheRepaired records a damaged cache file set aside and rebuilt.
func (m *Metrics) CacheRepaired() { m.repairs.Inc() }

// CacheUnreadable records a cache entry that could not be read.
func (m *Metrics) CacheUnreadable() { m.unreadable.Inc() }

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// ConnOpened implements postfix.Observer.
func (m *Metrics) ConnOpened() { m.conns.Inc() }

// ConnClosed implements postfix.Observer.
func (m *Metrics) ConnClosed() { m.conns.Dec() }

// Request implements postfix.Observer; answers are counted by Query, which
// knows the zone label, so this only exists to satisfy the interface.
func (m *Metrics) Request(string, postfix.Status, time.Duration) {}

// ProtocolError implements postfix.Observer.
func (m *Metrics) ProtocolError(error) { m.protoErrors.Inc() }

func okLabel(ok bool) string {
	if ok {
		return "ok"
	}
	return "failed"
}

var (
	_ mtasts.Observer  = (*Metrics)(nil)
	_ postfix.Observer = (*Metrics)(nil)
)
