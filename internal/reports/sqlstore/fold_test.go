package sqlstore

import (
	"context"
	"path/filepath"
	"reflect"
	"sync"
	"testing"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/reportstest"
)

// TestFoldWhileCountsMove (RPT-RECV-4): folds running while writers move
// the counts of stored reports to authenticated copies (conflict.go)
// leave the rollup exact: a copy is subtracted from the rollup exactly
// when a fold had added it, however the fold and the move interleave
// (PostgreSQL: concurrent transactions; SQLite: one writer). Summary and
// Reporters equal the direct aggregation with reports pending and after
// the last fold, when they read the rollup alone.
func TestFoldWhileCountsMove(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, st reports.Store) {
		ctx := context.Background()
		s := st.(*sqlStore)
		const keys = 40
		var forged []reports.Incoming
		for i := range keys {
			forged = append(forged, reports.Incoming{Report: reportstest.Forged(reportstest.SynthReport(i)), Raw: []byte("{}"),
				Source: reports.SourceHTTP, ReceivedAt: reportstest.FixedNow()})
		}
		// Half the forged copies folded, half pending.
		if _, err := st.PutReports(ctx, forged[:keys/2]); err != nil {
			t.Fatal(err)
		}
		if err := s.Fold(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := st.PutReports(ctx, forged[keys/2:]); err != nil {
			t.Fatal(err)
		}
		checkSummaryConsistent(t, st)
		var wg sync.WaitGroup
		errs := make(chan error, keys+1)
		done := make(chan struct{})
		for i := range keys {
			wg.Go(func() {
				_, err := st.PutReport(ctx, reports.Incoming{Report: reportstest.SynthReport(i), Raw: []byte("{}"),
					Source: reports.SourceMail, ReceivedAt: reportstest.FixedNow(), Authenticated: true, DKIMDomain: "example.net"})
				if err != nil {
					errs <- err
				}
			})
		}
		var fg sync.WaitGroup
		fg.Go(func() {
			for range 1000 { // bounded; ends when the writers are done
				select {
				case <-done:
					return
				default:
				}
				// As the background fold does: aside on SQLite.
				if err := s.fold(ctx, true); err != nil {
					errs <- err
					return
				}
			}
		})
		wg.Wait()
		close(done)
		fg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		checkSummaryConsistent(t, st)
		if n, _, _ := reportstest.OrgTotals(t, st, reports.Filter{}); n != keys {
			t.Errorf("summary counts %d reports, want %d", n, keys)
		}
		if err := s.Fold(ctx); err != nil {
			t.Fatal(err)
		}
		checkFolded(t, s, keys)
	})
}

// TestFoldMigration: a database of schema version 8 (its rollup complete)
// migrates to version 9 with every report folded, and Summary stays
// exact; Close folds what is pending.
func TestFoldMigration(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "reports.db")
	st, err := OpenSQLite(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := st.(*sqlStore)
	for i := range 30 {
		reportstest.Put(t, st, reportstest.SynthReport(i), nil)
	}
	if err := s.Fold(ctx); err != nil {
		t.Fatal(err)
	}
	// Back to version 8: the column and its index did not exist.
	if _, err := s.w.ExecContext(ctx, `DROP INDEX reports_pending; ALTER TABLE reports DROP COLUMN pending; PRAGMA user_version = 8`); err != nil {
		t.Fatal(err)
	}
	st.Close()
	st, err = OpenSQLite(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	s = st.(*sqlStore)
	var v int
	if err := s.r.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil || v != 9 {
		t.Fatalf("schema version %d (%v), want 9", v, err)
	}
	checkSummaryConsistent(t, st)
	want, err := st.Summary(ctx, reports.Filter{GroupBy: []string{reports.GroupOrganization, reports.GroupResultType}})
	if err != nil {
		t.Fatal(err)
	}
	// More reports, pending until Close folds them (the background
	// fold stopped, so that only Close can).
	s.folder.stop() // before the puts: a loaded machine may take foldAfter over them
	for i := 30; i < 40; i++ {
		reportstest.Put(t, st, reportstest.SynthReport(i), nil)
	}
	countPending := func() int {
		t.Helper()
		var n int
		if err := s.w.QueryRowContext(ctx, `SELECT COUNT(*) FROM reports WHERE pending <> 0`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// A store that only queries leaves them pending when it closes.
	q, err := OpenSQLite(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkSummaryConsistent(t, q)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if n := countPending(); n != 10 {
		t.Fatalf("%d reports pending after a querying store closed, want 10", n)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = OpenSQLite(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s = st.(*sqlStore)
	var pending int
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM reports WHERE pending <> 0`).Scan(&pending); err != nil || pending != 0 {
		t.Fatalf("%d reports pending after Close (%v)", pending, err)
	}
	checkSummaryConsistent(t, st)
	got, err := st.Summary(ctx, reports.Filter{GroupBy: []string{reports.GroupOrganization, reports.GroupResultType}})
	if err != nil {
		t.Fatal(err)
	}
	if reflect.DeepEqual(got, want) {
		t.Error("the reports stored after the migration are not counted")
	}
}
