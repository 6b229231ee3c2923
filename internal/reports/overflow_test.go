package reports

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mailsts/mailsts/tlsrpt"
)

// bigReport is report i of one organisation and day, one STS policy with
// count successful and count failed sessions (one detail).
func bigReport(i int, count int64) *tlsrpt.Report {
	pol := tlsrpt.Policy{Type: tlsrpt.PolicyTypeSTS, String: []string{"version: STSv1", "mode: enforce", "mx: mx.example.org", "max_age: 86400"},
		Domain: "example.org", MXHost: []string{"mx.example.org"}}
	return &tlsrpt.Report{
		OrganizationName: "Overflow Inc.", ContactInfo: "tlsrpt@overflow.example", ReportID: fmt.Sprintf("overflow-%d", i),
		DateRange: tlsrpt.DayRange(time.Date(2025, 1, 10, 0, 0, 0, 0, time.UTC)),
		Policies: []tlsrpt.PolicyResult{{Policy: pol,
			Summary:        tlsrpt.Summary{TotalSuccessfulSessionCount: count, TotalFailureSessionCount: count},
			FailureDetails: []tlsrpt.FailureDetails{{ResultType: tlsrpt.ResultCertificateExpired, FailedSessionCount: count}}}},
	}
}

// TestRollupSaturates: issue #11.4. About 1,025 reports of 2^53 sessions
// for one organisation and day pushed the rollup past int64; from then on
// every report of that key failed to store (503, retried, lost). The
// rollup and the Summary sums now saturate at 2^63-1, on both backends.
func TestRollupSaturates(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, st Store) {
		ctx := context.Background()
		// The store takes counts as given (the Ingester caps them), so
		// a few reports of 2^62 sessions reach what about 1,025 reports
		// of 2^53 did.
		const big = 1 << 62
		batch := func(from, n int) {
			ins := make([]Incoming, n)
			for i := range ins {
				ins[i] = Incoming{Report: bigReport(from+i, big), Raw: []byte("{}"), Source: SourceFile, ReceivedAt: fixedNow()}
			}
			if _, err := st.PutReports(ctx, ins); err != nil {
				t.Fatalf("PutReports %d..%d: %v", from, from+n, err)
			}
		}
		// The second batch overflows inside the upsert, the third in the
		// batch's own sums.
		batch(0, 1)
		batch(1, 1)
		batch(2, 3)
		// Still storing reports of that key.
		if res := put(t, st, bigReport(9999, 1), nil); res.Duplicate {
			t.Fatal("duplicate")
		}
		for _, f := range []Filter{
			{},
			{GroupBy: []string{GroupResultType}},
			{MXHost: "mx.example.org"}, // summed over the policy rows
			{MXHost: "mx.example.org", GroupBy: []string{GroupResultType}},
		} {
			rows, err := st.Summary(ctx, f)
			if err != nil {
				t.Fatalf("Summary %+v: %v", f, err)
			}
			for _, r := range rows {
				if r.Successful < 0 || r.Failed < 0 {
					t.Errorf("Summary %+v: negative totals %+v", f, r)
				}
				if r.ResultType != ResultSuccess && r.Failed != math.MaxInt64 {
					t.Errorf("Summary %+v: failed = %d, want saturated at 2^63-1", f, r.Failed)
				}
			}
			if len(rows) == 0 || rows[0].Reports != 6 {
				t.Errorf("Summary %+v: %+v, want 6 reports", f, rows)
			}
		}
	})
}

// TestIngestImplausibleCounts: counts above MaxSessionCount are rejected
// with a clear 400 and kept as rejected input (issue #11.4).
func TestIngestImplausibleCounts(t *testing.T) {
	t.Parallel()
	st := openTestSQLite(t)
	srv := newTestServer(t, st, tlsrpt.Limits{})
	ok, _ := tlsrpt.Marshal(bigReport(1, MaxSessionCount))
	if code, body := post(t, srv.URL+"/tlsrpt", tlsrpt.MediaTypeJSON, bytes.NewReader(ok)); code != http.StatusCreated {
		t.Errorf("counts at the limit: %d %s", code, body)
	}
	for name, r := range map[string]*tlsrpt.Report{
		"summary": func() *tlsrpt.Report {
			r := bigReport(2, 5)
			r.Policies[0].Summary.TotalSuccessfulSessionCount = MaxSessionCount + 1
			return r
		}(),
		"detail": func() *tlsrpt.Report {
			r := bigReport(3, 5)
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
	rej, err := st.ListRejected(context.Background(), Filter{})
	if err != nil || len(rej) != 2 || rej[0].Reason != ReasonImplausible {
		t.Errorf("rejected: %+v %v", rej, err)
	}
	// The same through the Ingester: the error wraps tlsrpt.ErrInvalid.
	in := newIngester(st, DKIMOff, nil)
	b, _ := tlsrpt.Marshal(func() *tlsrpt.Report {
		r := bigReport(4, 5)
		r.Policies[0].Summary.TotalFailureSessionCount = tlsrpt.MaxCount
		return r
	}())
	res, err := in.Body(context.Background(), bytes.NewReader(b), "", -1, SourceFile, "t")
	if err != nil || res.Outcome != OutcomeRejected || !errors.Is(res.Rejections[0].Err, tlsrpt.ErrInvalid) {
		t.Errorf("Body: %+v %v", res, err)
	}
}
