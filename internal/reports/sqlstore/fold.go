package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// The deferred fold (schema version 9): PutReports stores a report's rows
// and marks the report pending (reports.pending = 1) instead of adding it
// to the rollup in the same transaction; Fold adds the pending reports to
// the rollup later, many at a time, and clears their mark, in one
// transaction. The rollup then holds exactly the counted reports that
// are not pending, and Summary and Reporters add an exact aggregation of
// the pending reports' own rows to what they read from the rollup
// (summaryPendingParts, reportersPendingQuery), so that an answer never
// lags behind the stored reports.
//
// Why: with the rollup written in PutReports' transaction, each
// transaction of 100 reports updated about 2,400 rollup rows spread over
// the whole table (every grain of every report's day), rewriting most
// of its pages in the WAL at every commit and again at each checkpoint;
// the upserts and those pages were two thirds of the ingest's CPU
// (bench/reports). A fold of thousands of reports writes each page it
// changes once, and aggregates the reports' rows in one statement per
// grain inside the database instead of binding 14 values per rollup row.
//
// When: the store folds in the background once foldEvery reports are
// pending or foldAfter after the first one, and before Close returns if
// it stored reports (bench/reports calls Fold before stopping its
// clock). A crash leaves reports pending: still counted through their
// rows, and folded by the next fold of any writer.
//
// Concurrency. One fold at a time: foldMu in a process; between
// processes SQLite's write lock serialises every write and PostgreSQL
// folds take an advisory transaction lock (foldLock). On SQLite a fold
// reads and aggregates before it takes the write lock (fold_aside.go),
// and runs as below, in one transaction, only when what it read changed
// meanwhile or another process holds the lock. A fold in one
// transaction first claims the reports it folds (pending =
// 2), on PostgreSQL with FOR UPDATE SKIP LOCKED, so that a report whose
// count another transaction is moving (conflict.go: recount reads the
// copy's mark with FOR UPDATE) is either claimed and folded before that
// transaction reads its mark, or skipped; there is no watermark that a
// late-committing transaction could slip under, since each report
// carries its own mark. Claimed reports are invisible as such to other
// transactions until the fold commits (they read 1), so readers count
// them once: through their rows before the commit, through the rollup
// after it. The fold's upserts go in the rollup's key order, as
// flushRollup's, so concurrent transactions take the row locks in one
// order.
//
// Moving a count (conflict.go): the copy losing it is subtracted from
// the rollup only if it was folded (pending 0); the copy taking it is
// marked pending and added by the next fold.

// Fold thresholds of a store.
const (
	foldEvery = 2000
	foldAfter = 2 * time.Second
	// foldMax caps the reports of one fold transaction.
	foldMax = 20000
)

// pendingCond selects the pending reports (ids) that readers add to
// the rollup: marked 1, or 2 by a fold that has not committed (which
// other transactions see as 1). "pending <> 0" is the partial index's
// condition (pendingMigration).
const pendingCond = `SELECT id FROM reports WHERE pending <> 0`

// claimedCond selects the reports a fold has claimed, in its transaction.
const claimedCond = `SELECT id FROM reports WHERE pending <> 0 AND pending = 2`

// foldCopy returns the statements copying the policy and failure rows
// of the reports that ids selects into two temporary tables (in memory
// on SQLite: temp_store), which the per-grain statements then scan: the
// copy looks each report's rows up in the big tables' indexes once,
// instead of once per grain statement (17 of them). temp is the
// backend's temporary schema ("temp" on SQLite, "pg_temp" on
// PostgreSQL).
func foldCopy(temp, ids string) []string {
	return []string{
		`DROP TABLE IF EXISTS ` + temp + `.fold_policies`,
		`DROP TABLE IF EXISTS ` + temp + `.fold_details`,
		`CREATE TEMP TABLE fold_policies AS SELECT report, day, organization, policy_domain, mx_host, policy_type, successful, failed, details
			FROM policies WHERE report IN (` + ids + `)`,
		`CREATE TEMP TABLE fold_details AS SELECT report, day, organization, policy_domain, mx_host, policy_type, result_type, failed_session_count
			FROM failure_details WHERE report IN (` + ids + `)`,
	}
}

// rollupInsert starts a fold's insert of rollup rows; each grain's
// select (foldGrains) gives its columns in this order.
const rollupInsert = `INSERT INTO summary_rollup (grain, kind, day, organization, policy_domain, mx_host, policy_type,
			result_type, reports, successful, failed, success_reports, nodetails_reports, nodetails_failed) `

// foldGrains returns the selects of the rollup rows of the copied
// reports (foldCopy): per grain, the total rows from their policy rows
// and the detail rows from their failure details, with the same sums as
// rollup.addReport (a report counts once per row key), each in the
// rollup's key order. sum is the backend's saturating SUM.
func foldGrains(sum func(string) string) []string {
	var out []string
	for g := range grainDomainDay + 1 {
		if g&grainNoOrg != 0 && g != grainDomainDay {
			continue
		}
		keep := func(bit int, col string) string {
			if g&bit != 0 {
				return col
			}
			return "''"
		}
		org := "organization"
		if g&grainNoOrg != 0 {
			org = "''"
		}
		grp := []string{"day"}
		if g&grainNoOrg == 0 {
			grp = append(grp, "organization")
		}
		for _, c := range []struct {
			bit int
			col string
		}{{grainDomain, "policy_domain"}, {grainMX, "mx_host"}, {grainType, "policy_type"}} {
			if g&c.bit != 0 {
				grp = append(grp, c.col)
			}
		}
		keys := fmt.Sprintf("%d, %%d, day, %s, %s, %s, %s", g, org, keep(grainDomain, "policy_domain"), keep(grainMX, "mx_host"), keep(grainType, "policy_type"))
		by := strings.Join(grp, ", ")
		nd := "failed > 0 AND details = 0"
		out = append(out, `SELECT `+fmt.Sprintf(keys, kindTotal)+`, '', COUNT(DISTINCT report), `+sum("successful")+`, `+sum("failed")+`,
			COUNT(DISTINCT CASE WHEN successful > 0 THEN report END), COUNT(DISTINCT CASE WHEN `+nd+` THEN report END),
			`+sum("CASE WHEN "+nd+" THEN failed ELSE 0 END")+`
			FROM fold_policies GROUP BY `+by+` ORDER BY `+by)
		if g&grainNoOrg != 0 {
			continue // totals only (grainDomainDay)
		}
		out = append(out, `SELECT `+fmt.Sprintf(keys, kindResult)+`, result_type, COUNT(DISTINCT report), 0, `+sum("failed_session_count")+`, 0, 0, 0
			FROM fold_details
			GROUP BY `+by+`, result_type ORDER BY `+by+`, result_type`)
	}
	return out
}

// rollupFold returns the statements of a fold in one transaction: the
// claimed reports' rows copied (foldCopy), each grain's rows added to
// the rollup (foldGrains), in the rollup's key order.
func rollupFold(sum func(string) string, temp string) []string {
	out := foldCopy(temp, claimedCond)
	for _, sel := range foldGrains(sum) {
		out = append(out, rollupInsert+sel+rollupConflict)
	}
	return append(out, `DROP TABLE `+temp+`.fold_policies`, `DROP TABLE `+temp+`.fold_details`)
}

// Fold adds every pending report to the rollup (see the top of this
// file), in transactions of at most foldMax reports. It waits for a
// fold running in this store; one of another process is serialised by
// the database.
func (s *sqlStore) Fold(ctx context.Context) error { return s.fold(ctx, false) }

// fold is Fold; aside lets it fold aside (fold_aside.go), which only
// the background fold does: it pays where PutReports runs meanwhile,
// and costs more work where nothing does (Close, Prune, a caller's
// Fold; an MTA pipe's Close took 3 ms longer per mail).
func (s *sqlStore) fold(ctx context.Context, aside bool) error {
	s.foldMu.Lock()
	defer s.foldMu.Unlock()
	for range 1 << 20 { // bounded: each round folds foldMax or ends
		n, err := s.foldOnce(ctx, aside)
		if err != nil {
			return err
		}
		if n < foldMax {
			return nil
		}
	}
	return nil
}

// foldOnce folds up to foldMax pending reports, aside or in one
// transaction, and returns how many.
func (s *sqlStore) foldOnce(ctx context.Context, aside bool) (int64, error) {
	if aside && s.fw != nil && s.aside != nil {
		n, err := s.foldAside(ctx)
		if !errors.Is(err, errFallBack) {
			return n, err
		}
	}
	// Nothing pending, no write transaction (a store opened for queries
	// only stays a reader).
	var some int
	if err := s.w.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM reports WHERE pending <> 0 AND pending = 1 LIMIT 1) t`).Scan(&some); err != nil {
		return 0, s.errorf("fold: %w", err)
	}
	if some == 0 {
		return 0, nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, s.errorf("fold: begin: %w", err)
	}
	defer tx.Rollback()
	if err := s.d.foldLock(ctx, tx); err != nil {
		return 0, s.errorf("fold: lock: %w", err)
	}
	res, err := tx.ExecContext(ctx, s.d.rebind(`UPDATE reports SET pending = 2 WHERE id IN (SELECT id FROM reports
		WHERE pending <> 0 AND pending = 1 ORDER BY id LIMIT ?`+s.d.skipLocked+`)`), foldMax)
	if err != nil {
		return 0, s.errorf("fold: claim: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, s.errorf("fold: claim: %w", err)
	}
	if n == 0 {
		return 0, nil
	}
	for _, q := range s.d.foldSQL {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return 0, s.errorf("fold: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE reports SET pending = 0 WHERE pending <> 0 AND pending = 2`); err != nil {
		return 0, s.errorf("fold: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, s.errorf("fold: commit: %w", err)
	}
	return n, nil
}

// folder runs the background folds of a store.
type folder struct {
	mu      sync.Mutex
	pending int         // reports marked pending here since the last fold began
	stored  bool        // this store has marked reports pending: Close folds
	timer   *time.Timer // armed while some are pending
	kick    chan struct{}
	done    chan struct{}
	stopped chan struct{}
	once    sync.Once // stop
}

// startFolder starts the store's background fold.
func (s *sqlStore) startFolder() {
	f := &folder{kick: make(chan struct{}, 1), done: make(chan struct{}), stopped: make(chan struct{})}
	s.folder = f
	go func() {
		defer close(f.stopped)
		for {
			select {
			case <-f.done:
				return
			case <-f.kick:
			}
			f.mu.Lock()
			f.pending = 0
			if f.timer != nil {
				f.timer.Stop()
				f.timer = nil
			}
			f.mu.Unlock()
			if err := s.fold(context.Background(), true); err != nil {
				// The reports stay pending, counted through their
				// rows; the next fold takes them.
				s.logger.Warn("reports: fold into the rollup failed", "where", s.loc, "err", err)
			}
		}
	}()
}

// notePending counts n reports newly marked pending (after their
// commit) and starts a fold when foldEvery are, or arms the timer.
func (s *sqlStore) notePending(n int) {
	f := s.folder
	if f == nil || n == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stored = true
	f.pending += n
	if f.pending >= foldEvery {
		f.signal()
		return
	}
	if f.timer == nil {
		f.timer = time.AfterFunc(foldAfter, f.signal)
	}
}

func (f *folder) signal() {
	select {
	case f.kick <- struct{}{}:
	default: // a fold is already due
	}
}

// stop ends the background folds and tells whether this store stored
// reports (Close then folds what is pending; a store opened for queries
// only, by a user who may not write the file, does not write).
func (f *folder) stop() bool {
	f.once.Do(func() {
		f.mu.Lock()
		if f.timer != nil {
			f.timer.Stop()
			f.timer = nil
		}
		f.mu.Unlock()
		close(f.done)
	})
	<-f.stopped
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stored
}
