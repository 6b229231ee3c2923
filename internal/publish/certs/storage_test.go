package certs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/mailsts/mailsts/internal/reports/reportstest"
)

// sharedStorage opens storage values over one backend, as several
// instances of mailsts would; lease is their lock lease.
type sharedStorage func(t *testing.T, lease time.Duration) testStorage

type testStorage interface {
	certmagic.Storage
	certmagic.LockLeaseRenewer
	abandon(name string)
}

func randomSuffix() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// postgresBackend gives every test its own schema, dropped at cleanup; it
// skips when the test server is unreachable.
func postgresBackend(t *testing.T) sharedStorage {
	t.Helper()
	dsn := reportstest.PostgresServer()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Skipf("PostgreSQL test server unreachable (set MAILSTS_TEST_POSTGRES): %v", err)
	}
	schema := "mailsts_certs_test_" + randomSuffix()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := admin.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
		admin.Close(ctx)
	})
	return func(t *testing.T, lease time.Duration) testStorage {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := OpenPostgres(ctx, dsn, PostgresOptions{Schema: schema, LockLease: lease, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
}

// redisBackend gives every test its own key prefix, deleted at cleanup; it
// skips when Redis is unreachable.
func redisBackend(t *testing.T) sharedStorage {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", DialTimeout: 2 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		t.Skipf("Redis at 127.0.0.1:6379 unreachable: %v", err)
	}
	prefix := "mailsts-test:certs:" + randomSuffix() + ":"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		iter := c.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
		c.Close()
	})
	return func(t *testing.T, lease time.Duration) testStorage {
		s := NewRedisStorage(c, RedisOptions{Prefix: prefix, LockLease: lease, Logger: testLogger(t)})
		t.Cleanup(s.Close)
		return s
	}
}

var backends = map[string]func(t *testing.T) sharedStorage{
	"postgres": postgresBackend,
	"redis":    redisBackend,
}

func forBackends(t *testing.T, f func(t *testing.T, open sharedStorage)) {
	for name, b := range backends {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f(t, b(t))
		})
	}
}

// The key-value half of certmagic's Storage contract.
func TestStorageKeys(t *testing.T) {
	t.Parallel()
	forBackends(t, func(t *testing.T, open sharedStorage) {
		ctx := context.Background()
		a, b := open(t, 0), open(t, 0)
		files := map[string]string{
			"certificates/acme/mta-sts.a.example/mta-sts.a.example.crt": "cert a",
			"certificates/acme/mta-sts.a.example/mta-sts.a.example.key": "key a",
			"certificates/acme/mta-sts.b.example/mta-sts.b.example.crt": "cert b",
			"certificates/acme0/x": "not under certificates/acme",
			"acme/account.json":    "{}",
		}
		for k, v := range files {
			if err := a.Store(ctx, k, []byte(v)); err != nil {
				t.Fatal(err)
			}
		}
		// Another instance sees what the first stored, and overwrites win.
		for k, v := range files {
			got, err := b.Load(ctx, k)
			if err != nil || string(got) != v {
				t.Errorf("Load(%q) = %q, %v; want %q", k, got, err, v)
			}
		}
		if err := b.Store(ctx, "acme/account.json", []byte(`{"v":2}`)); err != nil {
			t.Fatal(err)
		}
		if got, _ := a.Load(ctx, "acme/account.json"); string(got) != `{"v":2}` {
			t.Errorf("after overwrite: %q", got)
		}
		if _, err := a.Load(ctx, "certificates/missing"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Load of a missing key: %v, want fs.ErrNotExist", err)
		}
		if _, err := a.Stat(ctx, "nothing/here"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Stat of a missing key: %v, want fs.ErrNotExist", err)
		}
		if _, err := a.List(ctx, "nothing", true); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("List of a missing directory: %v, want fs.ErrNotExist", err)
		}
		fi, err := a.Stat(ctx, "certificates/acme/mta-sts.a.example/mta-sts.a.example.key")
		if err != nil || !fi.IsTerminal || fi.Size != int64(len("key a")) || time.Since(fi.Modified) > time.Hour {
			t.Errorf("Stat of a file: %+v, %v", fi, err)
		}
		fi, err = a.Stat(ctx, "certificates/acme")
		if err != nil || fi.IsTerminal {
			t.Errorf("Stat of a directory: %+v, %v", fi, err)
		}
		for _, k := range []string{"certificates", "certificates/acme/mta-sts.a.example", "acme/account.json"} {
			if !a.Exists(ctx, k) {
				t.Errorf("Exists(%q) = false", k)
			}
		}
		// Prefixes are per component: "certificates/ac" is not a directory.
		for _, k := range []string{"certificates/ac", "acme/account", "nothing"} {
			if a.Exists(ctx, k) {
				t.Errorf("Exists(%q) = true", k)
			}
		}
		got, err := a.List(ctx, "certificates", false)
		want := []string{"certificates/acme", "certificates/acme0"}
		slices.Sort(got)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("List(certificates, false) = %v, %v; want %v", got, err, want)
		}
		got, err = a.List(ctx, "certificates/acme", true)
		want = []string{
			"certificates/acme/mta-sts.a.example",
			"certificates/acme/mta-sts.a.example/mta-sts.a.example.crt",
			"certificates/acme/mta-sts.a.example/mta-sts.a.example.key",
			"certificates/acme/mta-sts.b.example",
			"certificates/acme/mta-sts.b.example/mta-sts.b.example.crt",
		}
		slices.Sort(got)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("List(certificates/acme, true) = %v, %v; want %v", got, err, want)
		}
		// Deleting a directory deletes what is under it, and only that.
		if err := b.Delete(ctx, "certificates/acme"); err != nil {
			t.Fatal(err)
		}
		if a.Exists(ctx, "certificates/acme") || a.Exists(ctx, "certificates/acme/mta-sts.b.example/mta-sts.b.example.crt") {
			t.Error("directory still exists after Delete")
		}
		if !a.Exists(ctx, "certificates/acme0/x") {
			t.Error("Delete of certificates/acme removed certificates/acme0")
		}
		if err := b.Delete(ctx, "certificates/acme"); err != nil {
			t.Errorf("Delete of a missing key: %v", err)
		}
		if err := a.Delete(ctx, "acme/account.json"); err != nil || a.Exists(ctx, "acme/account.json") {
			t.Errorf("Delete of a file: %v", err)
		}
	})
}

// Locker: two instances contend for one name; the second gets it only
// after the first unlocks. A lock whose holder died is taken over after
// its lease; Lock honours its context; Unlock of a lock not held fails.
func TestStorageLock(t *testing.T) {
	t.Parallel()
	forBackends(t, func(t *testing.T, open sharedStorage) {
		ctx := context.Background()
		a, b := open(t, 0), open(t, 0)
		if err := a.Lock(ctx, "issue_cert_mta-sts.a.example"); err != nil {
			t.Fatal(err)
		}
		var released atomic.Bool
		got := make(chan error, 1)
		go func() {
			err := b.Lock(ctx, "issue_cert_mta-sts.a.example")
			if err == nil && !released.Load() {
				err = errors.New("second instance got the lock while the first held it")
			}
			got <- err
		}()
		// Another name is independent.
		if err := b.Lock(ctx, "issue_cert_mta-sts.b.example"); err != nil {
			t.Fatal(err)
		}
		if err := b.Unlock(ctx, "issue_cert_mta-sts.b.example"); err != nil {
			t.Fatal(err)
		}
		short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		err := a.Lock(short, "issue_cert_mta-sts.a.example")
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Lock of a held name with a short context: %v, want deadline exceeded", err)
		}
		if err := a.RenewLockLease(ctx, "issue_cert_mta-sts.a.example", time.Minute); err != nil {
			t.Errorf("RenewLockLease: %v", err)
		}
		released.Store(true)
		if err := a.Unlock(ctx, "issue_cert_mta-sts.a.example"); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-got:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("second instance never got the released lock")
		}
		if err := b.Unlock(ctx, "issue_cert_mta-sts.a.example"); err != nil {
			t.Fatal(err)
		}
		if err := a.Unlock(ctx, "issue_cert_mta-sts.a.example"); !errors.Is(err, ErrLockNotHeld) {
			t.Errorf("Unlock of a lock not held: %v, want ErrLockNotHeld", err)
		}
	})
}

// A holder that dies keeps its lock only until the lease runs out; a
// living holder's lease is renewed past it.
func TestStorageStaleLock(t *testing.T) {
	t.Parallel()
	forBackends(t, func(t *testing.T, open sharedStorage) {
		ctx := context.Background()
		const lease = time.Second
		a, b := open(t, lease), open(t, lease)
		if err := a.Lock(ctx, "live"); err != nil {
			t.Fatal(err)
		}
		if err := a.Lock(ctx, "dead"); err != nil {
			t.Fatal(err)
		}
		a.abandon("dead")
		// The dead holder's lock is taken over within a few leases.
		wctx, cancel := context.WithTimeout(ctx, 10*lease)
		defer cancel()
		if err := b.Lock(wctx, "dead"); err != nil {
			t.Fatalf("stale lock not taken over: %v", err)
		}
		// The live one is still held after more than two leases.
		lctx, cancel2 := context.WithTimeout(ctx, 5*lease/2)
		defer cancel2()
		if err := b.Lock(lctx, "live"); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Lock of a renewed lock: %v, want deadline exceeded", err)
		}
		if err := a.Unlock(ctx, "live"); err != nil {
			t.Fatal(err)
		}
		if err := b.Unlock(ctx, "dead"); err != nil {
			t.Fatal(err)
		}
	})
}
