package policyd

import (
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestGCPercent(t *testing.T) {
	t.Parallel()
	const mib = 1 << 20
	for _, c := range []struct {
		live     uint64
		headroom int
		want     int
	}{
		{0, 25, 100},           // nothing measured yet: Go's default
		{4 * mib, 25, 100},     // small heap: at least 8 MiB of headroom
		{16 * mib, 25, 50},     // 8 MiB is half of it
		{32 * mib, 25, 25},     // from here on, the headroom asked for
		{400 * mib, 25, 25},    // a large cache
		{400 * mib, 10, 10},    //
		{4000 * mib, 0, 1},     // never 0 (which would collect all the time)
		{400 * mib, 100, 100},  // Go's default
		{400 * mib, 150, 100},  // never more than the default
		{33 * mib / 2, 25, 49}, // rounded up
	} {
		if got := gcPercent(c.live, c.headroom); got != c.want {
			t.Errorf("gcPercent(%d MiB, %d) = %d, want %d", c.live/mib, c.headroom, got, c.want)
		}
	}
}

// TestGCTunerFollowsCollections checks that the tuner sets GOGC at start,
// again after a collection that changed the live heap, and puts the
// original value back at stop, after which collections no longer reach it.
// The hooks stand in for the process's collector settings, so the test
// runs in parallel with others.
func TestGCTunerFollowsCollections(t *testing.T) {
	t.Parallel()
	var live atomic.Uint64
	live.Store(1 << 20)
	var mu sync.Mutex
	var set []int
	tu := &gcTuner{
		headroom: 25,
		live:     live.Load,
		setPercent: func(p int) int {
			mu.Lock()
			defer mu.Unlock()
			set = append(set, p)
			return 77 // the GOGC the process had
		},
	}
	calls := func() []int {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(set)
	}
	tu.start()
	if got := calls(); !slices.Equal(got, []int{100}) {
		t.Fatalf("after start: GOGC set to %v, want [100]", got)
	}
	live.Store(400 << 20) // the cache filled up
	deadline := time.Now().Add(10 * time.Second)
	for len(calls()) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no re-tuning after collections: %v", calls())
		}
		runtime.GC()
		time.Sleep(5 * time.Millisecond)
	}
	if got := calls(); !slices.Equal(got, []int{100, 25}) {
		t.Fatalf("after a collection: GOGC set to %v, want [100 25]", got)
	}
	tu.stop()
	if got := calls(); !slices.Equal(got, []int{100, 25, 77}) {
		t.Fatalf("after stop: GOGC set to %v, want [100 25 77] (the original restored)", got)
	}
	live.Store(1 << 20)
	for range 3 {
		runtime.GC()
		time.Sleep(5 * time.Millisecond)
	}
	if got := calls(); len(got) != 3 {
		t.Fatalf("tuned after stop: %v", got)
	}
}

func TestGCHeadroomConfig(t *testing.T) {
	t.Parallel()
	if Default().GCHeadroom != DefaultGCHeadroom {
		t.Errorf("default gc_headroom = %d", Default().GCHeadroom)
	}
	for _, v := range []int{-1, 101} {
		c := Default()
		c.GCHeadroom = v
		if err := c.Validate(); err == nil {
			t.Errorf("gc_headroom %d accepted", v)
		}
	}
	c := Default()
	c.GCHeadroom = 50
	if err := c.Validate(); err != nil {
		t.Errorf("gc_headroom 50: %v", err)
	}
}

// TestDaemonTuneGC checks when the daemon paces the collector: by default,
// not when the operator set GOGC, not at 100 (Go's own pacing).
func TestDaemonTuneGC(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		headroom int
		gogc     string
		want     bool
	}{
		{0, "", true},
		{25, "", true},
		{25, "50", false},
		{100, "", false},
	} {
		cfg := Default()
		cfg.GCHeadroom = c.headroom
		d := &Daemon{Config: cfg, Getenv: func(k string) string {
			if k == "GOGC" {
				return c.gogc
			}
			return ""
		}}
		stop := d.tuneGC()
		if (stop != nil) != c.want {
			t.Errorf("headroom %d, GOGC=%q: tuning %v, want %v", c.headroom, c.gogc, stop != nil, c.want)
		}
		if stop != nil {
			stop()
		}
	}
}
