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
