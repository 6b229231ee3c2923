package stscache

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/mailsts/mailsts/internal/groupcommit"
	"github.com/mailsts/mailsts/internal/migrate"
	"github.com/mailsts/mailsts/internal/sqlitedb"
	"github.com/mailsts/mailsts/mtasts"
	"github.com/mailsts/mailsts/tlsrpt/result"
)

// ErrSchemaTooNew is returned by OpenSQLite when the file was written by a
// newer mailsts (its PRAGMA user_version is above the versions this build
// knows). Upgrade mailsts, or point it at another file; the file is left
// untouched.
var ErrSchemaTooNew = errors.New("stscache: cache file schema is newer than this program")

// migrations[i] upgrades a database from user_version i to i+1. Append only:
// a released step is never edited, so every file walks the same path.
var migrations = []string{
	// Version 1: one row per policy domain. Times are Unix milliseconds,
	// NULL for the zero time. expires_at and mode duplicate what the policy
	// JSON says so that Evict and Cap can select in SQL (by index until
	// version 4 dropped the indexes).
	`CREATE TABLE entries (
		domain          TEXT PRIMARY KEY NOT NULL,
		policy          TEXT,
		mode            TEXT,
		expires_at      INTEGER,
		policy_id       TEXT NOT NULL DEFAULT '',
		fetched_at      INTEGER,
		checked_at      INTEGER,
		no_policy_until INTEGER,
		failed_id       TEXT NOT NULL DEFAULT '',
		failed_at       INTEGER,
		failures        INTEGER NOT NULL DEFAULT 0,
		last_error      TEXT NOT NULL DEFAULT '',
		last_used       INTEGER
	) STRICT, WITHOUT ROWID;
	CREATE INDEX entries_expires_at ON entries(expires_at);
	CREATE INDEX entries_last_used ON entries(last_used);`,

	// Version 2: the purge log. Delete, Purge and PurgeAll append a row in
	// the transaction that deletes, so that other processes on the file (a
	// running policyd when `mailsts cache purge` deletes) can drop the
	// domains from memory: they poll PurgesAfter. domain is NULL for every
	// entry; at is Unix milliseconds. seq is the rowid: TrimPurges never
	// removes the newest row, so seq only grows.
	`CREATE TABLE purges (
		seq    INTEGER PRIMARY KEY,
		domain TEXT,
		at     INTEGER NOT NULL
	) STRICT;`,

	// Version 3: the class and temporariness of the last failure
	// (mtasts.Entry.LastErrorType, LastErrorTemporary). Rows written
	// before get '' and 0, which mtasts reads as "class in last_error's
	// text" (its legacy path).
	`ALTER TABLE entries ADD COLUMN last_error_type TEXT NOT NULL DEFAULT '';
	ALTER TABLE entries ADD COLUMN last_error_temporary INTEGER NOT NULL DEFAULT 0;`,

	// Version 4: no secondary index. Each index made every new entry's
	// commit write its pages too (two more WAL frames, often three times
	// the frames of the row alone, and more checkpoint work), on the cold
	// lookup's path; they served only Evict and Cap, which run every ten
	// minutes and now scan the table (some 150 ms of CPU at 200,000
	// entries), and the salvage of a damaged file, which also reads the
	// table's pages directly.
	`DROP INDEX IF EXISTS entries_expires_at;
	DROP INDEX IF EXISTS entries_last_used;`,
}

// SQLite is an [mtasts.Store] in one SQLite file, so the policy cache
// survives restarts (STS-CACHE-10: losing it reopens the downgrade window
// of first discovery).
//
// The file is in WAL mode: readers never block the writer. Writes go
// through a single connection, so they are serialised in Go rather than
// failing with SQLITE_BUSY; a busy timeout covers other processes opening
// the same file. Put is the exception: its group commit writes through a
// second connection that never waits for a lock, and through the first
// when that one finds the lock taken (sqlite_group.go). SQLite is not meant for the per-query path: put a
// [Tiered] with a [Memory] front before it.
type SQLite struct {
	// Now returns the current time, used by Evict and Cap to tell valid
	// policies from expired ones. Nil means time.Now. Set it before use.
	Now func() time.Time

	// OnUnreadable, when set, is called for each entry that could not be
	// read (a damaged page, an undecodable row); the entry is treated as
	// absent, so its policy is fetched again. Set it before use.
	OnUnreadable func(domain string, err error)

	path   string
	logger *slog.Logger
	db     *sqlitedb.DB
	rdb    *sql.DB // readers: a small pool, query_only
	wdb    *sql.DB // the one writer connection
	nwdb   *sql.DB // the writer connection that never waits (Put's)
	repair *Repair // the damaged file set aside at open, or nil

	damaged atomic.Bool // a read or write hit a damaged page since open

	get, put, purgesAfter *sql.Stmt
	putNoWait             *sql.Stmt // put on nwdb; nil if it could not be prepared

	// waitedPuts counts the Put writes that found the write lock taken
	// and went through wdb (sqlite_group.go).
	waitedPuts atomic.Int64

	// The group commit of Put (sqlite_group.go).
	puts groupcommit.Group[putRow, struct{}]
	// beforeBatch, when set (tests), is called by the leader with the
	// rows it is about to write (a batch, or one row of its retry).
	beforeBatch func(rows []putRow)
	// beforeDelete, when set (tests), is called by Evict and Cap between
	// the scan and the deletes of the domains it picked.
	beforeDelete func(domains []string)
}

var (
	_ mtasts.Store   = (*SQLite)(nil)
	_ LastUsedWriter = (*SQLite)(nil)
)

// sqliteBusyTimeout is how long a statement waits for a lock held by
// another process before failing.
const sqliteBusyTimeout = 5 * time.Second

// OpenSQLite opens or creates the cache file at path (relative paths are
// taken against the working directory), migrating its schema to the
// current version. A nil logger discards. Close releases it.
//
// A new file is built under a temporary name and linked into place, so a
// cache file is never seen half made. A damaged file (a bad header, a
// failed PRAGMA quick_check, or 0 bytes: mailsts never leaves an empty
// file, so one was truncated) is set aside as path.damaged-TIMESTAMP, with
// an ERROR line, and a new file is built from every entry that can still
// be read from it ([SQLite.Repaired] says so). Other failures (permissions,
// a full disk) are returned.
//
// Run as root in a directory owned by another user, it gives the files it
// creates to that user (see [sqlitedb.ChownLikeDir]).
func OpenSQLite(ctx context.Context, path string, logger *slog.Logger) (*SQLite, error) {
	if logger == nil {
		logger = discard
	}
	// Never take over another program's database (postfix-mta-sts-resolver's
	// cache, or anything else): checked before any write, repair or move.
	if err := checkForeign(ctx, path); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("stscache: open %s: %w", path, err)
	}
	path = abs
	damage, err := checkFile(path)
	if err != nil {
		return nil, err
	}
	var s *SQLite
	if damage == nil {
		s, err = openSQLite(ctx, path, logger, true)
		if err == nil || !errors.Is(err, sqlitedb.ErrDamaged) {
			return s, err
		}
		damage = err
	}
	rep, err := repairSQLite(ctx, path, damage, logger)
	if err != nil {
		return nil, err
	}
	if s, err = openSQLite(ctx, path, logger, true); err != nil {
		return nil, err
	}
	s.repair = rep
	return s, nil
}

// openSQLite opens the file at path (absolute), creating it when missing,
// checks it when check is set (errors matching sqlitedb.ErrDamaged for a
// damaged file) and migrates it.
func openSQLite(ctx context.Context, path string, logger *slog.Logger, check bool) (*SQLite, error) {
	if err := createSQLite(ctx, path, nil, logger); err != nil {
		return nil, err
	}
	db, err := sqlitedb.Open(path, sqliteOptions)
	if err != nil {
		return nil, fmt.Errorf("stscache: open %s: %w", path, err)
	}
	s := &SQLite{path: path, logger: logger, db: db, wdb: db.W, nwdb: db.NoWait, rdb: db.R}
	s.puts.Commit, s.puts.MaxBatch = s.writePuts, maxPutBatch
	if check {
		if err := sqlitedb.QuickCheck(ctx, s.wdb); err != nil {
			db.Close()
			return nil, fmt.Errorf("stscache: %s: %w", path, err)
		}
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		if sqlitedb.Damaged(err) && !errors.Is(err, sqlitedb.ErrDamaged) {
			err = fmt.Errorf("%w: %w", sqlitedb.ErrDamaged, err)
		}
		return nil, err
	}
	// Files an earlier run as root left behind (the file, or its -wal and
	// -shm while this process has them open) go to the directory's owner.
	if err := sqlitedb.ChownLikeDir(path); err != nil {
		logger.WarnContext(ctx, "stscache: cannot give the cache file to the owner of its directory", "path", path, "err", err)
	}
	if s.get, err = s.rdb.PrepareContext(ctx, `SELECT `+entryColumns+` FROM entries WHERE domain = ?`); err != nil {
		s.Close()
		return nil, fmt.Errorf("stscache: prepare: %w", err)
	}
	if s.purgesAfter, err = s.rdb.PrepareContext(ctx, `SELECT seq, domain, at FROM purges
		WHERE seq > ? ORDER BY seq LIMIT ?`); err != nil {
		s.Close()
		return nil, fmt.Errorf("stscache: prepare: %w", err)
	}
	const put = `INSERT OR REPLACE INTO entries (` + entryColumns + `) VALUES ` + entryValues
	if s.put, err = s.wdb.PrepareContext(ctx, put); err != nil {
		s.Close()
		return nil, fmt.Errorf("stscache: prepare: %w", err)
	}
	// The connection that never waits cannot prepare while another
	// process holds the file exclusively (recovering its log after a
	// crash): Put then writes through the writer only (sqlite_group.go).
	if s.putNoWait, err = s.nwdb.PrepareContext(ctx, put); err != nil && !sqlitedb.Busy(err) {
		s.Close()
		return nil, fmt.Errorf("stscache: prepare: %w", err)
	}
	return s, nil
}

// sqliteOptions: NORMAL is durable across process crashes in WAL mode (a
// commit is in the log, which survives the process; the log is fsynced
// at each checkpoint); a power loss may lose the last transactions, which
// a cache can afford.
//
// The writer checkpoints every sqliteCheckpointPages pages of log instead
// of SQLite's 1,000: the cold lookups' commits each add a page or two,
// and each checkpoint costs two fsyncs plus a read and a write of every
// distinct page in the log, so ten times fewer checkpoints, each copying
// a page written several times once, cut the CPU of a new entry's write
// (bench/README.md, policyd). The log then grows to about 40 MiB on disk
// (at 4 KiB pages); the -shm file every connection maps grows from 32 to
// 96 KiB. sqliteLogLimit gives back the disk of a log that grew past
// that while a reader held the checkpoint back.
var sqliteOptions = sqlitedb.Options{BusyTimeout: sqliteBusyTimeout, Synchronous: "NORMAL",
	WALAutocheckpoint: sqliteCheckpointPages, JournalSizeLimit: sqliteLogLimit,
	NoWaitWriter: true} // Put's connection (sqlite_group.go)

const (
	// sqliteCheckpointPages is the writer's wal_autocheckpoint.
	sqliteCheckpointPages = 10000
	// sqliteLogLimit is the writer's journal_size_limit: above the log of
	// sqliteCheckpointPages pages of 4 KiB (41.2 MB with frame headers).
	sqliteLogLimit = 48 << 20
)

const entryColumns = `domain, policy, mode, expires_at, policy_id, fetched_at, checked_at,
	no_policy_until, failed_id, failed_at, failures, last_error, last_used,
	last_error_type, last_error_temporary`

// entryColumnsV2 reads the rows of a file at schema version 2 (before
// migration 3) like entryColumns: salvage may find a damaged file that was
// never migrated.
const entryColumnsV2 = `domain, policy, mode, expires_at, policy_id, fetched_at, checked_at,
	no_policy_until, failed_id, failed_at, failures, last_error, last_used,
	'' AS last_error_type, 0 AS last_error_temporary`

// entryValues is the VALUES list for entryColumns.
const entryValues = `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// migrate brings the schema to len(migrations), one step per transaction
// (package migrate).
func (s *SQLite) migrate(ctx context.Context) error {
	schema := migrate.Schema{Steps: migrations, Where: s.path, TooNew: ErrSchemaTooNew,
		Migrated: func(v int) { s.logger.Info("stscache: migrated cache schema", "path", s.path, "version", v) }}
	err := schema.Run(ctx, s.wdb)
	if err != nil && !errors.Is(err, ErrSchemaTooNew) {
		err = fmt.Errorf("stscache: %w", err)
	}
	return err
}

// Close closes the file. Calls after Close fail.
func (s *SQLite) Close() error {
	var errs []error
	for _, st := range []*sql.Stmt{s.get, s.put, s.putNoWait, s.purgesAfter} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	errs = append(errs, s.db.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stscache: close %s: %w", s.path, err)
	}
	return nil
}

// Path returns the absolute path of the file.
func (s *SQLite) Path() string { return s.path }

func (s *SQLite) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// msArg is t as a nullable Unix milliseconds argument: nil (NULL) for the
// zero time, else an int64.
func msArg(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}

func msOrZero(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return fromMS(n.Int64)
}

// scanner is *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

func scanEntry(sc scanner) (*mtasts.Entry, error) {
	var (
		e                                        mtasts.Entry
		policy, mode                             sql.NullString
		expires, fetched, checked, noPol, failed sql.NullInt64
		lastUsed                                 sql.NullInt64
		failures                                 int64
		lastErrorType                            string
		lastErrorTemp                            int64
	)
	err := sc.Scan(&e.Domain, &policy, &mode, &expires, &e.ID, &fetched, &checked,
		&noPol, &e.FailedID, &failed, &failures, &e.LastError, &lastUsed,
		&lastErrorType, &lastErrorTemp)
	if err != nil {
		return nil, err
	}
	if policy.Valid {
		if len(policy.String) > MaxEntrySize {
			return nil, fmt.Errorf("%w: %s: policy of %d bytes", ErrCorruptEntry, e.Domain, len(policy.String))
		}
		var pj policyJSON
		if err := json.Unmarshal([]byte(policy.String), &pj); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrCorruptEntry, e.Domain, err)
		}
		if e.Policy, err = decodePolicy(&pj); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrCorruptEntry, e.Domain, err)
		}
	}
	if failures < 0 || failures > 1<<31-1 {
		return nil, fmt.Errorf("%w: %s: failures %d", ErrCorruptEntry, e.Domain, failures)
	}
	e.Failures = int(failures)
	e.LastErrorType, e.LastErrorTemporary = result.Type(lastErrorType), lastErrorTemp != 0
	e.FetchedAt = msOrZero(fetched)
	e.CheckedAt = msOrZero(checked)
	e.NoPolicyUntil = msOrZero(noPol)
	e.FailedAt = msOrZero(failed)
	e.LastUsed = msOrZero(lastUsed)
	return &e, nil
}

// Get implements [mtasts.Store]. An entry that cannot be read (a damaged
// page of the file, an undecodable row) is an error matching
// [ErrCorruptEntry]: treat it as absent and fetch the policy again.
func (s *SQLite) Get(ctx context.Context, domain string) (*mtasts.Entry, error) {
	e, err := scanEntry(s.get.QueryRowContext(ctx, domain))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, s.readError(ctx, domain, fmt.Errorf("stscache: sqlite get %s: %w", domain, err))
	}
	return e, nil
}

// readError classifies an error reading domain's entry: damage to the
// file becomes ErrCorruptEntry (logged at ERROR the first time, since the
// file needs setting aside), and OnUnreadable hears of every unreadable
// entry.
func (s *SQLite) readError(ctx context.Context, domain string, err error) error {
	if sqlitedb.Damaged(err) {
		s.noteDamage(ctx, err)
		err = fmt.Errorf("%w: %w", ErrCorruptEntry, err)
	}
	if errors.Is(err, ErrCorruptEntry) && s.OnUnreadable != nil {
		s.OnUnreadable(domain, err)
	}
	return err
}

// noteDamage records that the file is damaged, with an ERROR line the
// first time.
func (s *SQLite) noteDamage(ctx context.Context, err error) {
	if s.damaged.CompareAndSwap(false, true) {
		s.logger.ErrorContext(ctx, "stscache: the policy cache file is damaged; unreadable entries are fetched again, "+
			"and the file is set aside and rebuilt the next time it is opened (restart policyd)", "path", s.path, "err", err)
	}
}

// Damaged reports whether a read or write hit a damaged part of the file
// since it was opened (the file was sound at open: OpenSQLite checks it).
func (s *SQLite) Damaged() bool { return s.damaged.Load() }

// Put implements [mtasts.Store].
func (s *SQLite) Put(ctx context.Context, e *mtasts.Entry) error {
	args, err := entryArgs(e)
	if err != nil {
		return err
	}
	return s.groupPut(ctx, e.Domain, args)
}

// entryArgs returns the values of entryColumns for e.
func entryArgs(e *mtasts.Entry) ([]any, error) {
	if err := checkDomain(e.Domain); err != nil {
		return nil, err
	}
	// The values are the driver's own (nil for NULL, int64, string), not
	// sql.Null* types, which database/sql would convert one by one.
	var policy, mode, expires any
	if e.Policy != nil {
		b, err := json.Marshal(encodePolicy(e.Policy))
		if err != nil {
			return nil, fmt.Errorf("stscache: sqlite put %s: %w", e.Domain, err)
		}
		policy, mode, expires = string(b), string(e.Policy.Mode), e.Expires().UnixMilli()
	}
	return []any{e.Domain, policy, mode, expires, e.ID,
		msArg(e.FetchedAt), msArg(e.CheckedAt), msArg(e.NoPolicyUntil),
		e.FailedID, msArg(e.FailedAt), int64(e.Failures), e.LastError, msArg(e.LastUsed),
		string(e.LastErrorType), boolInt(e.LastErrorTemporary)}, nil
}

// boolInt is b as an INTEGER column value.
func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// Delete implements [mtasts.Store]. Like [SQLite.Purge], it records the
// deletion in the purge log, so that other processes using the file drop
// the domain from memory.
func (s *SQLite) Delete(ctx context.Context, domain string) error {
	if _, err := s.Purge(ctx, domain); err != nil {
		return fmt.Errorf("stscache: sqlite delete %s: %w", domain, err)
	}
	return nil
}

// Purge is one record of the purge log that [SQLite.Delete], [SQLite.Purge]
// and [SQLite.PurgeAll] write.
type Purge struct {
	// Seq orders the log: it only grows.
	Seq int64
	// Domain was deleted; "" means every entry was.
	Domain string
	// At is when, by the deleting process's clock.
	At time.Time
}

// Purge deletes the entries of domains and appends one purge log row per
// domain (whether or not it had an entry: another process may still hold
// it in memory), in one transaction. It returns the number of entries
// deleted.
func (s *SQLite) Purge(ctx context.Context, domains ...string) (int, error) {
	return s.purge(ctx, func(tx *sql.Tx, at int64) (int64, error) {
		del, err := tx.PrepareContext(ctx, `DELETE FROM entries WHERE domain = ?`)
		if err != nil {
			return 0, err
		}
		defer del.Close()
		logRow, err := tx.PrepareContext(ctx, `INSERT INTO purges (domain, at) VALUES (?, ?)`)
		if err != nil {
			return 0, err
		}
		defer logRow.Close()
		var n int64
		for _, d := range domains {
			res, err := del.ExecContext(ctx, d)
			if err != nil {
				return 0, err
			}
			k, err := res.RowsAffected()
			if err != nil {
				return 0, err
			}
			n += k
			if _, err := logRow.ExecContext(ctx, d, at); err != nil {
				return 0, err
			}
		}
		return n, nil
	})
}

// PurgeAll deletes every entry and appends one purge log row for all of
// them, in one transaction. It returns the number of entries deleted.
func (s *SQLite) PurgeAll(ctx context.Context) (int, error) {
	return s.purge(ctx, func(tx *sql.Tx, at int64) (int64, error) {
		res, err := tx.ExecContext(ctx, `DELETE FROM entries`)
		if err != nil {
			return 0, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO purges (domain, at) VALUES (NULL, ?)`, at)
		return n, err
	})
}

func (s *SQLite) purge(ctx context.Context, fn func(tx *sql.Tx, at int64) (int64, error)) (int, error) {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("stscache: sqlite purge: %w", err)
	}
	defer tx.Rollback()
	n, err := fn(tx, s.now().UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("stscache: sqlite purge: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("stscache: sqlite purge: %w", err)
	}
	return int(n), nil
}

// PurgesAfter returns up to limit purge log records with Seq above seq,
// oldest first: one indexed read, cheap enough to poll every few seconds.
// A reader that gets limit records reads again from the last Seq. If the
// first record's Seq is above seq+1, [SQLite.TrimPurges] removed records
// the reader never saw: it should forget everything it holds in memory.
func (s *SQLite) PurgesAfter(ctx context.Context, seq int64, limit int) ([]Purge, error) {
	rows, err := s.purgesAfter.QueryContext(ctx, seq, limit)
	if err != nil {
		return nil, fmt.Errorf("stscache: sqlite read purges: %w", err)
	}
	defer rows.Close()
	var out []Purge
	for rows.Next() {
		var p Purge
		var d sql.NullString
		var at int64
		if err := rows.Scan(&p.Seq, &d, &at); err != nil {
			return nil, fmt.Errorf("stscache: sqlite read purges: %w", err)
		}
		p.Domain, p.At = d.String, fromMS(at)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("stscache: sqlite read purges: %w", err)
	}
	return out, nil
}

// PurgeSeqBefore returns where a reader that loaded the entries at t
// starts reading the purge log: the Seq before the first purge made at or
// after t, or the last Seq when there is none (0 for an empty log).
// Purges made while the reader was loading are then read again, which
// costs one back store read per domain.
func (s *SQLite) PurgeSeqBefore(ctx context.Context, t time.Time) (int64, error) {
	var seq int64
	err := s.rdb.QueryRowContext(ctx, `SELECT coalesce(
		(SELECT min(seq) - 1 FROM purges WHERE at >= ?),
		(SELECT max(seq) FROM purges),
		0)`, t.UnixMilli()).Scan(&seq)
	if err != nil {
		return 0, fmt.Errorf("stscache: sqlite read purges: %w", err)
	}
	return seq, nil
}

// TrimPurges removes purge log records made before t, except the newest
// (so that Seq keeps growing). It returns the number removed. Readers poll
// every few seconds; keep an hour or so.
func (s *SQLite) TrimPurges(ctx context.Context, t time.Time) (int, error) {
	res, err := s.wdb.ExecContext(ctx, `DELETE FROM purges
		WHERE at < ? AND seq < (SELECT max(seq) FROM purges)`, t.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("stscache: sqlite trim purges: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("stscache: sqlite trim purges: %w", err)
	}
	return int(n), nil
}

// Range implements [mtasts.Store], in domain order. Rows that cannot be
// decoded are logged and skipped, so one bad row cannot hide the rest of
// the cache; when the scan hits a damaged page, Range goes on with every
// entry after it that can still be read, as the repair at open does.
func (s *SQLite) Range(ctx context.Context, fn func(*mtasts.Entry) bool) error {
	last, stopped, err := s.scan(ctx, fn)
	if err == nil || stopped {
		return err
	}
	if !sqlitedb.Damaged(err) {
		return fmt.Errorf("stscache: sqlite range: %w", err)
	}
	s.noteDamage(ctx, err)
	_, err = s.salvage(ctx, s.rdb, func(e *mtasts.Entry) bool {
		return e.Domain <= last || fn(e)
	})
	return err
}

// scan visits the entries in domain order until fn returns false
// (stopped) or a read fails; last is the last domain visited.
func (s *SQLite) scan(ctx context.Context, fn func(*mtasts.Entry) bool) (last string, stopped bool, err error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+entryColumns+` FROM entries ORDER BY domain`)
	if err != nil {
		return "", false, err
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanEntry(rows)
		if errors.Is(err, ErrCorruptEntry) {
			s.logger.WarnContext(ctx, "stscache: skipping corrupt cache row", "path", s.path, "err", err)
			if s.OnUnreadable != nil {
				s.OnUnreadable("", err)
			}
			continue
		}
		if err != nil {
			return last, false, err
		}
		last = e.Domain
		if !fn(e) {
			return last, true, nil
		}
	}
	return last, false, rows.Err()
}

// Len returns the number of entries.
func (s *SQLite) Len(ctx context.Context) (int, error) {
	var n int
	if err := s.rdb.QueryRowContext(ctx, `SELECT count(*) FROM entries`).Scan(&n); err != nil {
		return 0, fmt.Errorf("stscache: sqlite count: %w", err)
	}
	return n, nil
}

// evictable is the SQL form of !protected: no policy, an expired one, or
// mode none. ?2 is now in Unix milliseconds.
const evictable = `(policy IS NULL OR expires_at <= ?2 OR mode = 'none')`

// evictChunk is how many entries Evict and Cap select, and delete in one
// transaction, at a time.
const evictChunk = 1000

// Evict and Cap scan the table (schema version 4 dropped the indexes that
// used to serve them: a full scan of 200,000 entries costs some 150 ms of
// CPU every ten minutes, the indexes cost every new entry's commit). The
// scan runs on a reader connection, which never holds up the writer, so
// the Puts of cold lookups go on meanwhile; the writer only deletes the
// selected domains by key, evictChunk in a transaction, each delete
// checking again that its entry is still evictable and has the last_used
// the scan saw (a Put may have replaced it with a valid policy since, or
// a use been recorded).

// Evict removes entries not used since unusedSince (entries never used
// count as unused) that hold no policy worth keeping: negative entries,
// expired policies and mode none policies. STS-CACHE-10: a valid enforce
// or testing policy is never evicted, however long unused; it leaves the
// cache when it expires and stays unused. It returns the number removed.
func (s *SQLite) Evict(ctx context.Context, unusedSince time.Time) (int, error) {
	const unused = `(last_used IS NULL OR last_used < ?1) AND ` + evictable
	since, now := unusedSince.UnixMilli(), s.now().UnixMilli()
	total, after := 0, ""
	for {
		rows, err := s.rdb.QueryContext(ctx, `SELECT domain, last_used FROM entries
			WHERE domain > ?3 AND `+unused+` ORDER BY domain LIMIT ?4`, since, now, after, evictChunk)
		if err != nil {
			return total, fmt.Errorf("stscache: sqlite evict: %w", err)
		}
		picked, err := scanPicked(rows)
		if err != nil {
			return total, fmt.Errorf("stscache: sqlite evict: %w", err)
		}
		if len(picked) == 0 {
			return total, nil
		}
		n, err := s.deletePicked(ctx, picked, `DELETE FROM entries
			WHERE domain = ?3 AND last_used IS ?4 AND `+unused, since, now)
		total += n
		if err != nil {
			return total, fmt.Errorf("stscache: sqlite evict: %w", err)
		}
		if len(picked) < evictChunk {
			return total, nil
		}
		after = picked[len(picked)-1].domain
	}
}

// picked is an entry selected for deletion: its domain and last_used as
// the scan saw them.
type picked struct {
	domain   string
	lastUsed sql.NullInt64
}

// scanPicked reads and closes rows of (domain, last_used).
func scanPicked(rows *sql.Rows) ([]picked, error) {
	defer rows.Close()
	var out []picked
	for rows.Next() {
		var p picked
		if err := rows.Scan(&p.domain, &p.lastUsed); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// deletePicked runs del for each picked entry on the writer, evictChunk
// in a transaction; del's parameters are ?1 and ?2 (a and b), ?3 the
// domain and ?4 its last_used as picked, so an entry used or replaced
// since the scan stays. It returns the number of entries deleted.
func (s *SQLite) deletePicked(ctx context.Context, ps []picked, del string, a, b int64) (int, error) {
	if s.beforeDelete != nil {
		ds := make([]string, len(ps))
		for i, p := range ps {
			ds[i] = p.domain
		}
		s.beforeDelete(ds)
	}
	total := 0
	for len(ps) > 0 {
		chunk := ps[:min(len(ps), evictChunk)]
		ps = ps[len(chunk):]
		n, err := s.deleteChunk(ctx, chunk, del, a, b)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

func (s *SQLite) deleteChunk(ctx context.Context, ps []picked, del string, a, b int64) (int, error) {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	st, err := tx.PrepareContext(ctx, del)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	n := 0
	for _, p := range ps {
		res, err := st.ExecContext(ctx, a, b, p.domain, p.lastUsed)
		if err != nil {
			return 0, err
		}
		k, err := res.RowsAffected()
		if err != nil {
			return 0, err
		}
		n += int(k)
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	return n, nil
}

// Cap evicts least recently used entries until at most max remain, with
// the same rule as [Memory.Cap]: valid enforce and testing policies are
// never evicted (STS-CACHE-10); if only they remain, Cap keeps them, stays
// over max and logs a warning. It returns the number of entries evicted.
func (s *SQLite) Cap(ctx context.Context, max int) (int, error) {
	if max < 0 {
		return 0, ErrNegativeCap
	}
	n, err := s.Len(ctx)
	if err != nil || n <= max {
		return 0, err
	}
	over := n - max
	now := s.now().UnixMilli()
	rows, err := s.rdb.QueryContext(ctx, `SELECT domain, last_used FROM entries WHERE `+evictable+`
		ORDER BY last_used ASC, domain ASC LIMIT ?1`, over, now)
	if err != nil {
		return 0, fmt.Errorf("stscache: sqlite cap: %w", err)
	}
	ps, err := scanPicked(rows)
	if err != nil {
		return 0, fmt.Errorf("stscache: sqlite cap: %w", err)
	}
	d, err := s.deletePicked(ctx, ps, `DELETE FROM entries
		WHERE domain = ?3 AND last_used IS ?4 AND `+evictable, 0, now)
	if err != nil {
		return d, fmt.Errorf("stscache: sqlite cap: %w", err)
	}
	reportCap(ctx, s.logger, "sqlite", d, over, max, n-d)
	return d, nil
}

// WriteLastUsed implements [LastUsedWriter]: one transaction that raises
// last_used of the given domains (never lowers it; missing domains are
// ignored).
func (s *SQLite) WriteLastUsed(ctx context.Context, used map[string]time.Time) error {
	if len(used) == 0 {
		return nil
	}
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("stscache: sqlite write last_used: %w", err)
	}
	defer tx.Rollback()
	st, err := tx.PrepareContext(ctx, `UPDATE entries SET last_used = ?1
		WHERE domain = ?2 AND (last_used IS NULL OR last_used < ?1)`)
	if err != nil {
		return fmt.Errorf("stscache: sqlite write last_used: %w", err)
	}
	defer st.Close()
	for d, t := range used {
		if t.IsZero() {
			continue
		}
		if _, err := st.ExecContext(ctx, t.UnixMilli(), d); err != nil {
			return fmt.Errorf("stscache: sqlite write last_used %s: %w", d, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("stscache: sqlite write last_used: %w", err)
	}
	return nil
}
