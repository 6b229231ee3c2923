package migrate_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/migrate"
	"github.com/mailsts/mailsts/internal/reports/reportstest"
	"github.com/mailsts/mailsts/internal/sqlitedb"
)

var errTooNew = errors.New("schema too new")

// steps are three migrations; each appends its number to applied, so a
// step run twice shows.
var steps = []string{
	`CREATE TABLE applied (step INTEGER NOT NULL); INSERT INTO applied VALUES (1)`,
	`CREATE TABLE two (x INTEGER); INSERT INTO applied VALUES (2)`,
	`INSERT INTO applied VALUES (3)`,
}

// backend is one database under test: open returns a new handle on the
// same database (a second opener).
type backend struct {
	name     string
	postgres bool
	open     func(t *testing.T) *sql.DB
}

func sqliteBackend(t *testing.T) backend {
	path := filepath.Join(t.TempDir(), "m.db")
	return backend{name: "sqlite", open: func(t *testing.T) *sql.DB {
		db, err := sqlitedb.Open(path, sqlitedb.Options{BusyTimeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db.W
	}}
}

func postgresBackend(t *testing.T) backend {
	dsn := reportstest.PostgresDSN(t) // skips without a server
	return backend{name: "postgres", postgres: true, open: func(t *testing.T) *sql.DB {
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}}
}

// each runs f on SQLite with the version in user_version and in a table,
// and on PostgreSQL (a table).
func each(t *testing.T, f func(t *testing.T, b backend, table string)) {
	t.Run("sqlite-user_version", func(t *testing.T) {
		t.Parallel()
		f(t, sqliteBackend(t), "")
	})
	t.Run("sqlite-table", func(t *testing.T) {
		t.Parallel()
		f(t, sqliteBackend(t), "test_schema_version")
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		f(t, postgresBackend(t), "test_schema_version")
	})
}

func schema(b backend, table string, steps []string) *migrate.Schema {
	return &migrate.Schema{Steps: steps, Table: table, Postgres: b.postgres, LockKey: 0x6d6967726174,
		Where: b.name + " test", TooNew: errTooNew}
}

func version(t *testing.T, db *sql.DB, table string) int {
	t.Helper()
	q := `PRAGMA user_version`
	if table != "" {
		q = `SELECT version FROM ` + table
	}
	var v int
	if err := db.QueryRow(q).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// want checks the version and the steps applied.
func want(t *testing.T, db *sql.DB, table string, v int, steps string) {
	t.Helper()
	if got, a := version(t, db, table), fmt.Sprint(applied(t, db)); got != v || a != steps {
		t.Fatalf("version %d, applied %s; want %d, %s", got, a, v, steps)
	}
}

func applied(t *testing.T, db *sql.DB) []int {
	t.Helper()
	rows, err := db.Query(`SELECT step FROM applied ORDER BY step`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []int
	for rows.Next() {
		var n int
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		got = append(got, n)
	}
	return got
}

// A new database gets every step once, each reported; running again (the
// next open) changes nothing; a later program's new step is applied alone.
func TestRunUpgrades(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, b backend, table string) {
		ctx := context.Background()
		db := b.open(t)
		var migrated []int
		s := schema(b, table, steps[:2])
		s.Migrated = func(v int) { migrated = append(migrated, v) }
		if err := s.Run(ctx, db); err != nil {
			t.Fatal(err)
		}
		if err := s.Run(ctx, db); err != nil {
			t.Fatal(err)
		}
		want(t, db, table, 2, "[1 2]")
		if fmt.Sprint(migrated) != "[1 2]" {
			t.Errorf("reported %v, want [1 2]", migrated)
		}
		if err := schema(b, table, steps).Run(ctx, db); err != nil {
			t.Fatal(err)
		}
		want(t, db, table, 3, "[1 2 3]")
		if table != "" && b.name == "sqlite" {
			// A version table leaves user_version to others.
			if v := version(t, db, ""); v != 0 {
				t.Errorf("user_version %d, want 0", v)
			}
		}
	})
}

// A step that fails leaves the database at the version before it, with
// none of its statements applied; the steps before it stay committed.
func TestRunStepAtomic(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, b backend, table string) {
		ctx := context.Background()
		db := b.open(t)
		bad := []string{steps[0], `CREATE TABLE two (x INTEGER); INSERT INTO applied VALUES (2); INSERT INTO nosuch VALUES (1)`}
		storage := errors.New("storage fault")
		s := schema(b, table, bad)
		s.Err = storage
		err := s.Run(ctx, db)
		if !errors.Is(err, storage) || !strings.Contains(err.Error(), "migrate schema to version 2") || !strings.Contains(err.Error(), b.name+" test") {
			t.Fatalf("Run = %v, want a storage error about version 2 naming the database", err)
		}
		want(t, db, table, 1, "[1]")
		if _, err := db.Exec(`SELECT x FROM two`); err == nil {
			t.Error("the failed step's table exists")
		}
		// The fixed program goes on from version 1.
		if err := schema(b, table, steps).Run(ctx, db); err != nil {
			t.Fatal(err)
		}
		want(t, db, table, 3, "[1 2 3]")
	})
}

// A database newer than the program is refused before anything changes,
// with both versions named.
func TestRunRefusesNewer(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, b backend, table string) {
		ctx := context.Background()
		db := b.open(t)
		if err := schema(b, table, steps).Run(ctx, db); err != nil {
			t.Fatal(err)
		}
		err := schema(b, table, steps[:1]).Run(ctx, db)
		if !errors.Is(err, errTooNew) || !strings.Contains(err.Error(), "has version 3, this program knows up to 1") {
			t.Fatalf("Run = %v, want errTooNew naming versions 3 and 1", err)
		}
		want(t, db, table, 3, "[1 2 3]")
	})
}

// Concurrent openers of one new database (separate handles, as separate
// processes have): every step is applied exactly once and all succeed.
func TestRunConcurrentOpeners(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, b backend, table string) {
		ctx := context.Background()
		const openers = 6
		dbs := make([]*sql.DB, openers)
		for i := range dbs {
			dbs[i] = b.open(t)
		}
		errs := make([]error, openers)
		var wg sync.WaitGroup
		for i, db := range dbs {
			wg.Go(func() { errs[i] = schema(b, table, steps).Run(ctx, db) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("opener %d: %v", i, err)
			}
		}
		if v := version(t, dbs[0], table); v != 3 || fmt.Sprint(applied(t, dbs[0])) != "[1 2 3]" {
			t.Errorf("version %d, applied %v; want 3, [1 2 3] (each step once)", v, applied(t, dbs[0]))
		}
	})
}

// A current database is only read: Run returns at once while another
// opener holds the write lock (SQLite) or the schema's advisory lock
// (PostgreSQL), as a daemon's long write or another migration does,
// where taking the lock would wait for it.
func TestRunCurrentTakesNoLock(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, b backend, table string) {
		ctx := context.Background()
		db := b.open(t)
		if err := schema(b, table, steps).Run(ctx, db); err != nil {
			t.Fatal(err)
		}
		holder := b.open(t)
		tx, err := holder.BeginTx(ctx, nil) // BEGIN IMMEDIATE on SQLite
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		if b.postgres {
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(0x6d6967726174)); err != nil {
				t.Fatal(err)
			}
		} else if _, err := tx.ExecContext(ctx, `INSERT INTO applied VALUES (99)`); err != nil {
			t.Fatal(err)
		}
		tctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		if err := schema(b, table, steps).Run(tctx, b.open(t)); err != nil {
			t.Fatalf("Run on a current database while the lock is held: %v", err)
		}
		// A newer database is refused the same way, without the lock.
		if err := schema(b, table, steps[:2]).Run(tctx, b.open(t)); !errors.Is(err, errTooNew) {
			t.Fatalf("Run of an older program: %v, want errTooNew", err)
		}
	})
}
