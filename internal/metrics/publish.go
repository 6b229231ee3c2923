package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Publish holds the metrics of `mailsts serve`'s checks of its hosted
// policies (prefix mailsts_publish_):
//   - domain_ok{domain}: 1 when the last check found nothing wrong (its
//     verdict was ok or warn), else 0; alert on it;
//   - findings{domain,id}: 1 for each finding ID (publish.txt.stale,
//     publish.mx.tls, …) the last check of the domain raised that was not
//     ok; the set is replaced at each check;
//   - cert_expiry_timestamp_seconds{domain}: the end of the validity of
//     the policy host's certificate as senders saw it;
//   - checks_total{verdict}: checks run, by verdict (ok, warn, fail,
//     error).
//
// Its Checked method implements the observer of the checks; it is safe
// for concurrent use.
type Publish struct {
	ok       *prometheus.GaugeVec
	findings *prometheus.GaugeVec
	expiry   *prometheus.GaugeVec
	checks   *prometheus.CounterVec
}

// NewPublish creates the publish metrics and registers them with reg.
func NewPublish(reg prometheus.Registerer) (*Publish, error) {
	opts := func(name, help string) prometheus.GaugeOpts {
		return prometheus.GaugeOpts{Namespace: namespace, Subsystem: "publish", Name: name, Help: help}
	}
	p := &Publish{
		ok:       prometheus.NewGaugeVec(opts("domain_ok", "1 when the last check of a hosted domain found nothing senders would see wrong."), []string{"domain"}),
		findings: prometheus.NewGaugeVec(opts("findings", "Findings of the last check of a hosted domain, by finding ID."), []string{"domain", "id"}),
		expiry:   prometheus.NewGaugeVec(opts("cert_expiry_timestamp_seconds", "End of validity of the policy host's certificate, Unix time."), []string{"domain"}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: "publish", Name: "checks_total",
			Help: "Checks of hosted domains, by verdict."}, []string{"verdict"}),
	}
	for _, c := range []prometheus.Collector{p.ok, p.findings, p.expiry, p.checks} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Checked records one check of domain: its verdict, the IDs of its
// findings that are not ok, and the certificate's end (zero: unknown).
func (p *Publish) Checked(domain, verdict string, findingIDs []string, certNotAfter time.Time) {
	p.checks.WithLabelValues(verdict).Inc()
	p.ok.WithLabelValues(domain).Set(boolValue(verdict == "ok" || verdict == "warn"))
	p.findings.DeletePartialMatch(prometheus.Labels{"domain": domain})
	for _, id := range findingIDs {
		p.findings.WithLabelValues(domain, id).Set(1)
	}
	if certNotAfter.IsZero() {
		p.expiry.DeleteLabelValues(domain)
	} else {
		p.expiry.WithLabelValues(domain).Set(float64(certNotAfter.Unix()))
	}
}

// PublishDNS counts the DNS publications of hosted policies' records
// (mailsts_publish_dns_updates_total{outcome}: published, refused — a
// readiness check failed and nothing was written —, failed — the
// primary refused or did not answer). Its Announced method implements
// the observer of publish.Announcer.
type PublishDNS struct {
	updates *prometheus.CounterVec
}

// NewPublishDNS creates the counter and registers it with reg.
func NewPublishDNS(reg prometheus.Registerer) (*PublishDNS, error) {
	p := &PublishDNS{updates: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: "publish", Name: "dns_updates_total",
		Help: "Publications of hosted domains' TXT records with DNS UPDATE, by outcome (published, refused, failed)."}, []string{"outcome"})}
	if err := reg.Register(p.updates); err != nil {
		return nil, err
	}
	return p, nil
}

// Announced counts one publication attempt.
func (p *PublishDNS) Announced(_, outcome string) { p.updates.WithLabelValues(outcome).Inc() }
