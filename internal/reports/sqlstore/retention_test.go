package sqlstore

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/reportstest"
)

// TestPrune: issue #11.5. Reports before a day go with their policies,
// details and rollup rows; the summary afterwards equals the summary of
// the remaining reports loaded into a fresh store, for every grouping.
func TestPrune(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, st reports.Store) {
		ctx := context.Background()
		s := st.(*sqlStore)
		before := time.Date(2025, 1, 11, 0, 0, 0, 0, time.UTC)
		var all, kept []reports.Incoming
		for i := range 120 {
			r := reportstest.SynthReport(i)
			in := reports.Incoming{Report: r, Raw: []byte("{}"), Source: reports.SourceFile, ReceivedAt: reportstest.FixedNow()}
			all = append(all, in)
			if !r.DateRange.Start.Before(before) {
				kept = append(kept, in)
			}
		}
		// Half of them folded into the rollup, half pending (fold.go).
		if _, err := st.PutReports(ctx, all[:60]); err != nil {
			t.Fatal(err)
		}
		if err := s.Fold(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := st.PutReports(ctx, all[60:]); err != nil {
			t.Fatal(err)
		}
		// Rejected input on both sides of the day.
		for _, at := range []time.Time{before.Add(-time.Hour), before.Add(time.Hour)} {
			if _, err := st.PutRejected(ctx, reports.Rejection{Raw: []byte("x"), Source: reports.SourceHTTP, ReceivedAt: at, Reason: reports.ReasonSyntax}); err != nil {
				t.Fatal(err)
			}
		}
		beforeRows, _ := st.Summary(ctx, reports.Filter{})
		dry, err := st.Prune(ctx, reports.Prune{Before: before, DryRun: true})
		if err != nil {
			t.Fatal(err)
		}
		if want := int64(len(all) - len(kept)); dry.Reports != want || dry.Rejected != 1 || dry.RollupRows == 0 {
			t.Errorf("dry run %+v, want %d reports and 1 rejected", dry, want)
		}
		if rows, _ := st.Summary(ctx, reports.Filter{}); !reflect.DeepEqual(rows, beforeRows) {
			t.Error("dry run changed the data")
		}
		// A background fold between the dry run and the prune (as in CI,
		// stop 22) changes nothing: the dry run folded first.
		if err := s.Fold(ctx); err != nil {
			t.Fatal(err)
		}
		res, err := st.Prune(ctx, reports.Prune{Before: before})
		if err != nil || res != dry {
			t.Fatalf("prune %+v %v, want %+v", res, err, dry)
		}
		fresh := openTestSQLite(t)
		if _, err := fresh.PutReports(ctx, kept); err != nil {
			t.Fatal(err)
		}
		for _, f := range rollupFilters() {
			got, err := st.Summary(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			want, err := fresh.Summary(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%+v: after prune\n%+v\nwant (remaining reports only)\n%+v", f, got, want)
			}
			raw, err := s.summaryRaw(ctx, f)
			if err != nil || !reflect.DeepEqual(got, raw) {
				t.Fatalf("%+v: rollup after prune differs from the rows: %v", f, err)
			}
		}
		if fs, _ := st.Failures(ctx, reports.Filter{Until: before.AddDate(0, 0, -1)}); len(fs) != 0 {
			t.Errorf("%d failure details of pruned reports left", len(fs))
		}
		rej, _ := st.ListRejected(ctx, reports.Filter{})
		if len(rej) != 1 || rej[0].ReceivedAt.Before(before) {
			t.Errorf("rejected after prune: %+v", rej)
		}
		if _, err := st.Prune(ctx, reports.Prune{}); !errors.Is(err, reports.ErrBadFilter) {
			t.Errorf("prune without a day: %v", err)
		}
	})
}

// When the fold before a prune fails, the prune fails and deletes
// nothing, while a dry run (which a user who may only read the file can
// ask for) still counts, without the rollup rows of the pending reports.
func TestPruneFoldFails(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openTestSQLite(t)
	s := st.(*sqlStore)
	s.folder.stop() // the reports stay pending
	var in []reports.Incoming
	for i := range 40 {
		in = append(in, reports.Incoming{Report: reportstest.SynthReport(i), Raw: []byte("{}"), Source: reports.SourceFile, ReceivedAt: reportstest.FixedNow()})
	}
	if _, err := st.PutReports(ctx, in); err != nil {
		t.Fatal(err)
	}
	s.d.foldSQL = []string{`SELECT no_such_column FROM reports`}
	s.aside = &asidePlan{read: s.d.foldSQL} // and the fold aside (fold_aside.go)
	before := time.Date(2025, 1, 11, 0, 0, 0, 0, time.UTC)
	dry, err := st.Prune(ctx, reports.Prune{Before: before, DryRun: true})
	if err != nil || dry.Reports == 0 || dry.RollupRows != 0 {
		t.Errorf("dry run with the fold failing: %+v, %v; want the reports counted and no rollup rows", dry, err)
	}
	if _, err := st.Prune(ctx, reports.Prune{Before: before}); err == nil {
		t.Error("prune with the fold failing succeeded")
	}
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM reports`).Scan(&n); err != nil || n != len(in) {
		t.Errorf("%d reports after the failed prune (%v), want %d", n, err, len(in))
	}
}
