package reports

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
)

// Pagination of the query API (one unbounded query once returned 220 MB).
// Failures, ListReports and ListRejected take Filter.Limit rows after Filter.Cursor,
// in their usual order; the cursor names the last row of the previous
// page (keyset pagination: stable while reports arrive). Summary pages
// by position in its sorted result when Limit or Cursor is set. The API
// answers at most MaxPageSize rows per request (DefaultPageSize when no
// limit is given) and links the next page with a Link header
// (rel="next", RFC 8288) whenever a page is full.
const (
	DefaultPageSize = 1000
	MaxPageSize     = 10000
	// MaxCursor bounds the cursor text read from a query.
	MaxCursor = 2048
	// DefaultLimit caps Failures and ListRejected when Filter.Limit is 0.
	DefaultLimit = 1000
)

// LimitOrDefault is f.Limit, or DefaultLimit when it is not positive.
func (f Filter) LimitOrDefault() int {
	if f.Limit <= 0 {
		return DefaultLimit
	}
	return f.Limit
}

// FailureCursor is the sort key of a failure row: Failures' order is day
// DESC, then organization, report_id, the report's row id (copies and
// conflicts share a report-id), policy_seq, seq ascending.
type FailureCursor struct {
	Day       string `json:"d"`
	Org       string `json:"o"`
	ReportID  string `json:"r"`
	Row       int64  `json:"i"` // reports.id: reports may share a report-id
	PolicySeq int    `json:"p"`
	Seq       int    `json:"s"`
}

// ReportCursor is the sort key of ListReports' rows: day DESC, then
// organization, report_id and the report's row id ascending.
type ReportCursor struct {
	Day      string `json:"d"`
	Org      string `json:"o"`
	ReportID string `json:"r"`
	Row      int64  `json:"i"`
}

// RejectedCursor is the sort key of a rejected input: ListRejected's
// order is received_at DESC, id DESC.
type RejectedCursor struct {
	ReceivedAt int64 `json:"t"`
	ID         int64 `json:"i"`
}

// EncodeCursor encodes a cursor value (FailureCursor, RejectedCursor, or a
// position in a sorted result) as the opaque text the API gives out.
func EncodeCursor(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeCursor decodes the text of EncodeCursor into v. Errors wrap
// ErrBadFilter.
func DecodeCursor(s string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, v)
	}
	if err != nil {
		return fmt.Errorf("%w: cursor %q is not one this API gave out", ErrBadFilter, ClipText(s, 40))
	}
	return nil
}

// NextFailures returns the cursor of the page after rows.
func NextFailures(rows []FailureRow) string {
	if len(rows) == 0 {
		return ""
	}
	r := rows[len(rows)-1]
	return EncodeCursor(FailureCursor{r.Day, r.Organization, r.ReportID, r.Position.ReportRow, r.Position.PolicySeq, r.Position.Seq})
}

// NextReports returns the cursor of the page after rows.
func NextReports(rows []ReportRow) string {
	if len(rows) == 0 {
		return ""
	}
	r := rows[len(rows)-1]
	return EncodeCursor(ReportCursor{r.Day, r.Organization, r.ReportID, r.ID})
}

// NextRejected returns the cursor of the page after rows.
func NextRejected(rows []Rejected) string {
	if len(rows) == 0 {
		return ""
	}
	r := rows[len(rows)-1]
	return EncodeCursor(RejectedCursor{r.ReceivedAt.Unix(), r.ID})
}

// ClipText cuts s to n bytes, marking the cut with "…" (error text shown
// to clients and kept with rejected input).
func ClipText(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
