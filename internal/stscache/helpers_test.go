package stscache

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mailsts/mailsts/mtasts"
)

// clock is an injected clock tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// counting wraps a store, counts calls and can be made to fail.
type counting struct {
	mtasts.Store
	gets, puts atomic.Int64
	probes     atomic.Int64 // gets of probeDomain, not counted in gets
	fail       atomic.Bool
	// hang, when set, makes every call wait for its context to end.
	hang atomic.Bool
}

var errInjected = errors.New("injected back store failure")

func (c *counting) Get(ctx context.Context, d string) (*mtasts.Entry, error) {
	if d == probeDomain {
		c.probes.Add(1)
	} else {
		c.gets.Add(1)
	}
	if err := c.failure(ctx); err != nil {
		return nil, err
	}
	return c.Store.Get(ctx, d)
}

func (c *counting) Put(ctx context.Context, e *mtasts.Entry) error {
	c.puts.Add(1)
	if err := c.failure(ctx); err != nil {
		return err
	}
	return c.Store.Put(ctx, e)
}

func (c *counting) failure(ctx context.Context) error {
	if c.hang.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	if c.fail.Load() {
		return errInjected
	}
	return nil
}

// logBuffer returns a logger writing text to a buffer safe for concurrent
// use, and a function returning what was written.
func logBuffer() (*slog.Logger, func() string) {
	var mu sync.Mutex
	var buf bytes.Buffer
	w := writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	})
	return slog.New(slog.NewTextHandler(w, nil)), func() string {
		mu.Lock()
		defer mu.Unlock()
		return buf.String()
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func openTestSQLite(t testing.TB) (*SQLite, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cache.db")
	s, err := OpenSQLite(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

const redisAddr = "127.0.0.1:6379"

// redisClient connects to the local Redis or skips the test, saying that
// the Redis tests did not run.
func redisClient(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr:         redisAddr,
		DialTimeout:  time.Second,
		ReadTimeout:  5 * time.Second,
		WriteTimeout: 5 * time.Second,
		MaxRetries:   -1,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		t.Skipf("redis not reachable at %s: %v (SKIPPED, NOT PASSED: run redis-server on %s to test the Redis store)", redisAddr, err, redisAddr)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// redisPrefix returns a unique key prefix and deletes its keys at cleanup.
func redisPrefix(t testing.TB, c *redis.Client) string {
	t.Helper()
	b := make([]byte, 8)
	rand.Read(b)
	prefix := "mailsts-test-" + hex.EncodeToString(b) + ":"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var cursor uint64
		for range 100000 {
			keys, next, err := c.Scan(ctx, cursor, prefix+"*", 1000).Result()
			if err != nil {
				t.Errorf("cleaning up %s*: %v", prefix, err)
				return
			}
			if len(keys) > 0 {
				if err := c.Del(ctx, keys...).Err(); err != nil {
					t.Errorf("cleaning up %s*: %v", prefix, err)
					return
				}
			}
			if cursor = next; cursor == 0 {
				return
			}
		}
	})
	return prefix
}

func newTestRedis(t testing.TB) (*Redis, *redis.Client) {
	t.Helper()
	c := redisClient(t)
	return NewRedis(c, redisPrefix(t, c), nil), c
}

// entryAt returns an entry for domain with a policy of mode (or none when
// mode is ""), fetched at fetched with max_age maxAge, last used at used.
func entryAt(domain string, mode mtasts.Mode, fetched time.Time, maxAge int64, used time.Time) *mtasts.Entry {
	e := &mtasts.Entry{Domain: domain, FetchedAt: fetched, CheckedAt: fetched, LastUsed: used}
	if mode != "" {
		e.ID = "id1"
		e.Policy = &mtasts.Policy{Mode: mode, MX: []string{"mx." + domain}, MaxAge: maxAge}
	} else {
		e.NoPolicyUntil = fetched.Add(time.Hour)
	}
	return e
}

// schemaV1DDL is the cache file's version 1 schema as released, written
// out here (not taken from migrations[0]) so that an edit to the migration
// list cannot hide a broken upgrade of files already in the field.
func schemaV1DDL() []string {
	return []string{
		`CREATE TABLE entries (
			domain          TEXT PRIMARY KEY NOT NULL,
			policy          TEXT,
			mode            TEXT,
			expires_at      INTEGER,
			policy_id       TEXT NOT NULL DEFAULT '',
			fetched_at      INTEGER,
			checked_at      INTEGER,
			no_policy_until INTEGER,
			failed_id       TEXT NOT NULL DEFAULT '',
			failed_at       INTEGER,
			failures        INTEGER NOT NULL DEFAULT 0,
			last_error      TEXT NOT NULL DEFAULT '',
			last_used       INTEGER
		) STRICT, WITHOUT ROWID`,
		`CREATE INDEX entries_expires_at ON entries(expires_at)`,
		`CREATE INDEX entries_last_used ON entries(last_used)`,
	}
}
