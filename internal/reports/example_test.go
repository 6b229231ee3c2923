package reports_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/tlsrpt"
)

// Store a report POSTed as gzip, then ask for the summary.
func ExampleIngester_Body() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "reports-example")
	defer os.RemoveAll(dir)
	st, err := reports.OpenSQLite(ctx, filepath.Join(dir, "reports.db"), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer st.Close()
	in := &reports.Ingester{Store: st}
	body, _ := os.ReadFile("../../tlsrpt/testdata/f10c.json")
	for range 2 {
		res, err := in.Body(ctx, bytes.NewReader(body), tlsrpt.MediaTypeJSON, int64(len(body)), reports.SourceHTTP, "192.0.2.1")
		fmt.Println(res.Outcome, err)
	}
	rows, _ := st.Summary(ctx, reports.Filter{GroupBy: []string{reports.GroupPolicyDomain}})
	for _, r := range rows {
		fmt.Printf("%s: %d ok, %d failed, %.2f%%\n", r.PolicyDomain, r.Successful, r.Failed, *r.SuccessRate*100)
	}
	// Output:
	// stored <nil>
	// duplicate <nil>
	// company-y.example: 5326 ok, 303 failed, 94.62%
}

// Input that is not a report is kept, with the reason.
func ExampleStore_ListRejected() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "reports-example")
	defer os.RemoveAll(dir)
	st, _ := reports.OpenSQLite(ctx, filepath.Join(dir, "reports.db"), nil)
	defer st.Close()
	in := &reports.Ingester{Store: st}
	res, _ := in.Body(ctx, bytes.NewReader([]byte("<html>")), "text/html", 6, reports.SourceHTTP, "")
	fmt.Println(res.Outcome, res.Rejections[0].Reason)
	list, _ := st.ListRejected(ctx, reports.Filter{})
	fmt.Println(len(list), list[0].Reason, list[0].Size)
	// Output:
	// rejected unsupported-type
	// 1 unsupported-type 6
}

// Concurrent PutReport calls through a GroupCommit share transactions:
// here ten reports POSTed at once cost a few disk syncs instead of ten,
// and each call returns after its report is committed.
func ExampleGroupCommit() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "reports-example")
	defer os.RemoveAll(dir)
	st, err := reports.OpenSQLite(ctx, filepath.Join(dir, "reports.db"), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer st.Close()
	in := &reports.Ingester{Store: &reports.GroupCommit{Store: st}}
	day := time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			var a tlsrpt.Aggregator
			a.AddSuccess(tlsrpt.Policy{Type: tlsrpt.PolicyTypeSTS, Domain: "example.org", MXHost: []string{"mx.example.org"}}, 100)
			r := a.Report(tlsrpt.ReportParams{OrganizationName: fmt.Sprintf("Sender %d", i), ContactInfo: "tlsrpt@example.net",
				PolicyDomain: "example.org", Day: day})
			body, _ := tlsrpt.MarshalGzip(r)
			if _, err := in.Body(ctx, bytes.NewReader(body), tlsrpt.MediaTypeGzip, -1, reports.SourceHTTP, ""); err != nil {
				fmt.Println(err)
			}
		})
	}
	wg.Wait()
	rows, _ := st.Summary(ctx, reports.Filter{GroupBy: []string{reports.GroupPolicyDomain}})
	fmt.Println(rows[0].PolicyDomain, rows[0].Reports, rows[0].Successful)
	// Output:
	// example.org 10 1000
}
