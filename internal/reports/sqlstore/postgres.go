package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/url"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/stdlib"

	"github.com/mailsts/mailsts/internal/reports"
)

// OpenPostgres connects to PostgreSQL (dsn is a postgres:// URL or a
// key=value string; add search_path=SCHEMA to use a schema other than
// public) and migrates the schema, kept in table reports_schema_version.
// Concurrent migrations are serialised by an advisory lock. A nil logger
// discards.
func OpenPostgres(ctx context.Context, dsn string, logger *slog.Logger) (reports.Store, error) {
	if logger == nil {
		logger = discardLogger()
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: postgres: %w", reports.ErrStorage, err)
	}
	db.SetMaxOpenConns(16)
	s := &sqlStore{d: postgresDialect(), loc: redactDSN(dsn), logger: logger, w: db, r: db}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, s.errorf("connect: %w", err)
	}
	if err := s.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.prepareStatements(ctx); err != nil {
		db.Close()
		return nil, err
	}
	s.startFolder()
	return s, nil
}

// redactDSN drops a password from a URL DSN for messages.
func redactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" {
		return u.Redacted()
	}
	if strings.Contains(dsn, "password") {
		return "(dsn with password)"
	}
	return dsn
}

// pgMigrationLock is the advisory lock key serialising migrations
// ("mailsts reports" in ASCII, truncated).
const pgMigrationLock = 0x6d61696c72707473

// postgresSum is dialect.sum: SUM(bigint) is numeric and cannot
// overflow; clamp it. Over no rows SUM is NULL, which LEAST ignores (it
// gave 2^63-1): 0 then, as SQLite's TOTAL gives. (Migration 7 sums
// groups of GROUP BY, never empty: the same rows either way.)
func postgresSum(c string) string {
	return "CAST(LEAST(COALESCE(SUM(" + c + "), 0), 9223372036854775807) AS BIGINT)"
}

func postgresDialect() dialect {
	return dialect{
		name:            "postgres",
		rebind:          rebindDollar,
		migrations:      postgresMigrations(),
		contains:        func(h, n string) string { return "strpos(" + h + ", " + n + ") > 0" },
		sum:             postgresSum,
		domainRollup:    "summary_rollup",
		domainDayRollup: "summary_rollup",
		reportersRollup: "summary_rollup",
		versionTable:    "reports_schema_version",
		foldSQL:         rollupFold(postgresSum, "pg_temp"),
		skipLocked:      " FOR UPDATE SKIP LOCKED",
		returningID:     true,
		forUpdate:       " FOR UPDATE",
		foldLock: func(ctx context.Context, tx *sql.Tx) error {
			// The two-key form, apart from lockKey's (8460, …).
			_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(8461, 0)`)
			return err
		},
		lockKey: func(ctx context.Context, tx *sql.Tx, key string) error {
			// The two-key form: a key space apart from pgMigrationLock's.
			// The key is hashed here: it may hold bytes that are not text
			// to PostgreSQL. Two keys with one hash only wait for each other.
			h := fnv.New32a()
			h.Write([]byte(key))
			_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(8460, $1)`, int32(h.Sum32()))
			return err
		},
	}
}

// rebindDollar turns "?" placeholders into "$1", "$2", …. Our queries
// have no "?" inside literals.
func rebindDollar(q string) string {
	var b strings.Builder
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

var _ = stdlib.GetDefaultDriver // the import registers the "pgx" driver
