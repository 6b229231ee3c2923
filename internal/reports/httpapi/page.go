package httpapi

import (
	"fmt"
	"net/http"
	"net/url"

	"github.com/mailsts/mailsts/internal/reports"
)

// summaryCursor is a position in Summary's sorted result.
type summaryCursor struct {
	Offset int `json:"n"`
}

// pageSummary cuts Summary's sorted rows to the page f asks for and
// returns the next cursor ("" on the last page).
func pageSummary(rows []reports.SummaryRow, f reports.Filter) ([]reports.SummaryRow, string, error) {
	if f.Limit == 0 && f.Cursor == "" {
		return rows, "", nil
	}
	var c summaryCursor
	if f.Cursor != "" {
		if err := reports.DecodeCursor(f.Cursor, &c); err != nil {
			return nil, "", err
		}
	}
	start := min(max(c.Offset, 0), len(rows))
	end := min(start+f.LimitOrDefault(), len(rows))
	next := ""
	if end < len(rows) {
		next = reports.EncodeCursor(summaryCursor{end})
	}
	return rows[start:end], next, nil
}

// pageFilter applies the API's page size to f: DefaultPageSize without a
// limit, ErrBadFilter above MaxPageSize.
func pageFilter(f reports.Filter) (reports.Filter, error) {
	switch {
	case f.Limit == 0:
		f.Limit = reports.DefaultPageSize
	case f.Limit > reports.MaxPageSize:
		return f, fmt.Errorf("%w: limit %d is above the maximum page size %d; follow the Link rel=\"next\" header", reports.ErrBadFilter, f.Limit, reports.MaxPageSize)
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
