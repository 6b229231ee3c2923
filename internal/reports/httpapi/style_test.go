package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mailsts/mailsts/internal/jsonkeys"
	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/reportstest"
	"github.com/mailsts/mailsts/internal/reports/sqlstore/sqlstoretest"
	"github.com/mailsts/mailsts/tlsrpt"
)

// TestAnswerStyle requests every API endpoint and every error path of the
// API and the receiver (400, 401, 404, 405, 413, 415, 429, 500, 503) and
// checks the answers: JSON whose keys are all lower snake_case (except
// the RFC 8460 wire-form report under "report", on purpose), and for
// errors the status with {"error": {"code", "message"}}.
func TestAnswerStyle(t *testing.T) {
	t.Parallel()
	st := sqlstoretest.OpenSQLite(t)
	in := newIngester(st, 0, nil)
	in.Limits = tlsrpt.Limits{MaxInput: 4 << 10, MaxOutput: 8 << 10}
	const token = "0123456789abcdef-token"
	lim := &RateLimiter{Rate: 1e-9, Burst: 1}
	mux := http.NewServeMux()
	mux.Handle("/tlsrpt", &Receiver{Ingester: in})
	mux.Handle("/limited", &Receiver{Ingester: in, Limiter: lim})
	mux.Handle("/api/v1/", (&API{Store: st}).Handler("/api/v1"))
	mux.Handle("/tokened/api/v1/", (&API{Store: st, Token: token}).Handler("/tokened/api/v1"))
	mux.Handle("/down/api/v1/", (&API{Store: downStore{}}).Handler("/down/api/v1"))
	mux.Handle("/bug", serve(nil, func(http.ResponseWriter, *http.Request) error { return errors.New("a bug") }))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	rep := reportstest.SynthReport(3)
	reportstest.Put(t, st, rep, nil)
	body, _ := tlsrpt.Marshal(reportstest.SynthReport(4))
	big := bytes.Repeat([]byte(" "), 8<<10)

	cases := []struct {
		name, method, path, ctype string
		body                      []byte
		auth                      string
		status                    int
		code                      string // "" for a success
	}{
		{"summary", "GET", "/api/v1/summary?group-by=day,domain,org,mx,type,result", "", nil, "", 200, ""},
		{"failures", "GET", "/api/v1/failures", "", nil, "", 200, ""},
		{"report", "GET", "/api/v1/reports/" + rep.ReportID, "", nil, "", 200, ""},
		{"rejected", "GET", "/api/v1/rejected", "", nil, "", 200, ""},
		{"token", "GET", "/tokened/api/v1/summary", "", nil, "Bearer " + token, 200, ""},
		{"bad filter", "GET", "/api/v1/summary?since=yesterday", "", nil, "", 400, CodeBadQuery},
		{"bad cursor", "GET", "/api/v1/failures?cursor=!!not-a-cursor!!", "", nil, "", 400, CodeBadQuery},
		{"no token", "GET", "/tokened/api/v1/summary", "", nil, "", 401, "unauthorized"},
		{"wrong token", "GET", "/tokened/api/v1/nothing", "", nil, "Bearer nope", 401, "unauthorized"},
		{"no such report", "GET", "/api/v1/reports/nothing-here", "", nil, "", 404, CodeNoSuchReport},
		{"no such path", "GET", "/api/v1/nothing", "", nil, "", 404, "not_found"},
		{"POST to the API", "POST", "/api/v1/summary", "application/json", []byte("{}"), "", 405, "method_not_allowed"},
		{"DELETE a report", "DELETE", "/api/v1/reports/" + rep.ReportID, "", nil, "", 405, "method_not_allowed"},
		{"store down", "GET", "/down/api/v1/summary", "", nil, "", 503, "unavailable"},
		{"internal", "GET", "/bug", "", nil, "", 500, "internal"},
		{"GET the receiver", "GET", "/tlsrpt", "", nil, "", 405, "method_not_allowed"},
		{"not a report", "POST", "/tlsrpt", tlsrpt.MediaTypeJSON, []byte(`{"x":`), "", 400, CodeNotAReport},
		{"too large", "POST", "/tlsrpt", tlsrpt.MediaTypeJSON, big, "", 413, "too_large"},
		{"wrong type", "POST", "/tlsrpt", "image/png", body, "", 415, "unsupported_media_type"},
		{"first of the rate", "POST", "/limited", tlsrpt.MediaTypeJSON, []byte(`{"x":`), "", 400, CodeNotAReport},
		{"beyond the rate", "POST", "/limited", tlsrpt.MediaTypeJSON, body, "", 429, "rate_limited"},
	}
	for _, c := range cases { // in order: the rate cases depend on it
		req, _ := http.NewRequest(c.method, srv.URL+c.path, bytes.NewReader(c.body))
		if c.ctype != "" {
			req.Header.Set("Content-Type", c.ctype)
		}
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("%s: status %d, want %d: %s", c.name, resp.StatusCode, c.status, b)
			continue
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q", c.name, ct)
		}
		bad, err := jsonkeys.Check(b, "[].report")
		if err != nil || len(bad) > 0 {
			t.Errorf("%s: %v %s\n%s", c.name, err, jsonkeys.Describe(bad), b)
		}
		if c.code == "" {
			continue
		}
		var eb ErrorBody
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&eb); err != nil || eb.Error.Code != c.code || eb.Error.Message == "" {
			t.Errorf("%s: error body %s (%v), want code %q and a message", c.name, strings.TrimSpace(string(b)), err, c.code)
		}
		if c.status == 405 && resp.Header.Get("Allow") == "" {
			t.Errorf("%s: 405 without Allow", c.name)
		}
	}
}

// downStore fails queries as a store whose database is gone does.
type downStore struct{ reports.Store }

func (downStore) Summary(context.Context, reports.Filter) ([]reports.SummaryRow, error) {
	return nil, reports.ErrStorage
}
