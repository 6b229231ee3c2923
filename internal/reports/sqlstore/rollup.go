package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/tlsrpt"
)

// The summary rollup: Summary's answers, pre-aggregated at insert.
//
// Summary counts distinct reports per group ("how many reports mention
// this domain"), and a distinct count cannot be summed from finer groups:
// a report with an STS and a TLSA policy is one report for its day, but
// one per policy type. COUNT(DISTINCT report) over every policy row is
// what made Summary slow (2.3 s at 100,000 reports on SQLite). The rollup
// therefore keeps one set of rows per grain: the subset of the keys that
// vary inside a report (policy domain, MX host, policy type) that the
// rows keep, the others stored as ''. Day and organisation are the same
// for every policy of a report, so a report is counted once per
// (grain, kind, day, organization, kept keys, result_type) row, and
// summing the rows of one grain over any coarser grouping of day and
// organisation never counts a report twice. A query picks the grain made
// of the keys it groups or filters by, then sums. One grain more keeps
// the organisation as '' (grainDomainDay: the totals per day and policy
// domain over every reporter), for the queries that group every domain
// by day without the organisation, which would otherwise sum a row per
// reporter.
//
// Kinds of rows:
//
//	kindTotal    the policies' summary totals (result_type ''), and in
//	             columns success_reports, nodetails_reports and
//	             nodetails_failed the pseudo result types "(success)"
//	             (policies with successful sessions) and "(no-details)"
//	             (failed sessions without details)
//	kindPseudo   the pseudo result types as rows of their own, before
//	             schema version 6 folded them into the total rows
//	kindResult   failure details per result type (failed-session-count)
//
// Summary selects the pseudo result types and the detail rows in
// separate parts of one query, so that a sender's detail with
// result-type "(success)" stays a separate row, as in the direct
// aggregation (summaryRaw).
//
// Maintenance (schema version 9, fold.go): the rollup holds the counted
// reports that a fold has added; a report is stored pending, and a fold
// adds many pending reports at a time (rollupFold, the aggregation
// below per grain over their rows) and clears their mark in the same
// transaction, so each report is added exactly once. Summary and
// Reporters add to the rollup's rows the same aggregation over the
// pending reports' own rows, in one statement, so their answers include
// every stored report. Only the report its (organization, report-id)
// counts is added (a duplicate changes nothing; moving the count to an
// authenticated conflicting copy subtracts the other in the moving
// transaction if a fold had added it, and marks the new one pending,
// conflict.go), so re-ingesting is idempotent. Rows are upserted in key
// order (flushRollup, and the fold's ORDER BY), so concurrent PostgreSQL
// transactions take the row locks in the same order and cannot deadlock
// on them. Prune deletes whole days of reports and of rollup rows
// together. Migration 2 builds the rollup of
// an existing database with the same aggregation over the stored rows;
// migration 7 adds grainDomainDay by summing the domain grain's total
// rows over the organisations; migration 8 indexes it by domain, and the
// domain grain's total rows by domain and organisation for Reporters
// (reporters.go); migration 9 adds the pending mark (every report stored
// before is in the rollup).
//
// Two filters read the policy rows instead (summaryRawQuery), both
// selective, so that the filtered aggregation stays small. The MX filter
// (an element of the mx-host list or the policy domain) is a disjunction
// over two keys, which the grains cannot answer without double counting.
// The result filter without grouping by result sums the totals of the
// policies having a detail of that type: rows for it would cost as many
// again as kindResult (326,000 rows at 100,000 reports, 70% more rollup)
// for a query that the failure_details_result_day index answers.
//
// Cost at 100,000 synthetic reports (bench/reports): 471,300 rollup rows
// (41 MB in SQLite), 35.5 row updates per report merged per transaction,
// before schema version 6 folded the pseudo rows (about 24 since);
// Summary reads one grain and kind, a few thousand rows for the coarse
// groupings.

// Rollup kinds (column kind).
const (
	kindTotal  = 0
	kindPseudo = 1
	kindResult = 2
)

// Grain bits (column grain): which varying keys a row keeps.
const (
	grainDomain = 1
	grainMX     = 2
	grainType   = 4
	grainCount  = 8
	// grainNoOrg marks a row kept without its organisation ('').
	grainNoOrg = 8
	// grainDomainDay (schema version 7) holds the total rows per
	// (day, policy domain) over every organisation: the dashboard's
	// overview groups every domain by day over its range, and the
	// domain grain keeps a row per reporting organisation besides (a
	// year of 1,000,000 reports is about 1,000,000 rows there, against
	// 365 × domains here). A report is still counted once per row: its
	// policies of one domain share the row. Only total rows (kindTotal,
	// with the pseudo columns), so Summary reads it without grouping by
	// result type; a domain filter reads it through its index (schema
	// version 8, rollupDomainDayIndex).
	grainDomainDay = grainNoOrg | grainDomain
)

type rollupKey struct {
	grain, kind                        int
	day, org, domain, mx, ptype, rtype string
}

// rollupSums are a row's sums. On kindTotal rows (schema version 6)
// succReports, ndReports and ndFailed are the "(success)" and
// "(no-details)" pseudo rows' reports and sums, which earlier versions
// kept as kindPseudo rows: the "(success)" row's successful sum is the
// total row's (policies without successful sessions add 0), so three
// columns hold what was a third of the rows.
type rollupSums struct {
	reports, successful, failed, succReports, ndReports, ndFailed int64
}

// rollup accumulates the rows of the reports inserted in one
// transaction.
type rollup map[rollupKey]rollupSums

// addReport adds one inserted report. The keys are normalised exactly as
// in the policies and failure_details rows (day, normDomain, mxKey).
func (ru rollup) addReport(r *tlsrpt.Report, d string) {
	// seen counts each report once per row key.
	seen := make(map[rollupKey]rollupSums)
	add := func(k rollupKey, succ, fail int64) *rollupSums {
		s := seen[k]
		s.reports = 1
		s.successful = tlsrpt.SaturatingAdd(s.successful, succ)
		s.failed = tlsrpt.SaturatingAdd(s.failed, fail)
		seen[k] = s
		return &s
	}
	// The grains: every subset of the varying keys with the
	// organisation, and grainDomainDay.
	for g := range grainDomainDay + 1 {
		if g&grainNoOrg != 0 && g != grainDomainDay {
			continue
		}
		for _, p := range r.Policies {
			k := rollupKey{grain: g, day: d}
			if g&grainNoOrg == 0 {
				k.org = r.OrganizationName
			}
			if g&grainDomain != 0 {
				k.domain = normDomain(p.Policy.Domain)
			}
			if g&grainMX != 0 {
				k.mx = mxKey(p.Policy.MXHost)
			}
			if g&grainType != 0 {
				k.ptype = p.Policy.Type
			}
			succ, fail := p.Summary.TotalSuccessfulSessionCount, p.Summary.TotalFailureSessionCount
			k.kind = kindTotal
			t := add(k, succ, fail)
			if succ > 0 {
				t.succReports = 1
			}
			if fail > 0 && len(p.FailureDetails) == 0 {
				t.ndReports = 1
				t.ndFailed = tlsrpt.SaturatingAdd(t.ndFailed, fail)
			}
			seen[k] = *t
			if g&grainNoOrg != 0 {
				continue // totals only (grainDomainDay)
			}
			for _, fd := range p.FailureDetails {
				k.kind, k.rtype = kindResult, string(fd.ResultType)
				add(k, 0, fd.FailedSessionCount)
			}
		}
	}
	for k, s := range seen {
		t := ru[k]
		t.reports = addDelta(t.reports, s.reports)
		t.successful = addDelta(t.successful, s.successful)
		t.failed = addDelta(t.failed, s.failed)
		t.succReports = addDelta(t.succReports, s.succReports)
		t.ndReports = addDelta(t.ndReports, s.ndReports)
		t.ndFailed = addDelta(t.ndFailed, s.ndFailed)
		ru[k] = t
	}
}

// addDelta adds a report's count s (non-negative) to an accumulated delta
// t, saturating at 2^63-1. t is negative when subReport took a report out
// earlier in the transaction: the sum cannot overflow then, and must not
// be clamped (SaturatingAdd counts a negative operand as 0).
func addDelta(t, s int64) int64 {
	if t < 0 {
		return t + s
	}
	return tlsrpt.SaturatingAdd(t, s)
}

// compareRollupKeys orders keys as the rollup's primary key. Not
// cmp.Or of the eight comparisons, which evaluates every one of them:
// the sort of a transaction's rows was a tenth of flushRollup.
func compareRollupKeys(a, b rollupKey) int {
	if c := cmp.Compare(a.grain, b.grain); c != 0 {
		return c
	}
	if c := cmp.Compare(a.kind, b.kind); c != 0 {
		return c
	}
	if c := strings.Compare(a.day, b.day); c != 0 {
		return c
	}
	if c := strings.Compare(a.org, b.org); c != 0 {
		return c
	}
	if c := strings.Compare(a.domain, b.domain); c != 0 {
		return c
	}
	if c := strings.Compare(a.mx, b.mx); c != 0 {
		return c
	}
	if c := strings.Compare(a.ptype, b.ptype); c != 0 {
		return c
	}
	return strings.Compare(a.rtype, b.rtype)
}

// rollupChunkSizes are the rows per upsert statement, largest first: a
// flush of n rows runs n/512 statements of 512 rows, then one of each
// power of two in the rest's binary form, so that only these ten
// statement texts exist and each stays prepared (stmtcache.go). 14
// parameters a row keep 512 rows under SQLite's 32766 and PostgreSQL's
// 65535 parameters; one statement per chunk saves PostgreSQL a round
// trip per row.
var rollupChunkSizes = []int{512, 256, 128, 64, 32, 16, 8, 4, 2, 1}

// rollupChunkLen is the rows of the next upsert statement when n (> 0)
// rows remain: the largest of rollupChunkSizes not above n.
func rollupChunkLen(n int) int {
	for _, c := range rollupChunkSizes {
		if c <= n {
			return c
		}
	}
	return 1
}

// flushRollup upserts the accumulated rows in key order.
func (s *sqlStore) flushRollup(ctx context.Context, tx *sql.Tx, ru rollup) error {
	if len(ru) == 0 {
		return nil
	}
	keys := make([]rollupKey, 0, len(ru))
	for k := range ru {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareRollupKeys)
	args := make([]any, 0, min(len(keys), rollupChunkSizes[0])*rollupColumns)
	for len(keys) > 0 {
		n := rollupChunkLen(len(keys))
		chunk := keys[:n]
		keys = keys[n:]
		args = args[:0]
		for _, k := range chunk {
			v := ru[k]
			args = append(args, k.grain, k.kind, k.day, k.org, k.domain, k.mx, k.ptype, k.rtype, v.reports, v.successful, v.failed,
				v.succReports, v.ndReports, v.ndFailed)
		}
		st, err := s.txStmt(ctx, tx, rollupUpsert(n))
		if err != nil {
			return err
		}
		_, err = st.ExecContext(ctx, args...)
		st.Close()
		if err != nil {
			return s.errorf("update rollup: %w", err)
		}
	}
	return nil
}

// rollupColumns is the number of columns (parameters) of a row in
// rollupUpsert.
const rollupColumns = 14

// rollupUpsert is the statement adding n rows to summary_rollup. The keys
// of one statement are distinct (PostgreSQL refuses to update a row twice
// in one statement).
func rollupUpsert(n int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO summary_rollup (grain, kind, day, organization, policy_domain, mx_host, policy_type,
		result_type, reports, successful, failed, success_reports, nodetails_reports, nodetails_failed) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
	}
	b.WriteString(rollupConflict)
	return b.String()
}

// rollupConflict is the upsert clause adding a new row's sums to those of
// the row of its key (rollupUpsert, rollupFold).
var rollupConflict = ` ON CONFLICT (grain, kind, day, organization, policy_domain, mx_host, policy_type, result_type) DO UPDATE SET
		reports = ` + saturatingSum("summary_rollup.reports", "excluded.reports") + `,
		successful = ` + saturatingSum("summary_rollup.successful", "excluded.successful") + `,
		failed = ` + saturatingSum("summary_rollup.failed", "excluded.failed") + `,
		success_reports = ` + saturatingSum("summary_rollup.success_reports", "excluded.success_reports") + `,
		nodetails_reports = ` + saturatingSum("summary_rollup.nodetails_reports", "excluded.nodetails_reports") + `,
		nodetails_failed = ` + saturatingSum("summary_rollup.nodetails_failed", "excluded.nodetails_failed")

// saturatingSum is the SQL for a+b, a non-negative, saturating at 2^63-1:
// a plain + fails the statement on overflow (PostgreSQL "bigint out of
// range"; SQLite turns the sum into a REAL, which a STRICT INTEGER column
// refuses), and then every later report of that key failed too. b is
// negative when the count of a report key moves to another copy
// (conflict.go); a+b cannot overflow then, and MAX - b would, so that case
// is taken first (CASE evaluates its branches in order, only as needed).
func saturatingSum(a, b string) string {
	return "CASE WHEN " + b + " <= 0 THEN " + a + " + " + b + " WHEN " + a + " > 9223372036854775807 - " + b + " THEN 9223372036854775807 ELSE " + a + " + " + b + " END"
}

// rollupBackfill returns the statements that fill summary_rollup from the
// stored policy and failure rows: the same aggregation as summaryRaw,
// once per grain. Used by migration 2; the tests compare it with the
// rows maintained at insert.
func rollupBackfill() string {
	var b strings.Builder
	for g := range grainCount {
		keep := func(bit int, col string) string {
			if g&bit != 0 {
				return col
			}
			return "''"
		}
		sel := fmt.Sprintf("%d, %%d, day, organization, %s, %s, %s", g,
			keep(grainDomain, "policy_domain"), keep(grainMX, "mx_host"), keep(grainType, "policy_type"))
		grp := "day, organization"
		for _, c := range []struct {
			bit int
			col string
		}{{grainDomain, "policy_domain"}, {grainMX, "mx_host"}, {grainType, "policy_type"}} {
			if g&c.bit != 0 {
				grp += ", " + c.col
			}
		}
		ins := "INSERT INTO summary_rollup (grain, kind, day, organization, policy_domain, mx_host, policy_type, result_type, reports, successful, failed)\n"
		fmt.Fprintf(&b, "%sSELECT %s, '', COUNT(DISTINCT report), SUM(successful), SUM(failed) FROM policies GROUP BY %s;\n",
			ins, fmt.Sprintf(sel, kindTotal), grp)
		fmt.Fprintf(&b, "%sSELECT %s, '%s', COUNT(DISTINCT report), SUM(successful), 0 FROM policies WHERE successful > 0 GROUP BY %s;\n",
			ins, fmt.Sprintf(sel, kindPseudo), reports.ResultSuccess, grp)
		fmt.Fprintf(&b, "%sSELECT %s, '%s', COUNT(DISTINCT report), 0, SUM(failed) FROM policies WHERE failed > 0 AND details = 0 GROUP BY %s;\n",
			ins, fmt.Sprintf(sel, kindPseudo), reports.ResultNoDetails, grp)
		fmt.Fprintf(&b, "%sSELECT %s, result_type, COUNT(DISTINCT report), 0, SUM(failed_session_count) FROM failure_details GROUP BY %s, result_type;\n",
			ins, fmt.Sprintf(sel, kindResult), grp)
	}
	return b.String()
}

// rollupGrain returns the grain answering f grouped by cols (policies
// columns) and, with byResult, by result type; false when the rollup
// cannot answer f.
func rollupGrain(f reports.Filter, cols []string, byResult bool) (int, bool) {
	if f.MXHost != "" || f.ResultType != "" && !byResult || f.AuthenticatedOnly {
		return 0, false
	}
	g := 0
	if f.PolicyDomain != "" || len(f.Domains) > 0 || slices.Contains(cols, "policy_domain") {
		g |= grainDomain
	}
	if slices.Contains(cols, "mx_host") {
		g |= grainMX
	}
	if slices.Contains(cols, "policy_type") {
		g |= grainType
	}
	// Without the organisation, grouped or filtered: the rows without
	// the organisation answer (read through rollupDomainDayIndex when
	// filtered by domain).
	if g == grainDomain && !byResult && f.Organization == "" && !slices.Contains(cols, "organization") {
		g = grainDomainDay
	}
	return g, true
}

// summaryRollupQuery builds Summary's query over summary_rollup. cols
// are the grouped key columns in groupOrder; the query selects them,
// then result_type, reports, successful, failed.
func (s *sqlStore) summaryRollupQuery(f reports.Filter, cols []string, byResult bool, grain int) (string, []any) {
	w, wargs := s.where(f, "", false)
	// Group in the primary key's column order (day, organization,
	// policy_domain, …) so that SQLite can aggregate while scanning.
	var grp []string
	// The rows without the organisation all hold '' there: grouping by
	// it too changes no group, and lets SQLite aggregate (day, domain)
	// in key order instead of sorting every row of the range.
	noOrgDay := grain&grainNoOrg != 0 && slices.Contains(cols, "day")
	for _, c := range []string{"day", "organization", "policy_domain", "mx_host", "policy_type"} {
		if slices.Contains(cols, c) || c == "organization" && noOrgDay {
			grp = append(grp, c)
		}
	}
	sel := ""
	for _, c := range cols {
		sel += c + ", "
	}
	from := "summary_rollup"
	if f.PolicyDomain != "" || len(f.Domains) > 0 {
		switch grain {
		case grainDomain:
			from = s.d.domainRollup
		case grainDomainDay:
			from = s.d.domainDayRollup
		}
	}
	var parts []string
	var args []any
	// part selects rt and the three sums from the rows of kind; with
	// rtype, only the detail rows of that result type.
	part := func(tag int, kind int, rt, reps, succ, fail string, byType bool, rtype string) {
		// A literal grain: the partial index of the domain grain
		// (schema.go, rollupDomainIndex) applies only to a grain known
		// when planning.
		conds := []string{fmt.Sprintf("grain = %d", grain), "kind = ?"}
		args = append(args, kind)
		if rtype != "" {
			conds = append(conds, "result_type = ?")
			args = append(args, rtype)
		}
		if w != "" {
			conds = append(conds, strings.TrimPrefix(w, " WHERE "))
			args = append(args, wargs...)
		}
		g := slices.Clone(grp)
		if byType {
			g = append(g, "result_type")
		}
		q := `SELECT ` + sel + rt + `, ` + reps + `, ` + succ + `, ` + fail + fmt.Sprintf(", %d", tag) + `
		FROM ` + from + ` WHERE ` + strings.Join(conds, " AND ")
		if len(g) > 0 {
			q += " GROUP BY " + strings.Join(g, ", ")
		}
		parts = append(parts, q)
	}
	sum := s.d.sum
	if !byResult {
		part(tagTotal, kindTotal, "''", sum("reports"), sum("successful"), sum("failed"), false, "")
		return parts[0], args
	}
	// The pseudo result types are columns of the total rows; the
	// separate parts keep a detail named like a pseudo type apart.
	if f.ResultType == "" || f.ResultType == reports.ResultSuccess {
		part(tagSuccess, kindTotal, "'"+reports.ResultSuccess+"'", sum("success_reports"), sum("successful"), "0", false, "")
	}
	if f.ResultType == "" || f.ResultType == reports.ResultNoDetails {
		part(tagNoDetails, kindTotal, "'"+reports.ResultNoDetails+"'", sum("nodetails_reports"), "0", sum("nodetails_failed"), false, "")
	}
	if f.ResultType != reports.ResultSuccess && f.ResultType != reports.ResultNoDetails {
		part(tagDetail, kindResult, "result_type", sum("reports"), sum("successful"), sum("failed"), true, f.ResultType)
	}
	return strings.Join(parts, " UNION ALL "), args
}

// Tags of Summary's query parts, their last column: rows of the rollup
// and of the pending reports' own rows (fold.go) with the same keys and
// tag are one group, summed by summaryRows; the tag keeps a sender's
// detail named like a pseudo result type apart from that pseudo type.
const (
	tagTotal = iota
	tagSuccess
	tagNoDetails
	tagDetail
	// tagPending is added to the tags of the pending reports' rows.
	tagPending = 4
)
