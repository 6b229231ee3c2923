package sqlstore

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/reportstest"
)

// putSynth stores the first n synthetic reports.
func putSynth(t *testing.T, st reports.Store, n int) {
	t.Helper()
	for i := range n {
		reportstest.Put(t, st, reportstest.SynthReport(i), nil)
	}
}

// Filter.Domains keeps only those policy domains, in the rollup (Summary
// grouped or not), the direct aggregation, Failures and ListReports.
func TestFilterDomains(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, st reports.Store) {
		ctx := context.Background()
		putSynth(t, st, 60)
		one := func(d string) (n, succ, fail int64) {
			return reportstest.OrgTotals(t, st, reports.Filter{PolicyDomain: d})
		}
		n1, s1, f1 := one("d1.example")
		n2, s2, f2 := one("d2.example")
		if n1 == 0 || n2 == 0 {
			t.Fatal("fixture has no reports for d1/d2")
		}
		n, s, f := reportstest.OrgTotals(t, st, reports.Filter{Domains: []string{"D1.example.", "d2.example"}})
		if n != n1+n2 || s != s1+s2 || f != f1+f2 {
			t.Errorf("Domains d1,d2: %d/%d/%d, want %d/%d/%d", n, s, f, n1+n2, s1+s2, f1+f2)
		}
		for _, g := range [][]string{{reports.GroupDay, reports.GroupPolicyDomain}, {reports.GroupResultType}, {reports.GroupOrganization, reports.GroupMXHost}} {
			fl := reports.Filter{Domains: []string{"d1.example", "d2.example"}, GroupBy: g}
			got, want := summaryAndRaw(t, ctx, st, fl)
			if len(got) == 0 || len(got) != len(want) {
				t.Fatalf("group %v: rollup %d rows, direct %d", g, len(got), len(want))
			}
			for i := range got {
				if got[i].Reports != want[i].Reports || got[i].Successful != want[i].Successful || got[i].Failed != want[i].Failed ||
					got[i].PolicyDomain != want[i].PolicyDomain {
					t.Errorf("group %v row %d: rollup %+v, direct %+v", g, i, got[i], want[i])
				}
				if got[i].PolicyDomain != "" && got[i].PolicyDomain != "d1.example" && got[i].PolicyDomain != "d2.example" {
					t.Errorf("row of another domain: %+v", got[i])
				}
			}
		}
		fails, err := st.Failures(ctx, reports.Filter{Domains: []string{"d1.example"}})
		if err != nil {
			t.Fatal(err)
		}
		var fsum int64
		for _, x := range fails {
			if x.PolicyDomain != "d1.example" {
				t.Errorf("failure of %s", x.PolicyDomain)
			}
			fsum += x.FailedSessionCount
		}
		byResult, err := st.Summary(ctx, reports.Filter{PolicyDomain: "d1.example", GroupBy: []string{reports.GroupResultType}})
		if err != nil {
			t.Fatal(err)
		}
		var want int64
		for _, r := range byResult {
			if r.ResultType != reports.ResultSuccess && r.ResultType != reports.ResultNoDetails {
				want += r.Failed
			}
		}
		if fsum != want || fsum == 0 {
			t.Errorf("Failures d1 sum %d, Summary by result %d", fsum, want)
		}
		if _, err := st.Summary(ctx, reports.Filter{Domains: make([]string, reports.MaxFilterDomains+1)}); !errors.Is(err, reports.ErrBadFilter) {
			t.Errorf("too many domains: %v", err)
		}
	})
}

// ListReports lists each report with a matching policy once, with the
// totals of those policies: they add up to Summary's.
func TestListReports(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, st reports.Store) {
		ctx := context.Background()
		putSynth(t, st, 60)
		for _, f := range []reports.Filter{{}, {PolicyDomain: "d3.example"}, {Organization: "Yahoo"}, {Domains: []string{"d1.example", "d4.example"}},
			{ResultType: "starttls-not-supported"}, {MXHost: "mx1.d2.example"}} {
			rows, err := st.ListReports(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			n, succ, fail := reportstest.OrgTotals(t, st, f)
			var gs, gf int64
			seen := map[int64]bool{}
			for i, r := range rows {
				if seen[r.ID] {
					t.Errorf("%+v: report %d listed twice", f, r.ID)
				}
				seen[r.ID] = true
				gs += r.Successful
				gf += r.Failed
				if i > 0 && rows[i-1].Day < r.Day {
					t.Errorf("%+v: not newest first at %d", f, i)
				}
			}
			if int64(len(rows)) != n || gs != succ || gf != fail || n == 0 {
				t.Errorf("%+v: listed %d reports %d/%d, Summary %d reports %d/%d", f, len(rows), gs, gf, n, succ, fail)
			}
		}
		rows, err := st.ListReports(ctx, reports.Filter{Limit: 5})
		if err != nil || len(rows) != 5 {
			t.Errorf("limit 5: %d rows, %v", len(rows), err)
		}
		// Pages of 7 after each page's cursor list every report once, in
		// the same order as one list.
		for _, f := range []reports.Filter{{}, {PolicyDomain: "d3.example"}, {ResultType: "starttls-not-supported"}} {
			all, err := st.ListReports(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			var paged []reports.ReportRow
			page := f
			page.Limit = 7
			for range len(all) + 1 { // bounded: each page is full or the last
				rows, err := st.ListReports(ctx, page)
				if err != nil {
					t.Fatal(err)
				}
				paged = append(paged, rows...)
				if len(rows) < page.Limit {
					break
				}
				page.Cursor = reports.NextReports(rows)
			}
			if len(paged) != len(all) || len(all) < 8 && f.PolicyDomain == "" {
				t.Fatalf("%+v: %d reports over the pages, %d in one list", f, len(paged), len(all))
			}
			for i := range all {
				if paged[i].ID != all[i].ID {
					t.Fatalf("%+v: row %d is report %d over the pages, %d in one list", f, i, paged[i].ID, all[i].ID)
				}
			}
		}
		if _, err := st.ListReports(ctx, reports.Filter{Cursor: "not-a-cursor"}); !errors.Is(err, reports.ErrBadFilter) {
			t.Errorf("bad cursor: %v", err)
		}
	})
}

// A Scoped store answers only for its domains, hides rejected input and
// refuses writes.
func TestScoped(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, st reports.Store) {
		ctx := context.Background()
		putSynth(t, st, 30)
		if _, err := st.PutRejected(ctx, reports.Rejection{Raw: []byte("x"), Reason: reports.ReasonSyntax, Source: reports.SourceHTTP}); err != nil {
			t.Fatal(err)
		}
		sc := reports.Scoped(st, []string{"D1.example"})
		n, _, _ := reportstest.OrgTotals(t, sc, reports.Filter{})
		n1, _, _ := reportstest.OrgTotals(t, st, reports.Filter{PolicyDomain: "d1.example"})
		if n != n1 || n == 0 {
			t.Errorf("scoped totals %d reports, d1 has %d", n, n1)
		}
		if n, _, _ := reportstest.OrgTotals(t, sc, reports.Filter{PolicyDomain: "d2.example"}); n != 0 {
			t.Errorf("scoped store answered for d2: %d reports", n)
		}
		if n, _, _ := reportstest.OrgTotals(t, sc, reports.Filter{Domains: []string{"d2.example"}}); n != 0 {
			t.Errorf("scoped store answered for Domains d2: %d reports", n)
		}
		if rows, _ := sc.Failures(ctx, reports.Filter{}); len(rows) == 0 {
			t.Error("no failures in scope")
		} else {
			for _, r := range rows {
				if r.PolicyDomain != "d1.example" {
					t.Errorf("failure of %s", r.PolicyDomain)
				}
			}
		}
		// Report 1 covers d1 only; report 2 covers d2.
		if got, err := sc.Show(ctx, reportstest.SynthReport(1).ReportID); err != nil || len(got) != 1 || len(got[0].Raw) == 0 {
			t.Errorf("Show d1 report: %v", err)
		}
		if _, err := sc.Show(ctx, reportstest.SynthReport(2).ReportID); !errors.Is(err, reports.ErrNotFound) {
			t.Errorf("Show d2 report through the d1 scope: %v", err)
		}
		if rj, _ := sc.ListRejected(ctx, reports.Filter{}); len(rj) != 0 {
			t.Error("scoped store lists rejected input")
		}
		if _, err := sc.PutReport(ctx, reports.Incoming{}); !errors.Is(err, reports.ErrReadOnly) {
			t.Errorf("PutReport through scope: %v", err)
		}
	})
}

// FailureGroups per result type equals Summary by result type; each
// sending IP's group equals the Failures filtered by that IP.
func TestFailureGroups(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, st reports.Store) {
		ctx := context.Background()
		putSynth(t, st, 60)
		f := reports.Filter{PolicyDomain: "d3.example"}
		groups, err := st.FailureGroups(ctx, f, reports.FailureKeyResult)
		if err != nil {
			t.Fatal(err)
		}
		sf := f
		sf.GroupBy = []string{reports.GroupResultType}
		sum, err := st.Summary(ctx, sf)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int64{}
		for _, r := range sum {
			if r.ResultType != reports.ResultSuccess && r.ResultType != reports.ResultNoDetails {
				want[r.ResultType] = r.Failed
			}
		}
		if len(groups) != len(want) || len(groups) == 0 {
			t.Fatalf("groups %+v, summary %v", groups, want)
		}
		for i, g := range groups {
			if want[g.Key] != g.Failed {
				t.Errorf("result %s: groups %d, summary %d", g.Key, g.Failed, want[g.Key])
			}
			if i > 0 && groups[i-1].Failed < g.Failed {
				t.Errorf("not largest first: %+v", groups)
			}
		}
		ips, err := st.FailureGroups(ctx, f, reports.FailureKeySendingIP)
		if err != nil || len(ips) == 0 {
			t.Fatalf("ip groups: %v %v", ips, err)
		}
		for _, g := range ips {
			ff := f
			ff.SendingIP = g.Key
			rows, err := st.Failures(ctx, ff)
			if err != nil {
				t.Fatal(err)
			}
			var n int64
			for _, r := range rows {
				if r.SendingMTAIP != g.Key {
					t.Errorf("Failures ip=%q gave %q", g.Key, r.SendingMTAIP)
				}
				n += r.FailedSessionCount
			}
			if n != g.Failed || int64(len(rows)) != g.Details {
				t.Errorf("ip %q: group %+v, failures %d rows %d sessions", g.Key, g, len(rows), n)
			}
		}
		if _, err := st.FailureGroups(ctx, f, "nope"); !errors.Is(err, reports.ErrBadFilter) {
			t.Errorf("unknown key: %v", err)
		}
	})
}

// A domain's Summary over a day range reads an index of the rollup (the
// rows without the organisation by day, or the domain grain's by result
// type), not every domain's rows of those days; Reporters reads its
// covering index.
func TestRollupDomainIndexUsed(t *testing.T) {
	t.Parallel()
	st := openTestSQLite(t).(*sqlStore)
	putSynth(t, st, 20)
	plan := func(q string, args []any) string {
		t.Helper()
		rows, err := st.r.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+st.d.rebind(q), args...)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var plan string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan += detail + "\n"
		}
		return plan
	}
	since, until := reportstest.FixedNow().AddDate(0, -3, 0), reportstest.FixedNow()
	for _, c := range []struct {
		f     reports.Filter
		grain int
		index string
	}{
		{reports.Filter{PolicyDomain: "d1.example", GroupBy: []string{reports.GroupDay}}, grainDomainDay, "summary_rollup_domainday_day"},
		{reports.Filter{Domains: []string{"d1.example", "d2.example"}, GroupBy: []string{reports.GroupDay, reports.GroupPolicyDomain}}, grainDomainDay, "summary_rollup_domainday_day"},
		{reports.Filter{PolicyDomain: "d1.example", GroupBy: []string{reports.GroupResultType}}, grainDomain, "summary_rollup_domain_day"},
		{reports.Filter{PolicyDomain: "d1.example", GroupBy: []string{reports.GroupOrganization}}, grainDomain, "summary_rollup_domain_day"},
	} {
		f := c.f
		f.Since, f.Until = since, until
		cols, byResult, err := summaryColumns(f)
		if err != nil {
			t.Fatal(err)
		}
		grain, ok := rollupGrain(f, cols, byResult)
		if !ok || grain != c.grain {
			t.Fatalf("%v: grain %d %v, want %d", f.GroupBy, grain, ok, c.grain)
		}
		q, args := st.summaryRollupQuery(f, cols, byResult, grain)
		if p := plan(q, args); !strings.Contains(p, c.index) {
			t.Errorf("%v: plan does not use %s:\n%s\n%s %v", f.GroupBy, c.index, p, q, args)
		}
	}
	q, args := st.reportersQuery(reports.Filter{Domains: []string{"d1.example"}, Since: since, Until: until})
	if p := plan(q, args); !strings.Contains(p, "COVERING INDEX summary_rollup_reporters") {
		t.Errorf("Reporters: plan does not cover with summary_rollup_reporters:\n%s\n%s %v", p, q, args)
	}
}
