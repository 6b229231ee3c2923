package stscache

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mailsts/mailsts/internal/testnet"
	"github.com/mailsts/mailsts/internal/watchdog"
	"github.com/mailsts/mailsts/mtasts"
)

// Two processes on one SQLite file, through Open: what one stores the other
// reads; a purge by one reaches the other's memory through the purge log
// (WatchPurges), and its next read finds nothing. STS-CACHE-1,
// STS-CACHE-10.
func TestCacheOpenSQLitePurgeReachesOtherCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "cache.sqlite")
	open := func() *Cache {
		t.Helper()
		c, err := Open(ctx, Config{Kind: KindSQLite, Path: path, NoFallback: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		return c
	}
	a, b := open(), open()
	if a.Kind() != KindSQLite {
		t.Errorf("Kind %q", a.Kind())
	}
	if st := a.Check(ctx); !st.Durable || st.FellBack != nil || st.Back.Degraded {
		t.Errorf("status %+v", st)
	}
	now := time.Now()
	for _, d := range []string{"keep.example", "purge.example"} {
		if err := a.Put(ctx, entryAt(d, mtasts.ModeEnforce, now, 86400, now)); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"keep.example", "purge.example"} {
		if e, err := b.Get(ctx, d); err != nil || e == nil {
			t.Fatalf("b.Get(%s) = %v, %v: the other cache's entry is not in the file", d, e, err)
		}
	}
	if !b.Touch("keep.example", now) {
		t.Error("Touch of a cached domain reports it absent")
	}
	n := 0
	if err := b.Range(ctx, func(*mtasts.Entry) bool { n++; return true }); err != nil || n != 2 {
		t.Errorf("Range saw %d entries (%v)", n, err)
	}

	wctx, cancel := context.WithCancel(ctx)
	dropped := make(chan int, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.WatchPurges(wctx, now.Add(-time.Second), 10*time.Millisecond, func(n int) { dropped <- n })
	}()
	if got, err := a.Purge(ctx, []string{"purge.example"}, false); err != nil || got != 1 {
		t.Fatalf("Purge = %d, %v", got, err)
	}
	if n := watchdog.Within(t, 2*time.Minute, func() int { return <-dropped }); n != 1 {
		t.Errorf("the watching cache dropped %d domains, want 1", n)
	}
	cancel()
	<-done
	if e, err := b.Get(ctx, "purge.example"); err != nil || e != nil {
		t.Errorf("after the purge b.Get = %+v, %v; want nothing", e, err)
	}
	if e, err := b.Get(ctx, "keep.example"); err != nil || e == nil {
		t.Errorf("the other domain went too: %v", err)
	}
	if err := b.Delete(ctx, "keep.example"); err != nil {
		t.Fatal(err)
	}
	// A third process reads the file (a's memory still holds its own
	// copy: Delete, unlike Purge, is not announced).
	if e, _ := open().Get(ctx, "keep.example"); e != nil {
		t.Error("Delete through one cache left the entry in the file")
	}
	if _, err := a.Maintain(ctx, now.Add(-time.Hour), 100); err != nil {
		t.Errorf("Maintain: %v", err)
	}
}

// The same through Redis: two caches on one prefix, each watching its back
// store; a purge by one reaches the other at once (Pub/Sub), and the
// purged domain is gone from both. STS-CACHE-1.
func TestCacheOpenRedisPurgeReachesOtherCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	prefix := redisPrefix(t, redisClient(t)) // skips without Redis
	open := func() *Cache {
		t.Helper()
		c, err := Open(ctx, Config{Kind: KindRedis, Redis: &redis.Options{Addr: "127.0.0.1:6379"}, RedisWhere: "127.0.0.1:6379", Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		return c
	}
	a, b := open(), open()
	if b.Kind() != KindRedis {
		t.Errorf("Kind %q", b.Kind())
	}
	states := make(chan bool, 16)
	stop := b.Watch(ctx, func(failing bool) { states <- failing }, nil)
	defer stop()
	if st := b.Check(ctx); !st.Durable || st.Back.Degraded {
		t.Errorf("status with Redis up: %+v", st)
	}
	now := time.Now()
	if err := a.Put(ctx, entryAt("purge.example", mtasts.ModeEnforce, now, 86400, now)); err != nil {
		t.Fatal(err)
	}
	if e, err := b.Get(ctx, "purge.example"); err != nil || e == nil {
		t.Fatalf("b.Get = %v, %v: the other cache's entry is not in Redis", e, err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dropped := make(chan int, 16)
	go b.WatchPurges(wctx, now, 0, func(n int) { dropped <- n })
	// Pub/Sub does not queue: purge until the subscription has heard one
	// (bounded: a handful of rounds at most).
	got := 0
	for round := 0; round < 50 && got == 0; round++ {
		if _, err := a.Purge(ctx, []string{"purge.example"}, false); err != nil {
			t.Fatal(err)
		}
		select {
		case got = <-dropped:
		case <-time.After(100 * time.Millisecond):
		}
	}
	if got == 0 {
		t.Fatal("the watching cache never heard the purge")
	}
	if e, err := b.Get(ctx, "purge.example"); err != nil || e != nil {
		t.Errorf("after the purge b.Get = %+v, %v; want nothing", e, err)
	}
	select {
	case failing := <-states:
		t.Errorf("back store state changed to failing=%v with Redis up", failing)
	default:
	}
}

// Open pointed at postfix-mta-sts-resolver's file opens mailsts's own file
// instead (the old one is never written) and says so; the one-time import
// is claimed once, copies the old daemon's valid policies, and refuses the
// cache's own file as a source.
func TestCacheOpenResolverFileAndImport(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	peer, own := filepath.Join(dir, "cache.db"), filepath.Join(dir, "policyd-cache.sqlite")
	now := time.Now()
	writeResolverSQLite(t, peer, resolverRows(now))
	c, err := Open(ctx, Config{Kind: KindSQLite, Path: peer, OwnPath: own, NoFallback: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if st := c.Status(); st.ResolverFile != peer || !samePath(st.Where, own) {
		t.Fatalf("status %+v: want own file %s and the resolver file noted", st, own)
	}
	release, err := c.ClaimImport(ctx, now)
	if err != nil {
		t.Fatalf("first claim: %v", err)
	}
	stats, err := c.ImportResolver(ctx, ResolverSource{File: peer}, now)
	if err != nil || stats.Imported != 3 || stats.Expired != 1 {
		release()
		t.Fatalf("import: %+v, %v; want 3 imported, 1 expired", stats, err)
	}
	if e, err := c.Get(ctx, "example.com"); err != nil || e == nil || e.Policy == nil || e.Policy.Mode != mtasts.ModeEnforce || e.ID != "20160831085700Z" {
		t.Errorf("imported example.com: %+v, %v", e, err)
	}
	if _, err := c.ClaimImport(ctx, now); !errors.Is(err, ErrImportedBefore) {
		t.Errorf("second claim: %v, want ErrImportedBefore", err)
	}
	if _, err := c.ImportResolver(ctx, ResolverSource{File: own}, now); !errors.Is(err, ErrImportSource) {
		t.Errorf("importing the cache's own file: %v, want ErrImportSource", err)
	}
}

// On Redis the one-time import is claimed once per prefix for the whole
// fleet: a second daemon on the same prefix finds the claim, a daemon on
// another prefix does not, and a released claim (a failed import) can be
// claimed again. A memory cache always claims (it starts empty).
func TestCacheClaimImportRedis(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redisClient(t) // skips without Redis
	prefix := redisPrefix(t, rdb)
	open := func(prefix string) *Cache {
		c, err := Open(ctx, Config{Kind: KindRedis, Redis: &redis.Options{Addr: redisAddr}, Prefix: prefix, NoFallback: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		return c
	}
	now := time.Now()
	a, b := open(prefix), open(prefix)
	release, err := a.ClaimImport(ctx, now)
	if err != nil {
		t.Fatalf("first claim: %v", err)
	}
	if _, err := b.ClaimImport(ctx, now); !errors.Is(err, ErrImportedBefore) {
		t.Errorf("second daemon on the same prefix: %v, want ErrImportedBefore", err)
	}
	release() // the import failed: withdraw the claim
	again, err := b.ClaimImport(ctx, now)
	if err != nil {
		t.Fatalf("claim after release: %v, want it granted (the import is tried again)", err)
	}
	defer again()
	otherPrefix := redisPrefix(t, rdb)
	if rel, err := open(otherPrefix).ClaimImport(ctx, now); err != nil {
		t.Errorf("a daemon on another prefix: %v, want its own claim", err)
	} else {
		rel()
	}

	mem, err := Open(ctx, Config{Kind: KindMemory})
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close(ctx)
	for range 2 {
		if _, err := mem.ClaimImport(ctx, now); err != nil {
			t.Errorf("memory cache claim: %v, want always granted", err)
		}
	}
}

// A SQLite file that cannot be opened (here its directory cannot be
// created) makes Open fall back to memory loudly: one ERROR line naming
// the path, Status not durable with the reason; with NoFallback (mailsts
// cache commands) it is an error instead.
func TestCacheOpenFallsBackLoudly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(blocker, "state", "cache.sqlite") // under a regular file
	if _, err := Open(ctx, Config{Kind: KindSQLite, Path: path, NoFallback: true}); err == nil {
		t.Fatal("Open with NoFallback succeeded on an impossible path")
	}
	log, out := logBuffer()
	c, err := Open(ctx, Config{Kind: KindSQLite, Path: path, Logger: log})
	if err != nil {
		t.Fatalf("Open with fallback: %v", err)
	}
	defer c.Close(ctx)
	st := c.Status()
	if st.Kind != KindMemory || st.Durable || st.FellBack == nil || !strings.Contains(st.Where, path) {
		t.Errorf("status %+v: want a memory cache, not durable, saying why and which path", st)
	}
	if n := strings.Count(out(), "level=ERROR"); n != 1 || !strings.Contains(out(), "FALLING BACK TO MEMORY") {
		t.Errorf("want one ERROR line announcing the fallback, got:\n%s", out())
	}
	// It still caches.
	if err := c.Put(ctx, entryAt("a.example", mtasts.ModeEnforce, time.Now(), 86400, time.Time{})); err != nil {
		t.Fatal(err)
	}
	if e, err := c.Get(ctx, "a.example"); err != nil || e == nil {
		t.Errorf("Get after Put on the fallback cache: %v, %v", e, err)
	}
}

// `mailsts cache purge` against an unreachable Redis fails, saying so: a
// purge is never reported done when no daemon can have seen it. Once Redis
// answers, the same purge goes through, leaving the tombstone the other
// daemons follow (STS-CACHE-10).
func TestCachePurgeRedisUnreachable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	direct := redisClient(t) // skips without Redis
	prefix := redisPrefix(t, direct)
	proxy := testnet.StartProxyFor(t, redisAddr)
	c, err := Open(ctx, Config{Kind: KindRedis, Redis: &redis.Options{Addr: proxy.Addr(), MaxRetries: -1}, Prefix: prefix, NoFallback: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	for _, d := range []string{"a.example", "b.example"} {
		if err := c.Put(ctx, entryAt(d, mtasts.ModeEnforce, time.Now(), 86400, time.Time{})); err != nil {
			t.Fatal(err)
		}
	}
	proxy.Cut()
	if n, err := c.Purge(ctx, []string{"a.example"}, false); err == nil {
		t.Fatalf("purge with Redis cut = %d, nil; want an error", n)
	}
	if n, err := c.Purge(ctx, nil, true); err == nil {
		t.Fatalf("purge --all with Redis cut = %d, nil; want an error", n)
	}
	proxy.Restore()
	// The operator runs the command again (a new process).
	again, err := Open(ctx, Config{Kind: KindRedis, Redis: &redis.Options{Addr: redisAddr}, Prefix: prefix, NoFallback: true})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close(context.Background())
	if n, err := again.Purge(ctx, []string{"a.example", "nothere.example"}, false); err != nil || n != 1 {
		t.Fatalf("purge after Redis came back = %d, %v; want 1 entry purged", n, err)
	}
	r := NewRedis(direct, prefix, nil)
	if p, err := r.Purged(ctx, "a.example"); err != nil || !p {
		t.Errorf("no tombstone for the purged domain: %v, %v", p, err)
	}
	if e, err := r.Get(ctx, "b.example"); err != nil || e == nil {
		t.Errorf("b.example lost by a purge of a.example: %v, %v", e, err)
	}
}
