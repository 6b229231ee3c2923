package publish

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/mailsts/mailsts/internal/checker"
	"github.com/mailsts/mailsts/mtasts"
)

// Severities of a status finding.
const (
	SeverityOK   = "ok"
	SeverityWarn = "warn"
	SeverityFail = "fail"
	// SeverityError: the check could not run (a DNS lookup failed).
	SeverityError = "error"
)

// Finding IDs of Checker.Check (stable: tools and alerts match on them).
const (
	FindTXTMissing    = "publish.txt.missing"    // no usable _mta-sts TXT record
	FindTXTStale      = "publish.txt.stale"      // the live id is not the configured policy's
	FindTXTLookup     = "publish.txt.lookup"     // the TXT lookup failed
	FindPolicyFetch   = "publish.policy.fetch"   // the policy could not be fetched as a sender does
	FindPolicyDiffers = "publish.policy.differs" // the served policy is not the configured one
	FindCertExpiring  = "publish.cert.expiring"  // the policy host's certificate ends within CertMargin
	FindMXUnmatched   = "publish.mx.unmatched"   // a live MX host matches no pattern
	FindMXTLS         = "publish.mx.tls"         // a live MX host fails STARTTLS or its certificate
	FindMXLookup      = "publish.mx.lookup"      // the MX hosts could not be read
	FindOK            = "publish.ok"             // everything a sender sees is right
)

// DefaultCertMargin is how long the policy host's certificate must stay
// valid: 14 days, time to notice a failed renewal.
const DefaultCertMargin = 14 * 24 * time.Hour

// Finding is one observation of Checker.Check.
type Finding struct {
	ID       string `json:"id"`
	Severity string `json:"severity"`
	Host     string `json:"host,omitempty"`
	Message  string `json:"message"`
	Fix      string `json:"fix,omitempty"`
}

// LogValue implements slog.LogValuer.
func (f Finding) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", f.ID), slog.String("severity", f.Severity),
		slog.String("host", f.Host), slog.String("message", f.Message))
}

// MXStatus is one live MX host as a strict sender sees it.
type MXStatus struct {
	Host string `json:"host"`
	// Pattern is the configured pattern it matches ("" for none).
	Pattern string `json:"pattern,omitempty"`
	// STARTTLS and CertOK: the probe's STARTTLS and certificate verdicts.
	STARTTLS bool   `json:"starttls"`
	CertOK   bool   `json:"cert_ok"`
	Problem  string `json:"problem,omitempty"`
}

// Status is the state of one hosted domain as senders see it.
type Status struct {
	Domain string `json:"domain"`
	Mode   string `json:"mode"`
	// ID is the configured policy's id; LiveID the TXT record's; ServedID
	// the id of the policy the host served ("" when not fetched).
	ID       string `json:"id"`
	LiveID   string `json:"live_id"`
	ServedID string `json:"served_id"`
	// CertNotAfter is the end of the policy host certificate's validity.
	CertNotAfter *time.Time `json:"cert_not_after,omitempty"`
	// StoredCertNotAfter and StoredCertIssuer describe the certificate in
	// the ACME storage (publish.acme); StoredCertError says why there is
	// none. Empty without ACME.
	StoredCertNotAfter *time.Time `json:"stored_cert_not_after,omitempty"`
	StoredCertIssuer   string     `json:"stored_cert_issuer,omitempty"`
	StoredCertError    string     `json:"stored_cert_error,omitempty"`
	MX                 []MXStatus `json:"mx"`
	Findings           []Finding  `json:"findings"`
	Checked            time.Time  `json:"checked"`
	Verdict            string     `json:"verdict"`
	// Report is the checker's full report of the domain.
	Report *checker.Report `json:"-"`
}

// Worst returns the worst severity among the findings: error (the check
// could not run) ranks above fail, fail above warn, warn above ok.
func (s *Status) Worst() string {
	rank := map[string]int{SeverityOK: 0, SeverityWarn: 1, SeverityFail: 2, SeverityError: 3}
	w := SeverityOK
	for _, f := range s.Findings {
		if rank[f.Severity] > rank[w] {
			w = f.Severity
		}
	}
	return w
}

// Checker checks hosted domains as a sender sees them. STS and MX are
// required; set the fields before the first Check.
type Checker struct {
	// STS looks up the TXT record and fetches the policy, exactly as a
	// sender does.
	STS *mtasts.Client
	// MX probes the live MX hosts (set Strict: judge as the strictest
	// sender).
	MX *checker.Checker
	// CertMargin is how long the policy host's certificate must remain
	// valid; 0 means DefaultCertMargin.
	CertMargin time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

func (c *Checker) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Check looks at d as senders do: the live TXT id equals the served
// policy's id, the served policy equals the configured one, the policy
// host's certificate is valid for CertMargin more, and every live MX host
// matches a pattern and passes STARTTLS with a valid certificate.
func (c *Checker) Check(ctx context.Context, d *Domain) *Status {
	want := d.Policy()
	now := c.now()
	st := &Status{Domain: d.Name, Mode: string(d.Mode), ID: want.ID, Checked: now.UTC(), MX: []MXStatus{}}
	add := func(id, sev, host, msg, fix string) {
		st.Findings = append(st.Findings, Finding{ID: id, Severity: sev, Host: host, Message: msg, Fix: fix})
	}
	txtFix := fmt.Sprintf("publish _mta-sts.%s TXT %q (mailsts policy records %s)", d.Name, want.Record(), d.Name)

	rec, _, err := c.STS.LookupRecord(ctx, d.Name)
	switch {
	case errors.Is(err, mtasts.ErrDNS):
		add(FindTXTLookup, SeverityError, "", "the _mta-sts TXT lookup failed: "+err.Error(), "")
	case err != nil:
		add(FindTXTMissing, SeverityFail, "", "senders find no usable _mta-sts TXT record: "+err.Error(), txtFix)
	default:
		st.LiveID = rec.ID
	}

	raw, err := c.STS.FetchRaw(ctx, d.Name)
	if err != nil {
		add(FindPolicyFetch, SeverityFail, d.PolicyHost(), fmt.Sprintf("senders cannot fetch the policy (%s): %v", mtasts.ResultType(err), err),
			"make https://"+d.PolicyHost()+WellKnownPath+" reach this serve with a valid certificate")
	} else {
		st.ServedID = PolicyID(raw.Body)
		if !bytes.Equal(raw.Body, want.Text) {
			add(FindPolicyDiffers, SeverityFail, d.PolicyHost(), fmt.Sprintf("the served policy (id %s) is not the configured one (id %s)", st.ServedID, want.ID),
				"point "+d.PolicyHost()+" at this serve, or reload it (SIGHUP)")
		}
	}
	if raw != nil && raw.TLS != nil && len(raw.TLS.PeerCertificates) > 0 {
		na := raw.TLS.PeerCertificates[0].NotAfter
		st.CertNotAfter = &na
		margin := c.CertMargin
		if margin <= 0 {
			margin = DefaultCertMargin
		}
		if left := na.Sub(now); left < margin {
			add(FindCertExpiring, SeverityFail, d.PolicyHost(), fmt.Sprintf("the certificate of %s ends %s, in %s (less than %d days)",
				d.PolicyHost(), na.UTC().Format(time.RFC3339), left.Round(time.Hour), int(margin.Hours()/24)), "renew it")
		}
	}
	if st.LiveID != "" && st.LiveID != want.ID {
		add(FindTXTStale, SeverityFail, "", fmt.Sprintf("the live TXT id %s is not the configured policy's id %s: senders keep their cached policy", st.LiveID, want.ID), txtFix)
	}

	st.MX, st.Report = c.checkMX(ctx, d, want, add)
	if len(st.Findings) == 0 {
		add(FindOK, SeverityOK, "", fmt.Sprintf("senders see id %s, the configured policy, and every MX passes", want.ID), "")
	}
	st.Verdict = st.Worst()
	return st
}

// Observer receives the outcome of each check (internal/metrics
// implements it): the verdict, the IDs of the findings that are not ok,
// and the end of the policy host certificate's validity (zero: unknown).
type Observer interface {
	Checked(domain, verdict string, findingIDs []string, certNotAfter time.Time)
}

// CheckAll checks every domain of set one after the other, logs each
// finding that is not ok (warn for warn, error for fail and error), and
// reports to obs when it is not nil.
func (c *Checker) CheckAll(ctx context.Context, set *Set, obs Observer, log *slog.Logger) []*Status {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var out []*Status
	for _, d := range set.Domains {
		if ctx.Err() != nil {
			break
		}
		st := c.Check(ctx, d)
		out = append(out, st)
		var ids []string
		for _, f := range st.Findings {
			if f.Severity == SeverityOK {
				continue
			}
			ids = append(ids, f.ID)
			level := slog.LevelError
			if f.Severity == SeverityWarn {
				level = slog.LevelWarn
			}
			log.Log(ctx, level, "publish: "+f.Message, "domain", d.Name, "finding", f.ID, "host", f.Host, "fix", f.Fix)
		}
		if len(ids) == 0 {
			log.Info("publish: senders see the configured policy", "domain", d.Name, "id", st.ID)
		}
		if obs != nil {
			var end time.Time
			if st.CertNotAfter != nil {
				end = *st.CertNotAfter
			}
			obs.Checked(d.Name, st.Verdict, ids, end)
		}
	}
	return out
}

// checkMX probes the live MX hosts of d as a strict sender and adds the
// findings (FindMXLookup, FindMXUnmatched, FindMXTLS) through add.
func (c *Checker) checkMX(ctx context.Context, d *Domain, want *Served, add func(id, sev, host, msg, fix string)) ([]MXStatus, *checker.Report) {
	rep := c.MX.Check(ctx, d.Name)
	mxs := []MXStatus{}
	if len(rep.MX) == 0 {
		add(FindMXLookup, SeverityError, "", "no MX hosts found: "+rep.Error, "")
	}
	for _, m := range rep.MX {
		ms := MXStatus{Host: m.Host, STARTTLS: m.Probe.STARTTLS}
		if v := want.Policy.CheckMX([]string{m.Host})[0]; v.Allowed {
			ms.Pattern = v.Pattern
		} else if d.Mode != mtasts.ModeNone {
			add(FindMXUnmatched, SeverityFail, m.Host, "live MX host matches no pattern: "+v.Reason, "add a pattern for it (mx in the publish section)")
		}
		ms.CertOK = m.Probe.Cert != nil && m.Probe.Cert.Problem == "" && m.Probe.Stage == "done"
		if !m.Probe.STARTTLS || !ms.CertOK {
			ms.Problem = m.Probe.Error
			if ms.Problem == "" && m.Probe.Cert != nil {
				ms.Problem = "certificate " + m.Probe.Cert.Problem
			}
			if ms.Problem == "" {
				ms.Problem = "probe stopped at " + m.Probe.Stage
			}
			sev := SeverityFail
			if d.Mode == mtasts.ModeNone {
				sev = SeverityWarn
			}
			add(FindMXTLS, sev, m.Host, "a strict sender cannot deliver over TLS: "+ms.Problem, "fix STARTTLS and the certificate of "+m.Host)
		}
		mxs = append(mxs, ms)
	}
	return mxs, rep
}

// MXReady checks, as Check does, that every live MX host of d matches
// the policy and passes STARTTLS with a valid certificate for a strict
// sender: nil, or an error listing what fails. It is the readiness check
// before announcing an enforce policy (RFC 8461 §5: senders would defer
// mail to a host that fails).
func (c *Checker) MXReady(ctx context.Context, d *Domain) error {
	var probs []string
	c.checkMX(ctx, d, d.Policy(), func(id, sev, host, msg, fix string) {
		if sev == SeverityFail || sev == SeverityError {
			if host != "" {
				msg = host + ": " + msg
			}
			probs = append(probs, msg)
		}
	})
	if len(probs) > 0 {
		return errors.New(strings.Join(probs, "; "))
	}
	return nil
}
