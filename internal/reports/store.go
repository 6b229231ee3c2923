package reports

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/mailsts/mailsts/tlsrpt"
)

// Sentinel errors. Errors returned by stores wrap one of them (and the
// driver's cause) so that errors.Is reaches both.
var (
	// ErrNotFound means Show or RejectedRaw found nothing for the key. Tell
	// the user; nothing is wrong with the store.
	ErrNotFound = errors.New("reports: not found")
	// ErrStorage means the database failed (unreachable, disk full, locked
	// too long). Nothing was stored: a mail pipe must answer EX_TEMPFAIL so
	// the MTA retries, an HTTP receiver 503.
	ErrStorage = errors.New("reports: storage failed")
	// ErrSchemaTooNew means the database was migrated by a newer mailsts.
	// Upgrade mailsts or use another database; it is left untouched.
	ErrSchemaTooNew = errors.New("reports: database schema is newer than this program")
	// ErrBadFilter means a query filter or grouping is invalid (unknown
	// group-by key, until before since). Fix the request.
	ErrBadFilter = errors.New("reports: invalid query")
)

// Store keeps received reports and rejected input, and answers the
// queries of `mailsts tlsrpt` and the /api/v1 endpoints. SQLite and
// PostgreSQL implement it with the same schema and give identical query
// results on the same data. Implementations are safe for concurrent use.
type Store interface {
	// Migrate brings the schema to the current version. The Open*
	// functions call it; it is idempotent.
	Migrate(ctx context.Context) error
	// PutReport stores one parsed report with its raw input (compressed)
	// and normalised rows in one transaction. RFC 8460 §5.3 (RPT-RECV-4):
	// a report is named by (organization-name, report-id); storing one
	// with identical content again returns Duplicate=true and changes
	// nothing (except marking it authenticated when the copy is). One
	// with the same name and other content is stored too, and both are
	// flagged Conflict; Summary counts one of them (sqlstore/conflict.go).
	PutReport(ctx context.Context, in Incoming) (PutResult, error)
	// PutReports stores several reports in one transaction (bulk import:
	// one disk sync for the batch). On error nothing is stored.
	PutReports(ctx context.Context, ins []Incoming) ([]PutResult, error)
	// PutRejected keeps input that could not be stored as a report, with
	// the reason, for inspection. Rejected input is never dropped silently.
	// A rejection with a Key already stored is not stored again: the
	// existing row's id is returned.
	PutRejected(ctx context.Context, r Rejection) (int64, error)
	// TrimRejected deletes the oldest rejected input until the rows kept
	// cost at most maxBytes (raw bytes as stored, detail and origin), and
	// returns how many rows it deleted.
	TrimRejected(ctx context.Context, maxBytes int64) (int64, error)
	// Prune deletes, in one transaction, the reports whose day is before
	// p.Before with their policies, failure details and rollup rows, and
	// the rejected input received before that day; with p.DryRun it only
	// counts. Reports still pending for the rollup are folded first (a
	// dry run too), so a dry run counts what the prune deletes. Summary
	// afterwards equals the summary of the reports kept.
	Prune(ctx context.Context, p Prune) (PruneResult, error)
	// Summary aggregates session counts over the reports matching f.
	Summary(ctx context.Context, f Filter) ([]SummaryRow, error)
	// Reporters counts, per (policy domain, organisation), the reports
	// matching f (as Summary grouped by domain and organisation) and
	// gives the last day of one, ordered by domain then organisation.
	// GroupBy is ignored.
	Reporters(ctx context.Context, f Filter) ([]ReporterRow, error)
	// Failures lists failure details matching f, newest day first.
	Failures(ctx context.Context, f Filter) ([]FailureRow, error)
	// ListReports lists the reports having a policy that matches f
	// (days, domains, organisation, MX host, result type), newest day
	// first, at most f.Limit (0: DefaultLimit). Cursor is not supported.
	ListReports(ctx context.Context, f Filter) ([]ReportRow, error)
	// FailureGroups sums the failed-session-count of the failure details
	// matching f (as Failures) per value of one key (a FailureKey*
	// constant), largest first, at most f.Limit groups (0: DefaultLimit).
	FailureGroups(ctx context.Context, f Filter, key string) ([]FailureGroup, error)
	// Show returns every stored report with this report-id (normally one;
	// two organisations may use the same id). ErrNotFound when none.
	Show(ctx context.Context, reportID string) ([]StoredReport, error)
	// ListRejected lists rejected input, newest first (Raw left empty).
	ListRejected(ctx context.Context, f Filter) ([]Rejected, error)
	// RejectedRaw returns one rejected input with its raw bytes.
	RejectedRaw(ctx context.Context, id int64) (Rejected, error)
	// Close releases the database.
	Close() error
}

// Sources of input, stored with each report and rejection.
const (
	SourceHTTP    = "http"
	SourceMail    = "mail" // one message on stdin
	SourceMaildir = "maildir"
	SourceIMAP    = "imap"
	SourceFile    = "file"
)

// Incoming is a report ready to store.
type Incoming struct {
	Report *tlsrpt.Report
	// Raw is the input as received (HTTP body, mail message or file);
	// stored compressed.
	Raw []byte
	// Source is one of the Source* constants; Origin says more (file
	// name, remote address, Message-Id).
	Source string
	Origin string
	// ReceivedAt is when the input arrived (UTC, whole seconds stored).
	ReceivedAt time.Time
	// Repairs are the normalisations applied while decoding and parsing.
	Repairs []tlsrpt.Repair
	// Problems are semantic flags: tlsrpt.Report.Problems and, for mail,
	// tlsrpt.CheckConsistency.
	Problems []tlsrpt.Problem
	// Submitter is the TLS-Report-Submitter header (mail) or the
	// contact-info domain; DKIMDomain the domain whose signature passed.
	Submitter  string
	DKIMDomain string
	// Authenticated is true when the report is known to come from its
	// organisation: a mail whose DKIM signature belongs to it. HTTPS
	// reports are not authenticated (RFC 8460 §5.3), nor are files.
	Authenticated bool
}

// PutResult says what PutReport did.
type PutResult struct {
	// ID is the store's row id of the report (the existing one for a
	// duplicate). IDs are backend-specific.
	ID        int64
	Duplicate bool
	// Conflict is true when another report with the same organisation
	// and report-id but other content is stored.
	Conflict bool
}

// Prune selects what Store.Prune deletes.
type Prune struct {
	// Before is the first day kept (UTC date; time of day ignored).
	Before time.Time
	DryRun bool
}

// PruneResult counts what Prune deleted (or would delete).
type PruneResult struct {
	Reports    int64 `json:"reports"`
	RollupRows int64 `json:"rollup_rows"`
	Rejected   int64 `json:"rejected"`
}

// Rejection is input that is not stored as a report.
type Rejection struct {
	Raw []byte
	// SHA256 is the hex SHA-256 of the whole input when Raw is only its
	// beginning and the whole was read; empty otherwise.
	SHA256 string
	// Key identifies the input across retries (a Maildir file's unique
	// name and content hash); empty for none. See Store.PutRejected.
	Key string
	// Truncated is true when Raw is only the first part of the input (a
	// body above the size cap is not read to the end); Size is then the
	// declared size, or -1 when unknown.
	Truncated  bool
	Size       int64
	Source     string
	Origin     string
	ReceivedAt time.Time
	// Reason is a short code (see the Reason* constants), Detail the error
	// text.
	Reason string
	Detail string
}

// Rejection reasons.
const (
	ReasonTooLarge    = "too-large"
	ReasonBadType     = "unsupported-type"
	ReasonSyntax      = "syntax"
	ReasonNoReport    = "no-report"
	ReasonDKIM        = "dkim"
	ReasonFutureDate  = "future-date"
	ReasonNoReportID  = "no-report-id"
	ReasonReadFailure = "read-failure"
	ReasonImplausible = "implausible-count"
)

// Rejected is a stored rejection.
type Rejected struct {
	ID         int64     `json:"id"`
	ReceivedAt time.Time `json:"received_at"`
	Source     string    `json:"source"`
	Origin     string    `json:"origin,omitempty"`
	Reason     string    `json:"reason"`
	Detail     string    `json:"detail"`
	Size       int64     `json:"size"`
	Truncated  bool      `json:"truncated"`
	SHA256     string    `json:"sha256,omitempty"`
	Raw        []byte    `json:"-"`
}

// StoredReport is a report as stored: metadata, the report rebuilt from
// the normalised rows, and the raw input.
type StoredReport struct {
	ID         int64     `json:"id"`
	ReceivedAt time.Time `json:"received_at"`
	Source     string    `json:"source"`
	Origin     string    `json:"origin,omitempty"`
	Submitter  string    `json:"submitter,omitempty"`
	DKIMDomain string    `json:"dkim_domain,omitempty"`
	// Authenticated: see Incoming. Conflict: another report with this
	// organisation and report-id has other content. Counted: Summary
	// counts this one of its key (sqlstore/conflict.go). ContentHash is the
	// SHA-256 of the canonical report ("" until computed for reports
	// stored by an older version).
	Authenticated bool             `json:"authenticated"`
	Conflict      bool             `json:"conflict"`
	Counted       bool             `json:"counted"`
	ContentHash   string           `json:"content_hash,omitempty"`
	Repairs       []tlsrpt.Repair  `json:"repairs"`
	Problems      []tlsrpt.Problem `json:"problems"`
	RawSize       int64            `json:"raw_size"`
	Report        *tlsrpt.Report   `json:"-"`
	Raw           []byte           `json:"-"`
}

// LogValue implements slog.LogValuer.
func (s StoredReport) LogValue() slog.Value {
	return slog.GroupValue(slog.Int64("id", s.ID), slog.String("source", s.Source), slog.Any("report", s.Report))
}

// Group-by keys of Summary.
const (
	GroupDay          = "day"
	GroupPolicyDomain = "domain"
	GroupOrganization = "org"
	GroupMXHost       = "mx"
	GroupResultType   = "result"
	GroupPolicyType   = "type"
)

// DefaultGroupBy returns Summary's grouping when Filter.GroupBy is empty:
// day, policy domain, organisation.
func DefaultGroupBy() []string { return []string{GroupDay, GroupPolicyDomain, GroupOrganization} }

// Filter selects reports. Zero fields select everything. Days are UTC
// dates of the report's start-datetime.
type Filter struct {
	// Since and Until bound the report day, inclusive (time of day ignored).
	Since, Until time.Time
	// PolicyDomain, Organization and ResultType match exactly
	// (case-insensitively for domains). MXHost matches an element of the
	// policy's mx-host list, the policy domain (TLSA policies are keyed by
	// the MX host) or, in Failures, the receiving-mx-hostname.
	PolicyDomain string
	Organization string
	MXHost       string
	ResultType   string
	// Domains, when not empty, keeps only these policy domains (matched
	// case-insensitively), on top of PolicyDomain: the scope of a user
	// limited to some domains (Scoped). Not read from query strings.
	Domains []string
	// SendingIP matches a failure detail's sending-mta-ip (Failures and
	// FailureGroups only).
	SendingIP string
	// GroupBy lists Summary's keys (Group* constants); empty means
	// DefaultGroupBy.
	GroupBy []string
	// Limit caps Failures and ListRejected rows; 0 means 1000.
	Limit int
	// AuthenticatedOnly keeps only authenticated reports (Incoming) in
	// Summary and Failures. Summary then aggregates the policy rows
	// instead of the rollup.
	AuthenticatedOnly bool
	// Cursor, from NextFailures, NextReports or NextRejected (or the
	// API's Link header), starts the list after the last row of the
	// previous page.
	Cursor string
}

// SummaryRow is one group of Summary. Keys not grouped by are empty.
//
// Without GroupResultType, Successful and Failed are the policies'
// summary totals. With it, each failure result type gets a row whose
// Failed sums its failed-session-count (details may overlap, RFC 8460
// §4, RPT-AGG-4), failures without details count under result type
// "(no-details)", and successful sessions get the row "(success)".
type SummaryRow struct {
	Day          string `json:"day,omitempty"`
	PolicyDomain string `json:"policy_domain,omitempty"`
	Organization string `json:"organization,omitempty"`
	MXHost       string `json:"mx_host,omitempty"`
	PolicyType   string `json:"policy_type,omitempty"`
	ResultType   string `json:"result_type,omitempty"`
	Reports      int64  `json:"reports"`
	Successful   int64  `json:"successful_sessions"`
	Failed       int64  `json:"failed_sessions"`
	// SuccessRate is Successful/(Successful+Failed), nil when there were
	// no sessions or when grouping by result type.
	SuccessRate *float64 `json:"success_rate"`
}

// ReporterRow is one row of Reporters.
type ReporterRow struct {
	PolicyDomain string `json:"policy_domain"`
	Organization string `json:"organization"`
	Reports      int64  `json:"reports"`
	// LastDay is the last day (YYYY-MM-DD) with a matching report.
	LastDay string `json:"last_day"`
}

// Pseudo result types of SummaryRow when grouping by result type.
const (
	ResultSuccess   = "(success)"
	ResultNoDetails = "(no-details)"
)

// FailureRow is one failure detail with the keys of its report and policy.
type FailureRow struct {
	Day                   string `json:"day"`
	Organization          string `json:"organization"`
	ReportID              string `json:"report_id"`
	PolicyType            string `json:"policy_type"`
	PolicyDomain          string `json:"policy_domain"`
	MXHost                string `json:"mx_host"`
	ResultType            string `json:"result_type"`
	SendingMTAIP          string `json:"sending_mta_ip,omitempty"`
	ReceivingMXHostname   string `json:"receiving_mx_hostname,omitempty"`
	ReceivingMXHelo       string `json:"receiving_mx_helo,omitempty"`
	ReceivingIP           string `json:"receiving_ip,omitempty"`
	FailedSessionCount    int64  `json:"failed_session_count"`
	AdditionalInformation string `json:"additional_information,omitempty"`
	FailureReasonCode     string `json:"failure_reason_code,omitempty"`
	// Authenticated and Conflict are the report's (StoredReport).
	Authenticated bool `json:"authenticated"`
	Conflict      bool `json:"conflict"`

	// Position is where the row sits in Failures' order, set by the
	// store for NextFailures; not part of the JSON.
	Position FailurePosition `json:"-"`
}

// FailurePosition is the position of a failure row: its report's row id
// in the store, the policy's and the detail's index.
type FailurePosition struct {
	ReportRow      int64
	PolicySeq, Seq int
}

// MaxFilterDomains bounds Filter.Domains (one query parameter each).
const MaxFilterDomains = 1000

// ReportRow is one report of ListReports: its keys and the session totals
// of its policies that match the filter.
type ReportRow struct {
	ID            int64  `json:"id"`
	Day           string `json:"day"`
	Organization  string `json:"organization"`
	ReportID      string `json:"report_id"`
	Authenticated bool   `json:"authenticated"`
	Conflict      bool   `json:"conflict"`
	Counted       bool   `json:"counted"`
	// Policies counts the matching policies; Successful and Failed sum
	// their summary totals.
	Policies   int64 `json:"policies"`
	Successful int64 `json:"successful_sessions"`
	Failed     int64 `json:"failed_sessions"`
}

// Keys of FailureGroups.
const (
	FailureKeyResult     = "result"
	FailureKeyMX         = "mx"  // receiving-mx-hostname
	FailureKeySendingIP  = "ip"  // sending-mta-ip
	FailureKeyOrg        = "org" // reporting organisation
	FailureKeyReceiverIP = "receiving-ip"
)

// FailureGroup is one group of FailureGroups: the key's value, the
// failed sessions of its details, how many details and reports.
type FailureGroup struct {
	Key     string `json:"key"`
	Failed  int64  `json:"failed_sessions"`
	Details int64  `json:"details"`
	Reports int64  `json:"reports"`
}
