package alerts

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/mailsts/mailsts/internal/reports"
)

// Finding is what a rule sees now: a condition on a domain. Its ID names
// it across evaluations; while a rule keeps returning a finding with the
// same ID the alert stays open.
type Finding struct {
	Rule   string `json:"rule"`
	Domain string `json:"domain"`
	// Key tells findings of one rule and domain apart (an organisation,
	// a result type); may be empty.
	Key string `json:"key,omitempty"`
	// Subject is one line for a person.
	Subject string `json:"subject"`
}

// ID identifies the finding across evaluations.
func (f Finding) ID() string { return f.Rule + "|" + f.Domain + "|" + f.Key }

// Rule is one alerting rule. Check looks at the reports up to day (the
// last complete UTC day; time of day ignored) and returns what it finds.
type Rule interface {
	Name() string
	Check(ctx context.Context, st reports.Store, day time.Time) ([]Finding, error)
}

// Rule names.
const (
	RuleReporterSilent = "reporter-silent"
	RuleFailureRate    = "failure-rate"
	RuleNewFailureType = "new-failure-type"
)

func dayString(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// daysBetween is the number of days from a to b (dates YYYY-MM-DD).
func daysBetween(a, b string) int {
	ta, _ := time.Parse(time.DateOnly, a)
	tb, _ := time.Parse(time.DateOnly, b)
	return int(tb.Sub(ta) / (24 * time.Hour))
}

// ReporterSilent fires for an expected reporter of a domain that has
// gone silent: an organisation that sent reports on at least MinDays of
// the Window days up to its last report, and none in the Days days
// since. It stays open until the organisation reports again (or its last
// report falls out of Lookback).
type ReporterSilent struct {
	Days     int // default 2
	Window   int // default 14
	MinDays  int // default 8 (most of 14)
	Lookback int // days read; default 60
}

func (r ReporterSilent) Name() string { return RuleReporterSilent }

func (r ReporterSilent) Check(ctx context.Context, st reports.Store, day time.Time) ([]Finding, error) {
	days, window, minDays, lookback := r.Days, r.Window, r.MinDays, r.Lookback
	if days <= 0 {
		days = 2
	}
	if window <= 0 {
		window = 14
	}
	if minDays <= 0 {
		minDays = window/2 + 1
	}
	if lookback <= 0 {
		lookback = 60
	}
	lookback = max(lookback, window+days)
	rows, err := st.Summary(ctx, reports.Filter{Since: day.AddDate(0, 0, 1-lookback), Until: day,
		GroupBy: []string{reports.GroupDay, reports.GroupPolicyDomain, reports.GroupOrganization}})
	if err != nil {
		return nil, fmt.Errorf("alerts: %s: %w", RuleReporterSilent, err)
	}
	type key struct{ domain, org string }
	seen := map[key][]string{}
	for _, row := range rows {
		k := key{row.PolicyDomain, row.Organization}
		seen[k] = append(seen[k], row.Day)
	}
	today := dayString(day)
	var out []Finding
	for k, ds := range seen {
		last := slices.Max(ds)
		silent := daysBetween(last, today)
		if silent < days {
			continue
		}
		n := 0
		for _, d := range ds {
			if age := daysBetween(d, last); age >= 0 && age < window {
				n++
			}
		}
		if n < minDays {
			continue
		}
		out = append(out, Finding{Rule: RuleReporterSilent, Domain: k.domain, Key: k.org,
			Subject: fmt.Sprintf("%q reported on %d of the %d days up to %s, and not in the %d days since", k.org, n, window, last, silent)})
	}
	return out, nil
}

// FailureRate fires when a domain's failure rate on the last day is
// Threshold (a fraction: 0.05 is 5 percentage points) or more above its
// rate over the BaselineDays before, with at least MinSessions sessions
// that day.
type FailureRate struct {
	Threshold    float64 // default 0.05
	BaselineDays int     // default 14
	MinSessions  int64   // default 100
}

func (r FailureRate) Name() string { return RuleFailureRate }

func (r FailureRate) Check(ctx context.Context, st reports.Store, day time.Time) ([]Finding, error) {
	thr, base, minS := r.Threshold, r.BaselineDays, r.MinSessions
	if thr <= 0 {
		thr = 0.05
	}
	if base <= 0 {
		base = 14
	}
	if minS <= 0 {
		minS = 100
	}
	rows, err := st.Summary(ctx, reports.Filter{Since: day.AddDate(0, 0, -base), Until: day, GroupBy: []string{reports.GroupDay, reports.GroupPolicyDomain}})
	if err != nil {
		return nil, fmt.Errorf("alerts: %s: %w", RuleFailureRate, err)
	}
	type sums struct{ ds, df, bs, bf int64 }
	by := map[string]*sums{}
	today := dayString(day)
	for _, row := range rows {
		s := by[row.PolicyDomain]
		if s == nil {
			s = &sums{}
			by[row.PolicyDomain] = s
		}
		if row.Day == today {
			s.ds += row.Successful
			s.df += row.Failed
		} else {
			s.bs += row.Successful
			s.bf += row.Failed
		}
	}
	var out []Finding
	for dom, s := range by {
		if s.ds+s.df < minS {
			continue
		}
		rate := float64(s.df) / float64(s.ds+s.df)
		baseRate := 0.0
		if s.bs+s.bf > 0 {
			baseRate = float64(s.bf) / float64(s.bs+s.bf)
		}
		if rate-baseRate < thr {
			continue
		}
		out = append(out, Finding{Rule: RuleFailureRate, Domain: dom,
			Subject: fmt.Sprintf("%.1f%% of %d sessions failed on %s, against %.1f%% over the %d days before", rate*100, s.ds+s.df, today, baseRate*100, base)})
	}
	return out, nil
}

// NewFailureType fires for a failure result type reported for a domain
// in the last RecentDays that was not reported for it in the
// BaselineDays before, when the domain has reports in that baseline (a
// new domain's first failures are not news). It resolves once the type
// is no longer recent-and-new.
type NewFailureType struct {
	RecentDays   int // default 3
	BaselineDays int // default 30
}

func (r NewFailureType) Name() string { return RuleNewFailureType }

func (r NewFailureType) Check(ctx context.Context, st reports.Store, day time.Time) ([]Finding, error) {
	recent, base := r.RecentDays, r.BaselineDays
	if recent <= 0 {
		recent = 3
	}
	if base <= 0 {
		base = 30
	}
	rows, err := st.Summary(ctx, reports.Filter{Since: day.AddDate(0, 0, 1-recent-base), Until: day,
		GroupBy: []string{reports.GroupDay, reports.GroupPolicyDomain, reports.GroupResultType}})
	if err != nil {
		return nil, fmt.Errorf("alerts: %s: %w", RuleNewFailureType, err)
	}
	firstRecent := dayString(day.AddDate(0, 0, 1-recent))
	type key struct{ domain, result string }
	inBaseline := map[key]bool{}
	recentFirst := map[key]string{}
	domainInBaseline := map[string]bool{}
	for _, row := range rows {
		old := row.Day < firstRecent
		if old {
			domainInBaseline[row.PolicyDomain] = true
		}
		if row.ResultType == reports.ResultSuccess || row.ResultType == reports.ResultNoDetails || row.Failed == 0 {
			continue
		}
		k := key{row.PolicyDomain, row.ResultType}
		if old {
			inBaseline[k] = true
		} else if f, ok := recentFirst[k]; !ok || row.Day < f {
			recentFirst[k] = row.Day
		}
	}
	var out []Finding
	for k, first := range recentFirst {
		if inBaseline[k] || !domainInBaseline[k.domain] {
			continue
		}
		out = append(out, Finding{Rule: RuleNewFailureType, Domain: k.domain, Key: k.result,
			Subject: fmt.Sprintf("failure type %s reported since %s, not seen in the %d days before", k.result, first, base)})
	}
	return out, nil
}
