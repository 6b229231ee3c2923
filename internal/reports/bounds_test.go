package reports

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/mailsts/mailsts/tlsrpt"
)

// detailBomb is a gzip report whose policy holds n empty failure details:
// the shape that got `mailsts serve` OOM-killed at 3 GB (issue #11.3).
func detailBomb(t testing.TB, n int) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write([]byte(`{"organization-name":"Bomb","date-range":{"start-datetime":"2025-01-01T00:00:00Z","end-datetime":"2025-01-01T23:59:59Z"},` +
		`"contact-info":"x@bomb.example","report-id":"bomb","policies":[{"policy":{"policy-type":"sts","policy-string":["version: STSv1"],` +
		`"policy-domain":"example.org","mx-host":["mx.example.org"]},"summary":{"total-successful-session-count":1,"total-failure-session-count":1},` +
		`"failure-details":[{}`))
	chunk := bytes.Repeat([]byte(",{}"), 100000)
	for range n / 100000 {
		zw.Write(chunk)
	}
	zw.Write([]byte(`]}]}`))
	zw.Close()
	return buf.Bytes()
}

// TestIngestDetailBomb: one request with the 19 KB bomb of 6.5 million
// empty failure details, received, parsed and stored, allocates less than
// 96 MiB in all (it was OOM-killed at 3 GB), stores one merged detail and
// one report whose Show answer is small (it was 220 MB).
func TestIngestDetailBomb(t *testing.T) { // RPT-RECV-2
	// Not parallel: the allocation count is process-wide, and sequential
	// tests run alone.
	st := openTestSQLite(t)
	in := newIngester(st, DKIMOff, nil)
	body := detailBomb(t, 6_500_000)
	var res Result
	var err error
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	res, err = in.Body(context.Background(), bytes.NewReader(body), tlsrpt.MediaTypeGzip, int64(len(body)), SourceHTTP, "192.0.2.1:1")
	runtime.ReadMemStats(&after)
	mustOutcome(t, res, err, OutcomeStored)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d-byte body, 6.5 million details: %.1f MiB allocated for the request", len(body), float64(alloc)/(1<<20))
	bound := uint64(96 << 20)
	if raceEnabled {
		bound *= 2
	}
	if alloc > bound {
		t.Errorf("the request allocated %d bytes, want < %d MiB", alloc, bound>>20)
	}
	got, err := st.Show(context.Background(), "bomb")
	if err != nil {
		t.Fatal(err)
	}
	if fd := got[0].Report.Policies[0].FailureDetails; len(fd) != 1 || !hasRepair(got[0].Repairs, "failure-details-merged") {
		t.Errorf("stored %d details, repairs %v", len(fd), got[0].Repairs)
	}
}

// TestAPIPagination: every list answer is bounded (issue #11.3: one
// query returned 220 MB); following the Link headers gives every row
// once, in the same order as one big query.
func TestAPIPagination(t *testing.T) {
	t.Parallel()
	st := openTestSQLite(t)
	srv := newTestServer(t, st, tlsrpt.Limits{})
	ctx := context.Background()
	for i := range 40 {
		put(t, st, synthReport(i), nil)
		st.PutRejected(ctx, Rejection{Raw: []byte("x"), Source: SourceHTTP, ReceivedAt: fixedNow(), Reason: ReasonSyntax})
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
	var page, all []FailureRow
	if n := walk("/api/v1/failures?limit=7", &page, func() { all = append(all, page...); page = nil }); n < 3 {
		t.Errorf("%d pages", n)
	}
	want, _ := st.Failures(ctx, Filter{Limit: MaxPageSize})
	for i := range want {
		want[i].reportRow, want[i].policySeq, want[i].seq = 0, 0, 0 // not in the JSON
	}
	if len(want) < 20 || !reflect.DeepEqual(all, want) {
		t.Errorf("paged failures: %d rows, want %d in the same order", len(all), len(want))
	}
	var rpage, rall []Rejected
	walk("/api/v1/rejected?limit=9", &rpage, func() { rall = append(rall, rpage...); rpage = nil })
	rwant, _ := st.ListRejected(ctx, Filter{Limit: MaxPageSize})
	if len(rall) != 40 || !reflect.DeepEqual(rall, rwant) {
		t.Errorf("paged rejected: %d rows", len(rall))
	}
	var spage, sall []SummaryRow
	walk("/api/v1/summary?group-by=day,org&limit=5", &spage, func() { sall = append(sall, spage...); spage = nil })
	swant, _ := st.Summary(ctx, Filter{GroupBy: []string{GroupDay, GroupOrganization}})
	if len(sall) != len(swant) || !reflect.DeepEqual(sall, swant) {
		t.Errorf("paged summary: %d rows, want %d", len(sall), len(swant))
	}
	// Without a limit a page is DefaultPageSize rows; above MaxPageSize
	// is refused; a forged cursor too.
	for url, code := range map[string]int{
		"/api/v1/failures?limit=10001":                                400,
		"/api/v1/rejected?limit=1000000":                              400,
		"/api/v1/failures?cursor=bogus":                               400,
		"/api/v1/summary?cursor=e30":                                  200,
		"/api/v1/rejected?cursor=" + strings.Repeat("A", maxCursor+1): 400,
	} {
		var x any
		if got := getJSON(t, srv.URL+url, &x); got != code {
			t.Errorf("%s: %d, want %d", url, got, code)
		}
	}
}

// TestCursorsBothBackends: the keyset cursors give the same pages on
// SQLite and PostgreSQL.
func TestCursorsBothBackends(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, st Store) {
		ctx := context.Background()
		for i := range 30 {
			put(t, st, synthReport(i), nil)
		}
		want, _ := st.Failures(ctx, Filter{Limit: MaxPageSize})
		var all []FailureRow
		f := Filter{Limit: 4}
		for range 100 {
			page, err := st.Failures(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, page...)
			if len(page) < f.Limit {
				break
			}
			f.Cursor = NextFailures(page)
		}
		if len(want) < 10 || !reflect.DeepEqual(all, want) {
			t.Errorf("paged %d rows, want %d", len(all), len(want))
		}
	})
}

func decodeJSON(t *testing.T, resp *http.Response, v any) {
	t.Helper()
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}
