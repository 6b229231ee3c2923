package stscache

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mailsts/mailsts/mtasts"
	"github.com/mailsts/mailsts/mtasts/mtaststest"
)

func TestMemoryConformance(t *testing.T) {
	t.Parallel()
	mtaststest.TestStore(t, func(t *testing.T) mtasts.Store { return &Memory{} })
}

func TestSQLiteConformance(t *testing.T) {
	t.Parallel()
	mtaststest.TestStore(t, func(t *testing.T) mtasts.Store {
		s, _ := openTestSQLite(t)
		return s
	})
}

func TestRedisConformance(t *testing.T) {
	t.Parallel()
	redisClient(t) // skip the whole suite, once, when Redis is not there
	mtaststest.TestStore(t, func(t *testing.T) mtasts.Store {
		r, _ := newTestRedis(t)
		return r
	})
}

func TestTieredConformance(t *testing.T) {
	t.Parallel()
	t.Run("memory-back", func(t *testing.T) {
		t.Parallel()
		mtaststest.TestStore(t, func(t *testing.T) mtasts.Store {
			return &Tiered{Front: &Memory{}, Back: &Memory{}}
		})
	})
	t.Run("sqlite-back", func(t *testing.T) {
		t.Parallel()
		mtaststest.TestStore(t, func(t *testing.T) mtasts.Store {
			s, _ := openTestSQLite(t)
			return &Tiered{Front: &Memory{}, Back: s, FrontTTL: -1}
		})
	})
	t.Run("redis-back", func(t *testing.T) {
		t.Parallel()
		redisClient(t)
		mtaststest.TestStore(t, func(t *testing.T) mtasts.Store {
			r, _ := newTestRedis(t)
			return &Tiered{Front: &Memory{}, Back: r}
		})
	})
}

// evicter is what Memory and SQLite share for size bounds.
type evicter interface {
	mtasts.Store
	Cap(ctx context.Context, max int) (int, error)
	Evict(ctx context.Context, unusedSince time.Time) (int, error)
}

// evicters returns a fresh Memory and SQLite store on clock c, with a
// logger whose output the second return value reads.
func evicters(t *testing.T, c *clock) map[string]func() (evicter, func() string) {
	return map[string]func() (evicter, func() string){
		"memory": func() (evicter, func() string) {
			log, out := logBuffer()
			return &Memory{Now: c.Now, Logger: log}, out
		},
		"sqlite": func() (evicter, func() string) {
			log, out := logBuffer()
			s, err := OpenSQLite(context.Background(), t.TempDir()+"/c.db", log)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			s.Now = c.Now
			return s, out
		},
	}
}

// STS-CACHE-10: Evict drops only unused entries without a valid
// enforce/testing policy.
func TestEvictKeepsValidPolicies(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	c := newClock(now)
	long := now.Add(-30 * 24 * time.Hour)
	for name, open := range evicters(t, c) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s, _ := open()
			entries := []struct {
				e    *mtasts.Entry
				keep bool
			}{
				{entryAt("enforce-valid.example", mtasts.ModeEnforce, now.Add(-time.Hour), 86400, long), true},
				{entryAt("testing-valid.example", mtasts.ModeTesting, now.Add(-time.Hour), 86400, time.Time{}), true},
				{entryAt("enforce-expired.example", mtasts.ModeEnforce, now.Add(-48*time.Hour), 86400, long), false},
				// STS-CACHE-2 boundary: expired exactly at fetched+max_age.
				{entryAt("enforce-boundary.example", mtasts.ModeEnforce, now.Add(-24*time.Hour), 86400, long), false},
				{entryAt("none-valid.example", mtasts.ModeNone, now.Add(-time.Hour), 86400, long), false},
				{entryAt("negative.example", "", now.Add(-time.Hour), 0, long), false},
				{entryAt("negative-never-used.example", "", now.Add(-time.Hour), 0, time.Time{}), false},
				{entryAt("negative-recent.example", "", now.Add(-time.Hour), 0, now.Add(-time.Minute)), true},
			}
			for _, x := range entries {
				if err := s.Put(ctx, x.e); err != nil {
					t.Fatal(err)
				}
			}
			n, err := s.Evict(ctx, now.Add(-24*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			kept := 0
			for _, x := range entries {
				got, err := s.Get(ctx, x.e.Domain)
				if err != nil {
					t.Fatal(err)
				}
				if (got != nil) != x.keep {
					t.Errorf("%s: kept %v, want %v", x.e.Domain, got != nil, x.keep)
				}
				if x.keep {
					kept++
				}
			}
			if n != len(entries)-kept {
				t.Errorf("Evict returned %d, want %d", n, len(entries)-kept)
			}
		})
	}
}

// STS-CACHE-10: Cap evicts least recently used first, never a valid
// enforce/testing policy, and says so loudly when it cannot reach the cap.
func TestCapLRUAndProtection(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	c := newClock(now)
	for name, open := range evicters(t, c) {
		t.Run(name+"/lru", func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s, out := open()
			for i := range 6 {
				e := entryAt(fmt.Sprintf("n%d.example", i), "", now.Add(-time.Hour), 0, now.Add(time.Duration(i-10)*time.Minute))
				if err := s.Put(ctx, e); err != nil {
					t.Fatal(err)
				}
			}
			n, err := s.Cap(ctx, 4)
			if err != nil || n != 2 {
				t.Fatalf("Cap(4) = %d, %v; want 2, nil", n, err)
			}
			for i := range 6 {
				got, _ := s.Get(ctx, fmt.Sprintf("n%d.example", i))
				if (got != nil) != (i >= 2) {
					t.Errorf("n%d: kept %v, want %v (least recently used go first)", i, got != nil, i >= 2)
				}
			}
			if !strings.Contains(out(), "evicted=2") {
				t.Errorf("eviction not logged: %q", out())
			}
			if n, err := s.Cap(ctx, 4); n != 0 || err != nil {
				t.Errorf("Cap at the cap = %d, %v; want 0, nil", n, err)
			}
			if _, err := s.Cap(ctx, -1); err == nil {
				t.Error("Cap(-1) = nil error")
			}
		})
		t.Run(name+"/protected", func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s, out := open()
			// Protected entries are the least recently used: they must
			// still survive.
			for i := range 4 {
				mode := mtasts.ModeEnforce
				if i%2 == 1 {
					mode = mtasts.ModeTesting
				}
				e := entryAt(fmt.Sprintf("p%d.example", i), mode, now.Add(-time.Hour), 86400, now.Add(-48*time.Hour))
				if err := s.Put(ctx, e); err != nil {
					t.Fatal(err)
				}
			}
			for i := range 3 {
				e := entryAt(fmt.Sprintf("n%d.example", i), mtasts.ModeNone, now.Add(-time.Hour), 86400, now)
				if err := s.Put(ctx, e); err != nil {
					t.Fatal(err)
				}
			}
			n, err := s.Cap(ctx, 2)
			if err != nil || n != 3 {
				t.Fatalf("Cap(2) = %d, %v; want 3, nil", n, err)
			}
			for i := range 4 {
				if got, _ := s.Get(ctx, fmt.Sprintf("p%d.example", i)); got == nil {
					t.Errorf("valid policy p%d evicted by the size cap", i)
				}
			}
			if !strings.Contains(out(), "still over the size cap") || !strings.Contains(out(), "level=WARN") {
				t.Errorf("keeping protected entries over the cap was not warned about: %q", out())
			}
		})
	}
}

func TestMemoryTouch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := &Memory{}
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	if m.Touch("missing.example", t0) {
		t.Error("Touch(missing) = true")
	}
	if err := m.Put(ctx, entryAt("a.example", "", t0, 0, t0)); err != nil {
		t.Fatal(err)
	}
	if !m.Touch("a.example", t0.Add(time.Minute)) || !m.Touch("a.example", t0.Add(time.Second)) {
		t.Fatal("Touch(present) = false")
	}
	got, _ := m.Get(ctx, "a.example")
	if !got.LastUsed.Equal(t0.Add(time.Minute)) {
		t.Errorf("LastUsed = %v, want the latest touch %v (never lowered)", got.LastUsed, t0.Add(time.Minute))
	}
}

func TestCheckDomain(t *testing.T) {
	t.Parallel()
	good := []string{"example.com", "xn--bcher-kva.example", "a", strings.Repeat("a", 253)}
	bad := []string{"", strings.Repeat("a", 254), "a b", "a*", "a?b", "[x]", `a\b`, "tab\t", "é.example", "nul\x00"}
	for _, d := range good {
		if err := checkDomain(d); err != nil {
			t.Errorf("checkDomain(%q) = %v", d, err)
		}
	}
	for _, d := range bad {
		if err := checkDomain(d); err == nil {
			t.Errorf("checkDomain(%q) = nil", d)
		}
	}
}
