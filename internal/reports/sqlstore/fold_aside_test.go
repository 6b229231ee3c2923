package sqlstore

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/reportstest"
	"github.com/mailsts/mailsts/internal/sqlitedb"
)

// asideStore opens a SQLite store without its background fold, with n
// forged (unauthenticated) reports pending, and counts the folds that
// read aside.
func asideStore(t *testing.T, n int) (*sqlStore, *atomic.Int64) {
	t.Helper()
	st := openTestSQLite(t)
	s := st.(*sqlStore)
	s.folder.stop()
	var in []reports.Incoming
	for i := range n {
		in = append(in, reports.Incoming{Report: reportstest.Forged(reportstest.SynthReport(i)), Raw: []byte("{}"),
			Source: reports.SourceHTTP, ReceivedAt: reportstest.FixedNow()})
	}
	if _, err := s.PutReports(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	reads := &atomic.Int64{}
	s.asideHook = func() { reads.Add(1) }
	return s, reads
}

// duringFirstRead makes f run between the first fold aside's read and
// its write.
func duringFirstRead(s *sqlStore, reads *atomic.Int64, f func()) {
	s.asideHook = func() {
		if reads.Add(1) == 1 {
			f()
		}
	}
}

// pendingCount is the number of reports not yet in the rollup.
func pendingCount(t *testing.T, s *sqlStore) int {
	t.Helper()
	var n int
	if err := s.r.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM reports WHERE pending <> 0`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// checkFolded fails t unless nothing is pending and Summary and
// Reporters equal the direct aggregation, counting want reports.
func checkFolded(t *testing.T, s *sqlStore, want int64) {
	t.Helper()
	if n := pendingCount(t, s); n != 0 {
		t.Errorf("%d reports pending after the fold", n)
	}
	checkSummaryConsistent(t, s)
	if n, _, _ := reportstest.OrgTotals(t, s, reports.Filter{}); n != want {
		t.Errorf("summary counts %d reports, want %d", n, want)
	}
}

// On SQLite the background fold reads and aggregates the pending
// reports before it takes the write lock (fold_aside.go), and the rollup
// it writes is the one the one-transaction fold writes. Fold, which
// Close and Prune call when nothing else writes, folds in one
// transaction.
func TestFoldAside(t *testing.T) {
	t.Parallel()
	s, reads := asideStore(t, 30)
	if err := s.fold(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	if reads.Load() != 1 || s.asideFallbacks.Load() != 0 {
		t.Errorf("%d folds aside, %d fell back; want 1 and 0", reads.Load(), s.asideFallbacks.Load())
	}
	checkFolded(t, s, 30)
	for i := 30; i < 40; i++ {
		reportstest.Put(t, s, reportstest.SynthReport(i), nil)
	}
	if err := s.Fold(context.Background()); err != nil {
		t.Fatal(err)
	}
	if reads.Load() != 1 {
		t.Errorf("Fold folded aside")
	}
	checkFolded(t, s, 40)
}

// A report whose count moves to an authenticated copy (conflict.go)
// between the fold's read and its write is not pending any more when
// the fold writes: the fold notices (fewer marks cleared than reports
// read) and runs again in one transaction, which folds the copy that
// now counts instead. RPT-RECV-4.
func TestFoldAsideFallsBackWhenACountMoves(t *testing.T) {
	t.Parallel()
	s, reads := asideStore(t, 30)
	ctx := context.Background()
	duringFirstRead(s, reads, func() {
		if _, err := s.PutReport(ctx, reports.Incoming{Report: reportstest.SynthReport(7), Raw: []byte("{}"),
			Source: reports.SourceMail, ReceivedAt: reportstest.FixedNow(), Authenticated: true, DKIMDomain: "example.net"}); err != nil {
			t.Error(err)
		}
	})
	if err := s.fold(ctx, true); err != nil {
		t.Fatal(err)
	}
	if s.asideFallbacks.Load() != 1 {
		t.Errorf("%d folds fell back, want 1", s.asideFallbacks.Load())
	}
	checkFolded(t, s, 30)
}

// Reports stored while a fold reads are left pending by it (it clears
// the marks of the reports it read, and those only), and the next fold
// takes them.
func TestFoldAsideLeavesLaterReportsPending(t *testing.T) {
	t.Parallel()
	s, reads := asideStore(t, 30)
	ctx := context.Background()
	duringFirstRead(s, reads, func() {
		for i := 30; i < 40; i++ {
			reportstest.Put(t, s, reportstest.SynthReport(i), nil)
		}
	})
	if err := s.fold(ctx, true); err != nil {
		t.Fatal(err)
	}
	if n := pendingCount(t, s); n != 10 || s.asideFallbacks.Load() != 0 {
		t.Errorf("%d pending after the fold, %d fell back; want 10 and 0", n, s.asideFallbacks.Load())
	}
	checkSummaryConsistent(t, s)
	if err := s.fold(ctx, true); err != nil {
		t.Fatal(err)
	}
	checkFolded(t, s, 40)
}

// Another process holding the write lock when the fold would write: the
// fold's own connection does not wait (busy_timeout 0), and the fold
// runs in one transaction through the writer pool, which waits for the
// lock.
func TestFoldAsideWaitsForAnotherWriter(t *testing.T) {
	t.Parallel()
	s, reads := asideStore(t, 30)
	ctx := context.Background()
	other, err := sqlitedb.Open(s.loc, sqlitedb.Options{BusyTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	released := make(chan time.Time, 1)
	duringFirstRead(s, reads, func() {
		tx, err := other.W.BeginTx(ctx, nil) // BEGIN IMMEDIATE: the write lock
		if err != nil {
			t.Error(err)
			return
		}
		go func() {
			time.Sleep(200 * time.Millisecond)
			released <- time.Now()
			tx.Rollback()
		}()
	})
	if err := s.fold(ctx, true); err != nil {
		t.Fatal(err)
	}
	done := time.Now()
	select {
	case at := <-released:
		if done.Before(at) {
			t.Errorf("the fold ended before the other writer let go of the lock")
		}
	default:
		t.Fatal("the fold ended while the other writer held the lock")
	}
	checkFolded(t, s, 30)
}

// A fold aside that fails before it writes (here its read) leaves the
// work to the fold in one transaction, and says so.
func TestFoldAsideFailureFallsBack(t *testing.T) {
	t.Parallel()
	var log bytes.Buffer
	st, err := OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "reports.db"), slog.New(slog.NewTextHandler(&log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := st.(*sqlStore)
	s.folder.stop()
	for i := range 20 {
		reportstest.Put(t, s, reportstest.SynthReport(i), nil)
	}
	s.aside = &asidePlan{read: []string{`SELECT no_such_column FROM reports`}}
	if err := s.fold(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	checkFolded(t, s, 20)
	if !strings.Contains(log.String(), "fold aside failed") {
		t.Errorf("no warning logged:\n%s", log.String())
	}
}
