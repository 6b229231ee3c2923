package tlsrpt

import "errors"

// Sentinel errors, grouped by phase. Errors returned by this package wrap one
// of them (and, where there is one, the underlying cause) so that errors.Is
// reaches both.
var (
	// ErrNoRecord means the domain publishes no TLSRPT record (no TXT record
	// starting with v=TLSRPTv1, or the name does not exist). The domain does
	// not want reports: send none.
	ErrNoRecord = errors.New("tlsrpt: no TLSRPT record")
	// ErrMultipleRecords means more than one TXT record starts with
	// v=TLSRPTv1. RFC 8460 §3: the domain then does not implement TLSRPT;
	// send no report.
	ErrMultipleRecords = errors.New("tlsrpt: multiple TLSRPT records")
	// ErrRecordSyntax means the single TLSRPT record is malformed. Treat it
	// like ErrNoRecord (send nothing) and tell the publisher.
	ErrRecordSyntax = errors.New("tlsrpt: invalid TLSRPT record")
	// ErrDNS means the TXT lookup failed (SERVFAIL, timeout). The answer is
	// unknown: retry later rather than treating the domain as opted out.
	ErrDNS = errors.New("tlsrpt: DNS lookup failed")

	// ErrSyntax means the input is not a TLS report (or not a mail message)
	// even after the documented repairs. Reject it; keep the raw bytes if
	// you want to debug the sender.
	ErrSyntax = errors.New("tlsrpt: syntax error")
	// ErrNotStrict is returned by ParseStrict when the report parses only
	// after repairs. The error text lists the repair codes.
	ErrNotStrict = errors.New("tlsrpt: report needs repairs")
	// ErrInvalid is returned by Report.Validate: the report breaks a rule
	// that reports we generate must follow. Fix the generator.
	ErrInvalid = errors.New("tlsrpt: invalid report")
	// ErrTooLarge means an input or its decompressed form exceeds the
	// configured Limits. Reject the report (HTTP 413); do not retry with
	// bigger limits for untrusted senders.
	ErrTooLarge = errors.New("tlsrpt: too large")
	// ErrUnsupportedType means the declared media type cannot carry a
	// report (for example text/html). Reject it (HTTP 415).
	ErrUnsupportedType = errors.New("tlsrpt: unsupported media type")
	// ErrNoReport means a mail message parsed but holds no report part.
	// Drop the message (it may be a bounce or an auto-reply).
	ErrNoReport = errors.New("tlsrpt: no report in message")
	// ErrFilename means a report file name does not follow RFC 8460 §5.1.
	// The file name is advisory (RPT-DELIV-6): keep going with the body.
	ErrFilename = errors.New("tlsrpt: invalid report file name")
	// ErrSubject means a Subject does not follow the RFC 8460 §5.3 form. It
	// is advisory: the body wins.
	ErrSubject = errors.New("tlsrpt: invalid report subject")
)
