// Package reports receives, stores and queries SMTP TLS reports (RFC 8460):
// the receiving side built on the pure [tlsrpt] library.
//
// An [Ingester] takes input as it arrives — an HTTPS POST body
// ([Ingester.Body], RFC 8460 §5.4), a mail message from an MTA pipe, a
// Maildir or an IMAP mailbox ([Ingester.Message], §5.3) — and ends every
// input either as a stored report or as a stored rejection with its raw
// bytes and the reason: nothing is dropped silently. A [Store] keeps them:
// [OpenSQLite] (one file, the default) or [OpenPostgres] (for scale), with
// the same schema, migrations and query results.
//
//	st, _ := reports.OpenSQLite(ctx, "/var/lib/mailsts/reports.db", logger)
//	in := &reports.Ingester{Store: st, Resolver: dnsClient}
//	res, err := in.Message(ctx, os.Stdin, reports.SourceMail, "")
//	rows, _ := st.Summary(ctx, reports.Filter{PolicyDomain: "example.org"})
//
// [Receiver] is the HTTP handler for POSTed reports and [API] the JSON
// query API under /api/v1/; [Maildir] and [IMAP] poll mailboxes.
//
// # Storage
//
// Tables reports, policies and failure_details hold the normalised report;
// the query keys (day, policy domain, organisation, MX host, policy type,
// result type) are copied into the policy and failure rows and indexed, so
// Failures reads one table. Summary reads summary_rollup: its sums per
// day, organisation, policy domain, MX host, policy type and result type,
// kept once per subset of the keys that vary inside a report so that
// distinct reports can be summed, and updated in the transaction that
// inserts the report (a duplicate adds nothing). It answers every grouping
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
// # Decisions
//
//   - Duplicates: a report with the organization-name, report-id and
//     content (SHA-256 of the canonical report) of a stored one is
//     acknowledged (HTTP 200, exit 0) and not stored. Other content under
//     the same name is stored and flagged conflict; Summary counts the
//     first authenticated report of the name, else the first (conflict.go).
//   - Authenticated: mail signed by a domain of the reporting
//     organisation; HTTPS reports never are (RFC 8460 §5.3).
//   - Future dates: a report starting more than [DefaultFutureSkew] after
//     now is rejected and kept (reason "future-date").
//   - DKIM: on by default for mail; a report mail must carry a valid
//     signature, with a key whose s= allows tlsrpt, by a domain of the
//     reporting organisation: the submitter (TLS-Report-Submitter, else
//     the contact-info domain), or the contact-info or From domain when
//     they agree with it, or a parent or child of one of them
//     ([tlsrpt.SameOrganization]; d=corp.mail.ru signs for mail.ru). A temporary key-lookup failure stores nothing and returns
//     [ErrTemporary] so the MTA retries.
//   - Oversize input: only the first 64 KiB are read and kept (flagged
//     truncated); the rest is never read.
//
// # Conformance (RFC 8460)
//
//   - §3 (RPT-MAIL-7, RPT-RECV-1): mail without a valid DKIM signature is
//     ignored (kept as rejected, reason "dkim").
//   - §5.3 (RPT-MAIL-10, RPT-RECV-4): report parts picked from the mail;
//     duplicates by report-id dropped when their content is identical.
//   - §5.4 (RPT-HTTP-3, RPT-HTTP-5): 200 only after the report (or its
//     rejection) is durably stored.
//   - §5.6 (RPT-DELIV-6): the body wins; Subject, header and file-name
//     disagreements are stored as problems.
//   - §7 (RPT-RECV-2, RPT-RECV-3): size caps before and after gzip,
//     content never evaluated.
package reports
