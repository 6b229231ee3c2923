package reports

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ParseFilter reads a Filter from query parameters: since, until
// (YYYY-MM-DD), domain, org, mx, result, group-by (comma-separated),
// authenticated (true or only: AuthenticatedOnly) and limit. Errors wrap
// ErrBadFilter.
func ParseFilter(q url.Values) (Filter, error) {
	var f Filter
	var err error
	if f.Since, err = ParseDay(q.Get("since")); err != nil {
		return f, err
	}
	if f.Until, err = ParseDay(q.Get("until")); err != nil {
		return f, err
	}
	f.PolicyDomain = q.Get("domain")
	f.Organization = q.Get("org")
	f.MXHost = q.Get("mx")
	f.ResultType = q.Get("result")
	if g := q.Get("group-by"); g != "" {
		f.GroupBy = SplitList(g)
	}
	if a := q.Get("authenticated"); a != "" {
		b, err := strconv.ParseBool(a)
		if err != nil && a != "only" {
			return f, fmt.Errorf("%w: authenticated %q is not true, false or only", ErrBadFilter, a)
		}
		f.AuthenticatedOnly = b || a == "only"
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			return f, fmt.Errorf("%w: limit %q is not a non-negative number", ErrBadFilter, l)
		}
		f.Limit = n
	}
	if c := q.Get("cursor"); c != "" {
		if len(c) > MaxCursor {
			return f, fmt.Errorf("%w: cursor longer than %d bytes", ErrBadFilter, MaxCursor)
		}
		f.Cursor = c
	}
	return f, nil
}

// ParseDay parses YYYY-MM-DD as a UTC date; "" gives the zero time.
func ParseDay(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: date %q is not YYYY-MM-DD", ErrBadFilter, s)
	}
	return t, nil
}

// SplitList splits a comma-separated list, dropping empty elements.
func SplitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// ShowFiltered is Store.Show keeping only the authenticated reports when
// f.AuthenticatedOnly; ErrNotFound when none is left.
func ShowFiltered(ctx context.Context, st Store, reportID string, f Filter) ([]StoredReport, error) {
	rs, err := st.Show(ctx, reportID)
	if err != nil || !f.AuthenticatedOnly {
		return rs, err
	}
	var out []StoredReport
	for _, sr := range rs {
		if sr.Authenticated {
			out = append(out, sr)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no authenticated report with report-id %q", ErrNotFound, reportID)
	}
	return out, nil
}
