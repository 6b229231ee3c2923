package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/sqlitedb"
)

// sqliteBusyTimeout is how long a statement waits for a lock held by
// another process (a CLI query while `mailsts serve` writes).
const sqliteBusyTimeout = 10 * time.Second

// OpenSQLite opens or creates the report database at path (one file, WAL
// mode; a relative path is taken against the working directory) and migrates its schema (PRAGMA user_version). A nil logger
// discards.
//
// Durability: synchronous=FULL, so a report is on disk when PutReport
// returns, which is what lets the HTTP receiver answer 200 and the mail
// pipe exit 0 (RFC 8460 §5.4, RPT-HTTP-3). Writes go through one
// connection, and the background fold's through its own (fold_aside.go);
// reads use a small query_only pool and never block them.
func OpenSQLite(ctx context.Context, path string, logger *slog.Logger) (reports.Store, error) {
	if logger == nil {
		logger = discardLogger()
	}
	db, err := sqlitedb.Open(path, sqlitedb.Options{
		BusyTimeout: sqliteBusyTimeout,
		Synchronous: "FULL",
		ForeignKeys: true,
		// The fold's own connection (fold_aside.go).
		NoWaitWriter: true,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: sqlite %s: %w", reports.ErrStorage, path, err)
	}
	s := &sqlStore{d: sqliteDialect(), loc: db.Path, logger: logger, w: db.W, r: db.R, fw: db.NoWait, aside: newAsidePlan(sqliteSum)}
	if err := s.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	// Statement journals in memory: an upsert of many rollup rows
	// inside PutReports' transaction keeps the pages it changes so that
	// it can fail alone, and SQLite spills that journal to a temporary
	// file beyond 64 KiB; its writes were a third of the ingest's
	// (bench/reports: 54,000 instead of 34,000 pwrite calls for 3,000
	// reports). A statement of the write path changes at most a few
	// MiB of pages. Set after the migrations, whose statements rewrite
	// whole tables. The writer pool keeps its one connection for the
	// store's life (sqlitedb.Open); one that replaced it would only be
	// slower.
	if _, err := s.w.ExecContext(ctx, `PRAGMA temp_store = MEMORY`); err != nil {
		db.Close()
		return nil, s.errorf("set temp_store: %w", err)
	}
	// A page cache of 16 MiB on the writer (SQLite's default is 2 MiB):
	// a transaction of 100 reports dirties about 450 pages, most of
	// them the rollup's, and beyond the default cache SQLite wrote dirty
	// pages to the WAL before the commit (and again at it) and read
	// evicted ones back: 13% of the ingest's CPU (bench/reports
	// -cpuprofile). Pages are allocated as used; the readers keep the
	// default.
	if _, err := s.w.ExecContext(ctx, `PRAGMA cache_size = -16384`); err != nil {
		db.Close()
		return nil, s.errorf("set cache_size: %w", err)
	}
	if err := s.prepareStatements(ctx); err != nil {
		db.Close()
		return nil, err
	}
	s.startFolder()
	return s, nil
}

// sqliteSum is dialect.sum: SUM fails with "integer overflow"; TOTAL
// sums as a double, exact below 2^53 (far above any real total), and the
// cast clamps at 2^63-1.
func sqliteSum(c string) string {
	return "CAST(MIN(TOTAL(" + c + "), 9223372036854775807.0) AS INTEGER)"
}

func sqliteDialect() dialect {
	return dialect{
		name:            "sqlite",
		rebind:          func(q string) string { return q },
		migrations:      sqliteMigrations(),
		contains:        func(h, n string) string { return "instr(" + h + ", " + n + ") > 0" },
		sum:             sqliteSum,
		domainRollup:    "summary_rollup INDEXED BY summary_rollup_domain_day",
		domainDayRollup: "summary_rollup INDEXED BY summary_rollup_domainday_day",
		reportersRollup: "summary_rollup INDEXED BY summary_rollup_reporters",
		detachWrites:    true,
		foldSQL:         rollupFold(sqliteSum, "temp"),
		// One writer connection: every transaction is serialised.
		foldLock: func(context.Context, *sql.Tx) error { return nil },
		lockKey:  func(context.Context, *sql.Tx, string) error { return nil },
	}
}

// Close implements Store.
func (s *sqlStore) Close() error {
	var errs []error
	// The pending reports go into the rollup before a store that
	// stored reports closes (fold.go); if that fails they stay pending,
	// counted through their rows, and a later fold takes them.
	if s.folder != nil && s.folder.stop() {
		if err := s.Fold(context.Background()); err != nil {
			errs = append(errs, err)
		}
	}
	if s.r != nil && s.r != s.w {
		if err := s.r.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	s.stmts.close()
	if s.fw != nil {
		if err := s.fw.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if s.d.name == "sqlite" {
		// Keeps the planner's statistics fresh; cheap before closing.
		if _, err := s.w.Exec(`PRAGMA optimize`); err != nil {
			s.logger.Debug("reports: PRAGMA optimize", "where", s.loc, "err", err)
		}
	}
	if err := s.w.Close(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return s.errorf("close: %v", errs)
	}
	return nil
}
