package stscache

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/mtasts"
)

// Errors of OpenSQLite for a file that is not a mailsts cache. The file is
// left untouched: point mailsts at another file.
var (
	// ErrResolverCache: the file is postfix-mta-sts-resolver's SQLite cache
	// (table sts_policy_cache). Import its policies with
	// [ReadResolverSQLite] and [Import] instead.
	ErrResolverCache = errors.New("stscache: the file is postfix-mta-sts-resolver's cache, not a mailsts cache")
	// ErrForeignFile: the file is a SQLite database of some other program
	// (tables, but no mailsts schema version).
	ErrForeignFile = errors.New("stscache: the file is a SQLite database of another program, not a mailsts cache")
)

// resolverTable is postfix-mta-sts-resolver's cache table: domain, ts
// (Unix seconds of the last successful check), pol_id, pol_body (the
// parsed policy as a JSON object: "mx" a list of strings, "max_age" an
// integer, the other keys strings).
const resolverTable = "sts_policy_cache"

// readOnlyDSN is a DSN that opens path for reading only, without changing
// its journal mode or anything else in it. immutable also skips locking
// and the WAL: for a file in a directory this process may not write (a
// WAL-mode reader needs to create the -shm file), which is only safe when
// the old daemon has stopped (it checkpoints the WAL when it closes).
func readOnlyDSN(path string, immutable bool) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	u := url.URL{Scheme: "file", Path: abs}
	q := url.Values{}
	q.Set("mode", "ro")
	if immutable {
		q.Set("immutable", "1")
	}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", sqliteBusyTimeout.Milliseconds()))
	q.Add("_pragma", "query_only(1)")
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// checkForeign returns ErrResolverCache or ErrForeignFile when path is an
// existing SQLite database that mailsts did not create: schema version 0
// with tables in it. Anything it cannot read is left to OpenSQLite.
func checkForeign(ctx context.Context, path string) error {
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		return nil
	}
	var tables []string
	for _, immutable := range readOnlyModes(path) {
		var ok bool
		if tables, ok = foreignTables(ctx, path, immutable); ok {
			break
		}
	}
	switch {
	case slices.Contains(tables, resolverTable):
		return fmt.Errorf("%w: %s", ErrResolverCache, path)
	case len(tables) > 0:
		return fmt.Errorf("%w: %s (tables %s)", ErrForeignFile, path, strings.Join(tables, ", "))
	}
	return nil
}

// readOnlyModes says how to open another program's file for reading,
// as the immutable argument of readOnlyDSN, in the order to try. Without a
// -wal file next to it, everything is in the file itself: read it
// immutable, which creates no -wal and -shm files beside it (files of ours
// there, owned by our user, could keep the old daemon from writing its
// file again after a rollback). With one (the old daemon is running, or
// did not stop cleanly), a read-only WAL reader sees its latest writes;
// immutable is the fallback when that open fails (a directory this process
// may not write).
func readOnlyModes(path string) []bool {
	if _, err := os.Lstat(path + "-wal"); err != nil {
		return []bool{true}
	}
	return []bool{false, true}
}

// foreignTables returns the tables of path when its schema version is 0,
// and whether it could read the file.
func foreignTables(ctx context.Context, path string, immutable bool) ([]string, bool) {
	dsn, err := readOnlyDSN(path, immutable)
	if err != nil {
		return nil, false
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, false
	}
	defer db.Close()
	var v int
	if err := db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil {
		return nil, false
	}
	if v != 0 {
		return nil, true
	}
	rows, err := db.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table'`)
	if err != nil {
		return nil, false
	}
	defer rows.Close()
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, false
		}
		tables = append(tables, name)
	}
	return tables, rows.Err() == nil
}

// ResolverEntry turns one record of postfix-mta-sts-resolver's cache into
// an entry: the policy body is rebuilt as policy text and parsed by
// [mtasts.ParsePolicy] (as if fetched), the policy id kept, and ts (Unix
// seconds of the old daemon's last successful check, which it counts
// max_age from) becomes FetchedAt. CheckedAt stays zero, so the first
// lookup checks the TXT id (an unchanged id keeps the policy). A record
// that does not make a valid entry is an error wrapping ErrCorruptEntry.
func ResolverEntry(domain string, ts float64, id string, body []byte, now time.Time) (*mtasts.Entry, error) {
	d, err := dnsresolve.Normalize(domain)
	if err != nil {
		return nil, fmt.Errorf("%w: domain %q: %w", ErrCorruptEntry, domain, err)
	}
	if err := checkDomain(d); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorruptEntry, err)
	}
	if id == "" || len(id) > 32 {
		return nil, fmt.Errorf("%w: %s: policy id %q", ErrCorruptEntry, d, id)
	}
	if math.IsNaN(ts) || ts <= 0 || ts > float64(now.Add(time.Minute).Unix()) {
		return nil, fmt.Errorf("%w: %s: timestamp %v", ErrCorruptEntry, d, ts)
	}
	if len(body) > MaxEntrySize {
		return nil, fmt.Errorf("%w: %s: policy of %d bytes", ErrCorruptEntry, d, len(body))
	}
	var fields map[string]any
	if err := json.Unmarshal(body, &fields); err != nil {
		return nil, fmt.Errorf("%w: %s: policy body: %w", ErrCorruptEntry, d, err)
	}
	text, err := resolverPolicyText(fields)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCorruptEntry, d, err)
	}
	p, err := mtasts.ParsePolicy([]byte(text))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCorruptEntry, d, err)
	}
	at := time.UnixMilli(int64(ts * 1000))
	return &mtasts.Entry{Domain: d, Policy: p, ID: id, FetchedAt: at}, nil
}

// resolverPolicyText writes a parsed policy of postfix-mta-sts-resolver
// back as policy text: version first (RFC 8461 §3.2), then mode, mx,
// max_age and any other keys in name order.
func resolverPolicyText(fields map[string]any) (string, error) {
	var b strings.Builder
	line := func(k string, v any) error {
		var s string
		switch v := v.(type) {
		case string:
			s = v
		case float64:
			if v != math.Trunc(v) || math.Abs(v) > 1<<53 {
				return fmt.Errorf("%s: %v is not an integer", k, v)
			}
			s = strconv.FormatInt(int64(v), 10)
		default:
			return fmt.Errorf("%s: value of type %T", k, v)
		}
		if strings.ContainsAny(s, "\r\n") {
			return fmt.Errorf("%s: line break in the value", k)
		}
		b.WriteString(k + ": " + s + "\r\n")
		return nil
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		switch k {
		case "version", "mode", "mx", "max_age":
		default:
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range []string{"version", "mode"} {
		if v, ok := fields[k]; ok {
			if err := line(k, v); err != nil {
				return "", err
			}
		}
	}
	if v, ok := fields["mx"]; ok {
		mx, ok := v.([]any)
		if !ok {
			return "", fmt.Errorf("mx: value of type %T", v)
		}
		for _, m := range mx {
			if err := line("mx", m); err != nil {
				return "", err
			}
		}
	}
	if v, ok := fields["max_age"]; ok {
		if err := line("max_age", v); err != nil {
			return "", err
		}
	}
	for _, k := range keys {
		if k == "" || strings.ContainsAny(k, ":\r\n") {
			return "", fmt.Errorf("key %q", k)
		}
		if err := line(k, fields[k]); err != nil {
			return "", err
		}
	}
	return b.String(), nil
}

// ResolverRecordFunc receives each record a ReadResolver* function reads:
// the entry, or the error that makes the record unusable (wrapping
// ErrCorruptEntry; skip and count it). Returning an error stops the read.
type ResolverRecordFunc func(e *mtasts.Entry, bad error) error

// ReadResolverSQLite reads every record of postfix-mta-sts-resolver's
// SQLite cache at path, opened read-only (the file is not changed).
func ReadResolverSQLite(ctx context.Context, path string, now time.Time, fn ResolverRecordFunc) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("stscache: resolver cache: %w", err)
	}
	var rows *sql.Rows
	for _, immutable := range readOnlyModes(path) {
		dsn, err := readOnlyDSN(path, immutable)
		if err != nil {
			return fmt.Errorf("stscache: resolver cache %s: %w", path, err)
		}
		db, err := sql.Open("sqlite", dsn)
		if err != nil {
			return fmt.Errorf("stscache: resolver cache %s: %w", path, err)
		}
		defer db.Close()
		rows, err = db.QueryContext(ctx, `SELECT domain, ts, pol_id, pol_body FROM `+resolverTable)
		if err == nil {
			break
		}
		if immutable {
			return fmt.Errorf("stscache: resolver cache %s (is it postfix-mta-sts-resolver's?): %w", path, err)
		}
	}
	defer rows.Close()
	for rows.Next() {
		var domain, id, body sql.NullString
		var ts sql.NullFloat64
		if err := rows.Scan(&domain, &ts, &id, &body); err != nil {
			if err := fn(nil, fmt.Errorf("%w: %w", ErrCorruptEntry, err)); err != nil {
				return err
			}
			continue
		}
		e, bad := ResolverEntry(domain.String, ts.Float64, id.String, []byte(body.String), now)
		if err := fn(e, bad); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("stscache: resolver cache %s: %w", path, err)
	}
	return nil
}

// resolverMetaKey is the one key of postfix-mta-sts-resolver's Redis
// database that is not a domain.
const resolverMetaKey = "_metadata"

// ReadResolverRedis reads every record of postfix-mta-sts-resolver's Redis
// cache in client's database: one sorted set per domain, named by the
// domain, whose highest-scored member is 16 random bytes and the JSON
// array [pol_id, pol_body], scored by ts. Only keys matching the SCAN
// pattern match ("" means all) are read; keys of other types, and keys
// under skipPrefix (mailsts's own), are passed over.
func ReadResolverRedis(ctx context.Context, client redis.UniversalClient, match, skipPrefix string, now time.Time, fn ResolverRecordFunc) error {
	if match == "" {
		match = "*"
	}
	var cursor uint64
	for range maxScanRounds {
		keys, next, err := client.ScanType(ctx, cursor, match, scanBatch, "zset").Result()
		if err != nil {
			return fmt.Errorf("stscache: resolver redis scan: %w", err)
		}
		for _, k := range keys {
			if k == resolverMetaKey || (skipPrefix != "" && strings.HasPrefix(k, skipPrefix)) {
				continue
			}
			zs, err := client.ZRevRangeWithScores(ctx, k, 0, 0).Result()
			if err != nil {
				return fmt.Errorf("stscache: resolver redis %s: %w", k, err)
			}
			if len(zs) == 0 {
				continue
			}
			e, bad := resolverRedisEntry(k, zs[0], now)
			if err := fn(e, bad); err != nil {
				return err
			}
		}
		cursor = next
		if cursor == 0 {
			return nil
		}
	}
	return fmt.Errorf("stscache: resolver redis scan did not finish in %d rounds", maxScanRounds)
}

func resolverRedisEntry(key string, z redis.Z, now time.Time) (*mtasts.Entry, error) {
	m, ok := z.Member.(string)
	if !ok || len(m) <= 16 || len(m) > MaxEntrySize {
		return nil, fmt.Errorf("%w: redis key %q: not a postfix-mta-sts-resolver entry", ErrCorruptEntry, key)
	}
	var pair []json.RawMessage
	if err := json.Unmarshal([]byte(m[16:]), &pair); err != nil || len(pair) != 2 {
		return nil, fmt.Errorf("%w: redis key %q: not a postfix-mta-sts-resolver entry", ErrCorruptEntry, key)
	}
	var id string
	if err := json.Unmarshal(pair[0], &id); err != nil {
		return nil, fmt.Errorf("%w: redis key %q: policy id: %w", ErrCorruptEntry, key, err)
	}
	return ResolverEntry(key, z.Score, id, pair[1], now)
}

// ImportStats counts what [Import] did.
type ImportStats struct {
	// Read is the number of records read.
	Read int
	// Imported were written to the store.
	Imported int
	// Kept: the store already had a policy for the domain fetched at the
	// same time or later; it was kept.
	Kept int
	// Expired: the policy had expired (its max_age had run out); skipped.
	Expired int
	// Bad: the record could not be made into a valid entry; skipped.
	Bad int
}

// Import writes the valid entries read by read into dst (see
// [ReadResolverSQLite], [ReadResolverRedis]), unless dst already holds a
// policy for the domain fetched at the same time or later. Records that
// cannot be used are counted and logged, not fatal. It stops at the first
// error of read or of dst.
func Import(ctx context.Context, dst mtasts.Store, now time.Time, read func(ResolverRecordFunc) error, logger *slog.Logger) (ImportStats, error) {
	var st ImportStats
	err := read(func(e *mtasts.Entry, bad error) error {
		st.Read++
		if bad != nil {
			st.Bad++
			if logger != nil {
				logger.WarnContext(ctx, "stscache: skipping a postfix-mta-sts-resolver cache record", "err", bad)
			}
			return nil
		}
		if !e.Valid(now) {
			st.Expired++
			return nil
		}
		old, err := dst.Get(ctx, e.Domain)
		if err != nil && !errors.Is(err, ErrCorruptEntry) {
			return err
		}
		if old != nil && old.Policy != nil && !old.FetchedAt.Before(e.FetchedAt) {
			st.Kept++
			return nil
		}
		if old != nil {
			e.LastUsed = old.LastUsed
		}
		if err := dst.Put(ctx, e); err != nil {
			return err
		}
		st.Imported++
		return nil
	})
	return st, err
}
