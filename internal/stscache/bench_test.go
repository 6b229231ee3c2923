package stscache

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mailsts/mailsts/mtasts"
)

func benchEntry(i int, now time.Time) *mtasts.Entry {
	d := fmt.Sprintf("domain-%06d.example", i)
	return &mtasts.Entry{
		Domain:    d,
		Policy:    &mtasts.Policy{Mode: mtasts.ModeEnforce, MX: []string{"mx1." + d, "mx2." + d}, MaxAge: 604800},
		ID:        "20250101T000000",
		FetchedAt: now,
		CheckedAt: now,
		LastUsed:  now,
	}
}

// The per-query path: a fresh front hit plus Touch.
func BenchmarkTieredGetHitSerial(b *testing.B) {
	ctx := context.Background()
	now := time.Now()
	tr := &Tiered{Front: &Memory{}, Back: &Memory{}}
	const n = 1024
	domains := make([]string, n)
	for i := range n {
		e := benchEntry(i, now)
		domains[i] = e.Domain
		if err := tr.Put(ctx, e); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	cpu := startCPU()
	i := 0
	for b.Loop() {
		d := domains[i%n]
		i++
		e, err := tr.Get(ctx, d)
		if err != nil || e == nil {
			b.Fatal("miss")
		}
		tr.Touch(d, now)
	}
	cpu.report(b)
}

func BenchmarkTieredGetHitParallel(b *testing.B) {
	ctx := context.Background()
	now := time.Now()
	tr := &Tiered{Front: &Memory{}, Back: &Memory{}}
	const n = 1024
	domains := make([]string, n)
	for i := range n {
		e := benchEntry(i, now)
		domains[i] = e.Domain
		if err := tr.Put(ctx, e); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			d := domains[i%n]
			i++
			if e, err := tr.Get(ctx, d); err != nil || e == nil {
				b.Error("miss")
				return
			}
			tr.Touch(d, now)
		}
	})
}

func mustJSON(b *testing.B, v any) string {
	j, err := json.Marshal(v)
	if err != nil {
		b.Fatal(err)
	}
	return string(j)
}

// BenchmarkSQLitePut: new entries written one at a time (each its own
// transaction); cpu-ns/op is the process's CPU per entry.
func BenchmarkSQLitePut(b *testing.B) {
	ctx := context.Background()
	s, _ := openTestSQLite(b)
	now := time.Now()
	i := 0
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		if err := s.Put(ctx, benchEntry(i%100000, now)); err != nil {
			b.Fatal(err)
		}
		i++
	}
	cpu.report(b)
}

// BenchmarkSQLitePutCtx: BenchmarkSQLitePut with each Put under a context
// with a deadline, as Tiered's write-through makes them (BackTimeout),
// and, for comparison, without one.
func BenchmarkSQLitePutCtx(b *testing.B) {
	for _, deadline := range []bool{true, false} {
		name := "deadline"
		if !deadline {
			name = "background"
		}
		b.Run(name, func(b *testing.B) {
			s, _ := openTestSQLite(b)
			now := time.Now()
			i := 0
			b.ReportAllocs()
			cpu := startCPU()
			for b.Loop() {
				ctx, cancel := context.Background(), context.CancelFunc(func() {})
				if deadline {
					ctx, cancel = context.WithTimeout(ctx, DefaultBackTimeout)
				}
				err := s.Put(ctx, benchEntry(i%100000, now))
				cancel()
				if err != nil {
					b.Fatal(err)
				}
				i++
			}
			cpu.report(b)
		})
	}
}

func BenchmarkRedisPut(b *testing.B) {
	ctx := context.Background()
	r, _ := newTestRedis(b)
	now := time.Now()
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		if err := r.Put(ctx, benchEntry(i%1000, now)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkRedisGet(b *testing.B) {
	ctx := context.Background()
	r, _ := newTestRedis(b)
	now := time.Now()
	for i := range 1000 {
		if err := r.Put(ctx, benchEntry(i, now)); err != nil {
			b.Fatal(err)
		}
	}
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		e, err := r.Get(ctx, fmt.Sprintf("domain-%06d.example", i%1000))
		if err != nil || e == nil {
			b.Fatal("miss", err)
		}
		i++
	}
}

// BenchmarkSQLiteLoad100k: warming a Tiered front from a SQLite file of
// 100,000 entries; reports the file's bytes per entry and the front's heap
// bytes per entry.
func BenchmarkSQLiteLoad100k(b *testing.B) {
	const n = 100000
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "load.db")
	s, err := OpenSQLite(ctx, path, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	// Bulk insert in one transaction through the writer connection.
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	put := tx.StmtContext(ctx, s.put)
	for i := range n {
		e := benchEntry(i, now)
		pj := encodePolicy(e.Policy)
		_, err := put.ExecContext(ctx, e.Domain, mustJSON(b, pj), string(e.Policy.Mode), e.Expires().UnixMilli(), e.ID,
			msArg(e.FetchedAt), msArg(e.CheckedAt), msArg(e.NoPolicyUntil), e.FailedID, msArg(e.FailedAt),
			e.Failures, e.LastError, msArg(e.LastUsed), string(e.LastErrorType), boolInt(e.LastErrorTemporary))
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	if _, err := s.wdb.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		b.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	cpu := startCPU()
	var front *Memory
	var before, after runtime.MemStats
	for b.Loop() {
		front = nil
		runtime.GC()
		runtime.ReadMemStats(&before)
		front = &Memory{}
		tr := &Tiered{Front: front, Back: s, FrontTTL: -1}
		got, err := tr.Load(ctx)
		if err != nil || got != n {
			b.Fatal(got, err)
		}
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.StartTimer()
	}
	cpu.report(b)
	b.ReportMetric(float64(st.Size())/n, "disk-B/entry")
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "front-B/entry")
	runtime.KeepAlive(front)
}

// cpuClock measures the process's CPU time (user+system), which stays
// meaningful when the machine is shared and wall-clock ns/op is inflated
// by waiting for a core.
type cpuClock struct{ start time.Duration }

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU() cpuClock { return cpuClock{cpuTime()} }

func (c cpuClock) report(b *testing.B) {
	b.ReportMetric(float64(cpuTime()-c.start)/float64(b.N), "cpu-ns/op")
}

// BenchmarkSQLitePutConcurrent: new entries written by 16 goroutines at
// once, as policyd's cold lookups do (each Put durable before it returns);
// cpu-ns/op is the process's CPU per entry.
func BenchmarkSQLitePutConcurrent(b *testing.B) {
	ctx := context.Background()
	s, _ := openTestSQLite(b)
	now := time.Now()
	var next atomic.Int64
	cpu := startCPU()
	b.SetParallelism(16 / max(1, runtime.GOMAXPROCS(0)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			// Spread over the key space like real domains.
			i := int(next.Add(1)*7919) % 1000003
			if err := s.Put(ctx, benchEntry(i, now)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	cpu.report(b)
}

// BenchmarkSQLiteMaintain200k: the periodic Evict and Cap on a file of
// 200,000 entries, which scan the table since schema version 4 dropped the
// indexes of expires_at and last_used (the "indexed" run puts them back,
// for comparison). Half the entries are negative (evictable); Evict finds
// nothing unused, Cap removes one (the least recently used evictable
// entry, sorted out of 100,000) and the loop puts it back.
func BenchmarkSQLiteMaintain200k(b *testing.B) {
	for _, indexed := range []bool{false, true} {
		name := "scan"
		if indexed {
			name = "indexed"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			s, _ := openTestSQLite(b)
			now := time.Now()
			s.Now = func() time.Time { return now }
			const n = 200_000
			es := make([]*mtasts.Entry, n)
			for i := range n {
				es[i] = benchEntry(i, now.Add(-time.Duration(n-i)*time.Second))
				if i%2 == 1 {
					es[i].Policy, es[i].ID, es[i].NoPolicyUntil = nil, "", now.Add(time.Hour)
				}
			}
			if err := s.putAll(ctx, es); err != nil {
				b.Fatal(err)
			}
			if indexed {
				if _, err := s.wdb.ExecContext(ctx, `CREATE INDEX entries_expires_at ON entries(expires_at);
					CREATE INDEX entries_last_used ON entries(last_used)`); err != nil {
					b.Fatal(err)
				}
			}
			cpu := startCPU()
			for b.Loop() {
				if k, err := s.Evict(ctx, now.Add(-100*24*time.Hour)); err != nil || k != 0 {
					b.Fatalf("Evict = %d, %v", k, err)
				}
				if k, err := s.Cap(ctx, n-1); err != nil || k != 1 {
					b.Fatalf("Cap = %d, %v", k, err)
				}
				b.StopTimer()
				if err := s.putAll(ctx, es[1:2]); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			cpu.report(b)
		})
	}
}
