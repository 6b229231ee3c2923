package stscache

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailsts/mailsts/mtasts"
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
	want := sampleEntries(now)
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
		if d := EntryDiff(got, w); d != "" {
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
