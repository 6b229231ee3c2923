package sqlstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/tlsrpt"
)

// Reporters implements Store. Over the rollup's domain grain (which keeps
// the organisation) the database sums the reports and takes the last day
// per (domain, organisation), so that a year of a domain's reports comes
// back as one row per reporter instead of one per reporter and day. The
// filters the rollup cannot answer (MX host, result type, authenticated
// only) aggregate Summary's rows per day instead.
func (s *sqlStore) Reporters(ctx context.Context, f reports.Filter) ([]reports.ReporterRow, error) {
	f.GroupBy = []string{reports.GroupDay, reports.GroupPolicyDomain, reports.GroupOrganization}
	cols, byResult, err := summaryColumns(f)
	if err != nil {
		return nil, err
	}
	grain, ok := rollupGrain(f, cols, byResult)
	if !ok || grain != grainDomain {
		return s.reportersFromSummary(ctx, f)
	}
	// The rollup and the reports not folded into it yet (fold.go), in
	// one statement; rows of one (domain, organisation) are added up.
	q, args := s.reportersQuery(f)
	pq, pargs := s.reportersPendingQuery(f)
	rows, err := s.r.QueryContext(ctx, s.d.rebind(q+" UNION ALL "+pq), append(args, pargs...)...)
	if err != nil {
		return nil, s.errorf("reporters: %w", err)
	}
	defer rows.Close()
	var out []reports.ReporterRow
	type key struct{ domain, org string }
	seen := map[key]int{}
	for rows.Next() {
		var r reports.ReporterRow
		if err := rows.Scan(&r.PolicyDomain, &r.Organization, &r.Reports, &r.LastDay); err != nil {
			return nil, s.errorf("reporters: %w", err)
		}
		k := key{r.PolicyDomain, r.Organization}
		if i, ok := seen[k]; ok {
			out[i].Reports = tlsrpt.SaturatingAdd(out[i].Reports, r.Reports)
			out[i].LastDay = max(out[i].LastDay, r.LastDay)
			continue
		}
		seen[k] = len(out)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, s.errorf("reporters: %w", err)
	}
	// Rows whose reports were all moved to another copy sum to 0
	// (conflict.go); Summary leaves them out too.
	out = slices.DeleteFunc(out, func(r reports.ReporterRow) bool { return r.Reports == 0 })
	if len(out) == 0 {
		out = nil // as when no row came
	}
	sortReporters(out)
	return out, nil
}

// reportersPendingQuery is Reporters' query over the pending reports'
// policy rows (fold.go), in the shape of reportersQuery's.
func (s *sqlStore) reportersPendingQuery(f reports.Filter) (string, []any) {
	w, args := s.where(f, "", false)
	conds := []string{"report IN (" + pendingCond + ")"}
	if w != "" {
		conds = append(conds, strings.TrimPrefix(w, " WHERE "))
	}
	return `SELECT policy_domain, organization, COUNT(DISTINCT report), MAX(day) FROM policies WHERE ` +
		strings.Join(conds, " AND ") + ` GROUP BY policy_domain, organization`, args
}

// sortReporters orders rows by domain, then organisation, bytewise (the
// same on both backends, whatever PostgreSQL's collation).
func sortReporters(rows []reports.ReporterRow) {
	slices.SortFunc(rows, func(a, b reports.ReporterRow) int {
		return cmp.Or(strings.Compare(a.PolicyDomain, b.PolicyDomain), strings.Compare(a.Organization, b.Organization))
	})
}

// reportersQuery is Reporters' query over the domain grain's total rows.
func (s *sqlStore) reportersQuery(f reports.Filter) (string, []any) {
	w, args := s.where(f, "", false)
	// A literal grain and kind: the partial index (rollupReportersIndex)
	// applies only to those known when planning.
	conds := []string{fmt.Sprintf("grain = %d", grainDomain), fmt.Sprintf("kind = %d", kindTotal)}
	if w != "" {
		conds = append(conds, strings.TrimPrefix(w, " WHERE "))
	}
	return `SELECT policy_domain, organization, ` + s.d.sum("reports") + `, MAX(day) FROM ` + s.d.reportersRollup + ` WHERE ` +
		strings.Join(conds, " AND ") + ` GROUP BY policy_domain, organization`, args
}

// reportersFromSummary is Reporters from Summary's rows per day, domain
// and organisation: the reference the tests compare with, and the answer
// for the filters the rollup cannot answer.
func (s *sqlStore) reportersFromSummary(ctx context.Context, f reports.Filter) ([]reports.ReporterRow, error) {
	f.GroupBy = []string{reports.GroupDay, reports.GroupPolicyDomain, reports.GroupOrganization}
	rows, err := s.Summary(ctx, f)
	if err != nil {
		return nil, err
	}
	return reporterRows(rows), nil
}

// reporterRows aggregates Summary rows per (day, domain, organisation).
func reporterRows(rows []reports.SummaryRow) []reports.ReporterRow {
	type key struct{ domain, org string }
	m := map[key]*reports.ReporterRow{}
	for _, r := range rows {
		if r.Reports == 0 {
			continue
		}
		k := key{r.PolicyDomain, r.Organization}
		a := m[k]
		if a == nil {
			a = &reports.ReporterRow{PolicyDomain: r.PolicyDomain, Organization: r.Organization}
			m[k] = a
		}
		a.Reports += r.Reports
		a.LastDay = max(a.LastDay, r.Day)
	}
	out := make([]reports.ReporterRow, 0, len(m))
	for _, a := range m {
		out = append(out, *a)
	}
	sortReporters(out)
	return out
}
