package publish

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/mtasts"
	"github.com/mailsts/mailsts/tlsrpt/result"
)

// deferredUnderEnforce are the RFC 8460 result types of sts policy
// failures that a sender applying mode enforce turns into deferred mail
// (RFC 8461 §5: no delivery to an MX host that fails the policy): no
// STARTTLS, a certificate problem, an MX host the patterns do not match.
// Policy fetch failures (sts-policy-fetch-error, sts-policy-invalid,
// sts-webpki-invalid) are not among them: a sender without a usable
// policy delivers as if there were none.
var deferredUnderEnforce = []string{
	string(result.STARTTLSNotSupported), string(result.CertificateHostMismatch),
	string(result.CertificateExpired), string(result.CertificateNotTrusted),
	string(result.ValidationFailure),
}

// EvidenceItem is one test of Promoter.Evaluate.
type EvidenceItem struct {
	Check  string `json:"check"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Evidence is what decides a promotion.
type Evidence struct {
	Domain  string         `json:"domain"`
	Allowed bool           `json:"allowed"`
	Items   []EvidenceItem `json:"evidence"`
	// Notes are observations that do not block (warnings).
	Notes []string `json:"notes"`
}

// Promoter decides whether a testing domain may switch to enforce.
type Promoter struct {
	// Checker probes the live MX hosts as a strict sender; required.
	Checker *Checker
	// Store holds the TLS reports received; required.
	Store reports.Store
	// Period is the least time in testing; 0 means DefaultTestingPeriod.
	Period time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Evaluate gathers the evidence for switching d from testing to
// enforce: d is configured in testing, has been served in testing for
// Period (st, from the State file), every live MX host matches a pattern
// and passes STARTTLS with a valid certificate for a strict sender, and
// the TLS reports received since testing began show no sts failure that
// enforce would turn into deferred mail.
func (p *Promoter) Evaluate(ctx context.Context, d *Domain, st *DomainState) *Evidence {
	now := time.Now()
	if p.Now != nil {
		now = p.Now()
	}
	period := p.Period
	if period <= 0 {
		period = DefaultTestingPeriod
	}
	ev := &Evidence{Domain: d.Name, Notes: []string{}}
	add := func(check string, ok bool, format string, args ...any) {
		ev.Items = append(ev.Items, EvidenceItem{Check: check, OK: ok, Detail: fmt.Sprintf(format, args...)})
	}

	add("mode", d.Mode == mtasts.ModeTesting, "configured mode is %s%s", d.Mode,
		map[bool]string{true: "", false: "; promote switches testing to enforce"}[d.Mode == mtasts.ModeTesting])

	since := now.Add(-period)
	switch {
	case st == nil:
		add("testing period", false, "no record of %s being served: serve records when a mode starts (state file)", d.Name)
	case st.Mode != string(mtasts.ModeTesting):
		add("testing period", false, "serve serves mode %s (since %s), not testing", st.Mode, st.ModeSince.Format(time.DateOnly))
	default:
		since = st.ModeSince
		in := now.Sub(st.ModeSince)
		add("testing period", in >= period, "served in testing since %s: %s, at least %s needed", st.ModeSince.UTC().Format(time.RFC3339),
			days(in), days(period))
	}

	status := p.Checker.Check(ctx, d)
	mxOK := len(status.MX) > 0
	for _, f := range status.Findings {
		switch f.ID {
		case FindMXUnmatched, FindMXTLS, FindMXLookup:
			mxOK = false
			add("mx "+orAll(f.Host), false, "%s", f.Message)
		case FindOK:
		default:
			if f.Severity != SeverityOK {
				ev.Notes = append(ev.Notes, f.ID+": "+f.Message)
			}
		}
	}
	if mxOK {
		var hosts []string
		for _, m := range status.MX {
			hosts = append(hosts, m.Host+" ("+m.Pattern+")")
		}
		add("mx", true, "every live MX host matches and passes STARTTLS with a valid certificate: %s", strings.Join(hosts, ", "))
	}

	day := since.UTC().Truncate(24 * time.Hour)
	rows, err := p.Store.Summary(ctx, reports.Filter{Since: day, PolicyDomain: d.Name, GroupBy: []string{reports.GroupPolicyType}})
	if err != nil {
		add("tls reports", false, "cannot read the stored reports: %v", err)
	} else {
		var nrep, ok, failed int64
		for _, r := range rows {
			if r.PolicyType == "sts" {
				nrep, ok, failed = nrep+r.Reports, ok+r.Successful, failed+r.Failed
			}
		}
		fails, err := p.Store.Failures(ctx, reports.Filter{Since: day, PolicyDomain: d.Name, Limit: 1000})
		if err != nil {
			add("tls reports", false, "cannot read the stored failures: %v", err)
		} else {
			blocking := map[string]int64{}
			var keys []string
			for _, f := range fails {
				if f.PolicyType != "sts" || !slices.Contains(deferredUnderEnforce, f.ResultType) {
					continue
				}
				k := f.ResultType + " at " + orAll(f.ReceivingMXHostname) + " (" + f.Organization + ")"
				if _, seen := blocking[k]; !seen {
					keys = append(keys, k)
				}
				blocking[k] += f.FailedSessionCount
			}
			switch {
			case len(keys) > 0:
				var parts []string
				for _, k := range keys {
					parts = append(parts, fmt.Sprintf("%s: %d sessions", k, blocking[k]))
				}
				add("tls reports", false, "since %s senders reported failures enforce would turn into deferred mail: %s", day.Format(time.DateOnly), strings.Join(parts, "; "))
			case nrep == 0:
				add("tls reports", true, "no TLS report for %s since %s: nothing contradicts enforce", d.Name, day.Format(time.DateOnly))
				ev.Notes = append(ev.Notes, "no TLS reports were received: publish a _smtp._tls record (mailsts policy records) to learn what senders see before enforcing")
			default:
				add("tls reports", true, "%d reports since %s: %d sessions succeeded, %d failed, none with a failure enforce would defer", nrep, day.Format(time.DateOnly), ok, failed)
			}
		}
	}
	ev.Allowed = true
	for _, it := range ev.Items {
		ev.Allowed = ev.Allowed && it.OK
	}
	return ev
}

func orAll(s string) string {
	if s == "" {
		return "(any)"
	}
	return s
}

// days formats a duration in days with one decimal.
func days(d time.Duration) string {
	return fmt.Sprintf("%.1f days", d.Hours()/24)
}
