package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/mailsts/mailsts/internal/sqlitedb"
)

// The fold aside (SQLite). SQLite has one writer at a time, and a fold
// in one write transaction (the rest of foldOnce) held it for all its
// work: copying the pending reports' rows, aggregating them per grain (17 sorts),
// and adding the results to the rollup. PutReports waited meanwhile,
// and the ingest ran on one core (bench/reports: the fold was 55% of
// its time, its aggregation about 45% of the fold).
//
// So on SQLite the background fold (not Fold, called by Close and Prune
// when nothing else writes) first reads and aggregates without the write
// lock, in a read transaction of its own connection (sqlStore.fw: the
// aggregates go into temporary tables, which live on that connection,
// in memory), while PutReports goes on writing on the other core. Then
// it takes the write lock and applies what it read, in one transaction:
//
//  1. The reports it aggregated leave pending: UPDATE ... SET pending = 0
//     WHERE id IN (those) AND pending = 1. If that changes fewer rows
//     than it aggregated, one of them changed in between (a moved count
//     marked it 0, a prune deleted it): the transaction is rolled back
//     and the fold runs as before, in one transaction (foldOnce). A
//     report's policy and detail rows never change once stored, so a
//     report still pending has the rows that were aggregated.
//  2. The aggregated rows are added to the rollup, in its key order.
//
// Readers see the change at the commit, all at once: a report counts
// through its rows while pending, through the rollup after.
//
// Memory: the aggregates wait in memory for the write, and the fold's
// connection has its own page cache (up to 16 MiB, for the rollup's
// pages). Peak RSS of a fold of 10,000 pending SynthReports: 25 MB over
// the store's before it (11 MB in one transaction); of 2,000: 19 MB.
//
// The connection is sqlitedb's NoWait writer (busy_timeout 0): a
// write lock held by another process makes the fold fall back to
// foldOnce, which waits for it through the writer pool. In this
// process, writeMu hands the lock over between PutReports and the
// fold's write transaction without SQLite's sleeping busy handler.

// asideTables are the temporary tables of a fold aside, besides
// foldCopy's.
func asideTables(grains int) []string {
	out := []string{"fold_ids"}
	for k := range grains {
		out = append(out, fmt.Sprintf("fold_rows_%d", k))
	}
	return out
}

// asidePlan is the statements of a fold aside.
type asidePlan struct {
	// read runs in the read transaction: it selects the pending reports
	// (temp.fold_ids), copies their rows and aggregates them into one
	// table per grain (temp.fold_rows_K).
	read []string
	// apply adds each grain's table to the rollup, in the write
	// transaction, after the reports' marks are cleared.
	apply []string
	// drop removes the temporary tables.
	drop []string
}

func newAsidePlan(sum func(string) string) *asidePlan {
	p := &asidePlan{read: []string{`DROP TABLE IF EXISTS temp.fold_ids`,
		fmt.Sprintf(`CREATE TEMP TABLE fold_ids AS SELECT id FROM reports WHERE pending <> 0 AND pending = 1 ORDER BY id LIMIT %d`, foldMax)}}
	p.read = append(p.read, foldCopy("temp", `SELECT id FROM temp.fold_ids`)...)
	grains := foldGrains(sum)
	for k, sel := range grains {
		t := fmt.Sprintf("temp.fold_rows_%d", k)
		p.read = append(p.read, `DROP TABLE IF EXISTS `+t, `CREATE TEMP TABLE `+t[len("temp."):]+` AS `+sel)
		// rowid order is the select's order, the rollup's key order.
		p.apply = append(p.apply, rollupInsert+`SELECT * FROM `+t+` ORDER BY rowid`+rollupConflict)
	}
	for _, t := range append(asideTables(len(grains)), "fold_policies", "fold_details") {
		p.drop = append(p.drop, `DROP TABLE IF EXISTS temp.`+t)
	}
	return p
}

// errFallBack ends a fold aside that could not apply what it read; the
// fold then runs in one transaction.
var errFallBack = errors.New("fold aside: fall back")

// foldAside folds up to foldMax pending reports as the top of this file
// says, and returns how many. It returns errFallBack when the fold must
// run in one transaction instead.
func (s *sqlStore) foldAside(ctx context.Context) (int64, error) {
	conn, err := s.fw.Conn(ctx)
	if err != nil {
		return 0, s.errorf("fold: %w", err)
	}
	defer conn.Close()
	defer func() {
		for _, q := range s.aside.drop {
			conn.ExecContext(context.WithoutCancel(ctx), q) // best effort: they go with the connection anyway
		}
	}()
	// The aggregation's sorts and tables in memory, and the writer's
	// page cache (OpenSQLite) for the rollup's upserts. The temporary
	// tables without a rollback journal: they are scratch, dropped
	// after the fold, and SQLite otherwise kept a copy of each page they
	// changed in the read transaction (about a fifth of the read's CPU,
	// bench/reports -cpuprofile).
	for _, q := range []string{`PRAGMA temp_store = MEMORY`, `PRAGMA cache_size = -16384`, `PRAGMA temp.journal_mode = OFF`} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return 0, s.errorf("fold: %s: %w", q, err)
		}
	}
	n, err := s.asideRead(ctx, conn)
	if err != nil {
		// A read can find the log being reset by another process's
		// checkpoint, and this connection does not wait. Whatever
		// failed, nothing is written yet: the fold in one transaction
		// (which waits) does the work, slower.
		if !sqlitedb.Busy(err) && ctx.Err() == nil {
			s.logger.Warn("reports: fold aside failed; folding in one transaction", "where", s.loc, "err", err)
		}
		return 0, errFallBack
	}
	if n == 0 {
		return 0, nil
	}
	if s.asideHook != nil {
		s.asideHook()
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	tx, err := conn.BeginTx(ctx, nil) // BEGIN IMMEDIATE, never waiting
	if sqlitedb.Busy(err) {
		// Another process writes: foldOnce waits for it.
		return 0, errFallBack
	}
	if err != nil {
		return 0, s.errorf("fold: begin: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE reports SET pending = 0 WHERE id IN (SELECT id FROM temp.fold_ids) AND pending <> 0 AND pending = 1`)
	if err != nil {
		return 0, s.errorf("fold: %w", err)
	}
	if cleared, err := res.RowsAffected(); err != nil {
		return 0, s.errorf("fold: %w", err)
	} else if cleared != n {
		s.asideFallbacks.Add(1)
		return 0, errFallBack
	}
	for _, q := range s.aside.apply {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return 0, s.errorf("fold: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, s.errorf("fold: commit: %w", err)
	}
	return n, nil
}

// asideRead runs the plan's reads in one read transaction (BEGIN
// DEFERRED: the temporary tables are the only writes, and they take no
// lock on the file) and returns how many reports it selected.
func (s *sqlStore) asideRead(ctx context.Context, conn *sql.Conn) (n int64, err error) {
	if _, err := conn.ExecContext(ctx, `BEGIN DEFERRED`); err != nil {
		return 0, s.errorf("fold: begin read: %w", err)
	}
	defer func() {
		if _, cerr := conn.ExecContext(context.WithoutCancel(ctx), `COMMIT`); cerr != nil && err == nil {
			err = s.errorf("fold: end read: %w", cerr)
		}
	}()
	for i, q := range s.aside.read {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return 0, s.errorf("fold: %w", err)
		}
		if i == 1 {
			if err := conn.QueryRowContext(ctx, `SELECT COUNT(*) FROM temp.fold_ids`).Scan(&n); err != nil {
				return 0, s.errorf("fold: %w", err)
			}
			if n == 0 {
				return 0, nil
			}
		}
	}
	return n, nil
}
