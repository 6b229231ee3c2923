package ingest_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/ingest"
	"github.com/mailsts/mailsts/internal/reports/sqlstore"
	"github.com/mailsts/mailsts/tlsrpt"
)

// Store a report POSTed as gzip, then ask for the summary.
func ExampleIngester_Body() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "reports-example")
	defer os.RemoveAll(dir)
	st, err := sqlstore.OpenSQLite(ctx, filepath.Join(dir, "reports.db"), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer st.Close()
	in := &ingest.Ingester{Store: st}
	body, _ := os.ReadFile("../../../tlsrpt/testdata/f10c.json")
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
