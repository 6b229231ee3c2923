// Package ingest turns input as it arrives — an HTTPS POST body
// ([Ingester.Body], RFC 8460 §5.4), a mail message from an MTA pipe, a
// Maildir or an IMAP mailbox ([Ingester.Message], §5.3) — into a stored
// report or a stored rejection with its raw bytes and the reason, in a
// [reports.Store]: nothing is dropped silently.
//
// # Decisions
//
//   - Duplicates and conflicts: decided by the store (see package reports).
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
package ingest
