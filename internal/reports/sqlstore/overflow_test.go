package sqlstore

import (
	"context"
	"math"
	"testing"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/reportstest"
)

// TestRollupSaturates: issue #11.4. About 1,025 reports of 2^53 sessions
// for one organisation and day pushed the rollup past int64; from then on
// every report of that key failed to store (503, retried, lost). The
// rollup and the Summary sums now saturate at 2^63-1, on both backends.
func TestRollupSaturates(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, st reports.Store) {
		ctx := context.Background()
		// The store takes counts as given (the Ingester caps them), so
		// a few reports of 2^62 sessions reach what about 1,025 reports
		// of 2^53 did.
		const big = 1 << 62
		batch := func(from, n int) {
			ins := make([]reports.Incoming, n)
			for i := range ins {
				ins[i] = reports.Incoming{Report: reportstest.BigReport(from+i, big), Raw: []byte("{}"), Source: reports.SourceFile, ReceivedAt: reportstest.FixedNow()}
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
		if res := reportstest.Put(t, st, reportstest.BigReport(9999, 1), nil); res.Duplicate {
			t.Fatal("duplicate")
		}
		for _, f := range []reports.Filter{
			{},
			{GroupBy: []string{reports.GroupResultType}},
			{MXHost: "mx.example.org"}, // summed over the policy rows
			{MXHost: "mx.example.org", GroupBy: []string{reports.GroupResultType}},
		} {
			rows, err := st.Summary(ctx, f)
			if err != nil {
				t.Fatalf("Summary %+v: %v", f, err)
			}
			for _, r := range rows {
				if r.Successful < 0 || r.Failed < 0 {
					t.Errorf("Summary %+v: negative totals %+v", f, r)
				}
				if r.ResultType != reports.ResultSuccess && r.Failed != math.MaxInt64 {
					t.Errorf("Summary %+v: failed = %d, want saturated at 2^63-1", f, r.Failed)
				}
			}
			if len(rows) == 0 || rows[0].Reports != 6 {
				t.Errorf("Summary %+v: %+v, want 6 reports", f, rows)
			}
		}
	})
}
