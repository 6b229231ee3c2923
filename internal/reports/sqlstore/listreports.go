package sqlstore

import (
	"context"

	"github.com/mailsts/mailsts/internal/reports"
)

// ListReports implements Store: the reports with a policy matching f,
// aggregated over those policies. The day filter reads the policies' day
// index; a domain filter then keeps a few rows of each day.
func (s *sqlStore) ListReports(ctx context.Context, f reports.Filter) ([]reports.ReportRow, error) {
	if err := validateFilter(f); err != nil {
		return nil, err
	}
	w, args := s.where(f, "p", false)
	and := func(cond string) {
		if w == "" {
			w = " WHERE " + cond
		} else {
			w += " AND " + cond
		}
	}
	if f.ResultType != "" {
		and("p.id IN (SELECT policy FROM failure_details WHERE result_type = ?)")
		args = append(args, f.ResultType)
	}
	if f.AuthenticatedOnly {
		and("r.authenticated = 1")
	}
	args = append(args, f.LimitOrDefault())
	rows, err := s.r.QueryContext(ctx, s.d.rebind(`SELECT r.id, r.day, r.organization, r.report_id, r.authenticated, r.conflict, r.counted,
		COUNT(*), `+s.d.sum("p.successful")+`, `+s.d.sum("p.failed")+`
		FROM policies p JOIN reports r ON r.id = p.report`+w+`
		GROUP BY r.id, r.day, r.organization, r.report_id, r.authenticated, r.conflict, r.counted
		ORDER BY r.day DESC, r.organization, r.report_id, r.id LIMIT ?`), args...)
	if err != nil {
		return nil, s.errorf("list reports: %w", err)
	}
	defer rows.Close()
	var out []reports.ReportRow
	for rows.Next() {
		var x reports.ReportRow
		var auth, conflict, counted int64
		if err := rows.Scan(&x.ID, &x.Day, &x.Organization, &x.ReportID, &auth, &conflict, &counted, &x.Policies, &x.Successful, &x.Failed); err != nil {
			return nil, s.errorf("list reports: %w", err)
		}
		x.Authenticated, x.Conflict, x.Counted = auth != 0, conflict != 0, counted != 0
		out = append(out, x)
	}
	if err := rows.Err(); err != nil {
		return nil, s.errorf("list reports: %w", err)
	}
	return out, nil
}
