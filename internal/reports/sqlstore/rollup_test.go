package sqlstore

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/reportstest"
	"github.com/mailsts/mailsts/tlsrpt"
)

// randomReport builds report i of a seeded random set chosen to stress
// the rollup: few organisations, days, domains and MX hosts so that keys
// collide; several policies of one type or domain in a report (they
// merge in coarse grains); repeated result types in a policy; a detail
// whose result type is spelled like a pseudo type; domains in mixed case
// with trailing dots; zero counts.
func randomReport(rng *rand.Rand, i int) *tlsrpt.Report {
	orgs := []string{"Google Inc.", "Mail.Ru", "Yahoo"}
	doms := []string{"a.example", "B.example.", "c.example"}
	types := []string{tlsrpt.PolicyTypeSTS, tlsrpt.PolicyTypeTLSA, tlsrpt.PolicyTypeNoPolicyFound}
	results := []tlsrpt.ResultType{tlsrpt.ResultCertificateExpired, tlsrpt.ResultTLSAInvalid, tlsrpt.ResultSTARTTLSNotSupported,
		reports.ResultSuccess, "x-unknown"}
	r := &tlsrpt.Report{
		OrganizationName: orgs[rng.IntN(len(orgs))],
		ReportID:         fmt.Sprintf("rand-%d", i),
		ContactInfo:      "mailto:tlsrpt@example.net",
	}
	start := time.Date(2025, 1, 1+rng.IntN(4), 0, 0, 0, 0, time.UTC)
	r.DateRange = tlsrpt.DateRange{Start: start, End: start.Add(24*time.Hour - time.Second)}
	for range 1 + rng.IntN(4) {
		var p tlsrpt.PolicyResult
		p.Policy.Type = types[rng.IntN(len(types))]
		p.Policy.Domain = doms[rng.IntN(len(doms))]
		for range rng.IntN(3) {
			p.Policy.MXHost = append(p.Policy.MXHost, fmt.Sprintf("MX%d.%s", rng.IntN(2), p.Policy.Domain))
		}
		p.Summary.TotalSuccessfulSessionCount = int64(rng.IntN(3) * rng.IntN(50))
		p.Summary.TotalFailureSessionCount = int64(rng.IntN(2) * rng.IntN(20))
		if p.Summary.TotalFailureSessionCount > 0 {
			for range rng.IntN(4) {
				p.FailureDetails = append(p.FailureDetails, tlsrpt.FailureDetails{
					ResultType:         results[rng.IntN(len(results))],
					FailedSessionCount: int64(rng.IntN(10)),
				})
			}
		}
		r.Policies = append(r.Policies, p)
	}
	return r
}

// loadRandom stores 200 random reports in batches of up to 7, with
// duplicates inside a batch, across batches and as single puts.
func loadRandom(t *testing.T, st reports.Store) {
	t.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(8460, 8461))
	var all []*tlsrpt.Report
	for i := 0; i < 200; {
		var batch []reports.Incoming
		for n := 1 + rng.IntN(7); n > 0 && i < 200; n-- {
			r := randomReport(rng, i)
			all = append(all, r)
			batch = append(batch, reports.Incoming{Report: r, Raw: []byte("{}"), Source: reports.SourceFile, ReceivedAt: reportstest.FixedNow()})
			i++
			if rng.IntN(5) == 0 {
				// The same report again: a duplicate in the batch.
				batch = append(batch, batch[len(batch)-1])
			}
			if rng.IntN(6) == 0 && len(all) > 1 {
				// An earlier report: a duplicate of a committed batch.
				old := all[rng.IntN(len(all)-1)]
				batch = append(batch, reports.Incoming{Report: old, Raw: []byte("{}"), Source: reports.SourceFile, ReceivedAt: reportstest.FixedNow()})
			}
		}
		if _, err := st.PutReports(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range all[:40] {
		if res, err := st.PutReport(ctx, reports.Incoming{Report: r, Raw: []byte("{}"), Source: reports.SourceHTTP, ReceivedAt: reportstest.FixedNow()}); err != nil || !res.Duplicate {
			t.Fatalf("re-ingest %s: %+v %v", r.ReportID, res, err)
		}
	}
}

// rollupFilters are every grouping (all 63 non-empty subsets of the six
// keys), and every fifth grouping crossed with filters on each key the
// rollup answers (all 441 pairs take too long under -race).
func rollupFilters() []reports.Filter {
	keys := []string{reports.GroupDay, reports.GroupPolicyDomain, reports.GroupOrganization, reports.GroupMXHost, reports.GroupPolicyType, reports.GroupResultType}
	d := func(s string) time.Time { t, _ := time.Parse(time.DateOnly, s); return t }
	filters := []reports.Filter{
		{},
		{PolicyDomain: "b.example"},
		{Organization: "Mail.Ru", Since: d("2025-01-02"), Until: d("2025-01-03")},
		{ResultType: string(tlsrpt.ResultCertificateExpired)},
		{ResultType: reports.ResultSuccess},
		{ResultType: reports.ResultNoDetails},
		{ResultType: "x-unknown", PolicyDomain: "a.example"},
	}
	var out []reports.Filter
	for mask := 1; mask < 1<<len(keys); mask++ {
		var g []string
		for i, k := range keys {
			if mask&(1<<i) != 0 {
				g = append(g, k)
			}
		}
		for i, f := range filters {
			if i > 0 && mask%5 != 1 {
				continue
			}
			f.GroupBy = g
			out = append(out, f)
		}
	}
	return out
}

// TestRollupEqualsRawAggregation: for every grouping and filter, Summary
// from the rollup equals the direct aggregation over the stored rows, on
// random data with duplicates (RPT-RECV-4: a duplicate counts once); and
// the migration's backfill builds the same rollup as the inserts.
func TestRollupEqualsRawAggregation(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, st reports.Store) {
		loadRandom(t, st)
		ctx := context.Background()
		s := st.(*sqlStore)
		// First with the reports pending (fold.go: the rollup plus
		// their own rows), then folded into the rollup.
		for _, stage := range []string{"pending", "folded"} {
			if stage == "folded" {
				if err := s.Fold(ctx); err != nil {
					t.Fatal(err)
				}
			}
			nonEmpty, viaRollup := 0, 0
			for _, f := range rollupFilters() {
				cols, byResult, err := summaryColumns(f)
				if err != nil {
					t.Fatal(err)
				}
				if _, ok := rollupGrain(f, cols, byResult); ok {
					viaRollup++
				}
				got, want := summaryAndRaw(t, ctx, st, f)
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("%s, %+v: rollup differs from raw\nrollup %+v\nraw    %+v", stage, f, got, want)
				}
				if len(got) > 0 {
					nonEmpty++
				}
			}
			if viaRollup < len(rollupFilters())*3/4 {
				t.Errorf("only %d of %d queries read the rollup", viaRollup, len(rollupFilters()))
			}
			if nonEmpty < len(rollupFilters())*3/4 {
				t.Errorf("only %d of %d queries returned rows: the data does not exercise the rollup", nonEmpty, len(rollupFilters()))
			}
		}
		// The reports counted: 200 distinct, whatever the duplicates.
		rows, err := st.Summary(ctx, reports.Filter{GroupBy: []string{reports.GroupOrganization}})
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, r := range rows {
			n += r.Reports
		}
		if n != 200 {
			t.Errorf("reports counted %d, want 200", n)
		}
		checkBackfill(t, s)
	})
}

// rollupTable reads summary_rollup in key order.
func rollupTable(t *testing.T, s *sqlStore) []string {
	t.Helper()
	rows, err := s.r.QueryContext(context.Background(), `SELECT grain, kind, day, organization, policy_domain, mx_host,
		policy_type, result_type, reports, successful, failed, success_reports, nodetails_reports, nodetails_failed FROM summary_rollup
		ORDER BY grain, kind, day, organization, policy_domain, mx_host, policy_type, result_type`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var g, k, n, succ, fail, sn, nn, nf int64
		var d, o, dom, mx, pt, rt string
		if err := rows.Scan(&g, &k, &d, &o, &dom, &mx, &pt, &rt, &n, &succ, &fail, &sn, &nn, &nf); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%d %d %s %q %s %s %s %s: %d %d %d %d %d %d", g, k, d, o, dom, mx, pt, rt, n, succ, fail, sn, nn, nf))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkBackfill: migration 2 over a version-1 database, then migrations
// 5 and 6 (the pseudo rows folded into the total rows) and 7 (the rows
// without the organisation, from the domain grain's), build exactly the
// rollup that inserts maintain.
func checkBackfill(t *testing.T, s *sqlStore) {
	t.Helper()
	ctx := context.Background()
	// The backfill sums every counted report: fold the pending ones.
	if err := s.Fold(ctx); err != nil {
		t.Fatal(err)
	}
	maintained := rollupTable(t, s)
	if len(maintained) < 100 {
		t.Fatalf("rollup has %d rows", len(maintained))
	}
	// Back to version 1: the rollup table did not exist. Then migration 2
	// alone (the later ones are not written to run twice).
	if _, err := s.w.ExecContext(ctx, `DROP TABLE summary_rollup`); err != nil {
		t.Fatal(err)
	}
	for _, v := range []int{2, 5, 6, 7} {
		if _, err := s.w.ExecContext(ctx, s.d.migrations[v-1]); err != nil {
			t.Fatalf("migration %d: %v", v, err)
		}
	}
	if got := rollupTable(t, s); !reflect.DeepEqual(got, maintained) {
		t.Errorf("backfilled rollup (%d rows) differs from the maintained one (%d rows)", len(got), len(maintained))
		for i := range min(len(got), len(maintained)) {
			if got[i] != maintained[i] {
				t.Fatalf("first difference at %d:\nbackfill   %s\nmaintained %s", i, got[i], maintained[i])
			}
		}
	}
}

// TestDomainDayRollupEqualsRaw: the rows without the organisation
// (grainDomainDay) that the dashboard's overview reads equal the direct
// aggregation of the stored policy rows per (day, policy domain): the
// reports, the sessions and the pseudo result types' columns, on random
// data with duplicates (RPT-RECV-4: a duplicate counts once); Summary
// reads them exactly when it groups by domain without the organisation
// and without a domain filter.
func TestDomainDayRollupEqualsRaw(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, st reports.Store) {
		loadRandom(t, st)
		ctx := context.Background()
		s := st.(*sqlStore)
		d := func(s string) time.Time { t, _ := time.Parse(time.DateOnly, s); return t }
		dayDomain := []string{reports.GroupDay, reports.GroupPolicyDomain}
		for _, c := range []struct {
			f    reports.Filter
			want int
		}{
			{reports.Filter{GroupBy: dayDomain}, grainDomainDay},
			{reports.Filter{GroupBy: []string{reports.GroupPolicyDomain}}, grainDomainDay},
			{reports.Filter{GroupBy: dayDomain, Since: d("2025-01-02"), Until: d("2025-01-03")}, grainDomainDay},
			{reports.Filter{GroupBy: dayDomain, Since: d("2025-01-04")}, grainDomainDay},
			// A domain filter: the same rows, through their index.
			{reports.Filter{GroupBy: dayDomain, Domains: []string{"a.example", "c.example"}}, grainDomainDay},
			{reports.Filter{GroupBy: dayDomain, PolicyDomain: "b.example"}, grainDomainDay},
			{reports.Filter{GroupBy: []string{reports.GroupDay}, PolicyDomain: "b.example", Since: d("2025-01-02")}, grainDomainDay},
			// The organisation or the result type: the rows with the
			// organisation.
			{reports.Filter{GroupBy: dayDomain, Organization: "Yahoo"}, grainDomain},
			{reports.Filter{GroupBy: append(slices.Clone(dayDomain), reports.GroupOrganization)}, grainDomain},
			{reports.Filter{GroupBy: []string{reports.GroupResultType}, PolicyDomain: "b.example"}, grainDomain},
			{reports.Filter{GroupBy: append(slices.Clone(dayDomain), reports.GroupResultType)}, grainDomain},
			{reports.Filter{GroupBy: []string{reports.GroupDay}}, 0},
		} {
			cols, byResult, err := summaryColumns(c.f)
			if err != nil {
				t.Fatal(err)
			}
			if g, ok := rollupGrain(c.f, cols, byResult); !ok || g != c.want {
				t.Errorf("%+v: grain %d (%v), want %d", c.f, g, ok, c.want)
			}
			got, err := st.Summary(ctx, c.f)
			if err != nil {
				t.Fatal(err)
			}
			want, err := s.summaryRaw(ctx, c.f)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) || len(got) == 0 {
				t.Fatalf("%+v: rollup differs from raw (or empty)\nrollup %+v\nraw    %+v", c.f, got, want)
			}
		}
		// The table itself, every column, against the raw aggregation:
		// with every report folded (fold.go).
		if err := s.Fold(ctx); err != nil {
			t.Fatal(err)
		}
		raw, err := s.summaryRaw(ctx, reports.Filter{GroupBy: append(slices.Clone(dayDomain), reports.GroupResultType)})
		if err != nil {
			t.Fatal(err)
		}
		totals, err := s.summaryRaw(ctx, reports.Filter{GroupBy: dayDomain})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]*rollupSums{}
		get := func(day, dom string) *rollupSums {
			k := day + " " + dom
			if want[k] == nil {
				want[k] = &rollupSums{}
			}
			return want[k]
		}
		for _, r := range totals {
			w := get(r.Day, r.PolicyDomain)
			w.reports, w.successful, w.failed = r.Reports, r.Successful, r.Failed
		}
		for _, r := range raw {
			w := get(r.Day, r.PolicyDomain)
			switch r.ResultType {
			case reports.ResultSuccess:
				w.succReports = r.Reports
			case reports.ResultNoDetails:
				w.ndReports, w.ndFailed = r.Reports, r.Failed
			}
		}
		rows, err := s.r.QueryContext(ctx, s.d.rebind(`SELECT kind, day, organization, policy_domain, mx_host, policy_type, result_type,
			reports, successful, failed, success_reports, nodetails_reports, nodetails_failed FROM summary_rollup WHERE grain = ?`), grainDomainDay)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		n := 0
		for rows.Next() {
			var kind int
			var day, org, dom, mx, pt, rt string
			var g rollupSums
			if err := rows.Scan(&kind, &day, &org, &dom, &mx, &pt, &rt, &g.reports, &g.successful, &g.failed, &g.succReports, &g.ndReports, &g.ndFailed); err != nil {
				t.Fatal(err)
			}
			n++
			if kind != kindTotal || org != "" || mx != "" || pt != "" || rt != "" {
				t.Errorf("row %s %s: kind %d org %q mx %q type %q result %q, want a total row with only day and domain", day, dom, kind, org, mx, pt, rt)
			}
			w := want[day+" "+dom]
			if w == nil || *w != g {
				t.Errorf("row %s %s: %+v, raw %+v", day, dom, g, w)
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if n != len(want) || n < 10 {
			t.Errorf("%d rows without the organisation, raw has %d (day, domain) groups", n, len(want))
		}
	})
}

// TestCompareRollupKeys checks the rollup's key order (the order the
// upserts take PostgreSQL's row locks in) against the lexicographic
// order of the keys' columns, on keys that differ in every column.
func TestCompareRollupKeys(t *testing.T) {
	t.Parallel()
	var keys []rollupKey
	vals := []string{"", "a", "b"}
	for i := range 2 * 2 * 3 * 3 * 3 * 3 * 3 * 3 {
		j := i
		pick := func(n int) int { v := j % n; j /= n; return v }
		keys = append(keys, rollupKey{grain: pick(2), kind: pick(2), day: vals[pick(3)], org: vals[pick(3)],
			domain: vals[pick(3)], mx: vals[pick(3)], ptype: vals[pick(3)], rtype: vals[pick(3)]})
	}
	ref := func(a, b rollupKey) int {
		return cmp.Or(cmp.Compare(a.grain, b.grain), cmp.Compare(a.kind, b.kind), strings.Compare(a.day, b.day),
			strings.Compare(a.org, b.org), strings.Compare(a.domain, b.domain), strings.Compare(a.mx, b.mx),
			strings.Compare(a.ptype, b.ptype), strings.Compare(a.rtype, b.rtype))
	}
	for i := 0; i < len(keys); i += 7 {
		a := keys[i]
		for _, b := range keys {
			if got, want := compareRollupKeys(a, b), ref(a, b); got != want {
				t.Fatalf("compareRollupKeys(%+v, %+v) = %d, want %d", a, b, got, want)
			}
		}
	}
}
