package sqlstore

import (
	"context"
	"fmt"

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
	if f.Cursor != "" {
		c, cargs, err := reportsAfter(f.Cursor)
		if err != nil {
			return nil, err
		}
		and(c)
		args = append(args, cargs...)
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

// FailureGroups implements Store. With a day range and a domain it reads
// the failure details' (policy_domain, day) index.
func (s *sqlStore) FailureGroups(ctx context.Context, f reports.Filter, key string) ([]reports.FailureGroup, error) {
	if err := validateFilter(f); err != nil {
		return nil, err
	}
	col := map[string]string{reports.FailureKeyResult: "fd.result_type", reports.FailureKeyMX: "fd.receiving_mx_hostname",
		reports.FailureKeySendingIP: "fd.sending_mta_ip", reports.FailureKeyOrg: "fd.organization", reports.FailureKeyReceiverIP: "fd.receiving_ip"}[key]
	if col == "" {
		return nil, fmt.Errorf("%w: unknown failure key %q (want result, mx, ip, org or receiving-ip)", reports.ErrBadFilter, key)
	}
	w, args := s.where(f, "fd", true)
	and := func(cond string) {
		if w == "" {
			w = " WHERE " + cond
		} else {
			w += " AND " + cond
		}
	}
	if f.ResultType != "" {
		and("fd.result_type = ?")
		args = append(args, f.ResultType)
	}
	if f.AuthenticatedOnly {
		and("fd.report IN (SELECT id FROM reports WHERE authenticated = 1)")
	}
	// Only the counted copy of conflicting reports, as in Summary.
	and("fd.report NOT IN (SELECT id FROM reports WHERE counted = 0)")
	args = append(args, f.LimitOrDefault())
	rows, err := s.r.QueryContext(ctx, s.d.rebind(`SELECT `+col+`, `+s.d.sum("fd.failed_session_count")+`, COUNT(*), COUNT(DISTINCT fd.report)
		FROM failure_details fd`+w+` GROUP BY `+col+` ORDER BY 2 DESC, 1 LIMIT ?`), args...)
	if err != nil {
		return nil, s.errorf("failure groups: %w", err)
	}
	defer rows.Close()
	var out []reports.FailureGroup
	for rows.Next() {
		var g reports.FailureGroup
		if err := rows.Scan(&g.Key, &g.Failed, &g.Details, &g.Reports); err != nil {
			return nil, s.errorf("failure groups: %w", err)
		}
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, s.errorf("failure groups: %w", err)
	}
	return out, nil
}

// reportsAfter is the condition (alias r) of the reports after the
// cursor in ListReports' order: day DESC, then organization, report_id
// and the row id ascending.
func reportsAfter(cursor string) (string, []any, error) {
	var c reports.ReportCursor
	if err := reports.DecodeCursor(cursor, &c); err != nil {
		return "", nil, err
	}
	return `(r.day < ? OR r.day = ? AND (r.organization > ? OR r.organization = ? AND (r.report_id > ? OR
		r.report_id = ? AND r.id > ?)))`, []any{c.Day, c.Day, c.Org, c.Org, c.ReportID, c.ReportID, c.Row}, nil
}
