package sqlstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/ingest"
	"github.com/mailsts/mailsts/internal/reports/sqlstore"
	"github.com/mailsts/mailsts/tlsrpt"
)

// Concurrent PutReport calls through a GroupCommit share transactions:
// here ten reports POSTed at once cost a few disk syncs instead of ten,
// and each call returns after its report is committed.
func ExampleGroupCommit() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "reports-example")
	defer os.RemoveAll(dir)
	st, err := sqlstore.OpenSQLite(ctx, filepath.Join(dir, "reports.db"), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer st.Close()
	in := &ingest.Ingester{Store: &sqlstore.GroupCommit{Store: st}}
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

// Open takes the spec of --db and of the db: configuration key.
func ExampleOpen() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "reports-example")
	defer os.RemoveAll(dir)
	// "" is reports.db in the state directory; sqlite:PATH and a
	// postgres:// URL name other databases.
	st, err := sqlstore.Open(ctx, "", dir, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	st.Close()
	_, err = os.Stat(filepath.Join(dir, sqlstore.DefaultFile))
	fmt.Println(err)
	_, err = sqlstore.Open(ctx, "mysql://db.example.org/reports", dir, nil)
	fmt.Println(errors.Is(err, sqlstore.ErrBadSpec))
	// Output:
	// <nil>
	// true
}
