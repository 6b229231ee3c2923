package httpapi

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/ingest"
	"github.com/mailsts/mailsts/internal/reports/reportstest"
	"github.com/mailsts/mailsts/internal/reports/sqlstore/sqlstoretest"
	"github.com/mailsts/mailsts/tlsrpt"
)

// TestReceiverForgedThenMail: issue #11.2 end to end. A forged POST
// with the organisation and report-id of a coming mail report gets 201;
// the genuine DKIM-signed mail is stored too (not a duplicate), both
// are flagged, and the genuine one counts; re-POSTing the forgery is a
// plain duplicate (200). RPT-HTTP-3, RPT-RECV-1, RPT-RECV-4.
func TestReceiverForgedThenMail(t *testing.T) {
	t.Parallel()
	st := sqlstoretest.OpenSQLite(t)
	srv := newTestServer(t, st, tlsrpt.Limits{})
	genuine := reportstest.SynthReport(2)
	genuine.ContactInfo = "smtp-tls-reporting@google.com"
	forged, _ := tlsrpt.Marshal(reportstest.Forged(genuine))
	if code, body := post(t, srv.URL+"/tlsrpt", tlsrpt.MediaTypeJSON, bytes.NewReader(forged)); code != http.StatusCreated {
		t.Fatalf("forged POST: %d %s", code, body)
	}
	msg, fake := reportstest.SignedReportMail(t, genuine, "noreply-smtp-tls-reporting@google.com", "google.com")
	res, err := newIngester(st, ingest.DKIMRequire, fake).Message(context.Background(), bytes.NewReader(msg), reports.SourceMail, "")
	mustOutcome(t, res, err, ingest.OutcomeStored)
	if !res.Reports[0].Conflict || !res.Reports[0].Authenticated {
		t.Errorf("genuine mail: %+v", res.Reports[0])
	}
	code, body := post(t, srv.URL+"/tlsrpt", tlsrpt.MediaTypeJSON, bytes.NewReader(forged))
	if code != http.StatusOK || !strings.Contains(body, "duplicate") {
		t.Errorf("forged again: %d %s", code, body)
	}
	got, err := st.Show(context.Background(), genuine.ReportID)
	if err != nil || len(got) != 2 || got[0].Authenticated || !got[1].Authenticated || !got[1].Counted || got[1].DKIMDomain != "google.com" {
		t.Fatalf("stored: %+v %v", got, err)
	}
	gs, gf := genuine.Totals()
	if n, s, f := reportstest.OrgTotals(t, st, reports.Filter{}); n != 1 || s != gs || f != gf {
		t.Errorf("summary %d %d/%d, want the genuine report's 1 %d/%d", n, s, f, gs, gf)
	}
	// The API tells them apart.
	var shown []map[string]any
	if code := getJSON(t, srv.URL+"/api/v1/reports/"+genuine.ReportID+"?authenticated=true", &shown); code != 200 || len(shown) != 1 || shown[0]["authenticated"] != true || shown[0]["conflict"] != true {
		t.Errorf("API show authenticated: %d %v", code, shown)
	}
	var fails []reports.FailureRow
	if code := getJSON(t, srv.URL+"/api/v1/failures?authenticated=only", &fails); code != 200 {
		t.Errorf("API failures: %d", code)
	}
	for _, x := range fails {
		if !x.Authenticated {
			t.Errorf("API failures authenticated-only: %+v", x)
		}
	}
	var x any
	if code := getJSON(t, srv.URL+"/api/v1/summary?authenticated=maybe", &x); code != 400 {
		t.Errorf("authenticated=maybe: %d", code)
	}
	if _, err := reports.ParseFilter(map[string][]string{"authenticated": {"maybe"}}); !errors.Is(err, reports.ErrBadFilter) {
		t.Errorf("ParseFilter: %v", err)
	}
}
