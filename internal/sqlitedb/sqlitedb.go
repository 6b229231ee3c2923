// Package sqlitedb opens the SQLite files of mailsts (the policy cache of
// internal/stscache and the report store of internal/reports) one way:
//
//   - [DSN] turns any file path (relative, or holding spaces, '?', '#',
//     '%') into a file: URI of its absolute path, so that the driver never
//     takes part of a path for a URI authority or a query;
//   - [Open] returns one writer connection (BEGIN IMMEDIATE, so writes are
//     serialised in Go instead of failing with SQLITE_BUSY; its own
//     checkpoint interval and log size limit, [Options]), a small
//     query_only reader pool, and optionally a second writer that never
//     waits for a lock ([DB.NoWait]), all in WAL mode;
//   - [Damaged] and [QuickCheck] tell a damaged file (SQLITE_CORRUPT,
//     SQLITE_NOTADB, a failed PRAGMA quick_check) from other failures
//     (permissions, a full disk, a lock), which callers handle differently;
//   - [ChownLikeDir] keeps files created by root in a directory owned by a
//     service user usable by that user.
//
// It also reads the database specs every store takes (--db, db:):
// [ResolveSpec], [CheckSpec] and [IsPostgres] turn sqlite:PATH, a
// postgres:// URL or an empty spec (a default file in the state
// directory) into what to open, one way for the reports store, the
// results store of the sending side and the outbox.
package sqlitedb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// ErrDamaged means the file is not a readable SQLite database: a bad
// header, a corrupt page, or a failed PRAGMA quick_check. What to do
// depends on the file: a cache can be set aside and rebuilt; a store of
// record must be repaired by hand.
var ErrDamaged = errors.New("sqlitedb: database file is damaged")

// DSN returns the modernc.org/sqlite data source name of the file at
// path (made absolute against the working directory) with the given
// query parameters (such as "_pragma"). The result is a file: URI, so
// '?', '#' and '%' in the path are escaped rather than taken as a query,
// a fragment or an escape, and a relative path never becomes a URI
// authority ("file://relstate/cache.db" is what fails with "invalid uri
// authority").
func DSN(path string, params url.Values) (string, error) {
	if path == "" {
		return "", errors.New("sqlitedb: empty database path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("sqlitedb: %s: %w", path, err)
	}
	// url.URL escapes the path for a URI (space as %20, '?' as %3F, '#'
	// as %23, '%' as %25); SQLite decodes %HH in file: URIs. An absolute
	// path starts with '/', so String() gives "file:///…": empty authority.
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: params.Encode()}
	return u.String(), nil
}

// Options are the settings of [Open].
type Options struct {
	// BusyTimeout is how long a statement waits for a lock held by
	// another process before failing.
	BusyTimeout time.Duration
	// Synchronous is the PRAGMA synchronous level: "FULL" (a commit is on
	// disk when it returns) or "NORMAL" (in WAL mode, durable across
	// process crashes; a power loss may lose the last commits).
	Synchronous string
	// ForeignKeys turns on foreign key enforcement.
	ForeignKeys bool
	// WALAutocheckpoint is the writer's PRAGMA wal_autocheckpoint: the
	// length of the log, in pages, past which a commit copies it back
	// into the file (a checkpoint: the log's pages read back, written to
	// the file, both files fsynced). Zero means SQLite's 1000. A longer
	// log costs disk space only (the wal-index in the -shm file, which
	// every connection maps, grows by 32 KiB per 4,096 pages), and saves
	// a checkpoint's fixed cost, two fsyncs, per that many pages, and the
	// copies of pages written again before the checkpoint (it copies each
	// page once).
	WALAutocheckpoint int
	// NoWaitWriter opens [DB.NoWait].
	NoWaitWriter bool
	// JournalSizeLimit is the writer's PRAGMA journal_size_limit, in
	// bytes: after a checkpoint that emptied the log, a log longer than
	// this is truncated to it. A checkpoint cannot empty the log while a
	// reader still uses pages in it (a long `mailsts cache list`), so the
	// log can grow past WALAutocheckpoint meanwhile; this gives the disk
	// back afterwards. Zero means SQLite's default: no limit.
	JournalSizeLimit int64
}

// busyConnector opens connections of dsn, retrying for up to wait while
// opening fails with SQLITE_BUSY. Every connection runs the journal_mode
// pragma, and switching a new file to WAL takes its lock without waiting
// on busy_timeout (SQLite does not call the busy handler there), so
// processes that open one new file together would otherwise fail at once
// with "database is locked".
type busyConnector struct {
	dsn  string
	wait time.Duration
}

func (c busyConnector) Connect(ctx context.Context) (driver.Conn, error) {
	deadline := time.Now().Add(c.wait)
	delay := time.Millisecond
	for {
		conn, err := c.Driver().Open(c.dsn)
		if err == nil || !Busy(err) || time.Now().After(deadline) {
			return conn, err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, 50*time.Millisecond)
	}
}

func (busyConnector) Driver() driver.Driver { return &sqlite.Driver{} }

// Busy reports whether err is SQLITE_BUSY (or one of its extended codes):
// a lock held by another connection, past the busy timeout.
func Busy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

// DB is a SQLite file opened by [Open].
type DB struct {
	// Path is the file's absolute path.
	Path string
	// W is the one writer connection; its transactions BEGIN IMMEDIATE.
	W *sql.DB
	// R is the reader pool; its connections are query_only.
	R *sql.DB
	// NoWait, when Options.NoWaitWriter is set (nil otherwise), is a
	// second writer connection that never waits for a lock: its
	// busy_timeout is 0, so a write that finds the file's write lock
	// taken (by W, or by another process) fails at once with an error
	// [Busy] recognises. It is for a hot write path that must not pay for
	// a cancellable context: modernc.org/sqlite starts a goroutine per
	// statement to watch one (tens of µs of CPU per statement with the
	// wake-ups). Having nothing to wait for, its statements can run under
	// context.WithoutCancel; on Busy the caller writes through W under its
	// own context instead, waiting as W does. Like W, its transactions
	// BEGIN IMMEDIATE, and it has W's checkpoint settings. The reports
	// store uses it as its background fold's own connection, which reads
	// into temporary tables outside W's transactions and falls back to W
	// when the write lock is taken (reports/sqlstore/fold_aside.go).
	NoWait *sql.DB
}

// Open opens (creating when missing) the SQLite file at path in WAL mode:
// a writer with one connection and a query_only reader pool (and the
// NoWait writer when asked). Like sql.Open, it does not touch the file;
// the first statement does.
func Open(path string, o Options) (*DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlitedb: %s: %w", path, err)
	}
	// pragmas returns the query of a connection: busy_timeout first
	// (switching a new file to WAL may have to wait), then the rest.
	pragmas := func(busy time.Duration, more ...string) url.Values {
		q := url.Values{}
		q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()))
		q.Add("_pragma", "journal_mode(WAL)")
		if o.Synchronous != "" {
			q.Add("_pragma", "synchronous("+o.Synchronous+")")
		}
		if o.ForeignKeys {
			q.Add("_pragma", "foreign_keys(1)")
		}
		for _, p := range more {
			q.Add("_pragma", p)
		}
		return q
	}
	// Only writers commit, so only their connections checkpoint and
	// reset the log.
	var writer []string
	if o.WALAutocheckpoint != 0 {
		writer = append(writer, fmt.Sprintf("wal_autocheckpoint(%d)", o.WALAutocheckpoint))
	}
	if o.JournalSizeLimit != 0 {
		writer = append(writer, fmt.Sprintf("journal_size_limit(%d)", o.JournalSizeLimit))
	}
	open := func(q url.Values, conns int) (*sql.DB, error) {
		dsn, err := DSN(abs, q)
		if err != nil {
			return nil, err
		}
		db := sql.OpenDB(busyConnector{dsn: dsn, wait: o.BusyTimeout})
		db.SetMaxOpenConns(conns)
		return db, nil
	}
	wq := pragmas(o.BusyTimeout, writer...)
	// BEGIN IMMEDIATE: take the write lock at the start of a transaction,
	// so a transaction never fails half way on a lock upgrade.
	wq.Set("_txlock", "immediate")
	w, err := open(wq, 1)
	if err != nil {
		return nil, err
	}
	w.SetConnMaxIdleTime(0)
	r, err := open(pragmas(o.BusyTimeout, "query_only(1)"), max(4, runtime.GOMAXPROCS(0)))
	if err != nil {
		return nil, err
	}
	db := &DB{Path: abs, W: w, R: r}
	if o.NoWaitWriter {
		nq := pragmas(0, writer...)
		nq.Set("_txlock", "immediate")
		if db.NoWait, err = open(nq, 1); err != nil {
			return nil, err
		}
		db.NoWait.SetConnMaxIdleTime(0)
	}
	return db, nil
}

// Close closes the readers, then the writer after a PRAGMA optimize (cheap,
// and it keeps the planner's statistics fresh for the next open).
func (db *DB) Close() error {
	errs := []error{db.R.Close()}
	if db.NoWait != nil {
		errs = append(errs, db.NoWait.Close())
	}
	// The writer last: closing the last connection checkpoints the log.
	db.W.Exec(`PRAGMA optimize`) // best effort: fails on a damaged or read-only file
	errs = append(errs, db.W.Close())
	return errors.Join(errs...)
}

// Damaged reports whether err says that the database file is damaged
// (SQLITE_CORRUPT, SQLITE_NOTADB, or [ErrDamaged]), as opposed to being
// unreachable (permissions, a full disk, a lock held too long).
func Damaged(err error) bool {
	if errors.Is(err, ErrDamaged) {
		return true
	}
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff { // the primary code of an extended result code
	case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
		return true
	}
	return false
}

// QuickCheck runs PRAGMA quick_check on db (the b-tree structure of every
// table and index, without comparing indexes to their tables). It returns
// nil for a sound file, an error matching [ErrDamaged] with the first
// problems for a damaged one, and other errors unchanged.
func QuickCheck(ctx context.Context, db *sql.DB) error {
	rows, err := db.QueryContext(ctx, `PRAGMA quick_check(5)`)
	if err != nil {
		if Damaged(err) {
			return fmt.Errorf("%w: %w", ErrDamaged, err)
		}
		return err
	}
	defer rows.Close()
	var msgs []string
	for rows.Next() {
		var m string
		if err := rows.Scan(&m); err != nil {
			return err
		}
		msgs = append(msgs, m)
	}
	if err := rows.Err(); err != nil {
		if Damaged(err) {
			return fmt.Errorf("%w: %w", ErrDamaged, err)
		}
		return err
	}
	if len(msgs) == 1 && msgs[0] == "ok" {
		return nil
	}
	return fmt.Errorf("%w: quick_check: %s", ErrDamaged, strings.Join(msgs, "; "))
}
