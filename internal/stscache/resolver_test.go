package stscache

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mailsts/mailsts/mtasts"
)

// resolverRow is one row of postfix-mta-sts-resolver's sts_policy_cache.
type resolverRow struct {
	domain string
	ts     int64
	id     string
	body   string // json.dumps of the parsed policy, as the peer writes it
}

// writeResolverSQLite builds a cache file the way postfix-mta-sts-resolver
// 1.x (sqlite_cache.py) does: its pragmas, tables and index, one row per
// domain with ts in Unix seconds and the policy body as JSON.
func writeResolverSQLite(t *testing.T, path string, rows []resolverRow) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		"PRAGMA journal_mode=WAL",
		"PRAGMA synchronous=NORMAL",
		"create table if not exists proactive_fetch_ts (id integer primary key, last_fetch_ts integer)",
		"create table if not exists sts_policy_cache (domain text, ts integer, pol_id text, pol_body text)",
		"create unique index if not exists sts_policy_domain on sts_policy_cache (domain)",
		"create index if not exists sts_policy_domain_ts on sts_policy_cache (domain, ts)",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range rows {
		if _, err := db.Exec("insert into sts_policy_cache (domain, ts, pol_id, pol_body) values (?, ?, ?, ?)", r.domain, r.ts, r.id, r.body); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec("insert into proactive_fetch_ts (last_fetch_ts, id) values (?, 1)", time.Now().Unix()); err != nil {
		t.Fatal(err)
	}
	// Leave a plain file behind (the old daemon stopped cleanly).
	if _, err := db.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		t.Fatal(err)
	}
}

func resolverRows(now time.Time) []resolverRow {
	hour := int64(3600)
	return []resolverRow{
		{"example.com", now.Unix() - hour, "20160831085700Z", `{"mx": ["mail.example.com", "*.example.net", "backupmx.example.com"], "version": "STSv1", "mode": "enforce", "max_age": 604800}`},
		{"Testing.Example", now.Unix() - 2*hour, "t1", `{"mx": ["mx.testing.example"], "version": "STSv1", "mode": "testing", "max_age": 86400}`},
		{"none.example", now.Unix() - hour, "n1", `{"mx": [], "version": "STSv1", "mode": "none", "max_age": 86400}`},
		// Expired: max_age ran out.
		{"old.example", now.Unix() - 2*86400, "o1", `{"mx": ["mx.old.example"], "version": "STSv1", "mode": "enforce", "max_age": 86400}`},
		// Unusable rows.
		{"badmode.example", now.Unix() - hour, "b1", `{"mx": ["mx.badmode.example"], "version": "STSv1", "mode": "strict", "max_age": 86400}`},
		{"badjson.example", now.Unix() - hour, "b2", `{"mx": [`},
		{"noid.example", now.Unix() - hour, "", `{"mx": ["mx.noid.example"], "version": "STSv1", "mode": "enforce", "max_age": 86400}`},
		{"future.example", now.Unix() + 86400, "f1", `{"mx": ["mx.future.example"], "version": "STSv1", "mode": "enforce", "max_age": 86400}`},
		{"bad domain", now.Unix() - hour, "d1", `{"mx": ["mx.example"], "version": "STSv1", "mode": "enforce", "max_age": 86400}`},
	}
}

// Issue #10 item 7: OpenSQLite never takes over postfix-mta-sts-resolver's
// file (nor any other program's database): it refuses with a sentinel and
// leaves the file byte for byte as it was.
func TestOpenSQLiteRefusesForeignFiles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	peer := filepath.Join(dir, "cache.db")
	writeResolverSQLite(t, peer, resolverRows(time.Now()))
	other := filepath.Join(dir, "other.db")
	func() {
		db, err := sql.Open("sqlite", other)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec("create table things (x integer)"); err != nil {
			t.Fatal(err)
		}
	}()
	for path, want := range map[string]error{peer: ErrResolverCache, other: ErrForeignFile} {
		before, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		s, err := OpenSQLite(ctx, path, nil)
		if !errors.Is(err, want) {
			if s != nil {
				s.Close()
			}
			t.Errorf("OpenSQLite(%s) = %v, want %v", filepath.Base(path), err, want)
			continue
		}
		after, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(before, after) {
			t.Errorf("%s changed by the refused open (%v)", filepath.Base(path), err)
		}
		// Not even files beside it (ours, they could keep the old daemon
		// from writing its file after a rollback).
		for _, suffix := range []string{"-wal", "-shm", "-journal"} {
			if _, err := os.Lstat(path + suffix); err == nil {
				t.Errorf("%s%s created by the refused open", filepath.Base(path), suffix)
			}
		}
	}
	// The fallback for a directory this process cannot write (no -shm
	// can be created there) reads the schema too.
	if tables, ok := foreignTables(ctx, peer, true); !ok || !slices.Contains(tables, resolverTable) {
		t.Errorf("immutable read of the old file: %q, %v", tables, ok)
	}
	// A new file and an empty one are ours to create.
	for _, path := range []string{filepath.Join(dir, "new.db"), filepath.Join(dir, "empty.db")} {
		if filepath.Base(path) == "empty.db" {
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		s, err := OpenSQLite(ctx, path, nil)
		if err != nil {
			t.Errorf("OpenSQLite(%s): %v", filepath.Base(path), err)
			continue
		}
		s.Close()
		// And reopening our own file works.
		s, err = OpenSQLite(ctx, path, nil)
		if err != nil {
			t.Errorf("reopening %s: %v", filepath.Base(path), err)
			continue
		}
		s.Close()
	}
}

func checkImported(t *testing.T, ctx context.Context, dst mtasts.Store, now time.Time, stats ImportStats) {
	t.Helper()
	// 9 rows: 3 usable (enforce, testing, none), 1 expired, 5 unusable.
	if want := (ImportStats{Read: 9, Imported: 3, Expired: 1, Bad: 5}); stats != want {
		t.Errorf("stats = %+v, want %+v", stats, want)
	}
	e, err := dst.Get(ctx, "example.com")
	if err != nil || e == nil || e.Policy == nil {
		t.Fatalf("example.com: %+v, %v", e, err)
	}
	if e.ID != "20160831085700Z" || e.Policy.Mode != mtasts.ModeEnforce || e.Policy.MaxAge != 604800 ||
		len(e.Policy.MX) != 3 || e.Policy.MX[1] != "*.example.net" || !e.Valid(now) {
		t.Errorf("example.com imported as %+v %+v", e, e.Policy)
	}
	if want := now.Add(-time.Hour).Truncate(time.Second); !e.FetchedAt.Equal(want) {
		t.Errorf("FetchedAt = %v, want the old daemon's ts %v", e.FetchedAt, want)
	}
	if !e.CheckedAt.IsZero() || e.Failures != 0 || e.LastError != "" {
		t.Errorf("imported entry carries state: %+v", e)
	}
	if e, _ := dst.Get(ctx, "testing.example"); e == nil || e.Policy == nil || e.Policy.Mode != mtasts.ModeTesting || e.ID != "t1" {
		t.Errorf("testing.example (stored as Testing.Example): %+v", e)
	}
	for _, d := range []string{"old.example", "badmode.example", "badjson.example", "noid.example", "future.example"} {
		if e, _ := dst.Get(ctx, d); e != nil {
			t.Errorf("%s imported: %+v", d, e)
		}
	}
}

// The policies in postfix-mta-sts-resolver's SQLite file are imported as
// valid entries (policy parsed by mtasts, id and time kept); expired and
// unusable rows are counted and skipped; the file is read only.
func TestImportResolverSQLite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Now()
	peer := filepath.Join(t.TempDir(), "cache.db")
	writeResolverSQLite(t, peer, resolverRows(now))
	before, err := os.ReadFile(peer)
	if err != nil {
		t.Fatal(err)
	}
	dst := &Memory{}
	read := func(fn ResolverRecordFunc) error { return ReadResolverSQLite(ctx, peer, now, fn) }
	stats, err := Import(ctx, dst, now, read, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkImported(t, ctx, dst, now, stats)
	if after, _ := os.ReadFile(peer); !bytes.Equal(before, after) {
		t.Error("the old daemon's file changed")
	}
	for _, suffix := range []string{"-wal", "-shm", "-journal"} {
		if _, err := os.Lstat(peer + suffix); err == nil {
			t.Errorf("cache.db%s created by the import", suffix)
		}
	}
	// A second import keeps what is there; a newer policy in the store is
	// never replaced by an older one from the file.
	newer := &mtasts.Entry{Domain: "example.com", ID: "new", FetchedAt: now,
		Policy: &mtasts.Policy{Mode: mtasts.ModeEnforce, MX: []string{"mx.example.com"}, MaxAge: 86400}}
	if err := dst.Put(ctx, newer); err != nil {
		t.Fatal(err)
	}
	stats, err = Import(ctx, dst, now, read, nil)
	if err != nil || stats.Kept != 3 || stats.Imported != 0 {
		t.Errorf("second import: %+v, %v; want all 3 kept", stats, err)
	}
	if e, _ := dst.Get(ctx, "example.com"); e == nil || e.ID != "new" {
		t.Errorf("newer entry replaced: %+v", e)
	}
	if err := ReadResolverSQLite(ctx, filepath.Join(t.TempDir(), "missing.db"), now, func(*mtasts.Entry, error) error { return nil }); err == nil {
		t.Error("a missing file reads without error")
	}
}

// The old daemon's Redis keys (a sorted set per domain: 16 random bytes
// and JSON [pol_id, pol_body], scored by ts) are imported the same way.
func TestImportResolverRedis(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", DialTimeout: time.Second})
	t.Cleanup(func() { rdb.Close() }) // after the cleanups below (LIFO)
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Skipf("no Redis on 127.0.0.1:6379 (SKIPPED, NOT PASSED): %v", err)
	}
	// The old daemon's keys are bare domain names: keep the test's under
	// a label of its own, and read only those.
	label := "t" + strconv.FormatInt(time.Now().UnixNano(), 36)
	now := time.Now()
	var keys []string
	for i, r := range resolverRows(now) {
		key := label + "." + r.domain
		if r.domain == "bad domain" {
			key = label + ".bad domain"
		}
		keys = append(keys, key)
		member := "0123456789abcdef" + `["` + r.id + `", ` + r.body + `]`
		if r.domain == "badjson.example" {
			member = "0123456789abcdef" + `["b2", {"mx": [`
		}
		// An older entry first, as ZADD + ZREMRANGEBYRANK leave only
		// the newest; here both stay, and the newest must win.
		if err := rdb.ZAdd(ctx, key, redis.Z{Score: float64(r.ts - 10), Member: "fedcba9876543210" + `["older", {}]`},
			redis.Z{Score: float64(r.ts), Member: member}).Err(); err != nil {
			t.Fatal(err)
		}
		_ = i
	}
	// mailsts's own keys and other types are passed over.
	own := NewRedis(rdb, label+".mailsts:", nil)
	if err := own.Put(ctx, &mtasts.Entry{Domain: "own.example", ID: "1", FetchedAt: now,
		Policy: &mtasts.Policy{Mode: mtasts.ModeEnforce, MX: []string{"mx.own.example"}, MaxAge: 86400}}); err != nil {
		t.Fatal(err)
	}
	keys = append(keys, own.Key("own.example"), label+"._metadata")
	rdb.HSet(ctx, label+"._metadata", "proactive_fetch_ts", "1")
	t.Cleanup(func() { rdb.Del(context.Background(), keys...) })

	dst := &Memory{}
	stats, err := Import(ctx, dst, now, func(fn ResolverRecordFunc) error {
		return ReadResolverRedis(ctx, rdb, label+".*", label+".mailsts:", now, fn)
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Strip the label: check the same expectations as for SQLite.
	relabelled := &Memory{}
	err = dst.Range(ctx, func(e *mtasts.Entry) bool {
		c := *e
		c.Domain = c.Domain[len(label)+1:]
		return relabelled.Put(ctx, &c) == nil
	})
	if err != nil {
		t.Fatal(err)
	}
	checkImported(t, ctx, relabelled, now, stats)
}

// With the old daemon still running, its latest writes are in the WAL, not
// yet in the file: the import reads them.
func TestImportResolverSQLiteRunningPeer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Now()
	peer := filepath.Join(t.TempDir(), "cache.db")
	writeResolverSQLite(t, peer, nil)
	db, err := sql.Open("sqlite", peer)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, q := range []string{
		"PRAGMA journal_mode=WAL",
		"PRAGMA wal_autocheckpoint=0",
		"insert into sts_policy_cache (domain, ts, pol_id, pol_body) values ('live.example', " + strconv.FormatInt(now.Unix()-60, 10) +
			`, 'l1', '{"mx": ["mx.live.example"], "version": "STSv1", "mode": "enforce", "max_age": 86400}')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if fi, err := os.Stat(peer + "-wal"); err != nil || fi.Size() == 0 {
		t.Fatalf("the running peer's WAL: %v", err)
	}
	dst := &Memory{}
	stats, err := Import(ctx, dst, now, func(fn ResolverRecordFunc) error { return ReadResolverSQLite(ctx, peer, now, fn) }, nil)
	if err != nil || stats.Imported != 1 {
		t.Fatalf("import: %+v, %v", stats, err)
	}
	if e, _ := dst.Get(ctx, "live.example"); e == nil || e.ID != "l1" {
		t.Errorf("live.example: %+v", e)
	}
}

// The old daemon's policies are JSON read from a cache another program
// wrote: resolverPolicyText rebuilds policy text from them and refuses any
// value that could smuggle a second line or a key into it, or that is not
// what a policy field holds (STS-POL-1: one key-value pair per line).
func TestResolverPolicyTextHostile(t *testing.T) {
	good := map[string]any{"version": "STSv1", "mode": "enforce", "mx": []any{"mx1.example", "*.example"},
		"max_age": float64(86400), "zz_ext": "x", "aa_ext": float64(1)}
	got, err := resolverPolicyText(good)
	want := "version: STSv1\r\nmode: enforce\r\nmx: mx1.example\r\nmx: *.example\r\nmax_age: 86400\r\naa_ext: 1\r\nzz_ext: x\r\n"
	if err != nil || got != want {
		t.Fatalf("resolverPolicyText(good) = %q, %v; want %q", got, err, want)
	}
	for name, fields := range map[string]map[string]any{
		"fractional max_age":    {"max_age": 86400.5},
		"huge max_age":          {"max_age": float64(1 << 60)},
		"boolean mode":          {"mode": true},
		"mode with a new line":  {"mode": "testing\r\nmx: evil.example"},
		"mx not a list":         {"mx": "mx1.example"},
		"mx entry not a string": {"mx": []any{map[string]any{}}},
		"mx entry with a LF":    {"mx": []any{"a.example\nmode: none"}},
		"key with a colon":      {"mode: enforce\r\nx": "y"},
		"empty key":             {"": "y"},
		"extension value list":  {"ext": []any{"a"}},
		"extension value LF":    {"ext": "a\nb"},
	} {
		if s, err := resolverPolicyText(fields); err == nil {
			t.Errorf("%s: accepted as %q, want an error", name, s)
		}
	}
}
