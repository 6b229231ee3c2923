package outgoing

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/watchdog"
	"github.com/mailsts/mailsts/tlsrpt"
	"github.com/mailsts/mailsts/tlsrpt/result"
)

// A full buffer drops the result at once (MaxWait < 0), counted; what was
// accepted is written once the store is free again.
func TestRecorderDropsWhenFull(t *testing.T) {
	t.Parallel()
	st := openSQLite(t)
	ctx := ctxT(t)
	// Hold SQLite's one writer connection: the recorder's write blocks.
	tx, err := st.w.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := NewRecorder(st, RecorderOptions{Buffer: 1, Batch: 1, MaxWait: -1})
	var accepted, dropped int
	for i := 0; i < 50 && dropped == 0; i++ {
		switch err := rec.Record(ctx, ok("example.com", day1)); {
		case err == nil:
			accepted++
		case errors.Is(err, ErrDropped):
			dropped++
		default:
			t.Fatal(err)
		}
		if accepted == 1 {
			// Let the writer take the first into its (blocked) batch.
			waitFor(t, func() bool { return len(rec.ch) == 0 })
		}
	}
	if dropped != 1 || accepted != 2 {
		t.Fatalf("accepted %d, dropped %d; want 2 and 1 (one in the writer, one in the buffer)", accepted, dropped)
	}
	tx.Rollback()
	if err := rec.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s := rec.Stats()
	if s.Recorded != 2 || s.Written != 2 || s.Dropped != 1 || s.Lost != 0 {
		t.Errorf("stats = %+v", s)
	}
	got, err := st.Policies(ctx, DomainDay{Domain: "example.com", Day: tlsrpt.DayRange(day1).Start})
	if err != nil || len(got) != 1 || got[0].Summary.TotalSuccessfulSessionCount != 2 {
		t.Errorf("stored %+v, %v", got, err)
	}
	if err := rec.Record(ctx, ok("example.com", day1)); !errors.Is(err, ErrClosed) {
		t.Errorf("Record after Close = %v", err)
	}
}

// Report deliveries are never counted (no report-about-report loops), by
// the flag or by the Exclude hook; invalid results are refused at once.
func TestRecorderExcludes(t *testing.T) {
	t.Parallel()
	st := openSQLite(t)
	ctx := ctxT(t)
	rec := NewRecorder(st, RecorderOptions{Exclude: func(r Result) bool { return r.PolicyDomain == "rua.example" }})
	r := fail("example.com", day1, Failure{ResultType: result.CertificateExpired})
	r.ReportDelivery = true
	for _, x := range []Result{r, ok("rua.example", day1), ok("example.com", day1)} {
		if err := rec.Record(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	if err := rec.Record(ctx, ok("", day1)); !errors.Is(err, ErrInvalidResult) {
		t.Errorf("invalid: %v", err)
	}
	if err := rec.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if s := rec.Stats(); s.Excluded != 2 || s.Written != 1 || s.Invalid != 1 {
		t.Errorf("stats = %+v", s)
	}
	pend, err := st.Pending(ctx, day1.Add(48*time.Hour), 0)
	if err != nil || len(pend) != 1 || pend[0].Domain != "example.com" {
		t.Fatalf("pending = %v, %v", pend, err)
	}
	got, _ := st.Policies(ctx, pend[0])
	if got[0].Summary.TotalFailureSessionCount != 0 || got[0].Summary.TotalSuccessfulSessionCount != 1 {
		t.Errorf("counted %+v", got[0].Summary)
	}
}

// A partial batch is written after FlushEvery without Close.
func TestRecorderFlushesOnTimer(t *testing.T) {
	t.Parallel()
	st := openSQLite(t)
	rec := NewRecorder(st, RecorderOptions{FlushEvery: 10 * time.Millisecond})
	defer rec.Close(context.Background())
	if err := rec.Record(ctxT(t), ok("example.com", day1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return rec.Stats().Written == 1 })
}

// A burst is written once no result has come for Idle, long before
// FlushEvery.
func TestRecorderWritesWhenIdle(t *testing.T) {
	t.Parallel()
	st := openSQLite(t)
	rec := NewRecorder(st, RecorderOptions{FlushEvery: time.Hour, Idle: 5 * time.Millisecond})
	defer rec.Close(context.Background())
	for range 3 {
		if err := rec.Record(ctxT(t), ok("example.com", day1)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return rec.Stats().Written == 3 })
}

// Close wakes a writer napping on a partial batch (Idle and FlushEvery an
// hour away) and writes it at once: a collector's shutdown, and a log
// source's cursor with it, is never held up by the nap.
func TestRecorderCloseWakesWriter(t *testing.T) {
	t.Parallel()
	st := openSQLite(t)
	naps := make(chan struct{}, 100)
	rec := newRecorder(st, RecorderOptions{FlushEvery: time.Hour, Idle: time.Hour}, func() {
		select {
		case naps <- struct{}{}:
		default:
		}
	})
	if err := rec.Record(ctxT(t), ok("example.com", day1)); err != nil {
		t.Fatal(err)
	}
	if err := rec.RecordCursor(ctxT(t), "log", "c1", ok("example.org", day1)); err != nil {
		t.Fatal(err)
	}
	// Close once the writer naps (a nap lasts the hour).
	select {
	case <-naps:
	case <-ctxT(t).Done():
		t.Fatal("the writer never napped")
	}
	err := watchdog.Within(t, time.Minute, func() error { return rec.Close(context.Background()) })
	if err != nil {
		t.Fatal(err)
	}
	if s := rec.Stats(); s.Written != 2 {
		t.Fatalf("written %d results at Close, want 2", s.Written)
	}
	if c, found, err := st.Cursor(ctxT(t), "log"); err != nil || !found || c != "c1" {
		t.Fatalf("cursor %q %v %v, want c1 stored with its result", c, found, err)
	}
}

// Group commit: while a write is held up, results queue; the next
// transaction takes all of them, not Batch at a time.
func TestRecorderGroupCommit(t *testing.T) {
	t.Parallel()
	st := openSQLite(t)
	ctx := ctxT(t)
	tx, err := st.w.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := NewRecorder(st, RecorderOptions{Buffer: 100, Batch: 2, FlushEvery: time.Hour, Idle: time.Hour, MaxWait: -1})
	// The first two make a full batch at once (a source's results come
	// as one item: two Records could reach the writer apart, and it
	// would nap Idle/4 on the first); its write waits for tx.
	if err := rec.RecordCursor(ctx, "log", "c1", ok("d0.example", day1), ok("d1.example", day1)); err != nil {
		t.Fatal(err)
	}
	// The write waits for the writer connection tx holds: what comes
	// now queues behind it (until then the writer might still take it
	// into the first batch).
	waitFor(t, func() bool { return st.w.Stats().WaitCount >= 1 })
	for i := range 50 {
		if err := rec.Record(ctx, ok(fmt.Sprintf("d%d.example", i%7), day1)); err != nil {
			t.Fatal(err)
		}
	}
	tx.Rollback()
	waitFor(t, func() bool { return rec.Stats().Written == 52 })
	if n := rec.writes.Load(); n != 2 {
		t.Errorf("%d transactions for a full batch and 50 queued results, want 2", n)
	}
	if err := rec.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond (bounded: 10 s) for state another goroutine reaches.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 1000 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not reached in 10 s")
}

// RecordCursor: a log source's results and its cursor are written in one
// transaction, in one batch whatever the batch size; when the write
// fails neither is stored (the source reads those entries again).
func TestRecordCursor(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, open opener) {
		st := open(t, Options{})
		ctx := ctxT(t)
		if _, ok, err := st.Cursor(ctx, "journal a"); ok || err != nil {
			t.Fatalf("cursor before any: %v, %v", ok, err)
		}
		rec := NewRecorder(st, RecorderOptions{Batch: 2, FlushEvery: time.Hour})
		if err := rec.Record(ctx, ok("example.com", day1)); err != nil {
			t.Fatal(err)
		}
		bad := ok("example.com", day1)
		bad.PolicyDomain = ""
		if err := rec.RecordCursor(ctx, "journal a", "c1", ok("example.com", day1), fail("example.com", day1, Failure{ResultType: result.CertificateExpired}),
			Result{Time: day1, PolicyDomain: "example.com", Policy: stsPolicy(), ReportDelivery: true}, bad, ok("example.com", day1)); err != nil {
			t.Fatal(err)
		}
		if err := rec.RecordCursor(ctx, "journal b", "b1"); err != nil { // a position alone
			t.Fatal(err)
		}
		if err := rec.Close(ctx); err != nil {
			t.Fatal(err)
		}
		for src, want := range map[string]string{"journal a": "c1", "journal b": "b1"} {
			if c, ok, err := st.Cursor(ctx, src); c != want || !ok || err != nil {
				t.Errorf("cursor of %s = %q, %v, %v; want %q", src, c, ok, err, want)
			}
		}
		got, err := st.Policies(ctx, DomainDay{Domain: "example.com", Day: tlsrpt.DayRange(day1).Start})
		if err != nil || len(got) != 1 || got[0].Summary.TotalSuccessfulSessionCount != 3 || got[0].Summary.TotalFailureSessionCount != 1 {
			t.Fatalf("stored %+v, %v", got, err)
		}
		if s := rec.Stats(); s.Recorded != 4 || s.Written != 4 || s.Excluded != 1 || s.Invalid != 1 {
			t.Errorf("stats = %+v", s)
		}

		// The cursor's write fails: the results with it are not stored.
		if _, err := st.w.ExecContext(ctx, `DROP TABLE outgoing_cursors`); err != nil {
			t.Fatal(err)
		}
		rec2 := NewRecorder(st, RecorderOptions{FlushEvery: time.Hour})
		if err := rec2.RecordCursor(ctx, "journal a", "c2", ok("other.example", day1)); err != nil {
			t.Fatal(err)
		}
		if err := rec2.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if s := rec2.Stats(); s.Lost != 1 || s.Written != 0 {
			t.Errorf("stats after a failed write = %+v", s)
		}
		if got, err := st.Policies(ctx, DomainDay{Domain: "other.example", Day: tlsrpt.DayRange(day1).Start}); err != nil || len(got) != 0 {
			t.Errorf("results stored without their cursor: %+v, %v", got, err)
		}
		if err := rec2.RecordCursor(ctx, "journal a", "c3"); !errors.Is(err, ErrClosed) {
			t.Errorf("RecordCursor after Close = %v", err)
		}
	})
}
