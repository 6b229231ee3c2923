// Package migrate runs a store's versioned schema migrations: the one
// runner behind the SQLite and PostgreSQL stores of mailsts (the policy
// cache, the reports store, the outgoing results and the outbox). Each
// store keeps its own list of steps; this package only runs them.
//
// The rules, the same for every store:
//
//   - The version is one integer: SQLite's PRAGMA user_version, or the
//     one row of a table of the store's own (created when missing), so
//     that stores sharing a database keep separate versions.
//   - Steps[i] upgrades a database at version i to i+1. Each step runs
//     in a transaction of its own together with its version bump: a step
//     that fails leaves the database at the version before it, with none
//     of its statements applied (SQLite and PostgreSQL both roll back
//     DDL), and the next open starts again from there.
//   - A database whose version is above len(Steps) was written by a newer
//     program: Run refuses it, before changing anything, with an error
//     wrapping the schema's TooNew sentinel and naming both versions.
//   - Concurrent openers migrate one step at a time: on SQLite the
//     writer's transaction must begin IMMEDIATE (as internal/sqlitedb's
//     writer does), which takes the database lock before the version is
//     read; on PostgreSQL each step's transaction first takes the
//     schema's transaction-scoped advisory lock. The second opener then
//     reads the version the first one committed and skips that step.
//   - A database already at len(Steps) is only read: Run reads its
//     version outside any write transaction first, so that a user who
//     may read the database but not write it (an auditor, a dashboard
//     running under another account, a read-only mount) can open it.
//     Any step is decided on the version read again under the lock.
package migrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Schema describes one store's migrations.
type Schema struct {
	// Steps[i] is the SQL (one or more statements) that upgrades
	// version i to i+1. Append only: a released step never changes.
	Steps []string
	// Table is the table holding the version in its one row (column
	// version), created when missing; "" keeps the version in SQLite's
	// PRAGMA user_version (SQLite only).
	Table string
	// Postgres selects PostgreSQL: $1 placeholders and the advisory
	// lock LockKey.
	Postgres bool
	// LockKey is the PostgreSQL advisory lock (pg_advisory_xact_lock)
	// that serialises the migrations of this schema across processes.
	LockKey int64
	// Where names the database in errors: a file path, or a server
	// without its password.
	Where string
	// TooNew is wrapped by the error for a database newer than Steps.
	TooNew error
	// Err, when set, is wrapped by every other error (a store's
	// storage-fault sentinel).
	Err error
	// Migrated, when set, is called after each step committed with the
	// version reached (a store's log line).
	Migrated func(version int)
}

// Run brings the database to version len(Steps), one transaction a step;
// db's transactions must begin IMMEDIATE on SQLite (see the package
// comment). It returns an error wrapping TooNew for a newer database.
func (s *Schema) Run(ctx context.Context, db *sql.DB) error {
	// Current already: nothing to write. A version that cannot be read
	// this way (no version table yet) takes the locked path.
	if v, err := s.peekVersion(ctx, db); err == nil {
		switch {
		case v == len(s.Steps):
			return nil
		case v > len(s.Steps):
			return fmt.Errorf("%w: %s has version %d, this program knows up to %d", s.TooNew, s.Where, v, len(s.Steps))
		}
	}
	// Bounded: each round applies a step or ends.
	for range len(s.Steps) + 1 {
		done, err := s.step(ctx, db)
		if err != nil || done {
			return err
		}
	}
	return s.errorf("schema migration did not converge")
}

// step applies the next missing step, if any; done reports that the
// database is current.
func (s *Schema) step(ctx context.Context, db *sql.DB) (done bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, s.errorf("begin migration: %w", err)
	}
	defer tx.Rollback()
	if s.Postgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, s.LockKey); err != nil {
			return false, s.errorf("lock schema: %w", err)
		}
	}
	v, err := s.version(ctx, tx)
	if err != nil {
		return false, s.errorf("read schema version: %w", err)
	}
	switch {
	case v == len(s.Steps):
		// Commit: on PostgreSQL the transaction may have created the
		// version table.
		if err := tx.Commit(); err != nil {
			return false, s.errorf("read schema version: %w", err)
		}
		return true, nil
	case v < 0 || v > len(s.Steps):
		return false, fmt.Errorf("%w: %s has version %d, this program knows up to %d", s.TooNew, s.Where, v, len(s.Steps))
	}
	if _, err := tx.ExecContext(ctx, s.Steps[v]); err != nil {
		return false, s.errorf("migrate schema to version %d: %w", v+1, err)
	}
	if err := s.setVersion(ctx, tx, v+1); err != nil {
		return false, s.errorf("set schema version: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return false, s.errorf("migrate schema to version %d: %w", v+1, err)
	}
	if s.Migrated != nil {
		s.Migrated(v + 1)
	}
	return false, nil
}

// peekVersion reads the schema version without a transaction of its
// own and without creating anything.
func (s *Schema) peekVersion(ctx context.Context, db *sql.DB) (int, error) {
	q := `PRAGMA user_version`
	if s.Table != "" {
		q = `SELECT version FROM ` + s.Table
	}
	var v int
	err := db.QueryRowContext(ctx, q).Scan(&v)
	return v, err
}

// version reads the schema version inside tx; 0 for a new database.
func (s *Schema) version(ctx context.Context, tx *sql.Tx) (int, error) {
	var v int
	if s.Table == "" {
		err := tx.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v)
		return v, err
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+s.Table+` (version INTEGER NOT NULL)`); err != nil {
		return 0, err
	}
	err := tx.QueryRowContext(ctx, `SELECT version FROM `+s.Table).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return v, err
}

// setVersion writes version v inside tx.
func (s *Schema) setVersion(ctx context.Context, tx *sql.Tx, v int) error {
	if s.Table == "" {
		// PRAGMA takes no bound parameters; v is our own integer.
		_, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, v))
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM `+s.Table); err != nil {
		return err
	}
	insert := `INSERT INTO ` + s.Table + ` (version) VALUES (?)`
	if s.Postgres {
		insert = `INSERT INTO ` + s.Table + ` (version) VALUES ($1)`
	}
	_, err := tx.ExecContext(ctx, insert, v)
	return err
}

// errorf formats an error about the database, wrapping s.Err when set.
func (s *Schema) errorf(format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	if s.Err != nil {
		return fmt.Errorf("%w: %s: %w", s.Err, s.Where, err)
	}
	return fmt.Errorf("%s: %w", s.Where, err)
}
