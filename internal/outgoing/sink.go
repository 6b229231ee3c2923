package outgoing

import (
	"context"
	"time"
)

// BuiltReport is one finished daily report, ready for delivery: the
// builder hands it to a Sink (the outbox), which delivers it to every rua
// of the policy domain's _smtp._tls record.
type BuiltReport struct {
	// PolicyDomain is the domain the report is about (A-labels).
	PolicyDomain string
	// Day is the UTC day (00:00:00Z) the report covers.
	Day time.Time
	// ReportID is unique and deterministic from (organisation, domain,
	// day): a rebuild of the same day gives the same id.
	ReportID string
	// Filename is the RFC 8460 §5.1 file name (tlsrpt.Filename).
	Filename string
	// Body is the gzip of the JSON report (RFC 8460 §5.2).
	Body []byte
	// Submitter is the report submitter domain (contact-info's domain).
	Submitter string
}

// Sink receives built reports. Enqueue must be idempotent per
// (PolicyDomain, Day): a builder that crashed after Enqueue but before
// marking the day done enqueues the same report again, and the sink must
// keep one.
type Sink interface {
	Enqueue(ctx context.Context, r BuiltReport) error
}

// SinkFunc adapts a function to a Sink.
type SinkFunc func(ctx context.Context, r BuiltReport) error

// Enqueue calls f(ctx, r).
func (f SinkFunc) Enqueue(ctx context.Context, r BuiltReport) error { return f(ctx, r) }
