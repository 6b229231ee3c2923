package policyd

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// DefaultGCHeadroom is the default of Config.GCHeadroom: the garbage
// collector lets the heap grow by a quarter of what is live (Go's default
// is the whole of it) once the live heap is over minGCHeadroom × 4.
const DefaultGCHeadroom = 25

// minGCHeadroom is the least the heap may grow between collections,
// whatever GCHeadroom says: a daemon with a small cache (where headroom
// costs little memory) keeps Go's usual pacing, and a collection never
// runs for every few kilobytes allocated.
const minGCHeadroom = 8 << 20

// gcPercent returns the GOGC value that lets a heap of live bytes grow by
// headroom percent of it, but by at least minGCHeadroom and never more
// than Go's default of 100%.
func gcPercent(live uint64, headroom int) int {
	if headroom >= 100 || live == 0 {
		return 100
	}
	p := max(headroom, 1)
	if floor := (minGCHeadroom*100 + live - 1) / live; floor > uint64(p) {
		p = int(min(floor, 100))
	}
	return p
}

// gcTuner keeps the garbage collector's target in step with the live heap,
// which for policyd is mostly the policy cache and the per-domain state:
// after every collection it sets GOGC (debug.SetGCPercent) from the live
// heap the collection left (gcPercent). The memory policyd holds is then
// about (1 + headroom/100) times what it needs, instead of twice, at the
// cost of more frequent collections while the cache is large.
//
// Its hooks are fields so that tests can watch it without changing the
// process's collector; nil means the runtime's.
type gcTuner struct {
	headroom int // percent of the live heap
	// setPercent is debug.SetGCPercent.
	setPercent func(int) int
	// live returns the live heap after the last collection.
	live func() uint64
	// tuned, when set, hears each GOGC value set.
	tuned func(int)

	mu      sync.Mutex
	stopped bool
	last    int // the GOGC value set last, 0 before the first
	orig    int // GOGC before the first setting
}

// start installs the first GOGC and re-tunes after every collection until
// stop.
func (t *gcTuner) start() {
	if t.setPercent == nil {
		t.setPercent = debug.SetGCPercent
	}
	if t.live == nil {
		t.live = liveHeap
	}
	t.tune()
	t.arm()
}

// arm registers a cleanup on a fresh object nothing references, so that
// it runs after the next collection: the cleanup tunes and arms again.
func (t *gcTuner) arm() {
	sentinel := new([16]byte) // not tiny-allocated: its cleanup runs
	runtime.AddCleanup(sentinel, func(t *gcTuner) {
		if t.tune() {
			t.arm()
		}
	}, t)
}

// tune sets GOGC from the live heap; false once stopped.
func (t *gcTuner) tune() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return false
	}
	p := gcPercent(t.live(), t.headroom)
	if p != t.last {
		prev := t.setPercent(p)
		if t.last == 0 {
			t.orig = prev
		}
		t.last = p
		if t.tuned != nil {
			t.tuned(p)
		}
	}
	return true
}

// stop ends the tuning and puts back the GOGC found at start.
func (t *gcTuner) stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	t.stopped = true
	if t.last != 0 {
		t.setPercent(t.orig)
	}
}

// liveHeap returns the heap the last collection found live, in bytes.
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
