package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/ingest"
	"github.com/mailsts/mailsts/internal/reports/reportstest"
	"github.com/mailsts/mailsts/internal/reports/sqlstore/sqlstoretest"
	"github.com/mailsts/mailsts/tlsrpt"
)

func newTestServer(t *testing.T, st reports.Store, lim tlsrpt.Limits) *httptest.Server {
	t.Helper()
	in := newIngester(st, ingest.DKIMOff, nil)
	in.Limits = lim
	mux := http.NewServeMux()
	mux.Handle("/tlsrpt", &Receiver{Ingester: in})
	mux.Handle("/api/v1/", (&API{Store: st}).Handler("/api/v1"))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func post(t *testing.T, url, ctype string, body io.Reader) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, body)
	req.Header.Set("Content-Type", ctype)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, string(b)
}

func TestReceiver(t *testing.T) { // RPT-HTTP-1, RPT-HTTP-2, RPT-HTTP-3, RPT-RECV-2
	t.Parallel()
	st := sqlstoretest.OpenSQLite(t)
	srv := newTestServer(t, st, tlsrpt.Limits{MaxInput: 1 << 20, MaxOutput: 2 << 20})
	ctx := context.Background()
	c, _, _ := tlsrpt.Parse(reportstest.ReadFile(t, "../../../tlsrpt/testdata/f10c.json"))
	gzBody, _ := tlsrpt.MarshalGzip(c)

	if code, body := post(t, srv.URL+"/tlsrpt", tlsrpt.MediaTypeGzip, bytes.NewReader(gzBody)); code != http.StatusCreated || !strings.Contains(body, "stored") {
		t.Errorf("first POST: %d %s", code, body)
	}
	// 201 only after the commit: the report is there now.
	if got, err := st.Show(ctx, c.ReportID); err != nil || len(got) != 1 || !bytes.Equal(got[0].Raw, gzBody) {
		t.Fatalf("after 201: %v %v", got, err)
	}
	if code, body := post(t, srv.URL+"/tlsrpt", "application/json", bytes.NewReader(reportstest.ReadFile(t, "../../../tlsrpt/testdata/f10b.json"))); code != http.StatusOK || !strings.Contains(body, "duplicate") {
		t.Errorf("duplicate POST: %d %s", code, body)
	}
	bomb := reportstest.Gzip(t, append([]byte("{"), bytes.Repeat([]byte(" "), 3<<20)...))
	cases := []struct {
		name, ctype string
		body        []byte
		code        int
		text        string
	}{
		{"gzip bomb", tlsrpt.MediaTypeGzip, bomb, http.StatusRequestEntityTooLarge, "too large"},
		{"invalid JSON", tlsrpt.MediaTypeJSON, []byte(`{"policies": [`), http.StatusBadRequest, "not a TLS report"},
		{"wrong type", "text/html", []byte("<p>hi</p>"), http.StatusUnsupportedMediaType, "application/tlsrpt+gzip"},
		{"future", tlsrpt.MediaTypeJSON, func() []byte {
			r := reportstest.SynthReport(3)
			r.DateRange = tlsrpt.DayRange(reportstest.FixedNow().AddDate(0, 0, 3))
			b, _ := tlsrpt.Marshal(r)
			return b
		}(), http.StatusBadRequest, "future"},
	}
	for _, tc := range cases {
		code, body := post(t, srv.URL+"/tlsrpt", tc.ctype, bytes.NewReader(tc.body))
		if code != tc.code || !strings.Contains(body, tc.text) || !strings.Contains(body, "kept for inspection") {
			t.Errorf("%s: %d %q", tc.name, code, body)
		}
	}
	rej, _ := st.ListRejected(ctx, reports.Filter{})
	if len(rej) != len(cases) {
		t.Errorf("%d rejections kept, want %d", len(rej), len(cases))
	}
	// GET is not a report.
	resp, err := http.Get(srv.URL + "/tlsrpt")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
		t.Errorf("GET: %d", resp.StatusCode)
	}
}

// endless yields n bytes without allocating them and counts what was read.
// The count is atomic: the HTTP transport's writer goroutine may still be
// reading the body after Do has returned the server's early answer.
type endless struct {
	n    int64
	read atomic.Int64
}

func (e *endless) Read(p []byte) (int, error) {
	if e.n <= 0 {
		return 0, io.EOF
	}
	k := min(int64(len(p)), e.n)
	clear(p[:k])
	e.n -= k
	e.read.Add(k)
	return int(k), nil
}

func TestReceiver100MB(t *testing.T) { // RPT-RECV-2: 413 without reading it all
	t.Parallel()
	st := sqlstoretest.OpenSQLite(t)
	srv := newTestServer(t, st, tlsrpt.Limits{})
	for _, chunked := range []bool{false, true} {
		src := &endless{n: 100 << 20}
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/tlsrpt", src)
		req.Header.Set("Content-Type", tlsrpt.MediaTypeGzip)
		if !chunked {
			req.ContentLength = 100 << 20
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			// The server may close the connection while the client is
			// still sending; then check what was read.
			t.Logf("chunked=%v: %v", chunked, err)
		} else {
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Errorf("chunked=%v: status %d", chunked, resp.StatusCode)
			}
		}
		// A bound on work, not on time: the client got its answer before
		// sending most of the 100 MB.
		if sent := src.read.Load(); sent > 40<<20 {
			t.Errorf("chunked=%v: client sent %d MB before the answer", chunked, sent>>20)
		}
	}
	rej, _ := st.ListRejected(context.Background(), reports.Filter{})
	if len(rej) != 2 || !rej[0].Truncated || rej[0].Reason != reports.ReasonTooLarge {
		t.Errorf("rejections %+v", rej)
	}
}

func TestReceiverStorageDown(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, reportstest.FailingStore{}, tlsrpt.Limits{})
	code, body := post(t, srv.URL+"/tlsrpt", tlsrpt.MediaTypeJSON, bytes.NewReader(reportstest.ReadFile(t, "../../../tlsrpt/testdata/f10c.json")))
	if code != http.StatusServiceUnavailable || strings.Contains(body, "storage failed") {
		t.Errorf("%d %q (cause must stay in the log)", code, body)
	}
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}

func TestAPI(t *testing.T) {
	t.Parallel()
	st := sqlstoretest.OpenSQLite(t)
	srv := newTestServer(t, st, tlsrpt.Limits{})
	for i := 0; i < 20; i++ {
		reportstest.Put(t, st, reportstest.SynthReport(i), nil)
	}
	var rows []reports.SummaryRow
	if code := getJSON(t, srv.URL+"/api/v1/summary?group-by=domain&since=2025-01-01", &rows); code != 200 || len(rows) == 0 {
		t.Fatalf("summary %d %v", code, rows)
	}
	want, _ := st.Summary(context.Background(), reports.Filter{GroupBy: []string{reports.GroupPolicyDomain}})
	if len(rows) != len(want) || rows[0].Successful != want[0].Successful {
		t.Errorf("API summary %+v, store %+v", rows, want)
	}
	var fails []reports.FailureRow
	if code := getJSON(t, srv.URL+"/api/v1/failures?result=tlsa-invalid&limit=2", &fails); code != 200 || len(fails) != 2 || fails[0].ResultType != "tlsa-invalid" {
		t.Errorf("failures %d %+v", code, fails)
	}
	var shown []map[string]any
	id := reportstest.SynthReport(4).ReportID
	if code := getJSON(t, srv.URL+"/api/v1/reports/"+id, &shown); code != 200 || len(shown) != 1 {
		t.Fatalf("show %d", code)
	}
	rep, _ := shown[0]["report"].(map[string]any)
	if rep["report-id"] != id {
		t.Errorf("show: %v", shown[0])
	}
	for url, code := range map[string]int{
		"/api/v1/reports/nope":             404,
		"/api/v1/summary?group-by=colour":  400,
		"/api/v1/failures?since=yesterday": 400,
		"/api/v1/rejected?limit=-1":        400,
	} {
		var x any
		if got := getJSON(t, srv.URL+url, &x); got != code {
			t.Errorf("%s: %d, want %d", url, got, code)
		}
	}
	var rj []reports.Rejected
	if code := getJSON(t, srv.URL+"/api/v1/rejected", &rj); code != 200 || rj == nil {
		t.Errorf("rejected %d %v", code, rj)
	}
}

// TestAPIToken: issue #11.1. With Token set, every request needs
// "Authorization: Bearer TOKEN"; without it, or with another token, the
// answer is 401 with a Bearer challenge and no data.
func TestAPIToken(t *testing.T) {
	t.Parallel()
	st := sqlstoretest.OpenSQLite(t)
	reportstest.Put(t, st, reportstest.SynthReport(1), nil)
	const tok = "s3cret-token-0123456789"
	srv := httptest.NewServer((&API{Store: st, Token: tok}).Handler("/api/v1"))
	t.Cleanup(srv.Close)
	get := func(auth string) (int, string, string) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/summary", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("WWW-Authenticate"), string(b)
	}
	for _, auth := range []string{"", "Bearer ", "Bearer s3cret-token-012345678", "Bearer s3cret-token-0123456789x", "Token " + tok, tok} {
		if code, chal, body := get(auth); code != http.StatusUnauthorized || chal == "" || strings.Contains(body, "successful") {
			t.Errorf("Authorization %q: %d %q %q", auth, code, chal, body)
		}
	}
	for _, auth := range []string{"Bearer " + tok, "BEARER " + tok} {
		if code, _, body := get(auth); code != http.StatusOK || !strings.Contains(body, "successful_sessions") {
			t.Errorf("Authorization %q: %d %s", auth, code, body)
		}
	}
}
