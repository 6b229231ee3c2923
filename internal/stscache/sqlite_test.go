package stscache

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailsts/mailsts/mtasts"
	"github.com/mailsts/mailsts/mtasts/mtaststest"
	"github.com/mailsts/mailsts/tlsrpt/result"
)

// STS-CACHE-10: the cache survives a restart (close and reopen the file).
func TestSQLiteSurvivesRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "dir with spaces?#%", "cache.db")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	want := mtaststest.SampleEntries(now)
	s, err := OpenSQLite(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range want {
		if err := s.Put(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("cache file not at the given path: %v", err)
	}

	s, err = OpenSQLite(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, w := range want {
		got, err := s.Get(ctx, w.Domain)
		if err != nil {
			t.Fatal(err)
		}
		if d := mtaststest.EntryDiff(got, w); d != "" {
			t.Errorf("after restart, %s: %s", w.Domain, d)
		}
	}
	// A restarted daemon still applies the cached enforce policy.
	tr := &Tiered{Front: &Memory{}, Back: s, FrontTTL: -1}
	if n, err := tr.Load(ctx); err != nil || n != len(want) {
		t.Fatalf("Load after restart = %d, %v", n, err)
	}
	if e, _ := tr.Get(ctx, "full.example"); !e.Valid(now) || e.Policy.Mode != mtasts.ModeEnforce {
		t.Errorf("enforce policy not valid after restart: %+v", e)
	}
}

func TestSQLiteSchemaVersion(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, path := openTestSQLite(t)
	var v int
	var mode string
	if err := s.rdb.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil || v != len(migrations) {
		t.Fatalf("user_version = %d, %v; want %d", v, err, len(migrations))
	}
	if err := s.rdb.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	// Reopening an up-to-date file migrates nothing and keeps data.
	if err := s.Put(ctx, entryAt("a.example", "", time.Now(), 0, time.Time{})); err != nil {
		t.Fatal(err)
	}
	s2, err := OpenSQLite(ctx, path, nil)
	if err != nil {
		t.Fatalf("second open of the same file: %v", err)
	}
	if n, err := s2.Len(ctx); n != 1 || err != nil {
		t.Errorf("Len via second handle = %d, %v", n, err)
	}
	s2.Close()

	// A file from a newer program is refused, untouched.
	newer := filepath.Join(t.TempDir(), "newer.db")
	db, err := sql.Open("sqlite", newer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`PRAGMA user_version = 99`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := OpenSQLite(ctx, newer, nil); !errors.Is(err, ErrSchemaTooNew) {
		t.Errorf("OpenSQLite(newer schema) = %v, want ErrSchemaTooNew", err)
	}
}

func TestSQLiteCorruptRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := openTestSQLite(t)
	for _, q := range []string{
		`INSERT INTO entries (domain, policy, mode) VALUES ('json.example', '{not json', 'enforce')`,
		`INSERT INTO entries (domain, policy, mode) VALUES ('mode.example', '{"mode":"bogus","mx":[],"max_age":1,"ext":null}', 'bogus')`,
		`INSERT INTO entries (domain, failures) VALUES ('failures.example', -1)`,
	} {
		if _, err := s.wdb.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put(ctx, entryAt("good.example", "", time.Now(), 0, time.Time{})); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"json.example", "mode.example", "failures.example"} {
		if _, err := s.Get(ctx, d); !errors.Is(err, ErrCorruptEntry) {
			t.Errorf("Get(%s) = %v, want ErrCorruptEntry", d, err)
		}
	}
	var seen []string
	if err := s.Range(ctx, func(e *mtasts.Entry) bool { seen = append(seen, e.Domain); return true }); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || seen[0] != "good.example" {
		t.Errorf("Range over corrupt rows visited %v, want only good.example", seen)
	}
}

func TestSQLiteWriteLastUsed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := openTestSQLite(t)
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := s.Put(ctx, entryAt("a.example", "", t0, 0, t0)); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, entryAt("never.example", "", t0, 0, time.Time{})); err != nil {
		t.Fatal(err)
	}
	err := s.WriteLastUsed(ctx, map[string]time.Time{
		"a.example":       t0.Add(-time.Hour), // older: ignored
		"never.example":   t0.Add(time.Hour),
		"missing.example": t0,
	})
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := s.Get(ctx, "a.example"); !e.LastUsed.Equal(t0) {
		t.Errorf("a: LastUsed = %v, want %v (never lowered)", e.LastUsed, t0)
	}
	if e, _ := s.Get(ctx, "never.example"); !e.LastUsed.Equal(t0.Add(time.Hour)) {
		t.Errorf("never: LastUsed = %v", e.LastUsed)
	}
	if e, _ := s.Get(ctx, "missing.example"); e != nil {
		t.Error("WriteLastUsed created an entry")
	}
}

func TestSQLiteClosed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := OpenSQLite(ctx, filepath.Join(t.TempDir(), "c.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "a.example"); err == nil {
		t.Error("Get after Close = nil error")
	}
	if err := s.Put(ctx, entryAt("a.example", "", time.Now(), 0, time.Time{})); err == nil {
		t.Error("Put after Close = nil error")
	}
}

func TestOpenSQLiteBadPath(t *testing.T) {
	t.Parallel()
	_, err := OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "no", "such", "dir", "c.db"), nil)
	if err == nil {
		t.Fatal("OpenSQLite in a missing directory = nil error")
	}
}

// purgeLog returns every purge log record as "seq:domain" ("*" for all).
func purgeLog(t *testing.T, s *SQLite, after int64) []string {
	t.Helper()
	ps, err := s.PurgesAfter(context.Background(), after, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range ps {
		d := p.Domain
		if d == "" {
			d = "*"
		}
		out = append(out, strconv.FormatInt(p.Seq, 10)+":"+d)
	}
	return out
}

func putDomains(t *testing.T, s *SQLite, now time.Time, domains ...string) {
	t.Helper()
	for _, d := range domains {
		if err := s.Put(context.Background(), entryAt(d, mtasts.ModeEnforce, now, 86400, time.Time{})); err != nil {
			t.Fatal(err)
		}
	}
}

// Delete, Purge and PurgeAll log what they removed, so that another
// handle on the file (a running policyd) can read it with PurgesAfter.
func TestSQLitePurgeLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := newClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	s, path := openTestSQLite(t)
	s.Now = clk.Now
	reader, err := OpenSQLite(ctx, path, nil) // the daemon's handle
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	if got := purgeLog(t, reader, 0); got != nil {
		t.Fatalf("new file: purge log %v", got)
	}
	putDomains(t, s, clk.Now(), "a.example", "b.example", "c.example", "d.example")

	// One domain.
	if err := s.Delete(ctx, "a.example"); err != nil {
		t.Fatal(err)
	}
	if e, _ := reader.Get(ctx, "a.example"); e != nil {
		t.Error("a.example still cached after Delete")
	}
	ps, err := reader.PurgesAfter(ctx, 0, 10)
	if err != nil || len(ps) != 1 || ps[0] != (Purge{Seq: 1, Domain: "a.example", At: clk.Now()}) {
		t.Fatalf("after Delete: %+v, %v", ps, err)
	}

	// Many, with one not cached: logged all the same (a daemon may hold it).
	clk.Advance(time.Minute)
	n, err := s.Purge(ctx, "b.example", "c.example", "missing.example")
	if err != nil || n != 2 {
		t.Fatalf("Purge = %d, %v; want 2 deleted", n, err)
	}
	if got, want := strings.Join(purgeLog(t, reader, 1), " "), "2:b.example 3:c.example 4:missing.example"; got != want {
		t.Errorf("after Purge: log after 1 = %q, want %q", got, want)
	}
	if n, _ := reader.Len(ctx); n != 1 {
		t.Errorf("Len after Purge = %d, want 1 (d.example)", n)
	}

	// Everything: one record with no domain.
	clk.Advance(time.Minute)
	if n, err := s.PurgeAll(ctx); err != nil || n != 1 {
		t.Fatalf("PurgeAll = %d, %v; want 1", n, err)
	}
	if got := strings.Join(purgeLog(t, reader, 4), " "); got != "5:*" {
		t.Errorf("after PurgeAll: %q, want 5:*", got)
	}
	if n, _ := reader.Len(ctx); n != 0 {
		t.Errorf("Len after PurgeAll = %d", n)
	}

	// Paging: limit, then from the last Seq.
	if ps, _ := reader.PurgesAfter(ctx, 0, 2); len(ps) != 2 || ps[1].Seq != 2 {
		t.Errorf("PurgesAfter(0, 2) = %+v", ps)
	}
	if ps, _ := reader.PurgesAfter(ctx, 5, 10); len(ps) != 0 {
		t.Errorf("PurgesAfter(last) = %+v, want none", ps)
	}

	// Start-up position: purges made at or after t come after it.
	for _, c := range []struct {
		t    time.Time
		want int64
	}{
		{time.Time{}, 0},
		{clk.Now().Add(-2 * time.Minute), 0},                // a.example's purge and later
		{clk.Now().Add(-time.Minute), 1},                    // b, c, missing and later
		{clk.Now().Add(-time.Minute + time.Millisecond), 4}, // only the PurgeAll
		{clk.Now(), 4},
		{clk.Now().Add(time.Millisecond), 5}, // none: the last Seq
	} {
		if got, err := reader.PurgeSeqBefore(ctx, c.t); err != nil || got != c.want {
			t.Errorf("PurgeSeqBefore(%v) = %d, %v; want %d", c.t, got, err, c.want)
		}
	}
}

// TrimPurges drops old records but never the newest, so Seq keeps growing
// and a reader can tell it missed trimmed records (a gap).
func TestSQLiteTrimPurges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := newClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	s, _ := openTestSQLite(t)
	s.Now = clk.Now
	if n, err := s.TrimPurges(ctx, clk.Now()); err != nil || n != 0 {
		t.Fatalf("TrimPurges(empty) = %d, %v", n, err)
	}
	for _, d := range []string{"a.example", "b.example", "c.example"} {
		if err := s.Delete(ctx, d); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Hour)
	}
	// a and b are older than an hour ago; c is exactly an hour old: kept.
	if n, err := s.TrimPurges(ctx, clk.Now().Add(-time.Hour)); err != nil || n != 2 {
		t.Fatalf("TrimPurges = %d, %v; want 2", n, err)
	}
	if got := strings.Join(purgeLog(t, s, 0), " "); got != "3:c.example" {
		t.Errorf("after trim: %q", got)
	}
	// Everything is old now, but the newest record stays.
	if n, err := s.TrimPurges(ctx, clk.Now().Add(time.Hour)); err != nil || n != 0 {
		t.Fatalf("TrimPurges(all old) = %d, %v; want 0 (the newest stays)", n, err)
	}
	if seq, _ := s.PurgeSeqBefore(ctx, clk.Now()); seq != 3 {
		t.Errorf("PurgeSeqBefore after trim = %d, want 3", seq)
	}
	if err := s.Delete(ctx, "d.example"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(purgeLog(t, s, 3), " "); got != "4:d.example" {
		t.Errorf("after trim and a new purge: %q, want 4:d.example (Seq never reused)", got)
	}
}

// STS-CACHE-10: a file written by the version 1 schema (before the purge
// log) opens, keeps its entries and gets the purge log; a failure it
// remembers as text only (before version 3) keeps its class and
// temporariness through mtasts's legacy reading.
func TestSQLiteMigrateV1(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v1.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range append(schemaV1DDL(),
		`INSERT INTO entries (domain, policy, mode, expires_at, policy_id, fetched_at, checked_at)
			VALUES ('old.example', '{"mode":"enforce","mx":["mx.old.example"],"max_age":86400}', 'enforce', 4102444800000, 'id1', 1735689600000, 1735689600000)`,
		`INSERT INTO entries (domain, no_policy_until, failed_at, failures, last_error)
			VALUES ('legacy.example', 4102444800000, 1735689600000, 1, 'dns-error+temporary: mtasts: DNS lookup failed: SERVFAIL')`,
		`PRAGMA user_version = 1`,
	) {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	s, err := OpenSQLite(ctx, path, nil)
	if err != nil {
		t.Fatalf("opening a version 1 file: %v", err)
	}
	defer s.Close()
	var v int
	if err := s.rdb.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil || v != 4 || len(migrations) != 4 {
		t.Errorf("user_version = %d, %v; want 4 (of %d migrations)", v, err, len(migrations))
	}
	le, err := s.Get(ctx, "legacy.example")
	if err != nil || le == nil || le.LastErrorType != "" || le.LastErrorTemporary || le.Failures != 1 {
		t.Fatalf("legacy entry: %+v, %v", le, err)
	}
	r, err := (&mtasts.Cache{Store: s}).Get(ctx, "legacy.example")
	if err != nil || r.Source != mtasts.SourceNone || mtasts.ResultType(r.Err) != result.DNSError || !mtasts.Temporary(r.Err) || !mtasts.Remembered(r.Err) {
		t.Errorf("legacy failure through the cache: %+v, %v (class %q, temporary %v)", r, err, mtasts.ResultType(r.Err), mtasts.Temporary(r.Err))
	}
	e, err := s.Get(ctx, "old.example")
	if err != nil || e == nil || e.Policy == nil || e.Policy.Mode != mtasts.ModeEnforce || e.ID != "id1" {
		t.Fatalf("entry written by version 1: %+v, %v", e, err)
	}
	if seq, err := s.PurgeSeqBefore(ctx, time.Now()); err != nil || seq != 0 {
		t.Errorf("PurgeSeqBefore on a migrated file = %d, %v", seq, err)
	}
	if err := s.Delete(ctx, "old.example"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(purgeLog(t, s, 0), " "); got != "1:old.example" {
		t.Errorf("purge log after migration: %q", got)
	}
}

// The daemon's poll with nothing new, on a log of 10k records: the cost a
// running policyd pays every purgePollEvery.
func BenchmarkSQLitePurgesAfterIdle(b *testing.B) {
	ctx := context.Background()
	s, _ := openTestSQLite(b)
	domains := make([]string, 10000)
	for i := range domains {
		domains[i] = "d" + strconv.Itoa(i) + ".example"
	}
	if _, err := s.Purge(ctx, domains...); err != nil {
		b.Fatal(err)
	}
	last, err := s.PurgeSeqBefore(ctx, time.Now().Add(time.Hour))
	if err != nil || last != 10000 {
		b.Fatalf("last seq %d, %v", last, err)
	}
	for b.Loop() {
		if ps, err := s.PurgesAfter(ctx, last, 1000); err != nil || len(ps) != 0 {
			b.Fatal(len(ps), err)
		}
	}
}

// secondaryIndexes lists the indexes of the entries table.
func secondaryIndexes(t *testing.T, s *SQLite) []string {
	t.Helper()
	rows, err := s.rdb.Query(`SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'entries' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return names
}

// STS-CACHE-10: a version 3 file (with the two indexes of expires_at and
// last_used that migration 4 drops) keeps every entry through the
// migration, loses the indexes, and Evict and Cap, now scanning the table,
// remove exactly the entries they removed by index: unused entries
// without a valid policy, least recently used first, never a valid
// enforce or testing policy.
func TestSQLiteMigrateV3DropsIndexes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v3.db")
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	long := now.Add(-30 * 24 * time.Hour)
	want := make(map[string]*mtasts.Entry)
	var es []*mtasts.Entry
	add := func(e *mtasts.Entry) { want[e.Domain] = e; es = append(es, e) }
	const n = 300
	for i := range n {
		used := now.Add(-time.Duration(i+1) * time.Minute)
		switch i % 5 {
		case 0: // valid enforce, unused for a month: protected
			add(entryAt(fmt.Sprintf("enforce-%03d.example", i), mtasts.ModeEnforce, now.Add(-time.Hour), 86400, long))
		case 1: // valid testing, never used: protected
			add(entryAt(fmt.Sprintf("testing-%03d.example", i), mtasts.ModeTesting, now.Add(-time.Hour), 86400, time.Time{}))
		case 2: // expired enforce, unused for a month: evicted
			add(entryAt(fmt.Sprintf("expired-%03d.example", i), mtasts.ModeEnforce, now.Add(-48*time.Hour), 86400, long))
		case 3: // negative, used recently: kept by Evict, capped by age
			add(entryAt(fmt.Sprintf("negative-%03d.example", i), "", now.Add(-time.Hour), 0, used))
		case 4: // mode none, used recently: likewise
			add(entryAt(fmt.Sprintf("none-%03d.example", i), mtasts.ModeNone, now.Add(-time.Hour), 86400, used))
		}
	}
	s, err := OpenSQLite(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.putAll(ctx, es); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	asVersion3(t, path)

	s, err = OpenSQLite(ctx, path, nil)
	if err != nil {
		t.Fatalf("opening a version 3 file: %v", err)
	}
	defer s.Close()
	s.Now = func() time.Time { return now }
	var v int
	if err := s.rdb.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil || v != len(migrations) {
		t.Errorf("user_version = %d, %v; want %d", v, err, len(migrations))
	}
	if idx := secondaryIndexes(t, s); len(idx) != 0 {
		t.Errorf("indexes after migration 4: %v, want none", idx)
	}
	if got := checkSalvaged(t, s, want); got != n {
		t.Errorf("%d entries after the migration, want %d", got, n)
	}

	// Evict: the 60 expired entries (unused for a month) go; the recently
	// used negative and mode none entries stay.
	evicted, err := s.Evict(ctx, now.Add(-24*time.Hour))
	if err != nil || evicted != n/5 {
		t.Fatalf("Evict = %d, %v; want %d", evicted, err, n/5)
	}
	// Cap to 150 of the 240 left: the 90 least recently used of the 120
	// negative and mode none entries go (the oldest: the highest i), and
	// none of the 120 valid policies.
	capped, err := s.Cap(ctx, 150)
	if err != nil || capped != 90 {
		t.Fatalf("Cap(150) = %d, %v; want 90", capped, err)
	}
	for i := range n {
		e := es[i]
		got, err := s.Get(ctx, e.Domain)
		if err != nil {
			t.Fatal(err)
		}
		keep := false
		switch i % 5 {
		case 0, 1:
			keep = true
		case 3, 4:
			// 120 of them, used i+1 minutes ago: the 30 with the
			// smallest i are the most recently used.
			keep = i < 75
		}
		if (got != nil) != keep {
			t.Errorf("%s: kept %v, want %v", e.Domain, got != nil, keep)
		}
	}
}

// STS-CACHE-10: Evict and Cap pick entries in a scan on a reader and
// delete them on the writer; an entry a Put replaced with a valid policy,
// or a use recorded, between the two is not deleted.
func TestSQLiteEvictRechecksPicked(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	long := now.Add(-30 * 24 * time.Hour)
	for _, op := range []string{"evict", "cap"} {
		t.Run(op, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s, _ := openTestSQLite(t)
			s.Now = func() time.Time { return now }
			for _, d := range []string{"a.example", "b.example", "c.example"} {
				if err := s.Put(ctx, entryAt(d, "", now.Add(-time.Hour), 0, long)); err != nil {
					t.Fatal(err)
				}
			}
			var picked []string
			s.beforeDelete = func(ds []string) {
				picked = ds
				// A fresh valid policy for a, a use of b: both stay.
				if err := s.Put(ctx, entryAt("a.example", mtasts.ModeEnforce, now, 86400, long)); err != nil {
					t.Error(err)
				}
				if err := s.WriteLastUsed(ctx, map[string]time.Time{"b.example": now}); err != nil {
					t.Error(err)
				}
			}
			var n int
			var err error
			if op == "evict" {
				n, err = s.Evict(ctx, now.Add(-24*time.Hour))
			} else {
				n, err = s.Cap(ctx, 0)
			}
			if err != nil || n != 1 {
				t.Errorf("%s = %d, %v; want 1 (c only)", op, n, err)
			}
			if strings.Join(picked, " ") != "a.example b.example c.example" {
				t.Errorf("picked %q, want all three", picked)
			}
			for d, keep := range map[string]bool{"a.example": true, "b.example": true, "c.example": false} {
				if e, err := s.Get(ctx, d); err != nil || (e != nil) != keep {
					t.Errorf("%s: present %v (%v), want %v", d, e != nil, err, keep)
				}
			}
		})
	}
}

// The cache's writer connection runs with the settings its guarantees and
// costs rest on (sqliteOptions): WAL, synchronous=NORMAL (a Put's commit
// survives a crash of the process: TestSQLitePutSurvivesKill), the
// longer checkpoint interval and the log size limit
// (TestOpenWriterCheckpointAndLogLimit in internal/sqlitedb shows what
// they do); the readers are query_only.
func TestSQLiteWriterSettings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := openTestSQLite(t)
	// A Put first: the settings must hold on the connection that writes.
	if err := s.Put(ctx, benchEntry(1, time.Now())); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		db     *sql.DB
		pragma string
		want   string
	}{
		{s.wdb, "journal_mode", "wal"},
		{s.wdb, "synchronous", "1"}, // NORMAL
		{s.wdb, "wal_autocheckpoint", fmt.Sprint(sqliteCheckpointPages)},
		{s.wdb, "journal_size_limit", fmt.Sprint(sqliteLogLimit)},
		{s.wdb, "query_only", "0"},
		{s.rdb, "query_only", "1"},
	} {
		var got string
		if err := c.db.QueryRowContext(ctx, "PRAGMA "+c.pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			who := "writer"
			if c.db == s.rdb {
				who = "reader"
			}
			t.Errorf("%s: PRAGMA %s = %s, want %s", who, c.pragma, got, c.want)
		}
	}
	if sqliteLogLimit < 32+sqliteCheckpointPages*(4096+24) {
		t.Errorf("sqliteLogLimit %d is below the log of %d pages: every checkpoint would truncate it", sqliteLogLimit, sqliteCheckpointPages)
	}
}
