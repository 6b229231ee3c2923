package reports

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrReadOnly is returned by the writing methods of a Scoped store: a
// reader limited to some domains never changes the store.
var ErrReadOnly = errors.New("reports: read-only view")

// Scoped returns a read-only view of st limited to the policy domains
// listed (an MSP's customer sees only their own): every query gets them
// as Filter.Domains, Show keeps only the reports and policies of those
// domains, rejected input (which has no domain) is hidden. An empty list
// returns st itself.
func Scoped(st Store, domains []string) Store {
	if len(domains) == 0 {
		return st
	}
	norm := make([]string, 0, len(domains))
	for _, d := range domains {
		norm = append(norm, NormDomain(d))
	}
	slices.Sort(norm)
	return &scoped{st: st, domains: slices.Compact(norm)}
}

// NormDomain lowercases a domain and drops a trailing dot, as the store
// keys policy domains.
func NormDomain(s string) string {
	return strings.ToLower(strings.TrimSuffix(strings.TrimSpace(s), "."))
}

type scoped struct {
	st      Store
	domains []string
}

func (s *scoped) allowed(d string) bool {
	_, ok := slices.BinarySearch(s.domains, NormDomain(d))
	return ok
}

// narrow intersects f's domains with the scope; false when nothing is
// left (the query answers nothing).
func (s *scoped) narrow(f Filter) (Filter, bool) {
	if f.PolicyDomain != "" && !s.allowed(f.PolicyDomain) {
		return f, false
	}
	if len(f.Domains) == 0 {
		f.Domains = s.domains
		return f, true
	}
	var keep []string
	for _, d := range f.Domains {
		if s.allowed(d) {
			keep = append(keep, d)
		}
	}
	f.Domains = keep
	return f, len(keep) > 0
}

func (s *scoped) Migrate(context.Context) error { return ErrReadOnly }
func (s *scoped) PutReport(context.Context, Incoming) (PutResult, error) {
	return PutResult{}, ErrReadOnly
}
func (s *scoped) PutReports(context.Context, []Incoming) ([]PutResult, error) {
	return nil, ErrReadOnly
}
func (s *scoped) PutRejected(context.Context, Rejection) (int64, error) { return 0, ErrReadOnly }
func (s *scoped) TrimRejected(context.Context, int64) (int64, error)    { return 0, ErrReadOnly }
func (s *scoped) Prune(context.Context, Prune) (PruneResult, error) {
	return PruneResult{}, ErrReadOnly
}

// Close does not close the underlying store (it is shared).
func (s *scoped) Close() error { return nil }

func (s *scoped) Summary(ctx context.Context, f Filter) ([]SummaryRow, error) {
	f, ok := s.narrow(f)
	if !ok {
		return nil, nil
	}
	return s.st.Summary(ctx, f)
}

func (s *scoped) Reporters(ctx context.Context, f Filter) ([]ReporterRow, error) {
	f, ok := s.narrow(f)
	if !ok {
		return nil, nil
	}
	return s.st.Reporters(ctx, f)
}

func (s *scoped) Failures(ctx context.Context, f Filter) ([]FailureRow, error) {
	f, ok := s.narrow(f)
	if !ok {
		return nil, nil
	}
	return s.st.Failures(ctx, f)
}

func (s *scoped) ListReports(ctx context.Context, f Filter) ([]ReportRow, error) {
	f, ok := s.narrow(f)
	if !ok {
		return nil, nil
	}
	return s.st.ListReports(ctx, f)
}

func (s *scoped) FailureGroups(ctx context.Context, f Filter, key string) ([]FailureGroup, error) {
	f, ok := s.narrow(f)
	if !ok {
		return nil, nil
	}
	return s.st.FailureGroups(ctx, f, key)
}

// Show keeps the reports with a policy of the scope, and of those only
// the policies of the scope. Raw is dropped from a report that also
// covers other domains (it would show them).
func (s *scoped) Show(ctx context.Context, reportID string) ([]StoredReport, error) {
	rs, err := s.st.Show(ctx, reportID)
	if err != nil {
		return nil, err
	}
	var out []StoredReport
	for _, sr := range rs {
		if sr.Report == nil {
			continue
		}
		r := *sr.Report
		r.Policies = nil
		for _, p := range sr.Report.Policies {
			if s.allowed(p.Policy.Domain) {
				r.Policies = append(r.Policies, p)
			}
		}
		if len(r.Policies) == 0 {
			continue
		}
		if len(r.Policies) != len(sr.Report.Policies) {
			sr.Raw, sr.RawSize = nil, 0
		}
		sr.Report = &r
		out = append(out, sr)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: report-id %q", ErrNotFound, reportID)
	}
	return out, nil
}

// ListRejected shows nothing: rejected input has no policy domain, so it
// is for unrestricted readers only.
func (s *scoped) ListRejected(context.Context, Filter) ([]Rejected, error) { return nil, nil }

func (s *scoped) RejectedRaw(_ context.Context, id int64) (Rejected, error) {
	return Rejected{}, fmt.Errorf("%w: rejected input %d", ErrNotFound, id)
}
