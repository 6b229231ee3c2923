package certs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PostgresOptions configure OpenPostgres.
type PostgresOptions struct {
	// Schema holds the storage's tables (default "mailsts_certs"); it is
	// created when missing. Lowercase letters, digits and '_' only.
	Schema string
	// LockLease is the lease of distributed locks (default
	// DefaultLockLease).
	LockLease time.Duration
	// Logger receives lock renewal problems; nil discards.
	Logger *slog.Logger
}

// PostgresStorage is a certmagic.Storage in PostgreSQL, shared by every
// instance that opens the same database and schema. Keys live in table
// certmagic_data, locks in certmagic_locks (one row per held lock with its
// holder's random token and lease expiry, judged by the database's clock).
type PostgresStorage struct {
	*locker
	pool   *pgxpool.Pool
	schema string
}

var (
	_ certmagic.Storage          = (*PostgresStorage)(nil)
	_ certmagic.LockLeaseRenewer = (*PostgresStorage)(nil)
)

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// pgMigrations are applied in order; the schema's version table records
// how many ran.
var pgMigrations = []string{
	// 1: keys with file semantics; the "C" collation makes the primary
	// key's order bytewise, so prefix scans are range scans.
	`CREATE TABLE certmagic_data (
		key      text COLLATE "C" PRIMARY KEY,
		value    bytea NOT NULL,
		modified timestamptz NOT NULL DEFAULT now()
	);
	CREATE TABLE certmagic_locks (
		name    text PRIMARY KEY,
		token   text NOT NULL,
		expires timestamptz NOT NULL
	)`,
}

// OpenPostgres connects to PostgreSQL (a postgres:// URL or key=value DSN)
// and migrates the storage schema; concurrent migrations are serialised by
// an advisory lock.
func OpenPostgres(ctx context.Context, dsn string, o PostgresOptions) (*PostgresStorage, error) {
	schema := o.Schema
	if schema == "" {
		schema = "mailsts_certs"
	}
	if !schemaName.MatchString(schema) {
		return nil, fmt.Errorf("%w: postgres schema %q: lowercase letters, digits and _ only", ErrConfig, schema)
	}
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: postgres: %w", ErrConfig, err)
	}
	pc.ConnConfig.RuntimeParams["search_path"] = schema
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("certs: postgres: %w", err)
	}
	s := &PostgresStorage{pool: pool, schema: schema}
	s.locker = newLocker(pgLocks{s}, o.LockLease, o.Logger)
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Close stops lock renewals and closes the connections.
func (s *PostgresStorage) Close() {
	s.locker.close()
	s.pool.Close()
}

// pgMigrationLock is the advisory lock key of migrations ("mtastscrt").
const pgMigrationLock = 0x6d7461737463727

func (s *PostgresStorage) migrate(ctx context.Context) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(pgMigrationLock)); err != nil {
			return fmt.Errorf("certs: postgres migration lock: %w", err)
		}
		stmts := []string{
			`CREATE SCHEMA IF NOT EXISTS ` + s.schema,
			`CREATE TABLE IF NOT EXISTS ` + s.schema + `.certs_schema_version (version int NOT NULL)`,
		}
		for _, q := range stmts {
			if _, err := tx.Exec(ctx, q); err != nil {
				return fmt.Errorf("certs: postgres migration: %w", err)
			}
		}
		var v int
		err := tx.QueryRow(ctx, `SELECT version FROM `+s.schema+`.certs_schema_version`).Scan(&v)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			if _, err := tx.Exec(ctx, `INSERT INTO `+s.schema+`.certs_schema_version VALUES (0)`); err != nil {
				return fmt.Errorf("certs: postgres migration: %w", err)
			}
		case err != nil:
			return fmt.Errorf("certs: postgres migration: %w", err)
		}
		if v > len(pgMigrations) {
			return fmt.Errorf("certs: postgres schema %s is at version %d, newer than this program (%d)", s.schema, v, len(pgMigrations))
		}
		for i := v; i < len(pgMigrations); i++ {
			if _, err := tx.Exec(ctx, `SET LOCAL search_path TO `+s.schema); err != nil {
				return fmt.Errorf("certs: postgres migration: %w", err)
			}
			if _, err := tx.Exec(ctx, pgMigrations[i]); err != nil {
				return fmt.Errorf("certs: postgres migration %d: %w", i+1, err)
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE `+s.schema+`.certs_schema_version SET version = $1`, len(pgMigrations)); err != nil {
			return fmt.Errorf("certs: postgres migration: %w", err)
		}
		return nil
	})
}

// prefixRange returns the bounds of the keys under dir ("" is the root).
func prefixRange(dir string) (lo, hi string) {
	dir = strings.Trim(dir, "/")
	if dir == "" {
		return "", "\U0010FFFF"
	}
	// '0' is the byte after '/': [dir/, dir0) holds exactly the keys below dir.
	return dir + "/", dir + "0"
}

// Store implements certmagic.Storage.
func (s *PostgresStorage) Store(ctx context.Context, key string, value []byte) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO certmagic_data (key, value, modified) VALUES ($1, $2, now())
		ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, modified = EXCLUDED.modified`, key, value)
	if err != nil {
		return fmt.Errorf("certs: postgres store %q: %w", key, err)
	}
	return nil
}

// Load implements certmagic.Storage.
func (s *PostgresStorage) Load(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := s.pool.QueryRow(ctx, `SELECT value FROM certmagic_data WHERE key = $1`, key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("certs: %q: %w", key, fs.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("certs: postgres load %q: %w", key, err)
	}
	return v, nil
}

// Delete implements certmagic.Storage: the key and everything under it.
func (s *PostgresStorage) Delete(ctx context.Context, key string) error {
	lo, hi := prefixRange(key)
	_, err := s.pool.Exec(ctx, `DELETE FROM certmagic_data WHERE key = $1 OR (key >= $2 AND key < $3)`, strings.Trim(key, "/"), lo, hi)
	if err != nil {
		return fmt.Errorf("certs: postgres delete %q: %w", key, err)
	}
	return nil
}

// Exists implements certmagic.Storage.
func (s *PostgresStorage) Exists(ctx context.Context, key string) bool {
	_, err := s.Stat(ctx, key)
	return err == nil
}

// List implements certmagic.Storage.
func (s *PostgresStorage) List(ctx context.Context, dir string, recursive bool) ([]string, error) {
	lo, hi := prefixRange(dir)
	rows, err := s.pool.Query(ctx, `SELECT key FROM certmagic_data WHERE key >= $1 AND key < $2 ORDER BY key`, lo, hi)
	if err != nil {
		return nil, fmt.Errorf("certs: postgres list %q: %w", dir, err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("certs: postgres list %q: %w", dir, err)
	}
	return listKeys(dir, keys, recursive)
}

// listKeys turns the keys under dir into certmagic's List answer: all of
// them when recursive (plus the directories leading to them), else the
// direct children, files and directories alike.
func listKeys(dir string, keys []string, recursive bool) ([]string, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("certs: %q: %w", dir, fs.ErrNotExist)
	}
	lo, _ := prefixRange(dir)
	seen := map[string]bool{}
	var out []string
	add := func(k string) {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	for _, k := range keys {
		rest := strings.TrimPrefix(k, lo)
		parts := strings.Split(rest, "/")
		if !recursive {
			add(lo + parts[0])
			continue
		}
		for i := range parts {
			add(lo + strings.Join(parts[:i+1], "/"))
		}
	}
	return out, nil
}

// Stat implements certmagic.Storage.
func (s *PostgresStorage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	key = strings.Trim(key, "/")
	var size int64
	var mod time.Time
	err := s.pool.QueryRow(ctx, `SELECT length(value), modified FROM certmagic_data WHERE key = $1`, key).Scan(&size, &mod)
	if err == nil {
		return certmagic.KeyInfo{Key: key, Modified: mod, Size: size, IsTerminal: true}, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return certmagic.KeyInfo{}, fmt.Errorf("certs: postgres stat %q: %w", key, err)
	}
	lo, hi := prefixRange(key)
	err = s.pool.QueryRow(ctx, `SELECT max(modified) FROM certmagic_data WHERE key >= $1 AND key < $2 HAVING count(*) > 0`, lo, hi).Scan(&mod)
	if errors.Is(err, pgx.ErrNoRows) {
		return certmagic.KeyInfo{}, fmt.Errorf("certs: %q: %w", key, fs.ErrNotExist)
	}
	if err != nil {
		return certmagic.KeyInfo{}, fmt.Errorf("certs: postgres stat %q: %w", key, err)
	}
	return certmagic.KeyInfo{Key: key, Modified: mod, IsTerminal: false}, nil
}

// String names the storage in certmagic's logs.
func (s *PostgresStorage) String() string { return "postgres:" + s.schema }

// pgLocks keeps locks in certmagic_locks, judged by the server's clock.
type pgLocks struct{ s *PostgresStorage }

func (p pgLocks) acquire(ctx context.Context, name, token string, lease time.Duration) (bool, error) {
	tag, err := p.s.pool.Exec(ctx, `INSERT INTO certmagic_locks (name, token, expires)
		VALUES ($1, $2, now() + make_interval(secs => $3))
		ON CONFLICT (name) DO UPDATE SET token = EXCLUDED.token, expires = EXCLUDED.expires
		WHERE certmagic_locks.expires < now()`, name, token, lease.Seconds())
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, nil
}

func (p pgLocks) renew(ctx context.Context, name, token string, lease time.Duration) (bool, error) {
	tag, err := p.s.pool.Exec(ctx, `UPDATE certmagic_locks SET expires = now() + make_interval(secs => $3)
		WHERE name = $1 AND token = $2`, name, token, lease.Seconds())
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, nil
}

func (p pgLocks) release(ctx context.Context, name, token string) (bool, error) {
	tag, err := p.s.pool.Exec(ctx, `DELETE FROM certmagic_locks WHERE name = $1 AND token = $2`, name, token)
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, nil
}
