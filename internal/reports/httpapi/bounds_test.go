package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/reportstest"
	"github.com/mailsts/mailsts/internal/reports/sqlstore/sqlstoretest"
	"github.com/mailsts/mailsts/tlsrpt"
)

// TestAPIPagination: every list answer is bounded (issue #11.3: one
// query returned 220 MB); following the Link headers gives every row
// once, in the same order as one big query.
func TestAPIPagination(t *testing.T) {
	t.Parallel()
	st := sqlstoretest.OpenSQLite(t)
	srv := newTestServer(t, st, tlsrpt.Limits{})
	ctx := context.Background()
	for i := range 40 {
		reportstest.Put(t, st, reportstest.SynthReport(i), nil)
		st.PutRejected(ctx, reports.Rejection{Raw: []byte("x"), Source: reports.SourceHTTP, ReceivedAt: reportstest.FixedNow(), Reason: reports.ReasonSyntax})
	}
	link := regexp.MustCompile(`^<([^>]+)>; rel="next"$`)
	walk := func(path string, v any, appendPage func()) int {
		t.Helper()
		pages := 0
		for url := srv.URL + path; url != ""; pages++ {
			if pages > 100 {
				t.Fatal("more than 100 pages")
			}
			resp, err := http.Get(url)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 200 {
				t.Fatalf("%s: %d", url, resp.StatusCode)
			}
			decodeJSON(t, resp, v)
			appendPage()
			url = ""
			if m := link.FindStringSubmatch(resp.Header.Get("Link")); m != nil {
				url = srv.URL + m[1]
			}
		}
		return pages
	}
	var page, all []reports.FailureRow
	if n := walk("/api/v1/failures?limit=7", &page, func() { all = append(all, page...); page = nil }); n < 3 {
		t.Errorf("%d pages", n)
	}
	want, _ := st.Failures(ctx, reports.Filter{Limit: reports.MaxPageSize})
	for i := range want {
		want[i].Position = reports.FailurePosition{} // not in the JSON
	}
	if len(want) < 20 || !reflect.DeepEqual(all, want) {
		t.Errorf("paged failures: %d rows, want %d in the same order", len(all), len(want))
	}
	var rpage, rall []reports.Rejected
	walk("/api/v1/rejected?limit=9", &rpage, func() { rall = append(rall, rpage...); rpage = nil })
	rwant, _ := st.ListRejected(ctx, reports.Filter{Limit: reports.MaxPageSize})
	if len(rall) != 40 || !reflect.DeepEqual(rall, rwant) {
		t.Errorf("paged rejected: %d rows", len(rall))
	}
	var spage, sall []reports.SummaryRow
	walk("/api/v1/summary?group-by=day,org&limit=5", &spage, func() { sall = append(sall, spage...); spage = nil })
	swant, _ := st.Summary(ctx, reports.Filter{GroupBy: []string{reports.GroupDay, reports.GroupOrganization}})
	if len(sall) != len(swant) || !reflect.DeepEqual(sall, swant) {
		t.Errorf("paged summary: %d rows, want %d", len(sall), len(swant))
	}
	// Without a limit a page is DefaultPageSize rows; above MaxPageSize
	// is refused; a forged cursor too.
	for url, code := range map[string]int{
		"/api/v1/failures?limit=10001":                                        400,
		"/api/v1/rejected?limit=1000000":                                      400,
		"/api/v1/failures?cursor=bogus":                                       400,
		"/api/v1/summary?cursor=e30":                                          200,
		"/api/v1/rejected?cursor=" + strings.Repeat("A", reports.MaxCursor+1): 400,
	} {
		var x any
		if got := getJSON(t, srv.URL+url, &x); got != code {
			t.Errorf("%s: %d, want %d", url, got, code)
		}
	}
}

func decodeJSON(t *testing.T, resp *http.Response, v any) {
	t.Helper()
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}
