package outbox

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// schemaVersionTable holds the outbox's own schema version, one row. The
// outbox shares its database with the results store of the collectors
// (and may share it with the received-report store), so it neither reads
// nor sets PRAGMA user_version: every component keeps its own version.
const schemaVersionTable = "outbox_schema_version"

// pgMigrationLock serialises outbox migrations of several nodes on one
// PostgreSQL database ("outbox" in ASCII).
const pgMigrationLock = 0x6f7574626f78

// migrations returns the schema steps; step i takes the schema from
// version i to i+1. Times are Unix seconds, days are YYYY-MM-DD.
func migrations(pg bool) []string {
	id, blob := "INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB"
	if pg {
		id, blob = "BIGSERIAL PRIMARY KEY", "BYTEA"
	}
	v1 := strings.NewReplacer("$ID", id, "$BLOB", blob).Replace(`
CREATE TABLE outbox_reports (
	id $ID,
	policy_domain TEXT NOT NULL,
	day TEXT NOT NULL,
	report_id TEXT NOT NULL,
	filename TEXT NOT NULL,
	submitter TEXT NOT NULL,
	body $BLOB NOT NULL,
	created_at BIGINT NOT NULL,
	not_before BIGINT NOT NULL,
	state TEXT NOT NULL,
	attempts INTEGER NOT NULL DEFAULT 0,
	next_attempt BIGINT NOT NULL,
	age_from BIGINT NOT NULL,
	lease_owner TEXT NOT NULL DEFAULT '',
	lease_until BIGINT NOT NULL DEFAULT 0,
	last_error TEXT NOT NULL DEFAULT '',
	updated_at BIGINT NOT NULL,
	UNIQUE (policy_domain, day)
);
CREATE INDEX outbox_reports_due ON outbox_reports (state, next_attempt);
CREATE TABLE outbox_deliveries (
	id $ID,
	report BIGINT NOT NULL REFERENCES outbox_reports (id) ON DELETE CASCADE,
	destination TEXT NOT NULL,
	state TEXT NOT NULL,
	attempts INTEGER NOT NULL DEFAULT 0,
	next_attempt BIGINT NOT NULL,
	age_from BIGINT NOT NULL,
	lease_owner TEXT NOT NULL DEFAULT '',
	lease_until BIGINT NOT NULL DEFAULT 0,
	last_error TEXT NOT NULL DEFAULT '',
	sent_at BIGINT NOT NULL DEFAULT 0,
	updated_at BIGINT NOT NULL,
	UNIQUE (report, destination)
);
CREATE INDEX outbox_deliveries_due ON outbox_deliveries (state, next_attempt);
CREATE TABLE outbox_destinations (
	destination TEXT PRIMARY KEY,
	fail_days INTEGER NOT NULL DEFAULT 0,
	last_failure_day TEXT NOT NULL DEFAULT '',
	last_error TEXT NOT NULL DEFAULT '',
	last_success BIGINT NOT NULL DEFAULT 0,
	suppressed_at BIGINT NOT NULL DEFAULT 0,
	suppressed_reason TEXT NOT NULL DEFAULT ''
);
`)
	return []string{v1}
}

// migrate brings the schema to the newest version in one transaction.
func (s *Store) migrate(ctx context.Context) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%w: migrate: %w", ErrStorage, err)
	}
	defer tx.Rollback()
	if s.pg {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(pgMigrationLock)); err != nil {
			return fmt.Errorf("%w: migrate: lock: %w", ErrStorage, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+schemaVersionTable+` (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("%w: migrate: %w", ErrStorage, err)
	}
	var v int
	switch err := tx.QueryRowContext(ctx, `SELECT version FROM `+schemaVersionTable).Scan(&v); {
	case err == sql.ErrNoRows:
		v = 0
	case err != nil:
		return fmt.Errorf("%w: migrate: %w", ErrStorage, err)
	}
	steps := migrations(s.pg)
	if v > len(steps) {
		return fmt.Errorf("%w: outbox schema version %d is newer than this mailsts knows (%d)", ErrStorage, v, len(steps))
	}
	if v == len(steps) {
		return nil
	}
	for _, step := range steps[v:] {
		for _, stmt := range strings.Split(step, ";") {
			if strings.TrimSpace(stmt) == "" {
				continue
			}
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("%w: migrate to %d: %w", ErrStorage, v+1, err)
			}
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM `+schemaVersionTable); err != nil {
		return fmt.Errorf("%w: migrate: %w", ErrStorage, err)
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO `+schemaVersionTable+` (version) VALUES (?)`), len(steps)); err != nil {
		return fmt.Errorf("%w: migrate: %w", ErrStorage, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%w: migrate: %w", ErrStorage, err)
	}
	return nil
}
