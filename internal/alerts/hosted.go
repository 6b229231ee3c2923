package alerts

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/mailsts/mailsts/internal/reports"
)

// Rules of the publishing side: they read the last check of each hosted
// policy (what senders see, from serve's periodic publish checks), not
// the reports.
const (
	RulePolicyCertExpiring = "policy-cert-expiring"
	RulePolicyIDMismatch   = "policy-id-mismatch"
)

// HostedStatus is the last check of one hosted policy domain.
type HostedStatus struct {
	Domain string
	// PolicyHost is mta-sts.<Domain>.
	PolicyHost string
	// PolicyID is the id of the policy serve serves for the domain.
	PolicyID string
	// LiveID is the id of the live _mta-sts TXT record; "" when there is
	// none. TXTUnknown: the lookup failed, LiveID says nothing.
	LiveID     string
	TXTUnknown bool
	// CertNotAfter is the end of the policy host certificate senders
	// were shown; zero when the policy could not be fetched.
	CertNotAfter time.Time
	Checked      time.Time
}

// HostedStatusSource returns the last check of every hosted domain (the
// domains served now only).
type HostedStatusSource interface {
	HostedStatuses(ctx context.Context) ([]HostedStatus, error)
}

// DefaultCertDays is the warning time of PolicyCertExpiring.
const DefaultCertDays = 14

// lastKnown remembers, per domain, the last value a check could read, so
// that a check that could not (a DNS or fetch failure) neither resolves
// an alert nor fires one.
type lastKnown[T any] struct {
	mu sync.Mutex
	m  map[string]T
}

// get returns v (and remembers it) when ok, else the remembered value.
func (l *lastKnown[T]) get(domain string, v T, ok bool) (T, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[string]T{}
	}
	if ok {
		l.m[domain] = v
		return v, true
	}
	old, found := l.m[domain]
	return old, found
}

// PolicyCertExpiring fires for a hosted policy whose policy host
// certificate (mta-sts.<domain>, as senders were shown it) ends within
// Days days, or has ended: senders would fail to fetch the policy
// (sts-webpki-invalid). It resolves once a check sees a certificate
// valid for longer. A check that could not fetch the policy keeps the
// certificate seen before. Use a pointer: it remembers.
type PolicyCertExpiring struct {
	Source HostedStatusSource
	Days   int // default DefaultCertDays
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	seen lastKnown[time.Time]
}

func (r *PolicyCertExpiring) Name() string { return RulePolicyCertExpiring }

func (r *PolicyCertExpiring) Check(ctx context.Context, _ reports.Store, _ time.Time) ([]Finding, error) {
	days := r.Days
	if days <= 0 {
		days = DefaultCertDays
	}
	now := time.Now()
	if r.Now != nil {
		now = r.Now()
	}
	sts, err := r.Source.HostedStatuses(ctx)
	if err != nil {
		return nil, fmt.Errorf("alerts: %s: %w", RulePolicyCertExpiring, err)
	}
	var out []Finding
	for _, s := range sts {
		end, ok := r.seen.get(s.Domain, s.CertNotAfter, !s.CertNotAfter.IsZero())
		if !ok {
			continue
		}
		left := end.Sub(now)
		if left >= time.Duration(days)*24*time.Hour {
			continue
		}
		var subj string
		if left <= 0 {
			subj = fmt.Sprintf("the certificate of %s ended %s: senders cannot fetch the policy", s.PolicyHost, end.UTC().Format(time.RFC3339))
		} else {
			subj = fmt.Sprintf("the certificate of %s ends %s, in %d days (warning at %d)", s.PolicyHost, end.UTC().Format(time.RFC3339),
				int(left.Hours()/24), days)
		}
		out = append(out, Finding{Rule: RulePolicyCertExpiring, Domain: reports.NormDomain(s.Domain), Key: s.PolicyHost, Subject: subj})
	}
	return out, nil
}

// PolicyIDMismatch fires for a hosted policy whose live _mta-sts TXT
// record carries an id other than the policy served: senders that
// cached the earlier policy do not fetch the new one (RFC 8461 §3.1).
// It resolves once the TXT record carries the served id (or is gone: a
// missing record is another problem, shown on the hosted policies page).
// A check whose TXT lookup failed keeps the id seen before. Use a
// pointer: it remembers.
type PolicyIDMismatch struct {
	Source HostedStatusSource

	seen lastKnown[string]
}

func (r *PolicyIDMismatch) Name() string { return RulePolicyIDMismatch }

func (r *PolicyIDMismatch) Check(ctx context.Context, _ reports.Store, _ time.Time) ([]Finding, error) {
	sts, err := r.Source.HostedStatuses(ctx)
	if err != nil {
		return nil, fmt.Errorf("alerts: %s: %w", RulePolicyIDMismatch, err)
	}
	var out []Finding
	for _, s := range sts {
		live, ok := r.seen.get(s.Domain, s.LiveID, !s.TXTUnknown)
		if !ok || live == "" || live == s.PolicyID {
			continue
		}
		out = append(out, Finding{Rule: RulePolicyIDMismatch, Domain: reports.NormDomain(s.Domain),
			Subject: fmt.Sprintf("the live _mta-sts.%s TXT id %s is not the served policy's id %s: senders keep their cached policy", s.Domain, live, s.PolicyID)})
	}
	return out, nil
}
