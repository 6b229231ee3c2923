package policyd

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// BenchmarkStateFootprint reports the heap bytes of the per-domain state
// (the allocation and its share of the state map) once 100,000 domains
// have one, the domain names not counted (the cache keeps them too).
func BenchmarkStateFootprint(b *testing.B) {
	const n = 100000
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("domain-%06d.example", i)
	}
	now := time.Now()
	var r *Responder
	var before, after runtime.MemStats
	for b.Loop() {
		r = nil
		runtime.GC()
		runtime.ReadMemStats(&before)
		r = &Responder{}
		r.init()
		for _, d := range names {
			r.state(d, now)
		}
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.StartTimer()
	}
	if r.States() != n {
		b.Fatalf("States = %d, want %d", r.States(), n)
	}
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/n, "heap-B/domain")
	runtime.KeepAlive(r)
}
