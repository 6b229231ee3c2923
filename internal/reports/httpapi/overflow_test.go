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

// TestIngestImplausibleCounts: counts above MaxSessionCount are rejected
// with a clear 400 and kept as rejected input (issue #11.4).
func TestIngestImplausibleCounts(t *testing.T) {
	t.Parallel()
	st := sqlstoretest.OpenSQLite(t)
	srv := newTestServer(t, st, tlsrpt.Limits{})
	ok, _ := tlsrpt.Marshal(reportstest.BigReport(1, ingest.MaxSessionCount))
	if code, body := post(t, srv.URL+"/tlsrpt", tlsrpt.MediaTypeJSON, bytes.NewReader(ok)); code != http.StatusCreated {
		t.Errorf("counts at the limit: %d %s", code, body)
	}
	for name, r := range map[string]*tlsrpt.Report{
		"summary": func() *tlsrpt.Report {
			r := reportstest.BigReport(2, 5)
			r.Policies[0].Summary.TotalSuccessfulSessionCount = ingest.MaxSessionCount + 1
			return r
		}(),
		"detail": func() *tlsrpt.Report {
			r := reportstest.BigReport(3, 5)
			r.Policies[0].FailureDetails[0].FailedSessionCount = tlsrpt.MaxCount
			return r
		}(),
	} {
		b, _ := tlsrpt.Marshal(r)
		code, body := post(t, srv.URL+"/tlsrpt", tlsrpt.MediaTypeJSON, bytes.NewReader(b))
		if code != http.StatusBadRequest || !strings.Contains(body, "implausible") || !strings.Contains(body, "kept for inspection") {
			t.Errorf("%s: %d %s", name, code, body)
		}
	}
	rej, err := st.ListRejected(context.Background(), reports.Filter{})
	if err != nil || len(rej) != 2 || rej[0].Reason != reports.ReasonImplausible {
		t.Errorf("rejected: %+v %v", rej, err)
	}
	// The same through the Ingester: the error wraps tlsrpt.ErrInvalid.
	in := newIngester(st, ingest.DKIMOff, nil)
	b, _ := tlsrpt.Marshal(func() *tlsrpt.Report {
		r := reportstest.BigReport(4, 5)
		r.Policies[0].Summary.TotalFailureSessionCount = tlsrpt.MaxCount
		return r
	}())
	res, err := in.Body(context.Background(), bytes.NewReader(b), "", -1, reports.SourceFile, "t")
	if err != nil || res.Outcome != ingest.OutcomeRejected || !errors.Is(res.Rejections[0].Err, tlsrpt.ErrInvalid) {
		t.Errorf("Body: %+v %v", res, err)
	}
}
