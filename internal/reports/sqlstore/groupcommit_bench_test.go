package sqlstore

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/reportstest"
)

// BenchmarkGroupCommitPutReport: distinct reports stored by 16 goroutines
// at once through a GroupCommit on SQLite, as the HTTP receiver does under
// a burst of POSTs (each PutReport durable before it returns).
func BenchmarkGroupCommitPutReport(b *testing.B) {
	gc := &GroupCommit{Store: openTestSQLite(b)}
	ctx := context.Background()
	var next atomic.Int64
	b.SetParallelism(16 / max(1, runtime.GOMAXPROCS(0)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := reportstest.SynthReport(int(next.Add(1)))
			in := reports.Incoming{Report: r, Raw: []byte("{}"), Source: reports.SourceHTTP, ReceivedAt: reportstest.FixedNow()}
			if _, err := gc.PutReport(ctx, in); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
