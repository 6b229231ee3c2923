package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// relTo returns path relative to the working directory: tests run in
// parallel, so they cannot change directory to make a relative path.
func relTo(t *testing.T, path string) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(wd, path)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.IsAbs(rel) {
		t.Fatalf("relative path %q is absolute", rel)
	}
	return rel
}

// Issue #10 item 6, #11 item 11: relative paths ("invalid uri authority"
// before) and paths with URI metacharacters open the file they name.
func TestOpenPaths(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for name, sub := range map[string]string{
		"plain":    "cache.db",
		"spaces":   "dir with spaces/cache.db",
		"metachar": "a?b#c%41d&e=f/cache.db",
		"colon":    "relstate:x/cache.db",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			abs := filepath.Join(t.TempDir(), sub)
			if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
				t.Fatal(err)
			}
			for _, path := range []string{abs, relTo(t, abs)} {
				db, err := Open(path, Options{Synchronous: "FULL"})
				if err != nil {
					t.Fatalf("Open(%q): %v", path, err)
				}
				if db.Path != abs {
					t.Errorf("Open(%q).Path = %q, want %q", path, db.Path, abs)
				}
				if _, err := db.W.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS t (x)`); err != nil {
					t.Fatalf("Open(%q): write: %v", path, err)
				}
				var n int
				if err := db.R.QueryRowContext(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil {
					t.Fatalf("Open(%q): read: %v", path, err)
				}
				if _, err := db.R.ExecContext(ctx, `INSERT INTO t VALUES (1)`); err == nil {
					t.Errorf("Open(%q): the reader pool can write", path)
				}
				if err := db.Close(); err != nil {
					t.Fatal(err)
				}
				if fi, err := os.Stat(abs); err != nil || fi.Size() == 0 {
					t.Errorf("Open(%q) did not write %s: %v", path, abs, err)
				}
			}
			entries, err := os.ReadDir(filepath.Dir(abs))
			if err != nil || len(entries) != 1 {
				t.Errorf("files next to the database: %v, %v; want only it", entries, err)
			}
		})
	}
}

func TestDSN(t *testing.T) {
	t.Parallel()
	dsn, err := DSN("/var/lib/a b/c?d#e%f.db", nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := "file:///var/lib/a%20b/c%3Fd%23e%25f.db"; dsn != want {
		t.Errorf("DSN = %q, want %q", dsn, want)
	}
	dsn, err = DSN("relstate/cache.db", nil)
	if err != nil || !strings.HasPrefix(dsn, "file:///") {
		t.Errorf("DSN(relative) = %q, %v; want an absolute file:/// URI", dsn, err)
	}
	if _, err := DSN("", nil); err == nil {
		t.Error("DSN(\"\") = nil error")
	}
}

func TestDamaged(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "junk.db")
	if err := os.WriteFile(path, []byte(strings.Repeat("not a database ", 300)), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = QuickCheck(ctx, db.W)
	if !errors.Is(err, ErrDamaged) || !Damaged(err) {
		t.Errorf("QuickCheck(junk) = %v, want ErrDamaged", err)
	}
	if Damaged(errors.New("unable to open database file")) || Damaged(os.ErrPermission) {
		t.Error("Damaged took an unrelated error for damage")
	}

	good, err := Open(filepath.Join(t.TempDir(), "good.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	if err := QuickCheck(ctx, good.W); err != nil {
		t.Errorf("QuickCheck(new file) = %v", err)
	}
}

// Issue #10 item 6: files created by root in a directory of the daemon's
// user go to that user; other cases are left alone.
func TestChownTarget(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		euid int
		dir  Owner
		want Owner
		ok   bool
	}{
		{0, Owner{UID: 998, GID: 997}, Owner{UID: 998, GID: 997}, true},
		{0, Owner{UID: 0, GID: 0}, Owner{}, false},
		{0, Owner{UID: 0, GID: 997}, Owner{}, false},
		{1000, Owner{UID: 998, GID: 997}, Owner{}, false},
		{1000, Owner{UID: 1000, GID: 1000}, Owner{}, false},
	} {
		got, ok := chownTarget(c.euid, c.dir)
		if got != c.want || ok != c.ok {
			t.Errorf("chownTarget(%d, %+v) = %+v, %v; want %+v, %v", c.euid, c.dir, got, ok, c.want, c.ok)
		}
	}
}

// Processes opening one new file together: the first connection of each
// switches the file to WAL, which takes its lock without waiting on
// busy_timeout; Open's connections retry instead of failing with
// SQLITE_BUSY.
func TestOpenNewFileConcurrently(t *testing.T) {
	t.Parallel()
	const files, openers = 20, 8
	for f := range files {
		path := filepath.Join(t.TempDir(), fmt.Sprintf("new%d.db", f))
		errs := make([]error, openers)
		var wg sync.WaitGroup
		for i := range openers {
			wg.Go(func() {
				db, err := Open(path, Options{BusyTimeout: time.Minute})
				if err != nil {
					errs[i] = err
					return
				}
				defer db.Close()
				tx, err := db.W.BeginTx(context.Background(), nil)
				if err != nil {
					errs[i] = err
					return
				}
				if _, err := tx.Exec(`CREATE TABLE IF NOT EXISTS t (x INTEGER)`); err != nil {
					tx.Rollback()
					errs[i] = err
					return
				}
				errs[i] = tx.Commit()
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("file %d, opener %d: %v", f, i, err)
			}
		}
	}
}

// The writer's checkpoint interval and log size limit (Options) are set
// on the writer connection and act: the log stays near WALAutocheckpoint
// pages while nothing holds a checkpoint back, and a log that grew past
// it behind a reader is truncated to JournalSizeLimit once it is
// checkpointed and reused. With SQLite's defaults (1000 pages, no limit)
// both checks fail.
func TestOpenWriterCheckpointAndLogLimit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const pages, limit = 20, 64 << 10
	path := filepath.Join(t.TempDir(), "w.db")
	db, err := Open(path, Options{Synchronous: "NORMAL", WALAutocheckpoint: pages, JournalSizeLimit: limit})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ckpt, lim int64
	if err := db.W.QueryRowContext(ctx, `PRAGMA wal_autocheckpoint`).Scan(&ckpt); err != nil {
		t.Fatal(err)
	}
	if err := db.W.QueryRowContext(ctx, `PRAGMA journal_size_limit`).Scan(&lim); err != nil {
		t.Fatal(err)
	}
	if ckpt != pages || lim != limit {
		t.Errorf("writer: wal_autocheckpoint %d, journal_size_limit %d; want %d, %d", ckpt, lim, pages, limit)
	}
	if _, err := db.W.ExecContext(ctx, `CREATE TABLE t (x BLOB)`); err != nil {
		t.Fatal(err)
	}
	// Each commit writes at least one new page (a row of 3,000 bytes).
	write := func(n int) {
		t.Helper()
		for range n {
			if _, err := db.W.ExecContext(ctx, `INSERT INTO t VALUES (randomblob(3000))`); err != nil {
				t.Fatal(err)
			}
		}
	}
	walSize := func() int64 {
		t.Helper()
		fi, err := os.Stat(path + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	const frame = 4096 + 24 // the default page size, and a frame's header
	write(200)
	if got, max := walSize(), int64(32+(pages+10)*frame); got > max {
		t.Errorf("log of %d bytes after 200 commits with no reader; want at most %d (about %d pages)", got, max, pages)
	}
	// A reader's snapshot holds the checkpoint back: the log grows.
	rc, err := db.R.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := rc.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	write(100)
	if got := walSize(); got <= limit {
		t.Fatalf("log of %d bytes behind a reader; the test needs it longer than %d", got, limit)
	}
	tx.Rollback()
	rc.Close()
	// The next commits checkpoint the whole log, start it again from
	// the beginning, and truncate it to the limit.
	write(3)
	if got := walSize(); got > limit {
		t.Errorf("log of %d bytes after the reader left; want at most %d", got, limit)
	}
}

// The NoWait writer: only when asked for, with the writer's settings but
// busy_timeout 0, so a write that finds the lock taken fails at once with
// an error Busy recognises, and succeeds once the lock is free.
func TestOpenNoWait(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	plain, err := Open(filepath.Join(t.TempDir(), "plain.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if plain.NoWait != nil {
		t.Error("NoWait opened without Options.NoWaitWriter")
	}
	db, err := Open(filepath.Join(t.TempDir(), "nw.db"), Options{BusyTimeout: time.Minute, Synchronous: "NORMAL",
		WALAutocheckpoint: 20, NoWaitWriter: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, c := range []struct {
		db           *sql.DB
		pragma, want string
	}{
		{db.W, "busy_timeout", "60000"},
		{db.NoWait, "busy_timeout", "0"},
		{db.NoWait, "wal_autocheckpoint", "20"},
		{db.NoWait, "synchronous", "1"},
		{db.NoWait, "journal_mode", "wal"},
		{db.NoWait, "query_only", "0"},
	} {
		var got string
		if err := c.db.QueryRowContext(ctx, "PRAGMA "+c.pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("PRAGMA %s = %s, want %s", c.pragma, got, c.want)
		}
	}
	if _, err := db.W.ExecContext(ctx, `CREATE TABLE t (x)`); err != nil {
		t.Fatal(err)
	}
	tx, err := db.W.BeginTx(ctx, nil) // BEGIN IMMEDIATE: the write lock
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := db.NoWait.ExecContext(ctx, `INSERT INTO t VALUES (1)`); !Busy(err) {
		t.Errorf("write with the lock taken: %v, want SQLITE_BUSY", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := db.NoWait.ExecContext(ctx, `INSERT INTO t VALUES (1)`); err != nil {
		t.Errorf("write with the lock free: %v", err)
	}
}
