package stscache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mailsts/mailsts/mtasts"
)

func newCountingTiered(c *clock, ttl time.Duration) (*Tiered, *counting) {
	back := &counting{Store: &Memory{Now: c.Now}}
	return &Tiered{Front: &Memory{}, Back: back, FrontTTL: ttl, Now: c.Now}, back
}

// The per-query path never touches Back: hits, Touch, and repeated misses
// for an unknown domain.
func TestTieredHotPathStaysInMemory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	tr, back := newCountingTiered(c, 30*time.Second)
	if err := tr.Put(ctx, entryAt("a.example", mtasts.ModeEnforce, c.Now(), 86400, time.Time{})); err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		e, err := tr.Get(ctx, "a.example")
		if err != nil || e == nil {
			t.Fatalf("Get = %v, %v", e, err)
		}
		tr.Touch("a.example", c.Now().Add(time.Duration(i)*time.Millisecond))
		if e, err := tr.Get(ctx, "unknown.example"); e != nil || err != nil {
			t.Fatalf("Get(unknown) = %v, %v", e, err)
		}
	}
	if g, p := back.gets.Load(), back.puts.Load(); g != 1 || p != 1 {
		t.Errorf("back store saw %d gets and %d puts, want 1 get (the unknown domain, once) and 1 put", g, p)
	}
	// The unknown domain is asked again after FrontTTL, the known one too.
	c.Advance(31 * time.Second)
	tr.Get(ctx, "unknown.example")
	tr.Get(ctx, "a.example")
	if g := back.gets.Load(); g != 3 {
		t.Errorf("after FrontTTL: %d back gets, want 3", g)
	}
}

func TestTieredTouchAndFlush(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	c := newClock(t0)
	sq, _ := openTestSQLite(t)
	tr := &Tiered{Front: &Memory{}, Back: sq, FrontTTL: -1, Now: c.Now}
	for i := range 3 {
		if err := tr.Put(ctx, entryAt(fmt.Sprintf("d%d.example", i), mtasts.ModeEnforce, t0, 86400, t0)); err != nil {
			t.Fatal(err)
		}
	}
	used := t0.Add(time.Hour)
	tr.Touch("d0.example", used)
	tr.Touch("d1.example", used)
	if tr.Touch("absent.example", used) {
		t.Error("Touch(absent) = true")
	}
	// Touch writes nothing through.
	if e, _ := sq.Get(ctx, "d0.example"); !e.LastUsed.Equal(t0) {
		t.Fatalf("Touch wrote through: back LastUsed = %v", e.LastUsed)
	}
	n, err := tr.Flush(ctx)
	if err != nil || n != 2 {
		t.Fatalf("Flush = %d, %v; want 2, nil", n, err)
	}
	for i, want := range []time.Time{used, used, t0} {
		e, _ := sq.Get(ctx, fmt.Sprintf("d%d.example", i))
		if !e.LastUsed.Equal(want) {
			t.Errorf("d%d: back LastUsed = %v, want %v", i, e.LastUsed, want)
		}
	}
	if n, err := tr.Flush(ctx); n != 0 || err != nil {
		t.Errorf("second Flush = %d, %v; want 0, nil (nothing dirty)", n, err)
	}
	// An older touch never lowers LastUsed, in front or back.
	tr.Touch("d0.example", t0)
	tr.Flush(ctx)
	if e, _ := sq.Get(ctx, "d0.example"); !e.LastUsed.Equal(used) {
		t.Errorf("LastUsed lowered to %v", e.LastUsed)
	}
}

func TestTieredFlushFallbackAndRetry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	c := newClock(t0)
	tr, back := newCountingTiered(c, -1) // Memory back: no LastUsedWriter
	if err := tr.Put(ctx, entryAt("a.example", "", t0, 0, t0)); err != nil {
		t.Fatal(err)
	}
	tr.Touch("a.example", t0.Add(time.Minute))
	back.fail.Store(true)
	if _, err := tr.Flush(ctx); !errors.Is(err, errInjected) {
		t.Fatalf("Flush with failing back = %v, want the injected error", err)
	}
	back.fail.Store(false)
	if n, err := tr.Flush(ctx); n != 1 || err != nil {
		t.Fatalf("retried Flush = %d, %v; want 1, nil", n, err)
	}
	if e, _ := back.Store.Get(ctx, "a.example"); !e.LastUsed.Equal(t0.Add(time.Minute)) {
		t.Errorf("back LastUsed = %v after fallback flush", e.LastUsed)
	}
}

// STS-CACHE-5: a back store outage never hides a policy the front holds,
// and does not cost a back call per query.
func TestTieredBackOutage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	log, out := logBuffer()
	tr, back := newCountingTiered(c, 10*time.Second)
	tr.Logger = log
	if err := tr.Put(ctx, entryAt("a.example", mtasts.ModeEnforce, c.Now(), 86400, time.Time{})); err != nil {
		t.Fatal(err)
	}
	back.fail.Store(true)
	c.Advance(time.Minute) // the front entry is stale: Back is asked
	for range 100 {
		e, err := tr.Get(ctx, "a.example")
		if err != nil || e == nil || e.Policy.Mode != mtasts.ModeEnforce {
			t.Fatalf("Get during outage = %v, %v; want the cached enforce policy", e, err)
		}
		if _, err := tr.Get(ctx, "b.example"); !errors.Is(err, ErrBackUnavailable) {
			t.Fatalf("Get(not in memory) during outage = %v, want ErrBackUnavailable", err)
		}
	}
	if g := back.gets.Load(); g != 1 {
		t.Errorf("%d back gets during the outage window, want 1", g)
	}
	if !strings.Contains(out(), "level=ERROR") || strings.Count(out(), "back store failed") != 1 {
		t.Errorf("outage not logged as one ERROR line: %q", out())
	}
	// A Put during the outage still reaches the front.
	if err := tr.Put(ctx, entryAt("c.example", mtasts.ModeTesting, c.Now(), 86400, time.Time{})); !errors.Is(err, errInjected) {
		t.Errorf("Put during outage = %v, want the back error", err)
	}
	if e, err := tr.Get(ctx, "c.example"); err != nil || e == nil {
		t.Errorf("Get after Put during outage = %v, %v", e, err)
	}
	// Once the window passes and Back is back, it is read again.
	back.fail.Store(false)
	c.Advance(11 * time.Second)
	if e, err := tr.Get(ctx, "b.example"); e != nil || err != nil {
		t.Errorf("Get after recovery = %v, %v; want nil, nil", e, err)
	}
}

// STS-CACHE-10: when a shared back store loses a valid enforce policy, the
// front keeps it and writes it back; other entries follow the back store.
func TestTieredRestoresLostPolicy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	tr, back := newCountingTiered(c, time.Second)
	valid := entryAt("valid.example", mtasts.ModeEnforce, c.Now(), 86400, time.Time{})
	neg := entryAt("neg.example", "", c.Now(), 0, time.Time{})
	for _, e := range []*mtasts.Entry{valid, neg} {
		if err := tr.Put(ctx, e); err != nil {
			t.Fatal(err)
		}
		// Lost behind Tiered's back (a Redis restart, another daemon).
		back.Store.Delete(ctx, e.Domain)
	}
	c.Advance(2 * time.Second)
	if e, err := tr.Get(ctx, "valid.example"); err != nil || e == nil {
		t.Fatalf("Get(valid) = %v, %v; want the policy kept", e, err)
	}
	if e, _ := back.Store.Get(ctx, "valid.example"); e == nil {
		t.Error("lost valid policy not written back")
	}
	if e, err := tr.Get(ctx, "neg.example"); e != nil || err != nil {
		t.Errorf("Get(neg) = %v, %v; want nil, nil: the back store decides", e, err)
	}
}

// Another writer's Put reaches this Tiered after FrontTTL, not before.
func TestTieredSeesOtherWriterAfterFrontTTL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	shared := &Memory{}
	a := &Tiered{Front: &Memory{}, Back: shared, FrontTTL: 5 * time.Second, Now: c.Now}
	b := &Tiered{Front: &Memory{}, Back: shared, FrontTTL: 5 * time.Second, Now: c.Now}
	testSharedBack(t, ctx, c, a, b, 5*time.Second)
}

// testSharedBack: a and b share one back store with FrontTTL ttl.
func testSharedBack(t *testing.T, ctx context.Context, c *clock, a, b *Tiered, ttl time.Duration) {
	t.Helper()
	v1 := entryAt("shared.example", mtasts.ModeTesting, c.Now(), 86400, time.Time{})
	if err := a.Put(ctx, v1); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(ctx, v1.Domain); err != nil || got == nil || got.Policy.Mode != mtasts.ModeTesting {
		t.Fatalf("b.Get after a.Put = %v, %v", got, err)
	}
	v2 := entryAt("shared.example", mtasts.ModeEnforce, c.Now(), 86400, time.Time{})
	v2.ID = "id2"
	if err := a.Put(ctx, v2); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.Get(ctx, v1.Domain); got.ID != v1.ID {
		t.Fatalf("b saw the new id %q before FrontTTL", got.ID)
	}
	c.Advance(ttl)
	if got, err := b.Get(ctx, v1.Domain); err != nil || got.ID != "id2" || got.Policy.Mode != mtasts.ModeEnforce {
		t.Fatalf("b.Get after FrontTTL = %+v, %v; want id2 enforce", got, err)
	}
	// A domain b saw as absent appears after FrontTTL too.
	if got, _ := b.Get(ctx, "later.example"); got != nil {
		t.Fatal("later.example present too early")
	}
	if err := a.Put(ctx, entryAt("later.example", "", c.Now(), 0, time.Time{})); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.Get(ctx, "later.example"); got != nil {
		t.Fatal("b did not remember the absence until FrontTTL")
	}
	c.Advance(ttl)
	if got, _ := b.Get(ctx, "later.example"); got == nil {
		t.Fatal("b does not see later.example after FrontTTL")
	}
}

func TestTieredLoadAndCap(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	c := newClock(now)
	sq, _ := openTestSQLite(t)
	for i := range 20 {
		mode := mtasts.Mode("")
		if i < 5 {
			mode = mtasts.ModeEnforce
		}
		if err := sq.Put(ctx, entryAt(fmt.Sprintf("d%02d.example", i), mode, now, 86400, now.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	tr := &Tiered{Front: &Memory{}, Back: sq, FrontTTL: -1, Now: c.Now}
	if err := tr.Front.Put(ctx, entryAt("d19.example", mtasts.ModeTesting, now, 60, now)); err != nil {
		t.Fatal(err)
	}
	n, err := tr.Load(ctx)
	if err != nil || n != 19 || tr.Front.Len() != 20 {
		t.Fatalf("Load = %d, %v (front %d); want 19 added, 20 in front", n, err, tr.Front.Len())
	}
	if e, _ := tr.Get(ctx, "d19.example"); e.Policy == nil || e.Policy.Mode != mtasts.ModeTesting {
		t.Error("Load replaced an entry the front already had")
	}
	// A touched entry is flushed before Cap drops it from the front.
	tr.Touch("d05.example", now.Add(time.Hour))
	ev, err := tr.Cap(ctx, 8)
	if err != nil || ev != 12 || tr.Front.Len() != 8 {
		t.Fatalf("Cap(8) = %d, %v (front %d); want 12, 8 left", ev, err, tr.Front.Len())
	}
	for i := range 5 {
		if tr.Front.item(fmt.Sprintf("d%02d.example", i)) == nil {
			t.Errorf("Cap dropped valid enforce policy d%02d from the front", i)
		}
	}
	if e, _ := sq.Get(ctx, "d05.example"); !e.LastUsed.Equal(now.Add(time.Hour)) {
		t.Errorf("touch on d05 lost by Cap: back LastUsed %v", e.LastUsed)
	}
	// Dropped from the front, still read through from the back.
	if e, err := tr.Get(ctx, "d06.example"); err != nil || e == nil {
		t.Errorf("Get(d06) after Cap = %v, %v", e, err)
	}
}

// A corrupt back entry reads as absent, so the caller's Put replaces it.
func TestTieredCorruptBackEntry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sq, _ := openTestSQLite(t)
	if _, err := sq.wdb.ExecContext(ctx, `INSERT INTO entries (domain, policy, mode) VALUES ('bad.example', '{"mode":"enforce","max_age":-5}', 'enforce')`); err != nil {
		t.Fatal(err)
	}
	tr := &Tiered{Front: &Memory{}, Back: sq, FrontTTL: -1}
	if e, err := tr.Get(ctx, "bad.example"); e != nil || err != nil {
		t.Fatalf("Get(corrupt) through Tiered = %v, %v; want nil, nil", e, err)
	}
	if err := tr.Put(ctx, entryAt("bad.example", "", time.Now(), 0, time.Time{})); err != nil {
		t.Fatal(err)
	}
	if e, err := sq.Get(ctx, "bad.example"); e == nil || err != nil {
		t.Fatalf("Put did not replace the corrupt row: %v, %v", e, err)
	}
}

// Forget drops a domain from Front only, and waits for a Get that holds the
// domain's lock between its Back read and its Front write, so that a read
// racing a purge cannot put the purged entry back afterwards.
func TestTieredForget(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	tr, back := newCountingTiered(c, -1)
	if err := tr.Put(ctx, entryAt("a.example", mtasts.ModeEnforce, c.Now(), 86400, time.Time{})); err != nil {
		t.Fatal(err)
	}
	tr.Forget(ctx, "a.example")
	if tr.Front.Len() != 0 {
		t.Fatal("Forget left the entry in Front")
	}
	if e, _ := back.Store.Get(ctx, "a.example"); e == nil {
		t.Fatal("Forget deleted from Back")
	}
	// A Get holding the lock (simulated): Forget waits for it.
	mu := tr.stripe("a.example")
	mu.Lock()
	done := make(chan struct{})
	go func() { tr.Forget(ctx, "a.example"); close(done) }()
	select {
	case <-done:
		t.Fatal("Forget did not wait for the domain's lock")
	case <-time.After(50 * time.Millisecond):
	}
	tr.Front.Put(ctx, entryAt("a.example", mtasts.ModeEnforce, c.Now(), 86400, time.Time{})) // the racing Get's write
	mu.Unlock()
	<-done
	if tr.Front.Len() != 0 {
		t.Error("an entry written under the lock survived the Forget that waited for it")
	}
}

// After a Load with a negative FrontTTL (the SQLite file's only writer),
// memory holds every entry: a never-seen domain costs no back read, however
// many are asked. Dropping entries from the front alone (Cap, Evict) ends
// that, and the dropped ones are read through again.
func TestTieredCompleteFrontSkipsBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	c := newClock(now)
	tr, back := newCountingTiered(c, -1)
	for i := range 10 {
		mode := mtasts.Mode("") // negative entries: Cap may drop them
		if i < 2 {
			mode = mtasts.ModeEnforce
		}
		if err := back.Store.Put(ctx, entryAt(fmt.Sprintf("d%d.example", i), mode, now, 86400, now.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	// Before Load, a miss reads the back store.
	if e, err := tr.Get(ctx, "d3.example"); err != nil || e == nil {
		t.Fatalf("Get(d3) before Load = %v, %v", e, err)
	}
	if _, err := tr.Load(ctx); err != nil {
		t.Fatal(err)
	}
	g0 := back.gets.Load()
	for i := range 100 {
		if e, err := tr.Get(ctx, fmt.Sprintf("new%d.example", i)); e != nil || err != nil {
			t.Fatalf("Get(new%d) = %v, %v", i, e, err)
		}
		if e, err := tr.Get(ctx, "d7.example"); e == nil || err != nil {
			t.Fatalf("Get(d7) = %v, %v", e, err)
		}
	}
	if g := back.gets.Load() - g0; g != 0 {
		t.Errorf("complete front: %d back reads for never-seen and loaded domains, want 0", g)
	}
	// A Put through Tiered keeps the front complete.
	if err := tr.Put(ctx, entryAt("put.example", mtasts.ModeTesting, now, 86400, now)); err != nil {
		t.Fatal(err)
	}
	if e, _ := tr.Get(ctx, "put.example"); e == nil || back.gets.Load() != g0 {
		t.Errorf("Get(put.example) = %v with %d back reads", e, back.gets.Load()-g0)
	}
	// Cap drops negative entries from memory only: misses read Back again.
	if n, err := tr.Cap(ctx, 5); err != nil || n == 0 {
		t.Fatalf("Cap(5) = %d, %v", n, err)
	}
	if tr.Front.item("d2.example") != nil {
		t.Fatal("Cap kept d2, the least recently used negative entry")
	}
	if e, err := tr.Get(ctx, "d2.example"); err != nil || e == nil {
		t.Errorf("Get(d2) after Cap = %v, %v; want it read from the back store", e, err)
	}
	if back.gets.Load() == g0 {
		t.Error("after Cap, a miss did not read the back store")
	}
	// A new Load makes it complete again.
	if _, err := tr.Load(ctx); err != nil {
		t.Fatal(err)
	}
	g1 := back.gets.Load()
	tr.Get(ctx, "other.example")
	if g := back.gets.Load() - g1; g != 0 {
		t.Errorf("after a second Load: %d back reads for a never-seen domain, want 0", g)
	}
}

// A shared back store (positive FrontTTL: other daemons write it) is never
// taken as complete: a domain another writer adds is seen.
func TestTieredSharedBackNeverComplete(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	c := newClock(now)
	tr, back := newCountingTiered(c, 30*time.Second)
	if _, err := tr.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if err := back.Store.Put(ctx, entryAt("other.example", mtasts.ModeEnforce, now, 86400, now)); err != nil {
		t.Fatal(err)
	}
	if e, err := tr.Get(ctx, "other.example"); err != nil || e == nil {
		t.Errorf("Get of a domain another writer added = %v, %v", e, err)
	}
}
