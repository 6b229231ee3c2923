package httpapi

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/reportstest"
	"github.com/mailsts/mailsts/internal/reports/sqlstore"
	"github.com/mailsts/mailsts/internal/reports/sqlstore/sqlstoretest"
	"github.com/mailsts/mailsts/tlsrpt"
)

// TestGroupCommitConcurrentPOSTs (RPT-HTTP-3, RPT-RECV-4): concurrent
// POSTs through a GroupCommit store are all answered 2xx, and each is
// stored (once) when its answer arrives.
func TestGroupCommitConcurrentPOSTs(t *testing.T) {
	t.Parallel()
	sqlstoretest.Backends(t, func(t *testing.T, st reports.Store) {
		gc := &sqlstore.GroupCommit{Store: st}
		srv := newTestServer(t, gc, tlsrpt.Limits{MaxInput: 1 << 20, MaxOutput: 2 << 20})
		ctx := context.Background()
		const n = 40
		var wg sync.WaitGroup
		errs := make(chan error, 2*n)
		for i := range n {
			body, err := tlsrpt.MarshalGzip(reportstest.SynthReport(i))
			if err != nil {
				t.Fatal(err)
			}
			// Every fifth report is POSTed twice at once: one 201, one 200.
			copies := 1
			if i%5 == 0 {
				copies = 2
			}
			for range copies {
				wg.Go(func() {
					req, _ := http.NewRequest(http.MethodPost, srv.URL+"/tlsrpt", bytes.NewReader(body))
					req.Header.Set("Content-Type", tlsrpt.MediaTypeGzip)
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						errs <- err
						return
					}
					resp.Body.Close()
					if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
						errs <- errors.New(resp.Status)
						return
					}
					// Answered 2xx: the report is committed now.
					if got, err := st.Show(ctx, reportstest.SynthReport(i).ReportID); err != nil || len(got) != 1 {
						errs <- errors.Join(errors.New("not stored at 2xx"), err)
					}
				})
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		rows, err := st.Summary(ctx, reports.Filter{GroupBy: []string{reports.GroupPolicyType}})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if r.PolicyType == tlsrpt.PolicyTypeSTS && r.Reports != n {
				t.Errorf("STS policies in %d reports, want %d", r.Reports, n)
			}
		}
	})
}
