package sqlstore

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/reportstest"
	"github.com/mailsts/mailsts/tlsrpt"
)

// endingCtx is a context whose Err reports cancellation from its
// (after+1)th call on, whose Done channel never closes: it ends exactly
// where PutReports looks, as a request's context does that ends while
// its statements run without its cancellation.
type endingCtx struct {
	context.Context
	after int32
	calls atomic.Int32
}

func (c *endingCtx) Err() error {
	if c.calls.Add(1) > c.after {
		return context.Canceled
	}
	return nil
}

func storedReports(t *testing.T, s *sqlStore) int {
	t.Helper()
	var n int
	if err := s.r.QueryRow(`SELECT count(*) FROM reports`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPutReportsContextEnds: on SQLite the write path's statements run
// without the caller's cancellation (detachWrites), which PutReports
// checks before each report and before the commit: a context that ends
// anywhere in between fails the call and stores nothing, neither the
// reports nor their rollup rows; one that does not end stores all.
func TestPutReportsContextEnds(t *testing.T) {
	t.Parallel()
	batch := []reports.Incoming{
		{Report: reportstest.SynthReport(1), Raw: []byte("{}"), Source: reports.SourceFile, ReceivedAt: reportstest.FixedNow()},
		{Report: reportstest.SynthReport(2), Raw: []byte("{}"), Source: reports.SourceFile, ReceivedAt: reportstest.FixedNow()},
	}
	fresh := openTestSQLite(t).(*sqlStore)
	if _, err := fresh.PutReports(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	want := rollupTable(t, fresh)
	// Two reports: checks 1 and 2 before them, 3 before the commit.
	for _, after := range []int32{0, 1, 2} {
		s := openTestSQLite(t).(*sqlStore)
		if !s.d.detachWrites {
			t.Fatal("SQLite store does not detach its writes")
		}
		ctx := &endingCtx{Context: context.Background(), after: after}
		if _, err := s.PutReports(ctx, batch); !errors.Is(err, context.Canceled) || !errors.Is(err, reports.ErrStorage) {
			t.Errorf("ending after %d checks: err = %v, want ErrStorage and context.Canceled", after, err)
		}
		if n := storedReports(t, s); n != 0 {
			t.Errorf("ending after %d checks: %d reports stored, want 0", after, n)
		}
		if rows := rollupTable(t, s); len(rows) != 0 {
			t.Errorf("ending after %d checks: %d rollup rows, want 0", after, len(rows))
		}
		// The store is usable afterwards (the transaction was rolled back).
		ctx = &endingCtx{Context: context.Background(), after: 1 << 30}
		if _, err := s.PutReports(ctx, batch); err != nil {
			t.Fatalf("after %d: %v", after, err)
		}
		if n := storedReports(t, s); n != 2 {
			t.Errorf("after %d: %d reports stored, want 2", after, n)
		}
		if got := rollupTable(t, s); !reflect.DeepEqual(got, want) {
			t.Errorf("after %d: rollup %q, want %q", after, got, want)
		}
	}
}

// TestSQLiteTempStoreMemory: the writer keeps statement journals in
// memory and has a page cache of 16 MiB (OpenSQLite).
func TestSQLiteTempStoreMemory(t *testing.T) {
	t.Parallel()
	s := openTestSQLite(t).(*sqlStore)
	var v int
	if err := s.w.QueryRow(`PRAGMA temp_store`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != 2 {
		t.Fatalf("writer's temp_store = %d, want 2 (MEMORY)", v)
	}
	if err := s.w.QueryRow(`PRAGMA cache_size`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != -16384 {
		t.Fatalf("writer's cache_size = %d, want -16384 (16 MiB)", v)
	}
}

// TestPutReportsDetailsOneBatch (RPT-RECV-4): failure details are
// written in statements of many rows at the end of PutReports'
// transaction (pendingDetails), except when a report's key is already
// stored, when they are written first so that moving the count can read
// the stored copy's details back. A forged copy with details followed in
// the same batch by the genuine, authenticated report moves the count
// to the genuine one and leaves the rollup and every stored detail
// exactly as three batches of one report do, on both backends.
func TestPutReportsDetailsOneBatch(t *testing.T) {
	t.Parallel()
	genuine := reportstest.SynthReport(3)
	other := reportstest.SynthReport(4)
	forged := reportstest.Forged(genuine)
	in := func(r *tlsrpt.Report, auth bool) reports.Incoming {
		i := reports.Incoming{Report: r, Raw: []byte("{}"), Source: reports.SourceHTTP, ReceivedAt: reportstest.FixedNow(), Authenticated: auth}
		if auth {
			i.Source, i.DKIMDomain = reports.SourceMail, "sender.example"
		}
		return i
	}
	batch := []reports.Incoming{in(other, false), in(forged, false), in(genuine, true)}
	backends(t, func(t *testing.T, one reports.Store) {
		ctx := context.Background()
		res, err := one.PutReports(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		if res[0].Conflict || res[1].Conflict || !res[2].Conflict {
			t.Fatalf("results %+v, want the last in conflict", res)
		}
		var sep reports.Store
		if one.(*sqlStore).d.name == "sqlite" {
			sep = openTestSQLite(t)
		} else {
			sep = openTestPostgres(t)
		}
		for _, b := range batch {
			if _, err := sep.PutReports(ctx, []reports.Incoming{b}); err != nil {
				t.Fatal(err)
			}
		}
		// Rows whose sums are all zero (a count moved away in a later
		// transaction) answer nothing; one batch cancels them in memory.
		nonZero := func(rows []string) []string {
			return slices.DeleteFunc(rows, func(r string) bool { return strings.HasSuffix(r, ": 0 0 0 0 0 0") })
		}
		if got, want := rollupTable(t, one.(*sqlStore)), nonZero(rollupTable(t, sep.(*sqlStore))); !reflect.DeepEqual(got, want) {
			t.Errorf("rollup after one batch:\n%q\nafter three:\n%q", got, want)
		}
		checkSummaryConsistent(t, one)
		got, err := one.Failures(ctx, reports.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		want, err := sep.Failures(ctx, reports.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, r := range batch {
			for _, p := range r.Report.Policies {
				n += len(p.FailureDetails)
			}
		}
		if len(got) != n || !reflect.DeepEqual(got, want) {
			t.Errorf("failures after one batch (%d, want %d):\n%+v\nafter three:\n%+v", len(got), n, got, want)
		}
	})
}
