package reports_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

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
