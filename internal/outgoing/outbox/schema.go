package outbox

import (
	"context"
	"strings"

	"github.com/mailsts/mailsts/internal/migrate"
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

// migrate brings the schema to the newest version, one transaction a
// step (package migrate).
func (s *Store) migrate(ctx context.Context) error {
	schema := migrate.Schema{Steps: migrations(s.pg), Table: schemaVersionTable,
		Postgres: s.pg, LockKey: pgMigrationLock, Where: "outbox", TooNew: ErrStorage, Err: ErrStorage}
	return schema.Run(ctx, s.w)
}
