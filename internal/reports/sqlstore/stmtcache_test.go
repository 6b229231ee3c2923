package sqlstore

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/reportstest"
	"github.com/mailsts/mailsts/tlsrpt"
)

// TestRollupChunkLen: the chunks of every flush size add up to it and
// only use the sizes whose statements are prepared at open.
func TestRollupChunkLen(t *testing.T) {
	t.Parallel()
	for n := 1; n <= 3000; n++ {
		left, stmts := n, 0
		for left > 0 {
			c := rollupChunkLen(left)
			if c > left || !slices.Contains(rollupChunkSizes, c) {
				t.Fatalf("n=%d: chunk %d with %d rows left", n, c, left)
			}
			left -= c
			stmts++
		}
		if max := n/512 + 9; stmts > max {
			t.Fatalf("n=%d: %d statements, want at most %d", n, stmts, max)
		}
	}
}

// TestCachedStatementsLargeBatch: a batch whose rollup spans several
// chunk sizes (over 1,000 distinct rows: 512, 512, then the binary
// rest), written through the statements prepared at open, gives exactly
// the rollup that the backfill aggregation computes from the stored
// rows, on both backends; later batches of other sizes reuse the same
// statements (none is prepared again).
func TestCachedStatementsLargeBatch(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, st reports.Store) {
		s := st.(*sqlStore)
		ctx := context.Background()
		if len(s.stmts) != len(putStatements()) {
			t.Fatalf("%d statements prepared at open, want %d", len(s.stmts), len(putStatements()))
		}
		mk := func(i int, genuine bool) reports.Incoming {
			dom := fmt.Sprintf("d%03d.example", i)
			mx := "mx." + dom
			var a tlsrpt.Aggregator
			sts := tlsrpt.Policy{Type: tlsrpt.PolicyTypeSTS, Domain: dom, MXHost: []string{mx}}
			a.AddSuccess(sts, int64(10+i))
			a.AddFailure(sts, tlsrpt.FailureDetails{ResultType: tlsrpt.ResultCertificateExpired, ReceivingMXHostname: mx, FailedSessionCount: 2})
			a.AddSuccess(tlsrpt.Policy{Type: tlsrpt.PolicyTypeTLSA, String: []string{"3 1 1 00"}, Domain: mx}, 3)
			if genuine {
				a.AddFailure(sts, tlsrpt.FailureDetails{ResultType: tlsrpt.ResultSTARTTLSNotSupported, ReceivingMXHostname: mx, FailedSessionCount: 1})
			}
			r := a.Report(tlsrpt.ReportParams{OrganizationName: fmt.Sprintf("Org %d", i%7), ContactInfo: "mailto:x@example.net",
				PolicyDomain: dom, Day: time.Date(2025, 1, 1+i%5, 0, 0, 0, 0, time.UTC)})
			r.ReportID = fmt.Sprintf("big-%d", i)
			in := reports.Incoming{Report: r, Raw: []byte("{}"), Source: reports.SourceFile, ReceivedAt: reportstest.FixedNow()}
			if genuine {
				in.Authenticated, in.DKIMDomain = true, "example.net"
			}
			return in
		}
		var batch []reports.Incoming
		for i := range 60 {
			batch = append(batch, mk(i, false))
		}
		if _, err := st.PutReports(ctx, batch); err != nil {
			t.Fatal(err)
		}
		if err := s.Fold(ctx); err != nil {
			t.Fatal(err)
		}
		if n := len(rollupTable(t, s)); n < 1100 {
			t.Fatalf("rollup has %d rows after one batch, want over 1,100 (several chunks)", n)
		}
		// Genuine copies of the 60 folded reports take over their count
		// (conflict.go): one batch subtracts the 60 from the rollup,
		// over 1,100 rows in several chunks.
		batch = batch[:0]
		for i := range 60 {
			batch = append(batch, mk(i, true))
		}
		if _, err := st.PutReports(ctx, batch); err != nil {
			t.Fatal(err)
		}
		for from, n := range map[int]int{60: 1, 61: 3, 64: 11} {
			batch = batch[:0]
			for i := from; i < from+n; i++ {
				batch = append(batch, mk(i, false))
			}
			if _, err := st.PutReports(ctx, batch); err != nil {
				t.Fatal(err)
			}
		}
		if len(s.stmts) != len(putStatements()) {
			t.Errorf("%d cached statements after the puts, want %d", len(s.stmts), len(putStatements()))
		}
		// The rollup, everything folded, counts the genuine copies only:
		// as the rows do (the backfill of migration 2 predates conflicts
		// and would count both copies).
		if err := s.Fold(ctx); err != nil {
			t.Fatal(err)
		}
		for _, f := range rollupFilters() {
			got, want := summaryAndRaw(t, ctx, st, f)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%+v: rollup differs from raw\nrollup %+v\nraw    %+v", f, got, want)
			}
		}
	})
}
