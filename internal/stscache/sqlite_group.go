package stscache

import (
	"context"
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

// putOne writes one row in a transaction of its own.
func (s *SQLite) putOne(ctx context.Context, r putRow) error {
	if _, err := s.put.ExecContext(ctx, r.args...); err != nil {
		return s.putFailed(ctx, r.domain, err)
	}
	return nil
}

// putBatch writes rows in one transaction.
func (s *SQLite) putBatch(ctx context.Context, rows []putRow) (err error) {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return s.putFailed(ctx, rows[0].domain, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	st := tx.StmtContext(ctx, s.put)
	for _, r := range rows {
		if _, err := st.ExecContext(ctx, r.args...); err != nil {
			return s.putFailed(ctx, r.domain, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return s.putFailed(ctx, rows[0].domain, err)
	}
	return nil
}

// putFailed notes damage and wraps a failed write of domain's row.
func (s *SQLite) putFailed(ctx context.Context, domain string, err error) error {
	if sqlitedb.Damaged(err) {
		s.noteDamage(ctx, err)
	}
	return fmt.Errorf("stscache: sqlite put %s: %w", domain, err)
}
