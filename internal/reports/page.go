package reports

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
)

// Pagination of the query API (issue #11.3: one query returned 220 MB).
// Failures and ListRejected take Filter.Limit rows after Filter.Cursor,
// in their usual order; the cursor names the last row of the previous
// page (keyset pagination: stable while reports arrive). Summary pages
// by position in its sorted result when Limit or Cursor is set. The API
// answers at most MaxPageSize rows per request (DefaultPageSize when no
// limit is given) and links the next page with a Link header
// (rel="next", RFC 8288) whenever a page is full.
const (
	DefaultPageSize = 1000
	MaxPageSize     = 10000
	// maxCursor bounds the cursor text read from a query.
	maxCursor = 2048
)

// failureCursor is the sort key of a failure row.
type failureCursor struct {
	Day       string `json:"d"`
	Org       string `json:"o"`
	ReportID  string `json:"r"`
	Row       int64  `json:"i"` // reports.id: reports may share a report-id
	PolicySeq int    `json:"p"`
	Seq       int    `json:"s"`
}

type rejectedCursor struct {
	ReceivedAt int64 `json:"t"`
	ID         int64 `json:"i"`
}

type summaryCursor struct {
	Offset int `json:"n"`
}

func encodeCursor(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, v)
	}
	if err != nil {
		return fmt.Errorf("%w: cursor %q is not one this API gave out", ErrBadFilter, clipText(s, 40))
	}
	return nil
}

// NextFailures returns the cursor of the page after rows.
func NextFailures(rows []FailureRow) string {
	if len(rows) == 0 {
		return ""
	}
	r := rows[len(rows)-1]
	return encodeCursor(failureCursor{r.Day, r.Organization, r.ReportID, r.reportRow, r.policySeq, r.seq})
}

// NextRejected returns the cursor of the page after rows.
func NextRejected(rows []Rejected) string {
	if len(rows) == 0 {
		return ""
	}
	r := rows[len(rows)-1]
	return encodeCursor(rejectedCursor{r.ReceivedAt.Unix(), r.ID})
}

// failuresAfter is the WHERE condition (alias fd, reports r) of the rows
// after the cursor in Failures' order: day DESC, then organization,
// report_id, the report's row id (copies and conflicts share a report-id),
// policy_seq, seq ascending.
func failuresAfter(cursor string) (string, []any, error) {
	var c failureCursor
	if err := decodeCursor(cursor, &c); err != nil {
		return "", nil, err
	}
	return `(fd.day < ? OR fd.day = ? AND (fd.organization > ? OR fd.organization = ? AND (r.report_id > ? OR
		r.report_id = ? AND (r.id > ? OR r.id = ? AND (fd.policy_seq > ? OR fd.policy_seq = ? AND fd.seq > ?)))))`,
		[]any{c.Day, c.Day, c.Org, c.Org, c.ReportID, c.ReportID, c.Row, c.Row, c.PolicySeq, c.PolicySeq, c.Seq}, nil
}

// rejectedAfter is the condition of the rows after the cursor in
// ListRejected's order: received_at DESC, id DESC.
func rejectedAfter(cursor string) (string, []any, error) {
	var c rejectedCursor
	if err := decodeCursor(cursor, &c); err != nil {
		return "", nil, err
	}
	return "(received_at < ? OR received_at = ? AND id < ?)", []any{c.ReceivedAt, c.ReceivedAt, c.ID}, nil
}

// pageSummary cuts Summary's sorted rows to the page f asks for and
// returns the next cursor ("" on the last page).
func pageSummary(rows []SummaryRow, f Filter) ([]SummaryRow, string, error) {
	if f.Limit == 0 && f.Cursor == "" {
		return rows, "", nil
	}
	var c summaryCursor
	if f.Cursor != "" {
		if err := decodeCursor(f.Cursor, &c); err != nil {
			return nil, "", err
		}
	}
	start := min(max(c.Offset, 0), len(rows))
	end := min(start+limitOf(f), len(rows))
	next := ""
	if end < len(rows) {
		next = encodeCursor(summaryCursor{end})
	}
	return rows[start:end], next, nil
}

// pageFilter applies the API's page size to f: DefaultPageSize without a
// limit, ErrBadFilter above MaxPageSize.
func pageFilter(f Filter) (Filter, error) {
	switch {
	case f.Limit == 0:
		f.Limit = DefaultPageSize
	case f.Limit > MaxPageSize:
		return f, fmt.Errorf("%w: limit %d is above the maximum page size %d; follow the Link rel=\"next\" header", ErrBadFilter, f.Limit, MaxPageSize)
	}
	return f, nil
}

// linkNext sets the Link header to the request's URL with cursor next.
func linkNext(w http.ResponseWriter, r *http.Request, next string) {
	if next == "" {
		return
	}
	u := url.URL{Path: r.URL.Path}
	q := r.URL.Query()
	q.Set("cursor", next)
	u.RawQuery = q.Encode()
	w.Header().Set("Link", "<"+u.String()+`>; rel="next"`)
}
