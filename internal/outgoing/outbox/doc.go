// Package outbox delivers SMTP TLS reports (RFC 8460): it keeps each
// finished daily report until it has reached every destination of the
// policy domain's _smtp._tls record, by DKIM-signed mail and by HTTPS.
//
// The builder hands reports to [Outbox.Enqueue] (idempotent per policy
// domain and day). [Outbox.RunOnce] is one delivery pass, [Outbox.Run]
// repeats it: each report waits until its send time ([SendTime]: the end
// of its UTC day plus a delay in [0, Config.Spread) derived from the
// report-id), then its _smtp._tls record is looked up (RFC 8460 §3: at
// send time) and one delivery per usable rua is created. Every delivery
// is claimed under a lease before it is attempted, so that several
// workers, processes or nodes sharing one database never send it twice at
// once, and a delivery whose worker died is attempted again once the
// lease expires. Failures are retried with exponential back-off and
// given up after Config.MaxAge (24 hours by default, RPT-DELIV-5);
// permanent failures (SMTP 5xx, a report above a size limit) are given up
// at once, while every HTTP status but 2xx is retried (RPT-HTTP-3). A
// destination that fails on Config.SuppressAfterDays consecutive UTC days
// is suppressed until cleared ([Store.Unsuppress]).
//
// Conformance:
//   - RFC 8460 §3: destinations come from the record at send time; a
//     domain without exactly one valid record, or without a usable rua,
//     gets no report (RPT-TXT-4).
//   - RFC 8460 §5.3: mail is multipart/report with the gzip report
//     attached under its §5.1 file name, TLS-Report-Domain,
//     TLS-Report-Submitter, the Subject form, TLS-Required: No (RFC 8689)
//     and Auto-Submitted: auto-generated, DKIM-signed without l=
//     (RPT-MAIL-1..5); the SMTP SIZE extension is honoured.
//   - RFC 8460 §5.4: HTTPS is a POST of application/tlsrpt+gzip; 2xx is
//     success; redirects are not followed (RPT-HTTP-1..3); certificate
//     errors are logged and the POST is made anyway unless configured
//     otherwise (RPT-HTTP-4).
//   - RFC 8460 §3: each usable rua gets the report; the report counts as
//     delivered once one of them accepted it (RPT-DELIV-7).
//
// Report deliveries must not be counted in reports themselves: mail
// leaves with a Message-ID starting with [MessageIDPrefix]
// ([IsReportMessageID]), and [Store.ActiveMailRecipients] lists the
// addresses being delivered to; HTTPS posts are made by mailsts itself and
// never pass through the MTA.
//
// States of a delivery: pending → sending (leased) → sent; or
// failed-retrying → … → given-up; suppressed while its destination is.
package outbox
