package reports_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/ingest"
	"github.com/mailsts/mailsts/internal/reports/sqlstore"
)

// Input that is not a report is kept, with the reason.
func ExampleStore_ListRejected() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "reports-example")
	defer os.RemoveAll(dir)
	st, _ := sqlstore.OpenSQLite(ctx, filepath.Join(dir, "reports.db"), nil)
	defer st.Close()
	in := &ingest.Ingester{Store: st}
	res, _ := in.Body(ctx, bytes.NewReader([]byte("<html>")), "text/html", 6, reports.SourceHTTP, "")
	fmt.Println(res.Outcome, res.Rejections[0].Reason)
	list, _ := st.ListRejected(ctx, reports.Filter{})
	fmt.Println(len(list), list[0].Reason, list[0].Size)
	// Output:
	// rejected unsupported-type
	// 1 unsupported-type 6
}
