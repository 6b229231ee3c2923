package stscache

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/mailsts/mailsts/mtasts"
)

// footprintEntry returns the entry mtasts.Cache would store for domain i
// after a fetch: the policy parsed from a body of its own, as fetched, and
// the record id a substring of the TXT text it was read from.
func footprintEntry(b *testing.B, i int, shared bool, now time.Time) *mtasts.Entry {
	d := fmt.Sprintf("domain-%06d.example", i)
	mx := "mx1.mx.bench.example"
	if !shared {
		mx = "mx1." + d
	}
	p, err := mtasts.ParsePolicy([]byte("version: STSv1\nmode: enforce\nmx: " + mx + "\nmax_age: 604800\n"))
	if err != nil {
		b.Fatal(err)
	}
	txt := fmt.Sprintf("v=STSv1; id=2025%011d", i)
	return &mtasts.Entry{
		Domain:        d,
		Policy:        p,
		ID:            txt[len("v=STSv1; id="):],
		FetchedAt:     now,
		CheckedAt:     now,
		NoPolicyUntil: now.Add(5 * time.Minute),
		LastUsed:      now,
	}
}

// negativeEntry is what mtasts.Cache stores for a domain without a policy.
func negativeEntry(i int, now time.Time) *mtasts.Entry {
	d := fmt.Sprintf("domain-%06d.example", i)
	return &mtasts.Entry{
		Domain:        d,
		CheckedAt:     now,
		NoPolicyUntil: now.Add(time.Hour),
		LastError:     "no-policy: mtasts: no MTA-STS TXT record at _mta-sts." + d,
		LastUsed:      now,
	}
}

// BenchmarkMemoryFootprint reports what a Memory store holds per entry
// once filled with 100,000 entries the way policyd fills its front: heap
// bytes (the entry, the map, its share of the policy) and the runtime's
// bookkeeping outside the heap (weak handles). "shared": every domain has
// the same policy (hosted mail); "distinct": every domain names its own mx;
// "negative": no policy. The domain names themselves are counted: the
// store keeps them.
func BenchmarkMemoryFootprint(b *testing.B) {
	const n = 100000
	for _, kind := range []string{"shared", "distinct", "negative"} {
		b.Run(kind, func(b *testing.B) {
			ctx := context.Background()
			now := time.Now()
			var m *Memory
			var before, after runtime.MemStats
			for b.Loop() {
				m = nil
				runtime.GC()
				runtime.ReadMemStats(&before)
				m = &Memory{}
				for i := range n {
					var e *mtasts.Entry
					if kind == "negative" {
						e = negativeEntry(i, now)
					} else {
						e = footprintEntry(b, i, kind == "shared", now)
					}
					if err := m.Put(ctx, e); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.StartTimer()
			}
			if m.Len() != n {
				b.Fatalf("Len = %d, want %d", m.Len(), n)
			}
			b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/n, "heap-B/entry")
			b.ReportMetric(float64(int64(after.GCSys+after.OtherSys)-int64(before.GCSys+before.OtherSys))/n, "rtsys-B/entry")
			runtime.KeepAlive(m)
		})
	}
}
