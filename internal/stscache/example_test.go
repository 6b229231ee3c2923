package stscache_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/mailsts/mailsts/internal/stscache"
	"github.com/mailsts/mailsts/mtasts"
)

// How policyd and `mailsts cache` use the cache: Open one from a Config,
// serve lookups from it, and purge through it so that every process using
// the file forgets the domain.
func ExampleOpen() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "stscache-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	cache, err := stscache.Open(ctx, stscache.Config{Kind: stscache.KindSQLite, Path: filepath.Join(dir, "cache.sqlite")})
	if err != nil {
		log.Fatal(err)
	}
	defer cache.Close(ctx)
	now := time.Now()
	cache.Put(ctx, &mtasts.Entry{
		Domain:    "example.com",
		Policy:    &mtasts.Policy{Mode: mtasts.ModeEnforce, MX: []string{"mx.example.com"}, MaxAge: 86400},
		ID:        "20250101",
		FetchedAt: now,
	})
	st := cache.Status()
	fmt.Println(st.Kind, st.Durable, st.Entries)
	// A daemon runs cache.WatchPurges(ctx, started, 0, forgetAnswers) to
	// hear of purges made by other processes.
	n, _ := cache.Purge(ctx, []string{"example.com"}, false)
	e, _ := cache.Get(ctx, "example.com")
	fmt.Println("purged", n, e == nil)
	// Output:
	// sqlite true 1
	// purged 1 true
}

// A daemon keeps its cache in a SQLite file behind a memory front: queries
// never touch the disk, and the cache survives a restart.
func ExampleTiered() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "stscache-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "sts-cache.db")

	db, err := stscache.OpenSQLite(ctx, path, nil)
	if err != nil {
		log.Fatal(err)
	}
	// This process is the file's only writer: trust the front forever.
	cache := &stscache.Tiered{Front: &stscache.Memory{}, Back: db, FrontTTL: -1}
	now := time.Now()
	err = cache.Put(ctx, &mtasts.Entry{
		Domain:    "example.com",
		Policy:    &mtasts.Policy{Mode: mtasts.ModeEnforce, MX: []string{"mx.example.com"}, MaxAge: 86400},
		ID:        "20250101",
		FetchedAt: now,
	})
	if err != nil {
		log.Fatal(err)
	}
	// Per query: a memory read and a memory-only use mark.
	e, _ := cache.Get(ctx, "example.com")
	cache.Touch("example.com", now)
	fmt.Println(e.Policy.Mode, e.Valid(now))
	// Periodically and at shutdown: one batched write.
	n, _ := cache.Flush(ctx)
	fmt.Println("flushed", n)
	db.Close()

	// After a restart the policy is still there (STS-CACHE-10).
	db, err = stscache.OpenSQLite(ctx, path, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	cache = &stscache.Tiered{Front: &stscache.Memory{}, Back: db, FrontTTL: -1}
	loaded, _ := cache.Load(ctx)
	e, _ = cache.Get(ctx, "example.com")
	fmt.Println("loaded", loaded, e.ID, e.LastUsed.Equal(now.Truncate(time.Millisecond)))
	// Output:
	// enforce true
	// flushed 1
	// loaded 1 20250101 true
}

// Cap never drops a valid enforce policy, even when it is the least
// recently used entry.
func ExampleMemory_Cap() {
	ctx := context.Background()
	now := time.Now()
	m := &stscache.Memory{}
	m.Put(ctx, &mtasts.Entry{
		Domain:    "enforced.example",
		Policy:    &mtasts.Policy{Mode: mtasts.ModeEnforce, MX: []string{"mx.enforced.example"}, MaxAge: 86400},
		FetchedAt: now,
		LastUsed:  now.Add(-time.Hour),
	})
	m.Put(ctx, &mtasts.Entry{Domain: "nopolicy.example", NoPolicyUntil: now.Add(time.Hour), LastUsed: now})
	n, _ := m.Cap(ctx, 1)
	kept, _ := m.Get(ctx, "enforced.example")
	fmt.Println(n, kept != nil, m.Len())
	// Output: 1 true 1
}
