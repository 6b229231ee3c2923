package stscache

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mailsts/mailsts/internal/sqlitedb"
	"github.com/mailsts/mailsts/mtasts"
)

// ErrEmptyFile is the damage of a cache file of 0 bytes. OpenSQLite never
// leaves one (it builds a new file under another name and links it into
// place), so an empty file was truncated: a full disk, a file system
// repair, an operator's `: > cache.db`. Every policy it held is lost; it is
// set aside like any damaged file, so that the loss is reported rather
// than silently taken for a new cache.
var ErrEmptyFile = errors.New("stscache: cache file is empty (0 bytes)")

// DamagedSuffix is put between a damaged cache file's name and the time
// it was set aside: cache.db.damaged-20261206T110921Z.
const DamagedSuffix = ".damaged-"

// Repair describes a damaged cache file that OpenSQLite set aside and
// rebuilt.
type Repair struct {
	// Path is the cache file; SetAside is where the damaged file went.
	Path, SetAside string
	// At is when.
	At time.Time
	// Damage says what was wrong (it matches sqlitedb.ErrDamaged or
	// ErrEmptyFile).
	Damage error
	// Salvaged entries were copied into the new file; Lost entries were
	// listed by an index or a partial scan but could not be read. Entries
	// on pages that no scan reached are in neither count: since schema
	// version 4 the table has no index, so the entries on a damaged leaf
	// of a newer file are usually in neither.
	Salvaged, Lost int
}

// Repaired returns what OpenSQLite repaired when it opened the file, or
// nil when the file was sound.
func (s *SQLite) Repaired() *Repair { return s.repair }

// checkFile returns the damage of an existing file that needs no SQLite
// to see (0 bytes), nil otherwise (missing files included).
func checkFile(path string) (damage, err error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("stscache: open %s: %w", path, err)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("stscache: open %s: not a regular file", path)
	case fi.Size() > 0:
		return nil, nil
	}
	// An empty file with a non-empty write-ahead log may still hold
	// committed transactions: let SQLite read it, and quick_check judge.
	if wi, err := os.Stat(path + "-wal"); err == nil && wi.Size() > 0 {
		return nil, nil
	}
	return fmt.Errorf("%w: %s", ErrEmptyFile, path), nil
}

// createSQLite creates the cache file at path when it does not exist,
// holding the entries es: built and migrated under a temporary name, given
// to the directory's owner, then linked into place, so that no process
// ever sees a half-made file. If another process created the file
// meanwhile, its file wins.
func createSQLite(ctx context.Context, path string, es []*mtasts.Entry, logger *slog.Logger) error {
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		return nil // exists (or cannot be checked: opening it will say why)
	}
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".new-*")
	if err != nil {
		return fmt.Errorf("stscache: create %s: %w", path, err)
	}
	tmp := f.Name()
	f.Close()
	defer func() {
		for _, p := range []string{tmp, tmp + "-wal", tmp + "-shm"} {
			os.Remove(p)
		}
	}()
	db, err := sqlitedb.Open(tmp, sqliteOptions)
	if err != nil {
		return fmt.Errorf("stscache: create %s: %w", path, err)
	}
	s := &SQLite{path: tmp, logger: discard, db: db, wdb: db.W, rdb: db.R}
	err = s.migrate(ctx)
	if err == nil && len(es) > 0 {
		err = s.putAll(ctx, es)
	}
	// Closing the last connection checkpoints the log into the file and
	// removes it; journal_mode=WAL stays recorded in the file.
	if cerr := db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("stscache: create %s: %w", path, cerr)
	}
	if err != nil {
		return err
	}
	if err := sqlitedb.ChownLikeDir(tmp); err != nil {
		return err
	}
	switch err := os.Link(tmp, path); {
	case err == nil:
		logger.InfoContext(ctx, "stscache: created the policy cache file", "path", path, "entries", len(es))
		return nil
	case errors.Is(err, fs.ErrExist):
		if len(es) > 0 {
			logger.WarnContext(ctx, "stscache: another process created the cache file first; the salvaged entries were not copied into it",
				"path", path, "entries", len(es))
		}
		return nil
	}
	// No hard links here (some file systems): rename, which replaces a
	// file created meanwhile; the window is the instant between Lstat and
	// Rename.
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("stscache: create %s: %w", path, err)
	}
	return nil
}

// putAll writes es in one transaction.
func (s *SQLite) putAll(ctx context.Context, es []*mtasts.Entry) error {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("stscache: %s: %w", s.path, err)
	}
	defer tx.Rollback()
	put, err := tx.PrepareContext(ctx, `INSERT OR REPLACE INTO entries (`+entryColumns+`)
		VALUES `+entryValues)
	if err != nil {
		return fmt.Errorf("stscache: %s: %w", s.path, err)
	}
	defer put.Close()
	for _, e := range es {
		args, err := entryArgs(e)
		if err != nil {
			return err
		}
		if _, err := put.ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("stscache: %s: write %s: %w", s.path, e.Domain, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("stscache: %s: %w", s.path, err)
	}
	return nil
}

// repairSQLite sets the damaged file at path aside (with its -wal; its
// -shm is only an index of the -wal and is removed) and builds a new one
// from what can be read from it.
func repairSQLite(ctx context.Context, path string, damage error, logger *slog.Logger) (*Repair, error) {
	now := time.Now().UTC()
	rep := &Repair{Path: path, SetAside: path + DamagedSuffix + now.Format("20060102T150405.000Z"), At: now, Damage: damage}
	if err := os.Rename(path, rep.SetAside); err != nil {
		return nil, fmt.Errorf("stscache: %s is damaged (%v) and cannot be set aside: %w", path, damage, err)
	}
	if err := os.Rename(path+"-wal", rep.SetAside+"-wal"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("stscache: set aside %s-wal: %w", path, err)
	}
	if err := os.Remove(path + "-shm"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("stscache: remove %s-shm: %w", path, err)
	}
	var es []*mtasts.Entry
	if !errors.Is(damage, ErrEmptyFile) {
		es, rep.Lost = salvageFile(ctx, rep.SetAside, logger)
	}
	rep.Salvaged = len(es)
	if err := createSQLite(ctx, path, es, logger); err != nil {
		return nil, err
	}
	logger.ErrorContext(ctx, "stscache: the policy cache file was damaged: set aside and rebuilt from what could be read",
		"path", path, "set_aside", rep.SetAside, "damage", damage.Error(), "salvaged", rep.Salvaged, "unreadable", rep.Lost)
	return rep, nil
}

// salvageFile reads every entry it can from the damaged file at path:
// through SQL first, then straight from the pages (readPages) for the
// entries beneath a damaged interior page. It returns them in domain
// order, and how many entries an index listed that neither could read.
func salvageFile(ctx context.Context, path string, logger *slog.Logger) ([]*mtasts.Entry, int) {
	var es []*mtasts.Entry
	var lost []string
	func() {
		db, err := sqlitedb.Open(path, sqliteOptions)
		if err != nil {
			logger.WarnContext(ctx, "stscache: cannot open the damaged file to salvage it", "path", path, "err", err)
			return
		}
		// Closing checkpoints the set-aside log into the file, where
		// readPages reads it.
		defer db.Close()
		s := &SQLite{path: path, logger: discard, db: db, wdb: db.W, rdb: db.R}
		lost, err = s.salvage(ctx, db.W, func(e *mtasts.Entry) bool { es = append(es, e); return true })
		if err != nil {
			logger.WarnContext(ctx, "stscache: salvaging the damaged file stopped", "path", path, "err", err)
		}
	}()
	raw, err := readPages(path)
	if err != nil {
		logger.WarnContext(ctx, "stscache: reading the damaged file page by page failed", "path", path, "err", err)
	}
	for _, e := range es {
		delete(raw, e.Domain) // what SQL read is the current row
	}
	for _, e := range raw {
		es = append(es, e)
	}
	slices.SortFunc(es, func(a, b *mtasts.Entry) int { return strings.Compare(a.Domain, b.Domain) })
	lost = slices.DeleteFunc(lost, func(d string) bool { _, ok := raw[d]; return ok })
	return es, len(lost)
}

// salvage visits every entry of a damaged file that can still be read, in
// domain order, until fn returns false, and returns how many listed
// entries could not be read. The domains come from scans of the table
// and, in a file older than schema version 4 (salvage runs before the
// migrations), of both its indexes, forwards and backwards (each up to
// the first damaged page: the indexes are b-trees of their own, and a
// backward scan reaches the entries after a damaged page; in a newer file
// the index scans fail at once and add nothing), then each entry is read
// on its own, so a damaged page costs only the entries on it.
func (s *SQLite) salvage(ctx context.Context, db *sql.DB, fn func(*mtasts.Entry) bool) (lost []string, err error) {
	domains := make(map[string]bool)
	for _, q := range []string{
		`SELECT domain FROM entries ORDER BY domain`,
		`SELECT domain FROM entries ORDER BY domain DESC`,
		`SELECT domain FROM entries INDEXED BY entries_expires_at ORDER BY expires_at`,
		`SELECT domain FROM entries INDEXED BY entries_expires_at ORDER BY expires_at DESC`,
		`SELECT domain FROM entries INDEXED BY entries_last_used ORDER BY last_used`,
		`SELECT domain FROM entries INDEXED BY entries_last_used ORDER BY last_used DESC`,
	} {
		if err := ctx.Err(); err != nil {
			return lost, err
		}
		listDomains(ctx, db, q, domains)
	}
	sorted := make([]string, 0, len(domains))
	for d := range domains {
		sorted = append(sorted, d)
	}
	slices.Sort(sorted)
	// An entry can be reached from either side: an interior page of a
	// b-tree holds entries too, and a seek for one of them goes down into a
	// leaf first, the one after it (>=) or the one before it (<=).
	var gets [2]*sql.Stmt
	for i, q := range []string{
		` FROM entries WHERE domain >= ?1 ORDER BY domain LIMIT 1`,
		` FROM entries WHERE domain <= ?1 ORDER BY domain DESC LIMIT 1`,
	} {
		if gets[i], err = db.PrepareContext(ctx, `SELECT `+entryColumns+q); err != nil {
			// A file never migrated to version 3.
			gets[i], err = db.PrepareContext(ctx, `SELECT `+entryColumnsV2+q)
		}
		if err != nil {
			return nil, fmt.Errorf("stscache: salvage %s: %w", s.path, err)
		}
		defer gets[i].Close()
	}
	for _, d := range sorted {
		if err := ctx.Err(); err != nil {
			return lost, err
		}
		var e *mtasts.Entry
		for _, get := range gets {
			if e, err = scanEntry(get.QueryRowContext(ctx, d)); err == nil && e.Domain != d {
				e, err = nil, sql.ErrNoRows
			}
			if err == nil {
				break
			}
		}
		if err != nil {
			if !errors.Is(err, sql.ErrNoRows) {
				lost = append(lost, d)
				s.readError(ctx, d, err)
			}
			continue
		}
		if !fn(e) {
			return lost, nil
		}
	}
	return lost, nil
}

// listDomains adds to domains the rows of q up to its first error.
func listDomains(ctx context.Context, db *sql.DB, q string, domains map[string]bool) {
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return
	}
	defer rows.Close()
	for rows.Next() {
		var d string
		if rows.Scan(&d) != nil {
			return
		}
		domains[d] = true
	}
}

// DamageOf checks the cache file at path without changing it (it neither
// creates nor repairs; opening it may create its -wal and -shm): nil for a
// sound or missing file, an error matching sqlitedb.ErrDamaged or
// ErrEmptyFile for a file OpenSQLite would set aside, other errors when
// the file cannot be read.
func DamageOf(ctx context.Context, path string) error {
	damage, err := checkFile(path)
	if err != nil || damage != nil {
		return errors.Join(damage, err)
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	db, err := sqlitedb.Open(path, sqlitedb.Options{BusyTimeout: sqliteBusyTimeout})
	if err != nil {
		return err
	}
	// Not db.Close: its PRAGMA optimize may write.
	defer db.W.Close()
	defer db.R.Close()
	return sqlitedb.QuickCheck(ctx, db.R)
}

// CountEntries returns the number of entries in the cache file at path
// without changing anything (no migration, no repair, no PRAGMA optimize),
// so that `mailsts cache status` is safe while a daemon uses the file.
func CountEntries(ctx context.Context, path string) (int, error) {
	db, err := sqlitedb.Open(path, sqlitedb.Options{})
	if err != nil {
		return 0, err
	}
	// Not db.Close: its PRAGMA optimize may write.
	defer db.W.Close()
	defer db.R.Close()
	var n int
	if err := db.R.QueryRowContext(ctx, `SELECT count(*) FROM entries`).Scan(&n); err != nil {
		return 0, fmt.Errorf("cannot count the entries of %s: %v", path, err)
	}
	return n, nil
}
