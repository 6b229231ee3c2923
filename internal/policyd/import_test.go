package policyd

import (
	"bytes"
	"context"
	"database/sql"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mailsts/mailsts/internal/testnet"
	"github.com/mailsts/mailsts/mtasts"
)

// writeResolverCache builds postfix-mta-sts-resolver's SQLite cache (the
// schema and serialisation of its sqlite_cache.py) holding example.com's
// enforce policy (f2), checked an hour ago, and one unusable row.
func writeResolverCache(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ts := time.Now().Add(-time.Hour).Unix()
	for _, q := range []string{
		"PRAGMA journal_mode=WAL",
		"create table if not exists proactive_fetch_ts (id integer primary key, last_fetch_ts integer)",
		"create table if not exists sts_policy_cache (domain text, ts integer, pol_id text, pol_body text)",
		"create unique index if not exists sts_policy_domain on sts_policy_cache (domain)",
		"create index if not exists sts_policy_domain_ts on sts_policy_cache (domain, ts)",
		`insert into sts_policy_cache (domain, ts, pol_id, pol_body) values ('example.com', ` + strconv.FormatInt(ts, 10) + `, '20160831085700Z',
			'{"mx": ["mail.example.com", "*.example.net", "backupmx.example.com"], "version": "STSv1", "mode": "enforce", "max_age": 604800}')`,
		`insert into sts_policy_cache (domain, ts, pol_id, pol_body) values ('broken.example', ` + strconv.FormatInt(ts, 10) + `, 'x', '{"mode": ')`,
		"PRAGMA wal_checkpoint(TRUNCATE)",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
}

// Issue #10 item 7: with postfix-mta-sts-resolver's mta-sts-daemon.yml
// (SQLite cache), policyd keeps its own file, never writes into the old
// one, and imports its policies at the first start: offline (DNS and
// HTTPS unreachable), the imported enforce policy is applied.
func TestDaemonMigratesResolverSQLite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	peer := filepath.Join(dir, "mta-sts", "cache.db")
	if err := os.MkdirAll(filepath.Dir(peer), 0o750); err != nil {
		t.Fatal(err)
	}
	writeResolverCache(t, peer)
	before, err := os.ReadFile(peer)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := Parse([]byte("host: 127.0.0.1\nport: 8461\ncache:\n  type: sqlite\n  options:\n    filename: " + peer + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	cfg.StateDir = state
	cfg.Listen = []Listener{{Socketmap: "127.0.0.1:0"}}
	cfg.DNS.Servers = []string{"127.0.0.1:" + strconv.Itoa(testnet.RefusedPortFor(t))}
	cfg.DNS.Timeout = 200 * time.Millisecond
	cfg.Fetch.Timeout = time.Second
	r := startDaemon(t, &Daemon{Config: cfg}, nil)
	if got := lookup(t, r.addr, "postfix", "example.com"); got != f2Secure {
		t.Errorf("imported policy offline: %q, want %q", got, f2Secure)
	}
	r.shutdown(t)
	if after, err := os.ReadFile(peer); err != nil || !bytes.Equal(before, after) {
		t.Errorf("the old daemon's file changed (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(state, CacheFileName)); err != nil {
		t.Errorf("mailsts's own cache file: %v", err)
	}
}

// A mailsts configuration whose cache.path is the old daemon's file: the
// file is refused as a cache (never written), mailsts's own file under
// the state directory is used and announced, and the old file's policies
// are imported once.
func TestOpenStoreRedirectsFromResolverFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	peer := filepath.Join(dir, "cache.db")
	writeResolverCache(t, peer)
	before, err := os.ReadFile(peer)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Default()
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.Cache.Path = peer
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	st, err := OpenCache(ctx, cfg, StoreOptions{NoFallback: true}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(ctx)
	own := filepath.Join(cfg.StateDir, CacheFileName)
	if cs := st.Status(); cs.Kind != "sqlite" || cs.Where != own || cs.ResolverFile != peer || !bytes.Contains(logs.Bytes(), []byte("postfix-mta-sts-resolver")) {
		t.Errorf("store %+v; log:\n%s", st, logs.String())
	}
	now := time.Now()
	AutoImport(ctx, st, cfg, now, log)
	e, err := st.Get(ctx, "example.com")
	if err != nil || e == nil || e.Policy == nil || e.ID != "20160831085700Z" {
		t.Fatalf("imported: %+v, %v", e, err)
	}
	// Once: a second start does not import again over what mailsts has.
	if err := st.Delete(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, e); err != nil {
		t.Fatal(err)
	}
	e.ID = "changed-by-mailsts"
	if err := st.Put(ctx, e); err != nil {
		t.Fatal(err)
	}
	AutoImport(ctx, st, cfg, now, log)
	if e, _ := st.Get(ctx, "example.com"); e == nil || e.ID != "changed-by-mailsts" {
		t.Errorf("second import overwrote mailsts's entry: %+v", e)
	}
	if after, _ := os.ReadFile(peer); !bytes.Equal(before, after) {
		t.Error("the old daemon's file changed")
	}
	// Importing the store into itself is refused.
	if _, err := ImportResolver(ctx, st, cfg, own, now); err == nil {
		t.Error("import from the store's own file accepted")
	}
}

// Redis: a translated configuration imports the old daemon's keys from the
// same database at the first start, once per prefix (a fleet imports
// once); mailsts's own keys sit beside them under the prefix.
func TestAutoImportResolverRedis(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", DialTimeout: time.Second})
	t.Cleanup(func() { rdb.Close() }) // after the cleanups below (LIFO)
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Skipf("no Redis on 127.0.0.1:6379 (SKIPPED, NOT PASSED): %v", err)
	}
	label := "t" + strconv.FormatInt(time.Now().UnixNano(), 36)
	domain := label + ".example.com"
	prefix := "mailsts-test-import-" + label + ":"
	member := "0123456789abcdef" + `["20160831085700Z", {"mx": ["mail.example.com", "*.example.net", "backupmx.example.com"], "version": "STSv1", "mode": "enforce", "max_age": 604800}]`
	if err := rdb.ZAdd(ctx, domain, redis.Z{Score: float64(time.Now().Add(-time.Hour).Unix()), Member: member}).Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		keys, _ := rdb.Keys(ctx, prefix+"*").Result()
		rdb.Del(ctx, append(keys, domain)...)
	})
	cfg, _, err := Parse([]byte("cache:\n  type: redis\n  options:\n    url: \"redis://127.0.0.1:6379/0?socket_timeout=5\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Cache.Redis.Prefix = prefix
	st, err := OpenCache(ctx, cfg, StoreOptions{NoFallback: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(ctx)
	AutoImport(ctx, st, cfg, time.Now(), nil)
	e, err := openRedisCache(t, prefix).Get(ctx, domain)
	if err != nil || e == nil || e.Policy == nil || e.ID != "20160831085700Z" || e.Policy.Mode != mtasts.ModeEnforce {
		t.Fatalf("imported into Redis: %+v, %v", e, err)
	}
	// The old key is untouched.
	if n, err := rdb.ZCard(ctx, domain).Result(); err != nil || n != 1 {
		t.Errorf("old key: %d members, %v", n, err)
	}
	// Once per prefix: another daemon (or a restart) does not import again.
	if err := openRedisCache(t, prefix).Delete(ctx, domain); err != nil {
		t.Fatal(err)
	}
	st2, err := OpenCache(ctx, cfg, StoreOptions{NoFallback: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close(ctx)
	AutoImport(ctx, st2, cfg, time.Now(), nil)
	if e, err := openRedisCache(t, prefix).Get(ctx, domain); err != nil || e != nil {
		t.Errorf("imported a second time: %+v, %v", e, err)
	}
}
