package outbox

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestSendTimeSpread(t *testing.T) {
	t.Parallel()
	seen := map[time.Time]bool{}
	for i := range 50 {
		id := fmt.Sprintf("20261130.d%d.example@sender.example", i)
		at := SendTime(day0.Add(13*time.Hour), id, 4*time.Hour)
		if at.Before(t0) || !at.Before(t0.Add(4*time.Hour)) {
			t.Fatalf("%s: send time %v outside [%v, +4h)", id, at, t0)
		}
		if again := SendTime(day0, id, 4*time.Hour); !again.Equal(at) {
			t.Fatalf("%s: send time not deterministic: %v then %v", id, at, again)
		}
		seen[at] = true
	}
	if len(seen) < 40 {
		t.Errorf("50 report-ids got only %d distinct send times", len(seen))
	}
	if got := SendTime(day0, "x", 0); !got.Equal(t0) {
		t.Errorf("no spread: %v, want %v", got, t0)
	}
}

func TestEnqueueIdempotent(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		clk := newClock(t0)
		o := &Outbox{Store: s, Now: clk.Now, Config: Config{DisableSpread: true}}
		r := testReport(t, "policy.example")
		for range 3 {
			if err := o.Enqueue(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		other := r
		other.ReportID = "changed"
		if err := o.Enqueue(ctx, other); err != nil {
			t.Fatal(err)
		}
		es := entries(t, s)
		if len(es) != 1 || es[0].Kind != "report" || es[0].State != StatePending || es[0].ReportID != r.ReportID {
			t.Fatalf("want one pending report %s, have:\n%s", r.ReportID, dump(es))
		}
		if err := o.Enqueue(ctx, Report{PolicyDomain: "x.example"}); err == nil {
			t.Error("incomplete report enqueued")
		}
	})
}

// TestMigrationsSharedDatabase: the outbox keeps its version in its own
// table, so opening it twice is a no-op and it leaves PRAGMA user_version
// (the received-report store's) alone.
func TestMigrationsSharedDatabase(t *testing.T) {
	t.Parallel()
	dir := t.TempDir() + "/shared.db"
	ctx := context.Background()
	for range 2 {
		s, err := OpenSQLite(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		var uv, v int
		if err := s.r.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&uv); err != nil {
			t.Fatal(err)
		}
		if err := s.r.QueryRowContext(ctx, `SELECT version FROM outbox_schema_version`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		if uv != 0 || v != len(migrations(false)) {
			t.Errorf("user_version %d (want 0), outbox version %d (want %d)", uv, v, len(migrations(false)))
		}
		s.Close()
	}
	if _, err := Open(ctx, "mysql://x", t.TempDir()); !errors.Is(err, ErrBadSpec) {
		t.Errorf("bad spec: %v", err)
	}
}

// TestTwoWorkersNeverDoubleSend runs two nodes (separate connections to
// one database) delivering 30 reports at once: every report reaches the
// receiver exactly once, and every delivery ends sent.
func TestTwoWorkersNeverDoubleSend(t *testing.T) {
	t.Parallel()
	run := func(t *testing.T, a, b *Store) {
		ctx := context.Background()
		pc := newPostCounter(t)
		recs := map[string]string{}
		var ids []string
		enq := &Outbox{Store: a, Now: newClock(t0).Now, Config: Config{DisableSpread: true}}
		for i := range 30 {
			d := fmt.Sprintf("d%d.example", i)
			recs[d] = rua(pc.URL())
			r := testReport(t, d)
			ids = append(ids, r.ReportID)
			if err := enq.Enqueue(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		dns := fakeDNS(recs)
		var wg sync.WaitGroup
		results := make([]PassResult, 2)
		errs := make([]error, 2)
		for i, st := range []*Store{a, b} {
			o := &Outbox{Store: st, Resolver: dns, HTTP: pc.poster(), Now: newClock(t0).Now, Owner: fmt.Sprintf("node%d", i), Config: Config{Workers: 3}}
			wg.Go(func() { results[i], errs[i] = o.RunOnce(ctx) })
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if got := results[0].Sent + results[1].Sent; got != 30 {
			t.Errorf("sent %d, want 30 (%+v %+v)", got, results[0], results[1])
		}
		for _, id := range ids {
			if n := pc.count(id); n != 1 {
				t.Errorf("report %s posted %d times", id, n)
			}
		}
		for _, e := range entries(t, a) {
			if e.State != StateSent || e.Attempts != 1 {
				t.Errorf("%s %s: state %s after %d attempts", e.ID, e.PolicyDomain, e.State, e.Attempts)
			}
		}
	}
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		path := t.TempDir() + "/tlsrpt-outbox.db"
		var st []*Store
		for range 2 {
			s, err := OpenSQLite(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			st = append(st, s)
		}
		run(t, st[0], st[1])
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		st := openPostgres(t, 2)
		run(t, st[0], st[1])
	})
}

// TestCrashMidDeliveryRetriedAfterLease: a worker that claimed a delivery
// and died holds it until the lease expires; then another worker sends
// it, and the dead worker's late outcome is refused.
func TestCrashMidDeliveryRetriedAfterLease(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		pc := newPostCounter(t)
		clk := newClock(t0)
		r := testReport(t, "policy.example")
		o := &Outbox{Store: s, Resolver: fakeDNS(map[string]string{"policy.example": rua(pc.URL())}), HTTP: pc.poster(),
			Now: clk.Now, Owner: "live", Config: Config{DisableSpread: true, Lease: 10 * time.Minute}}
		if err := o.Enqueue(ctx, r); err != nil {
			t.Fatal(err)
		}
		// Resolve only: a pass with a delivery store claim stolen first.
		cr, err := s.claimReport(ctx, "live", clk.Now(), time.Minute)
		if err != nil || cr == nil {
			t.Fatalf("claim report: %v %v", cr, err)
		}
		if _, err := o.resolve(ctx, o.Config.withDefaults(), cr); err != nil {
			t.Fatal(err)
		}
		dead, err := s.claimDelivery(ctx, "dead", clk.Now(), 10*time.Minute)
		if err != nil || dead == nil {
			t.Fatalf("claim: %v %v", dead, err)
		}
		if e := only(t, s); e.State != StateSending {
			t.Fatalf("claimed delivery in state %s", e.State)
		}
		clk.Add(9 * time.Minute)
		if res, err := o.RunOnce(ctx); err != nil || res.Sent != 0 || pc.total.Load() != 0 {
			t.Fatalf("within the lease: %+v %v, %d posts", res, err, pc.total.Load())
		}
		clk.Add(2 * time.Minute)
		if res, err := o.RunOnce(ctx); err != nil || res.Sent != 1 {
			t.Fatalf("after the lease: %+v %v", res, err)
		}
		if e := only(t, s); e.State != StateSent || e.Attempts != 2 || pc.count(r.ReportID) != 1 {
			t.Fatalf("after takeover: %+v, %d posts", e, pc.count(r.ReportID))
		}
		_, err = s.finishDelivery(ctx, dead, "dead", outcome{State: StateRetrying, Next: clk.Now()}, clk.Now(), 3)
		if !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("late outcome of the dead worker: %v, want ErrLeaseLost", err)
		}
		if e := only(t, s); e.State != StateSent {
			t.Fatalf("late outcome changed the state to %s", e.State)
		}
	})
}

func TestNotBeforeSendTime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openSQLite(t)
	pc := newPostCounter(t)
	clk := newClock(day0.Add(20 * time.Hour))
	r := testReport(t, "policy.example")
	o := &Outbox{Store: s, Resolver: fakeDNS(map[string]string{"policy.example": rua(pc.URL())}), HTTP: pc.poster(), Now: clk.Now}
	if err := o.Enqueue(ctx, r); err != nil {
		t.Fatal(err)
	}
	at := SendTime(r.Day, r.ReportID, DefaultSpread)
	clk.Set(at.Add(-time.Second))
	if res, _ := o.RunOnce(ctx); res.Resolved != 0 || pc.total.Load() != 0 {
		t.Fatalf("sent before its send time %v: %+v", at, res)
	}
	clk.Set(at)
	if res, err := o.RunOnce(ctx); err != nil || res.Sent != 1 {
		t.Fatalf("at its send time: %+v %v", res, err)
	}
}
