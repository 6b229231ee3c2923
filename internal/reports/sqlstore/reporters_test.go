package sqlstore

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/tlsrpt"
)

// rawReporters is Reporters computed from the direct aggregation over the
// stored rows (summaryRaw per day, domain and organisation).
func rawReporters(t *testing.T, s *sqlStore, f reports.Filter) []reports.ReporterRow {
	t.Helper()
	f.GroupBy = []string{reports.GroupDay, reports.GroupPolicyDomain, reports.GroupOrganization}
	rows, err := s.summaryRaw(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return reporterRows(rows)
}

// TestReportersEqualsRaw: the reports and last day per (domain,
// organisation), summed by the database over the rollup, equal the
// direct aggregation over the stored rows, on random data with
// duplicates (RPT-RECV-4), for filters the rollup answers and those it
// does not; through Scoped, only the user's domains.
func TestReportersEqualsRaw(t *testing.T) {
	t.Parallel()
	d := func(s string) time.Time { t, _ := time.Parse(time.DateOnly, s); return t }
	filters := []reports.Filter{
		{},
		{Since: d("2025-01-02"), Until: d("2025-01-03")},
		{Until: d("2025-01-02")},
		{PolicyDomain: "B.example."},
		{Domains: []string{"a.example", "c.example"}, Since: d("2025-01-02")},
		{Organization: "Mail.Ru"},
		{ResultType: string(tlsrpt.ResultCertificateExpired)},
		{MXHost: "mx0.a.example"},
		{AuthenticatedOnly: true},
		// GroupBy is ignored.
		{GroupBy: []string{reports.GroupMXHost}},
	}
	backends(t, func(t *testing.T, st reports.Store) {
		loadRandom(t, st)
		ctx := context.Background()
		s := st.(*sqlStore)
		nonEmpty := 0
		for _, f := range filters {
			got, err := st.Reporters(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			want := rawReporters(t, s, f)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%+v: Reporters differs from raw\ngot  %+v\nwant %+v", f, got, want)
			}
			if len(got) > 1 {
				nonEmpty++
			}
		}
		if nonEmpty < len(filters)-2 {
			t.Errorf("only %d of %d filters returned several rows: the data does not exercise Reporters", nonEmpty, len(filters))
		}
		all, err := st.Reporters(ctx, reports.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		// Three domains × three organisations over four days.
		if len(all) != 9 {
			t.Errorf("Reporters of everything: %d rows, want 9: %+v", len(all), all)
		}
		var n int64
		for _, r := range all {
			n += r.Reports
			if r.LastDay < "2025-01-01" || r.LastDay > "2025-01-04" {
				t.Errorf("%+v: last day out of the data's range", r)
			}
		}
		if n < 200 {
			t.Errorf("reports summed %d, want at least the 200 distinct reports", n)
		}
		scoped, err := reports.Scoped(st, []string{"c.example"}).Reporters(ctx, reports.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		if want := rawReporters(t, s, reports.Filter{PolicyDomain: "c.example"}); len(want) == 0 || !reflect.DeepEqual(scoped, want) {
			t.Errorf("scoped to c.example: %+v, want %+v", scoped, want)
		}
		bad := []reports.Filter{{Limit: -1}, {Since: d("2025-01-03"), Until: d("2025-01-02")}}
		for _, f := range bad {
			if _, err := st.Reporters(ctx, f); err == nil {
				t.Errorf("%+v: no error", f)
			}
		}
	})
}
