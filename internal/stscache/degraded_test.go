package stscache

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mailsts/mailsts/mtasts"
)

// watched starts tr.Watch until the test ends and returns channels that
// receive each OnBackState transition and each resync.
func watched(t *testing.T, tr *Tiered) (states chan bool, resyncs chan ResyncStats) {
	t.Helper()
	states = make(chan bool, 16)
	resyncs = make(chan ResyncStats, 16)
	tr.OnBackState = func(d bool) { states <- d }
	tr.OnResync = func(s ResyncStats) { resyncs <- s }
	if tr.ProbeEvery == 0 {
		tr.ProbeEvery = time.Millisecond
	}
	t.Cleanup(tr.StartWatch(context.Background()))
	return states, resyncs
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatalf("no %s within 30 s", what)
		panic("unreachable")
	}
}

// Issue #10 item 4: while a watched Tiered's back store fails, no lookup
// fails: domains in memory are answered from it, others are reported as not
// cached (so the caller looks them up instead of answering TEMP), entries
// Put meanwhile stay in memory, and once the back store answers again they
// are written back. The outage is one ERROR line, its end one INFO line.
func TestTieredWatchedOutage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	log, out := logBuffer()
	tr, back := newCountingTiered(c, 10*time.Second)
	tr.Logger = log
	tr.ProbeEvery = time.Hour // no probe until the test asks (Resync below)
	states, resyncs := watched(t, tr)
	if err := tr.Put(ctx, entryAt("a.example", mtasts.ModeEnforce, c.Now(), 86400, time.Time{})); err != nil {
		t.Fatal(err)
	}
	back.fail.Store(true)
	c.Advance(time.Minute) // the front entry is stale: Back is asked once
	for i := range 100 {
		e, err := tr.Get(ctx, "a.example")
		if err != nil || e == nil || e.Policy.Mode != mtasts.ModeEnforce {
			t.Fatalf("Get(a) during outage = %v, %v; want the cached enforce policy", e, err)
		}
		d := "new" + strings.Repeat("x", i%7) + ".example"
		if e, err := tr.Get(ctx, d); e != nil || err != nil {
			t.Fatalf("Get(%s) during outage = %v, %v; want nil, nil (not cached: look it up)", d, e, err)
		}
	}
	if !recv(t, states, "degraded state") {
		t.Fatal("OnBackState(false) before any recovery")
	}
	if g := back.gets.Load(); g != 1 {
		t.Errorf("%d back reads during the outage, want 1 (the failure); no lookup may wait on a failed back store", g)
	}
	if err := tr.Put(ctx, entryAt("c.example", mtasts.ModeTesting, c.Now(), 86400, time.Time{})); err != nil {
		t.Errorf("Put during outage = %v, want nil (queued for write-back)", err)
	}
	puts := back.puts.Load()
	if e, err := tr.Get(ctx, "c.example"); err != nil || e == nil {
		t.Errorf("Get after Put during outage = %v, %v", e, err)
	}
	var seen []string
	tr.Range(ctx, func(e *mtasts.Entry) bool { seen = append(seen, e.Domain); return true })
	if len(seen) != 2 {
		t.Errorf("Range during outage visited %v, want memory's a and c (refreshes go on)", seen)
	}
	if s := tr.BackState(); !s.Degraded || s.Pending != 1 || s.Err == nil {
		t.Errorf("BackState = %+v, want degraded with 1 pending entry", s)
	}
	if strings.Count(out(), "level=ERROR") != 1 {
		t.Errorf("want exactly one ERROR line for the outage:\n%s", out())
	}

	back.fail.Store(false)
	tr.Resync() // probe now rather than in an hour
	if recv(t, states, "recovery") {
		t.Fatal("OnBackState(true) again")
	}
	st := recv(t, resyncs, "resync")
	if st.WrittenBack != 1 {
		t.Errorf("resync %+v, want 1 entry written back", st)
	}
	if e, _ := back.Store.Get(ctx, "c.example"); e == nil || e.Policy.Mode != mtasts.ModeTesting {
		t.Errorf("entry Put during the outage not written back: %v", e)
	}
	if back.puts.Load() == puts {
		t.Error("no write after recovery")
	}
	if s := tr.BackState(); s.Degraded || s.Pending != 0 {
		t.Errorf("BackState after recovery = %+v", s)
	}
	if !strings.Contains(out(), "level=INFO") || !strings.Contains(out(), "works again") {
		t.Errorf("recovery not logged at INFO:\n%s", out())
	}
}

// Issue #10 item 4: a back store that hangs (accepts, never answers) costs
// one bounded wait, then no lookup waits on it at all: every lookup below
// completes while the store is still hanging.
func TestTieredWatchedHang(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	tr, back := newCountingTiered(c, 10*time.Second)
	tr.BackTimeout = 50 * time.Millisecond
	tr.ProbeEvery = time.Hour
	watched(t, tr)
	for i := range 100 {
		if err := tr.Put(ctx, entryAt("d"+string(rune('a'+i%26))+strings.Repeat("x", i/26)+".example", mtasts.ModeEnforce, c.Now(), 86400, time.Time{})); err != nil {
			t.Fatal(err)
		}
	}
	back.hang.Store(true)
	c.Advance(time.Minute)
	n := 0
	for _, it := range tr.Front.snapshot() {
		e, err := tr.Get(ctx, it.domain)
		if err != nil || e == nil || e.Policy.Mode != mtasts.ModeEnforce {
			t.Fatalf("Get(%s) while the back store hangs = %v, %v; want the enforce policy", it.domain, e, err)
		}
		n++
	}
	if e, err := tr.Get(ctx, "other.example"); e != nil || err != nil {
		t.Errorf("Get(other) while hanging = %v, %v; want nil, nil", e, err)
	}
	if !back.hang.Load() || n != 100 {
		t.Fatalf("%d answers", n)
	}
	if g := back.gets.Load(); g != 1 {
		t.Errorf("%d lookups waited on the hanging back store, want 1", g)
	}
}

// Without Watch, Put during an outage returns ErrBackUnavailable (the
// cache command must know the entry was not stored).
func TestTieredUnwatchedPutError(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	tr, back := newCountingTiered(c, 10*time.Second)
	back.fail.Store(true)
	err := tr.Put(ctx, entryAt("a.example", mtasts.ModeEnforce, c.Now(), 86400, time.Time{}))
	if err == nil {
		t.Fatal("Put = nil with a failing back store and no Watch")
	}
	if err := tr.Put(ctx, entryAt("b.example", mtasts.ModeEnforce, c.Now(), 86400, time.Time{})); !errors.Is(err, ErrBackUnavailable) {
		t.Errorf("second Put = %v, want ErrBackUnavailable", err)
	}
	if p := back.puts.Load(); p != 1 {
		t.Errorf("%d back puts, want 1: the second is skipped while the back store is down", p)
	}
}

// failingRestorer answers reads but fails every Restore (a read-only
// replica, say), and reports each attempt.
type failingRestorer struct {
	mtasts.Store
	calls chan struct{}
}

func (f *failingRestorer) Restore(context.Context, []*mtasts.Entry) ([]RestoreOutcome, error) {
	f.calls <- struct{}{}
	return nil, errInjected
}

// A back store that answers probes but fails the resync keeps Tiered
// degraded, and Watch retries on its back-off, not in a tight loop.
func TestTieredResyncFailureBacksOff(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	back := &failingRestorer{Store: &Memory{}, calls: make(chan struct{}, 100)}
	tr := &Tiered{Front: &Memory{}, Back: back, ProbeEvery: time.Hour}
	states, _ := watched(t, tr)
	if err := tr.Put(ctx, entryAt("a.example", mtasts.ModeEnforce, time.Now(), 86400, time.Time{})); err != nil {
		t.Fatal(err)
	}
	tr.Resync()
	recv(t, back.calls, "restore attempt")
	if !recv(t, states, "degraded state") {
		t.Fatal("not degraded after a failed resync")
	}
	// The next attempt is an hour away. A tight loop would call again at
	// once; the wait only bounds how long the test looks for that.
	select {
	case <-back.calls:
		t.Fatal("resync retried at once after failing, without waiting for the back-off")
	case <-time.After(200 * time.Millisecond):
	}
	if s := tr.BackState(); !s.Degraded {
		t.Errorf("BackState = %+v, want degraded", s)
	}
}
