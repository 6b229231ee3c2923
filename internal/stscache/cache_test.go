package stscache

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailsts/mailsts/mtasts"
)

// openTestCache opens a SQLite cache on path as a daemon or `mailsts
// cache` does.
func openTestCache(t *testing.T, path string) *Cache {
	t.Helper()
	c, err := Open(context.Background(), Config{Kind: KindSQLite, Path: path, NoFallback: true})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// purgeAsCLI purges from the SQLite file as `mailsts cache purge` does: a
// cache opened on the same file, its Purge (every entry without domains).
func purgeAsCLI(t *testing.T, path string, domains ...string) int {
	t.Helper()
	ctx := context.Background()
	c := openTestCache(t, path)
	defer c.Close(ctx)
	n, err := c.Purge(ctx, domains, len(domains) == 0)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// applyPurges drops what the purge log names from memory, and everything
// when records it never read were trimmed (a daemon stopped for longer
// than purgeKeep).
func TestCacheApplyPurges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "cache.sqlite")
	now := time.Now()
	seed := openTestCache(t, path)
	domains := []string{"a.example", "b.example", "c.example", "d.example"}
	for _, dom := range domains {
		p := &mtasts.Policy{Mode: mtasts.ModeEnforce, MX: []string{"mx." + dom}, MaxAge: 86400}
		if err := seed.Put(ctx, &mtasts.Entry{Domain: dom, ID: "1", Policy: p, FetchedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	seed.Close(ctx)

	st := openTestCache(t, path) // the daemon's
	defer st.Close(ctx)
	if n, err := st.Warm(ctx); n != len(domains) || err != nil {
		t.Fatalf("Warm: %d, %v", n, err)
	}
	var drops []int
	dropped := func(n int) { drops = append(drops, n) }
	held := func() string {
		var out []string
		st.front.Range(ctx, func(e *mtasts.Entry) bool { out = append(out, e.Domain); return true })
		slices.Sort(out)
		return strings.Join(out, " ")
	}
	if got := held(); got != strings.Join(domains, " ") {
		t.Fatalf("loaded: %q", got)
	}
	seq, err := st.sqlite.PurgeSeqBefore(ctx, now)
	if err != nil || seq != 0 {
		t.Fatalf("start: %d, %v", seq, err)
	}
	if seq, err = st.applyPurges(ctx, seq, dropped); err != nil || seq != 0 {
		t.Fatalf("empty log: %d, %v", seq, err)
	}

	purgeAsCLI(t, path, "a.example", "missing.example")
	if seq, err = st.applyPurges(ctx, seq, dropped); err != nil || seq != 2 {
		t.Fatalf("after purging two: seq %d, %v; want 2", seq, err)
	}
	if got := held(); got != "b.example c.example d.example" {
		t.Errorf("after purging a: %q", got)
	}

	// Two purges the daemon does not read before they are trimmed (only
	// the newest record stays): it must assume the worst.
	purgeAsCLI(t, path, "b.example")
	purgeAsCLI(t, path, "c.example")
	if k, err := st.sqlite.TrimPurges(ctx, time.Now().Add(time.Minute)); err != nil || k != 3 {
		t.Fatalf("TrimPurges = %d, %v; want 3", k, err)
	}
	if seq, err = st.applyPurges(ctx, seq, dropped); err != nil || seq != 4 {
		t.Fatalf("after a gap: seq %d, %v; want 4", seq, err)
	}
	if got := held(); got != "" {
		t.Errorf("after missed purges, memory still holds %q", got)
	}
	// The callback heard every poll: nothing, two domains, all.
	if !slices.Equal(drops, []int{0, 2, -1}) {
		t.Errorf("dropped callbacks %v, want [0 2 -1]", drops)
	}
	// d.example is still in the file: the next Get reads it back.
	if e, err := st.Get(ctx, "d.example"); err != nil || e == nil {
		t.Errorf("d.example after the gap: %+v, %v; want it read back from the file", e, err)
	}
}

// Issue #10 item 4: go-redis's own lines go through slog (JSON logs stay
// JSON), tagged component=go-redis.
func TestRedisLogAdapter(t *testing.T) {
	t.Parallel()
	var buf strings.Builder
	l := slog.New(slog.NewJSONHandler(&buf, nil))
	a := redisLog{logger: l}
	a.Printf(context.Background(), "redis: connection pool: failed to dial after %d attempts: %v", 1, "refused")
	var rec map[string]any
	if err := json.Unmarshal([]byte(buf.String()), &rec); err != nil {
		t.Fatalf("not one JSON line: %q: %v", buf.String(), err)
	}
	if rec["msg"] != "connection pool: failed to dial after 1 attempts: refused" || rec["component"] != "go-redis" || rec["level"] != "WARN" {
		t.Errorf("logged %v", rec)
	}
}

// CountEntries counts what a Cache wrote, read only.
func TestCountEntries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "cache.sqlite")
	c := openTestCache(t, path)
	for _, d := range []string{"a.example", "b.example"} {
		if err := c.Put(ctx, &mtasts.Entry{Domain: d, FetchedAt: time.Now(), NoPolicyUntil: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := CountEntries(ctx, path); n != 2 || err != nil {
		t.Errorf("CountEntries = %d, %v; want 2", n, err)
	}
}

// Purge on a memory cache drops this process's entries and counts those
// that were there; purge all drops everything.
func TestCachePurgeMemory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, err := Open(ctx, Config{Kind: KindMemory})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	for _, d := range []string{"a.example", "b.example", "c.example"} {
		c.Put(ctx, &mtasts.Entry{Domain: d, FetchedAt: time.Now()})
	}
	if n, err := c.Purge(ctx, []string{"a.example", "missing.example"}, false); n != 1 || err != nil {
		t.Errorf("Purge = %d, %v; want 1", n, err)
	}
	if n, err := c.Purge(ctx, nil, true); n != 2 || err != nil || c.Len() != 0 {
		t.Errorf("Purge all = %d, %v (%d left); want 2, none left", n, err, c.Len())
	}
	if st := c.Status(); st.Kind != KindMemory || st.Durable || st.FellBack != nil {
		t.Errorf("Status = %+v", st)
	}
}
