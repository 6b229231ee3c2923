package sqlstore

import (
	"fmt"

	"github.com/mailsts/mailsts/internal/reports"
)

// The schema, one migration list per backend, append-only: a released step
// is never edited, so every database walks the same path.
//
// Tables: reports (one row per (organization, report_id), with the raw
// input compressed, the repairs and problems as JSON, and the totals);
// policies (one row per policies[] entry); failure_details (one row per
// failure detail). The query keys (day, policy_domain, organization,
// mx_host, policy_type, result_type) are copied down into policies and
// failure_details so that Summary and Failures read one table and filter
// by index without joins. day is the UTC date of start-datetime as
// YYYY-MM-DD; times are Unix seconds; mx_host is the policy's mx-host list,
// lowercased and joined with ",", the Summary grouping key; mx_hosts keeps
// the list as JSON for Show. summary_rollup (version 2) holds Summary's
// sums per grain, maintained at insert (rollup.go); version 7 adds the
// grain without the organisation (grainDomainDay), version 8 two
// partial indexes of the rollup for the dashboard's overview, version 9
// the pending mark of the reports the rollup does not hold yet (fold.go).

func sqliteMigrations() []string {
	return []string{
		// Version 1.
		`CREATE TABLE reports (
			id           INTEGER PRIMARY KEY,
			organization TEXT NOT NULL,
			report_id    TEXT NOT NULL,
			contact_info TEXT NOT NULL,
			start_time   INTEGER NOT NULL,
			end_time     INTEGER NOT NULL,
			day          TEXT NOT NULL,
			received_at  INTEGER NOT NULL,
			source       TEXT NOT NULL,
			origin       TEXT NOT NULL,
			submitter    TEXT NOT NULL,
			dkim_domain  TEXT NOT NULL,
			repairs      TEXT NOT NULL,
			problems     TEXT NOT NULL,
			successful   INTEGER NOT NULL,
			failed       INTEGER NOT NULL,
			raw          BLOB NOT NULL,
			raw_encoding TEXT NOT NULL,
			raw_size     INTEGER NOT NULL,
			UNIQUE (organization, report_id)
		) STRICT;
		CREATE INDEX reports_day ON reports(day);
		CREATE INDEX reports_report_id ON reports(report_id);
		CREATE TABLE policies (
			id            INTEGER PRIMARY KEY,
			report        INTEGER NOT NULL REFERENCES reports(id) ON DELETE CASCADE,
			seq           INTEGER NOT NULL,
			day           TEXT NOT NULL,
			organization  TEXT NOT NULL,
			policy_type   TEXT NOT NULL,
			policy_domain TEXT NOT NULL,
			policy_string TEXT NOT NULL,
			mx_host       TEXT NOT NULL,
			mx_hosts      TEXT NOT NULL,
			successful    INTEGER NOT NULL,
			failed        INTEGER NOT NULL,
			details       INTEGER NOT NULL
		) STRICT;
		CREATE INDEX policies_report ON policies(report);
		CREATE INDEX policies_day ON policies(day);
		CREATE INDEX policies_domain_day ON policies(policy_domain, day);
		CREATE INDEX policies_org_day ON policies(organization, day);
		CREATE INDEX policies_mx_host ON policies(mx_host);
		CREATE TABLE failure_details (
			id                     INTEGER PRIMARY KEY,
			policy                 INTEGER NOT NULL REFERENCES policies(id) ON DELETE CASCADE,
			report                 INTEGER NOT NULL,
			policy_seq             INTEGER NOT NULL,
			seq                    INTEGER NOT NULL,
			day                    TEXT NOT NULL,
			organization           TEXT NOT NULL,
			policy_type            TEXT NOT NULL,
			policy_domain          TEXT NOT NULL,
			mx_host                TEXT NOT NULL,
			result_type            TEXT NOT NULL,
			sending_mta_ip         TEXT NOT NULL,
			receiving_mx_hostname  TEXT NOT NULL,
			receiving_mx_helo      TEXT NOT NULL,
			receiving_ip           TEXT NOT NULL,
			failed_session_count   INTEGER NOT NULL,
			additional_information TEXT NOT NULL,
			failure_reason_code    TEXT NOT NULL
		) STRICT;
		CREATE INDEX failure_details_policy ON failure_details(policy);
		CREATE INDEX failure_details_report ON failure_details(report);
		CREATE INDEX failure_details_day ON failure_details(day);
		CREATE INDEX failure_details_domain_day ON failure_details(policy_domain, day);
		CREATE INDEX failure_details_org_day ON failure_details(organization, day);
		CREATE INDEX failure_details_result_day ON failure_details(result_type, day);
		CREATE INDEX failure_details_mx_host ON failure_details(mx_host);
		CREATE INDEX failure_details_receiving_mx ON failure_details(receiving_mx_hostname);
		CREATE TABLE rejected (
			id          INTEGER PRIMARY KEY,
			received_at INTEGER NOT NULL,
			source      TEXT NOT NULL,
			origin      TEXT NOT NULL,
			reason      TEXT NOT NULL,
			detail      TEXT NOT NULL,
			size        INTEGER NOT NULL,
			truncated   INTEGER NOT NULL,
			raw         BLOB NOT NULL
		) STRICT;
		CREATE INDEX rejected_received_at ON rejected(received_at);`,
		// Version 2: the summary rollup (rollup.go), built from the
		// stored rows; indexes no query uses any more are dropped (see
		// rollupDroppedIndexes).
		`CREATE TABLE summary_rollup (
			grain         INTEGER NOT NULL,
			kind          INTEGER NOT NULL,
			day           TEXT NOT NULL,
			organization  TEXT NOT NULL,
			policy_domain TEXT NOT NULL,
			mx_host       TEXT NOT NULL,
			policy_type   TEXT NOT NULL,
			result_type   TEXT NOT NULL,
			reports       INTEGER NOT NULL,
			successful    INTEGER NOT NULL,
			failed        INTEGER NOT NULL,
			PRIMARY KEY (grain, kind, day, organization, policy_domain, mx_host, policy_type, result_type)
		) STRICT, WITHOUT ROWID;
		` + rollupDroppedIndexes + rollupBackfill(),
		// Version 3: content hash, authentication and conflicts.
		contentHashMigration(`TEXT`),
		// Version 4: rejected input is kept capped
		// (the first 64 KiB, with the SHA-256 of the whole); kept is the
		// bytes a row costs (raw, detail, origin) for the byte budget,
		// read through a covering index; input_key makes re-storing the
		// same rejected input (a Maildir file after a crash before its
		// move) a no-op.
		`ALTER TABLE rejected ADD COLUMN sha256 TEXT NOT NULL DEFAULT '';
		ALTER TABLE rejected ADD COLUMN input_key TEXT NOT NULL DEFAULT '';
		ALTER TABLE rejected ADD COLUMN kept INTEGER NOT NULL DEFAULT 0;
		UPDATE rejected SET kept = length(raw) + length(CAST(detail AS BLOB)) + length(CAST(origin AS BLOB));
		CREATE UNIQUE INDEX rejected_input_key ON rejected(input_key) WHERE input_key <> '';
		CREATE INDEX rejected_kept ON rejected(id, kept);`,
		// Version 5: the domain rows of the rollup by domain and day, for
		// the dashboard's domain page (rollupDomainIndex).
		rollupDomainIndex,
		// Version 6: the pseudo result rows fold into the total rows.
		foldPseudoMigration(`INTEGER`),
		// Version 7: the rollup's rows per (day, policy domain) without
		// the organisation (grainDomainDay).
		domainDayMigration(sqliteSum),
		// Version 8: those rows by domain and day (rollupDomainDayIndex),
		// and the domain grain's by domain and organisation
		// (rollupReportersIndex).
		rollupDomainDayIndex + rollupReportersIndex,
		// Version 9: the deferred fold (fold.go).
		pendingMigration,
	}
}

// postgresMigrations mirror sqliteMigrations. Text columns use COLLATE "C"
// so that ORDER BY and comparisons are bytewise, as in SQLite: both
// backends must give identical results.
func postgresMigrations() []string {
	return []string{
		// Version 1.
		`CREATE TABLE reports (
			id           BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
			organization TEXT COLLATE "C" NOT NULL,
			report_id    TEXT COLLATE "C" NOT NULL,
			contact_info TEXT COLLATE "C" NOT NULL,
			start_time   BIGINT NOT NULL,
			end_time     BIGINT NOT NULL,
			day          TEXT COLLATE "C" NOT NULL,
			received_at  BIGINT NOT NULL,
			source       TEXT COLLATE "C" NOT NULL,
			origin       TEXT COLLATE "C" NOT NULL,
			submitter    TEXT COLLATE "C" NOT NULL,
			dkim_domain  TEXT COLLATE "C" NOT NULL,
			repairs      TEXT NOT NULL,
			problems     TEXT NOT NULL,
			successful   BIGINT NOT NULL,
			failed       BIGINT NOT NULL,
			raw          BYTEA NOT NULL,
			raw_encoding TEXT NOT NULL,
			raw_size     BIGINT NOT NULL,
			UNIQUE (organization, report_id)
		);
		CREATE INDEX reports_day ON reports(day);
		CREATE INDEX reports_report_id ON reports(report_id);
		CREATE TABLE policies (
			id            BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
			report        BIGINT NOT NULL REFERENCES reports(id) ON DELETE CASCADE,
			seq           INTEGER NOT NULL,
			day           TEXT COLLATE "C" NOT NULL,
			organization  TEXT COLLATE "C" NOT NULL,
			policy_type   TEXT COLLATE "C" NOT NULL,
			policy_domain TEXT COLLATE "C" NOT NULL,
			policy_string TEXT NOT NULL,
			mx_host       TEXT COLLATE "C" NOT NULL,
			mx_hosts      TEXT NOT NULL,
			successful    BIGINT NOT NULL,
			failed        BIGINT NOT NULL,
			details       INTEGER NOT NULL
		);
		CREATE INDEX policies_report ON policies(report);
		CREATE INDEX policies_day ON policies(day);
		CREATE INDEX policies_domain_day ON policies(policy_domain, day);
		CREATE INDEX policies_org_day ON policies(organization, day);
		CREATE INDEX policies_mx_host ON policies(mx_host);
		CREATE TABLE failure_details (
			id                     BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
			policy                 BIGINT NOT NULL REFERENCES policies(id) ON DELETE CASCADE,
			report                 BIGINT NOT NULL,
			policy_seq             INTEGER NOT NULL,
			seq                    INTEGER NOT NULL,
			day                    TEXT COLLATE "C" NOT NULL,
			organization           TEXT COLLATE "C" NOT NULL,
			policy_type            TEXT COLLATE "C" NOT NULL,
			policy_domain          TEXT COLLATE "C" NOT NULL,
			mx_host                TEXT COLLATE "C" NOT NULL,
			result_type            TEXT COLLATE "C" NOT NULL,
			sending_mta_ip         TEXT COLLATE "C" NOT NULL,
			receiving_mx_hostname  TEXT COLLATE "C" NOT NULL,
			receiving_mx_helo      TEXT COLLATE "C" NOT NULL,
			receiving_ip           TEXT COLLATE "C" NOT NULL,
			failed_session_count   BIGINT NOT NULL,
			additional_information TEXT COLLATE "C" NOT NULL,
			failure_reason_code    TEXT COLLATE "C" NOT NULL
		);
		CREATE INDEX failure_details_policy ON failure_details(policy);
		CREATE INDEX failure_details_report ON failure_details(report);
		CREATE INDEX failure_details_day ON failure_details(day);
		CREATE INDEX failure_details_domain_day ON failure_details(policy_domain, day);
		CREATE INDEX failure_details_org_day ON failure_details(organization, day);
		CREATE INDEX failure_details_result_day ON failure_details(result_type, day);
		CREATE INDEX failure_details_mx_host ON failure_details(mx_host);
		CREATE INDEX failure_details_receiving_mx ON failure_details(receiving_mx_hostname);
		CREATE TABLE rejected (
			id          BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
			received_at BIGINT NOT NULL,
			source      TEXT COLLATE "C" NOT NULL,
			origin      TEXT COLLATE "C" NOT NULL,
			reason      TEXT COLLATE "C" NOT NULL,
			detail      TEXT NOT NULL,
			size        BIGINT NOT NULL,
			truncated   INTEGER NOT NULL,
			raw         BYTEA NOT NULL
		);
		CREATE INDEX rejected_received_at ON rejected(received_at);`,
		// Version 2: the summary rollup (rollup.go), built from the
		// stored rows; indexes no query uses any more are dropped (see
		// rollupDroppedIndexes). Free space in each page lets the
		// upserts update rows in place (HOT) instead of leaving dead
		// copies and index entries behind until autovacuum.
		`CREATE TABLE summary_rollup (
			grain         INTEGER NOT NULL,
			kind          INTEGER NOT NULL,
			day           TEXT COLLATE "C" NOT NULL,
			organization  TEXT COLLATE "C" NOT NULL,
			policy_domain TEXT COLLATE "C" NOT NULL,
			mx_host       TEXT COLLATE "C" NOT NULL,
			policy_type   TEXT COLLATE "C" NOT NULL,
			result_type   TEXT COLLATE "C" NOT NULL,
			reports       BIGINT NOT NULL,
			successful    BIGINT NOT NULL,
			failed        BIGINT NOT NULL,
			PRIMARY KEY (grain, kind, day, organization, policy_domain, mx_host, policy_type, result_type)
		) WITH (fillfactor = 70);
		` + rollupDroppedIndexes + rollupBackfill(),
		// Version 3: content hash, authentication and conflicts.
		contentHashMigration(`TEXT COLLATE "C"`),
		// Version 4: see sqliteMigrations.
		`ALTER TABLE rejected ADD COLUMN sha256 TEXT NOT NULL DEFAULT '';
		ALTER TABLE rejected ADD COLUMN input_key TEXT COLLATE "C" NOT NULL DEFAULT '';
		ALTER TABLE rejected ADD COLUMN kept BIGINT NOT NULL DEFAULT 0;
		UPDATE rejected SET kept = octet_length(raw) + octet_length(detail) + octet_length(origin);
		CREATE UNIQUE INDEX rejected_input_key ON rejected(input_key) WHERE input_key <> '';
		CREATE INDEX rejected_kept ON rejected(id, kept);`,
		// Version 5: the domain rows of the rollup by domain and day, for
		// the dashboard's domain page (rollupDomainIndex).
		rollupDomainIndex,
		// Version 6: see sqliteMigrations.
		foldPseudoMigration(`BIGINT`),
		// Version 7: see sqliteMigrations.
		domainDayMigration(postgresSum),
		// Version 8: see sqliteMigrations.
		rollupDomainDayIndex + rollupReportersIndex,
		// Version 9: see sqliteMigrations.
		pendingMigration,
	}
}

// pendingMigration (version 9, both backends) adds reports.pending, the
// deferred fold's mark (fold.go): 1 for a counted report not yet added to
// the rollup, 2 while a fold holds it, 0 otherwise. Every report stored
// before is in the rollup already (0). The partial index holds only the
// pending reports, so finding them costs nothing when there are none;
// queries write its condition "pending <> 0" verbatim so that both
// planners use it.
const pendingMigration = `ALTER TABLE reports ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;
		CREATE INDEX reports_pending ON reports(id) WHERE pending <> 0;`

// rollupDomainIndex (version 5, both backends) reads one policy
// domain's rollup rows of a day range without scanning every domain's
// rows of those days: a domain page over a year at 1,000,000 reports
// read 1,000,000 rows per query (bench/dashboard: 340 ms), 2,000 with it
// (12 ms). Partial, on the domain-only grain the domain queries use, so
// that it costs a fraction of the rollup (summaryRollupQuery writes the
// grain as a literal so that both planners can use it).
const rollupDomainIndex = `CREATE INDEX summary_rollup_domain_day ON summary_rollup(grain, kind, policy_domain, day) WHERE grain = 1;`

// rollupDomainDayIndex (version 8, both backends) reads some policy
// domains' rows of grainDomainDay over a day range: the dashboard's
// overview reads the days of the 50 domains of its page, over a year at
// 1,000,000 reports 18,250 rows, which the domain grain's index found
// among 100,000 rows (one per reporter and day). It holds the sums that
// Summary reads there (it never groups that grain by result type), so
// that the totals per domain of every domain are one pass over it in
// domain order, without reading the table. Partial, on that grain only
// (365 × domains rows a year).
const rollupDomainDayIndex = `CREATE INDEX summary_rollup_domainday_day ON summary_rollup(grain, kind, policy_domain, day, reports, successful, failed) WHERE grain = 9;`

// rollupReportersIndex (version 8, both backends) answers Reporters:
// the total rows of the domain grain by domain and organisation, with
// the day and the reports, so that the last day and the reports of each
// reporter of some domains are one pass over the index in group order
// without reading the table (the overview's 50 domains over a year at
// 1,000,000 reports: 100,000 entries; 280 ms through the table, via
// rollupDomainIndex).
const rollupReportersIndex = `
		CREATE INDEX summary_rollup_reporters ON summary_rollup(grain, kind, policy_domain, organization, day, reports) WHERE grain = 1 AND kind = 0;`

// foldPseudoMigration (version 6, both backends) moves the "(success)"
// and "(no-details)" rows of the rollup (kind 1) into three columns of
// the total row of the same key (rollupSums): a report then updates
// about 24 rollup rows instead of 35, the largest part of the ingest's
// cost. A pseudo row always has its total row (the reports it counts
// added both). intType is the backend's integer type.
func foldPseudoMigration(intType string) string {
	pseudo := func(col, rtype string) string {
		return `COALESCE((SELECT p.` + col + ` FROM summary_rollup p WHERE p.grain = summary_rollup.grain AND p.kind = 1
			AND p.day = summary_rollup.day AND p.organization = summary_rollup.organization
			AND p.policy_domain = summary_rollup.policy_domain AND p.mx_host = summary_rollup.mx_host
			AND p.policy_type = summary_rollup.policy_type AND p.result_type = '` + rtype + `'), 0)`
	}
	return `ALTER TABLE summary_rollup ADD COLUMN success_reports ` + intType + ` NOT NULL DEFAULT 0;
		ALTER TABLE summary_rollup ADD COLUMN nodetails_reports ` + intType + ` NOT NULL DEFAULT 0;
		ALTER TABLE summary_rollup ADD COLUMN nodetails_failed ` + intType + ` NOT NULL DEFAULT 0;
		UPDATE summary_rollup SET success_reports = ` + pseudo("reports", reports.ResultSuccess) + `,
			nodetails_reports = ` + pseudo("reports", reports.ResultNoDetails) + `,
			nodetails_failed = ` + pseudo("failed", reports.ResultNoDetails) + `
			WHERE kind = 0;
		DELETE FROM summary_rollup WHERE kind = 1;
		`
}

// domainDayMigration (version 7, both backends) builds the rows of
// grainDomainDay from the total rows of the domain grain, which hold the
// same reports and sums split by organisation (a report has one): the
// counted reports only, conflicts already moved, as the inserts keep
// them. sum is the backend's saturating SUM (dialect.sum); SQLite's is
// exact below 2^53 per (day, domain), as Summary's sums over the domain
// grain were.
func domainDayMigration(sum func(string) string) string {
	return fmt.Sprintf(`INSERT INTO summary_rollup (grain, kind, day, organization, policy_domain, mx_host, policy_type,
			result_type, reports, successful, failed, success_reports, nodetails_reports, nodetails_failed)
		SELECT %d, %d, day, '', policy_domain, '', '', '', %s, %s, %s, %s, %s, %s
		FROM summary_rollup WHERE grain = %d AND kind = %d GROUP BY day, policy_domain;
		`, grainDomainDay, kindTotal, sum("reports"), sum("successful"), sum("failed"),
		sum("success_reports"), sum("nodetails_reports"), sum("nodetails_failed"), grainDomain, kindTotal)
}

// contentHashMigration (version 3, both backends) stops de-duplicating
// on (organization, report_id) alone: a report is a duplicate only when
// its content is identical (conflict.go). SQLite cannot drop the
// UNIQUE (organization, report_id) constraint without rebuilding the
// table, which the foreign keys of policies forbid inside the migration
// transaction; so the report_id column is renamed content_hash, keeping
// the constraint, now UNIQUE (organization, content_hash), and a new
// report_id column gets the ids. Rows stored before get content_hash
// 'legacy:' || report_id (no SHA-256 hex has a colon) until a report
// with the same key arrives and their hash is computed from the stored
// rows. authenticated is 1 for rows that passed the DKIM check (their
// dkim_domain is set); conflict marks every report of a key that has
// reports of different content; counted marks the one report per key
// that Summary and the rollup count (all of them before this version).
// Cost: one UPDATE of every report row (SQLite rewrites each row with
// its raw input). text is the backend's text type.
func contentHashMigration(text string) string {
	return `ALTER TABLE reports RENAME COLUMN report_id TO content_hash;
		ALTER TABLE reports ADD COLUMN report_id ` + text + ` NOT NULL DEFAULT '';
		ALTER TABLE reports ADD COLUMN authenticated INTEGER NOT NULL DEFAULT 0;
		ALTER TABLE reports ADD COLUMN conflict INTEGER NOT NULL DEFAULT 0;
		ALTER TABLE reports ADD COLUMN counted INTEGER NOT NULL DEFAULT 1;
		UPDATE reports SET report_id = content_hash, content_hash = 'legacy:' || content_hash,
			authenticated = CASE WHEN dkim_domain <> '' THEN 1 ELSE 0 END;
		DROP INDEX reports_report_id;
		CREATE INDEX reports_report_id ON reports(report_id);
		CREATE INDEX reports_uncounted ON reports(id) WHERE counted = 0;
		`
}

// rollupDroppedIndexes are the version-1 indexes that no query reads once
// Summary reads the rollup: each cost a B-tree insert per row at ingest
// and about 4.5 MB per 100,000 reports. Summary's remaining direct
// aggregations (MX filter, result filter) start from policies_day or
// failure_details_result_day; Failures' MX filter is a substring match
// ORed with two equalities, which no index answers; failure_details.report
// is only read through the join to reports(id).
const rollupDroppedIndexes = `DROP INDEX IF EXISTS policies_domain_day;
		DROP INDEX IF EXISTS policies_org_day;
		DROP INDEX IF EXISTS policies_mx_host;
		DROP INDEX IF EXISTS failure_details_mx_host;
		DROP INDEX IF EXISTS failure_details_receiving_mx;
		DROP INDEX IF EXISTS failure_details_report;
		`
