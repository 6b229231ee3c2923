// Package reports is the shared vocabulary of the receiving side of SMTP
// TLS Reporting (RFC 8460), built on the pure [tlsrpt] library: the
// [Store] interface that keeps received reports and rejected input, what
// goes in ([Incoming], [Rejection]) and comes out ([StoredReport],
// [SummaryRow], [FailureRow], [Rejected]), query [Filter]s and their
// parsing, page cursors, the sentinel errors, and the YAML [Config] of
// `mailsts tlsrpt` and `mailsts serve`. It does no I/O beyond reading
// that file.
//
// The jobs live in sub-packages, each importing only what it needs
// (TestLayering checks it):
//
//   - sqlstore: the Store on SQLite (one file, the default) or
//     PostgreSQL (for scale), with one schema, migrations, the summary
//     rollup, conflict counting, retention and group commit; Open takes
//     the --db spec (sqlite:PATH or a postgres:// URL).
//   - ingest: the Ingester, which turns an HTTPS POST body or a mail
//     message into a stored report or a stored rejection (DKIM policy,
//     size caps, duplicates).
//   - httpapi: the HTTPS receiver of RFC 8460 §5.4, the JSON query API
//     under /api/v1/ and the per-client rate limiter. No mailbox code.
//   - mailbox: Maildir and IMAP polling into an Ingester. The store does
//     not pull it (or go-imap) in.
//
// Put together:
//
//	st, _ := sqlstore.Open(ctx, "sqlite:/var/lib/mailsts/reports.db", "", logger)
//	in := &ingest.Ingester{Store: st, Resolver: dnsClient}
//	res, err := in.Message(ctx, os.Stdin, reports.SourceMail, "")
//	rows, _ := st.Summary(ctx, reports.Filter{PolicyDomain: "example.org"})
//
// Every input ends either as a stored report or as a stored rejection
// with its raw bytes and the reason: nothing is dropped silently.
//
// # Decisions
//
//   - Duplicates: a report with the organization-name, report-id and
//     content (SHA-256 of the canonical report) of a stored one is
//     acknowledged (HTTP 200, exit 0) and not stored. Other content under
//     the same name is stored and flagged conflict; Summary counts the
//     first authenticated report of the name, else the first
//     (sqlstore/conflict.go).
//   - Authenticated: mail signed by a domain of the reporting
//     organisation; HTTPS reports never are (RFC 8460 §5.3).
//
// Ingestion's decisions (DKIM, future dates, oversize input) and its
// conformance list are in package ingest, storage's in package sqlstore.
package reports
