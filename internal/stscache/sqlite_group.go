package stscache

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/mailsts/mailsts/internal/sqlitedb"
)

// maxPutBatch caps the entries one group commit writes.
const maxPutBatch = 64

// Group commit of [SQLite.Put] (package groupcommit): concurrent puts
// (cold lookups of many domains at once) share one transaction. A lone
// put writes at once, in a transaction of its own, as before: nothing
// waits for company and there is no background goroutine.
//
// Durability is unchanged: Put returns only after the COMMIT of the
// transaction holding its row (synchronous=NORMAL in WAL mode: durable
// across a crash of the process), never before, so an answer built on a
// fetched policy is never given while the entry could still be lost to a
// crash. A crash before the commit loses the whole batch, and none of its
// puts had returned. What is saved is the per-transaction work: the WAL
// frames of the table pages the rows share, the locks and the commit
// record, once per batch instead of once per row. (Schema version 4
// dropped the secondary indexes, whose pages every new row also wrote.)
//
// A batch is written under its leader's context. One that fails is
// written again one row at a time, each under its own caller's context,
// so that one bad row, or a leader whose context ended, fails only its
// own put.

// putRow is one queued Put: the values of entryColumns.
type putRow struct {
	domain string
	args   []any
}

// groupPut writes one row through the group commit.
func (s *SQLite) groupPut(ctx context.Context, domain string, args []any) error {
	_, err := s.puts.Do(ctx, putRow{domain: domain, args: args})
	return err
}

// writePuts is the group's Commit: rows in one transaction, a lone row
// in a transaction of its own.
func (s *SQLite) writePuts(ctx context.Context, rows []putRow) ([]struct{}, error) {
	// Once begun, the write is not interrupted (see below); a context
	// that ended before fails the batch, as it did the BEGIN.
	if err := ctx.Err(); err != nil {
		return nil, s.putFailed(ctx, rows[0].domain, err)
	}
	if s.beforeBatch != nil {
		s.beforeBatch(rows)
	}
	var err error
	if len(rows) == 1 {
		err = s.putOne(ctx, rows[0])
	} else {
		err = s.putBatch(ctx, rows)
	}
	if err != nil {
		return nil, err
	}
	return make([]struct{}, len(rows)), nil // no allocation
}

// The rows are written through the NoWait connection (sqlitedb.DB.NoWait)
// under a context without cancellation: modernc.org/sqlite watches a
// cancellable context with a goroutine per statement, which cost a lone
// Put about as much CPU again as its write (BenchmarkSQLitePutCtx). What
// the context bounded stays bounded: NoWait never waits for a lock (its
// busy_timeout is 0), and group commit makes the leader its only user,
// so it never waits for its connection either; a write that finds the
// file's write lock taken (the writer connection's maintenance, another
// process) fails at once with SQLITE_BUSY and is written through the
// writer connection under the caller's context, which waits as before.
// What is left without cancellation is the write itself and the
// checkpoint some commits run (bounded by sqliteCheckpointPages).

// putOne writes one row in a transaction of its own.
func (s *SQLite) putOne(ctx context.Context, r putRow) error {
	if s.putNoWait != nil {
		_, err := s.putNoWait.ExecContext(context.WithoutCancel(ctx), r.args...)
		if !sqlitedb.Busy(err) {
			if err != nil {
				return s.putFailed(ctx, r.domain, err)
			}
			return nil
		}
		s.waitedPuts.Add(1)
	}
	if _, err := s.put.ExecContext(ctx, r.args...); err != nil {
		return s.putFailed(ctx, r.domain, err)
	}
	return nil
}

// putBatch writes rows in one transaction.
func (s *SQLite) putBatch(ctx context.Context, rows []putRow) error {
	if s.putNoWait != nil {
		domain, err := writeBatch(context.WithoutCancel(ctx), s.nwdb, s.putNoWait, rows)
		if !sqlitedb.Busy(err) {
			if err != nil {
				return s.putFailed(ctx, domain, err)
			}
			return nil
		}
		s.waitedPuts.Add(1)
	}
	if domain, err := writeBatch(ctx, s.wdb, s.put, rows); err != nil {
		return s.putFailed(ctx, domain, err)
	}
	return nil
}

// writeBatch writes rows in one transaction of db with put, a statement
// prepared on db. On failure it returns the domain of the row it failed
// on (the first for BEGIN or COMMIT), and the transaction is rolled back.
func writeBatch(ctx context.Context, db *sql.DB, put *sql.Stmt, rows []putRow) (domain string, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return rows[0].domain, err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	st := tx.StmtContext(ctx, put)
	for _, r := range rows {
		if _, err := st.ExecContext(ctx, r.args...); err != nil {
			return r.domain, err
		}
	}
	if err := tx.Commit(); err != nil {
		return rows[0].domain, err
	}
	return "", nil
}

// putFailed notes damage and wraps a failed write of domain's row.
func (s *SQLite) putFailed(ctx context.Context, domain string, err error) error {
	if sqlitedb.Damaged(err) {
		s.noteDamage(ctx, err)
	}
	return fmt.Errorf("stscache: sqlite put %s: %w", domain, err)
}
