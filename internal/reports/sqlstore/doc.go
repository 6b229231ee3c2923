// Package sqlstore implements [reports.Store] on SQLite ([OpenSQLite]: one
// file, the default, through the shared opener of internal/sqlitedb) and
// PostgreSQL ([OpenPostgres]: for scale), with the same schema,
// migrations and query results; [Open] takes the spec of --db and the
// db: configuration key (sqlite:PATH, a postgres:// URL, or "" for
// reports.db in the state directory). [GroupCommit] shares one
// transaction among concurrent writers.
//
// # Storage
//
// Tables reports, policies and failure_details hold the normalised report;
// the query keys (day, policy domain, organisation, MX host, policy type,
// result type) are copied into the policy and failure rows and indexed, so
// Failures reads one table. Summary reads summary_rollup: its sums per
// day, organisation, policy domain, MX host, policy type and result type,
// kept once per subset of the keys that vary inside a report so that
// distinct reports can be summed, and updated by folds of many stored
// reports at a time, in the background and when the store closes (a
// duplicate adds nothing); the reports not folded yet are aggregated
// from their own rows and added to every answer. It answers every grouping
// at 100,000 reports in tens of milliseconds on SQLite, where counting
// distinct reports over the policy rows took seconds; the MX filter, and
// the result filter without grouping by result, aggregate the (few)
// matching policy rows instead. The raw input is kept gzip-compressed
// next to the rows (as received when it already was gzip), with the list of
// repairs tlsrpt applied and the problems it flagged. Domains are stored
// lowercased without a trailing dot. SQLite runs in WAL mode with
// synchronous=FULL; PostgreSQL text columns are COLLATE "C" so both
// backends sort identically.
//
// # Conformance (RFC 8460)
//
//   - §5.3 (RPT-RECV-4): a report is named by (organization-name,
//     report-id); identical content stored again is a duplicate, other
//     content under the same name is kept and flagged conflict.
//   - §5.4 (RPT-HTTP-3): a report is on disk when PutReport returns.
package sqlstore
