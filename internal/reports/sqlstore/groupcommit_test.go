package sqlstore

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/reportstest"
)

// batchStore records PutReports batch sizes; its first PutReports waits
// for release, and a report with ReportID "poison" fails every write.
type batchStore struct {
	reports.Store
	release chan struct{}
	mu      sync.Mutex
	batches []int // sizes, negative when the batch held the poison
}

func (b *batchStore) PutReports(ctx context.Context, ins []reports.Incoming) ([]reports.PutResult, error) {
	poison := false
	for _, in := range ins {
		poison = poison || in.Report.ReportID == "poison"
	}
	b.mu.Lock()
	first := len(b.batches) == 0
	if poison {
		b.batches = append(b.batches, -len(ins))
	} else {
		b.batches = append(b.batches, len(ins))
	}
	b.mu.Unlock()
	if first {
		<-b.release
	}
	if poison {
		return nil, reports.ErrStorage
	}
	return b.Store.PutReports(ctx, ins)
}

func (b *batchStore) PutReport(ctx context.Context, in reports.Incoming) (reports.PutResult, error) {
	res, err := b.PutReports(ctx, []reports.Incoming{in})
	if err != nil {
		return reports.PutResult{}, err
	}
	return res[0], nil
}

// TestGroupCommitBatches: calls that arrive while a batch is written go
// together in the next transaction; a failing report fails only its own
// call.
func TestGroupCommitBatches(t *testing.T) {
	t.Parallel()
	bs := &batchStore{Store: openTestSQLite(t), release: make(chan struct{})}
	gc := &GroupCommit{Store: bs, MaxBatch: 8}
	ctx := context.Background()
	const n = 12
	type result struct {
		i   int
		res reports.PutResult
		err error
	}
	results := make(chan result, n)
	call := func(i int) {
		r := reportstest.SynthReport(i)
		if i == 5 {
			r.ReportID = "poison"
		}
		res, err := gc.PutReport(ctx, reports.Incoming{Report: r, Raw: []byte("{}"), Source: reports.SourceHTTP, ReceivedAt: reportstest.FixedNow()})
		results <- result{i, res, err}
	}
	go call(0) // the leader: its PutReports waits for release
	waitFor(t, func() bool { bs.mu.Lock(); defer bs.mu.Unlock(); return len(bs.batches) == 1 })
	for i := 1; i < n; i++ {
		go call(i)
	}
	waitFor(t, func() bool { return gc.group.Queued() == n-1 })
	close(bs.release)
	for range n {
		r := <-results
		if (r.err != nil) != (r.i == 5) || r.err == nil && (r.res.ID == 0 || r.res.Duplicate) {
			t.Errorf("call %d: %+v %v", r.i, r.res, r.err)
		}
		if r.i == 5 && !errors.Is(r.err, reports.ErrStorage) {
			t.Errorf("poison: %v, want ErrStorage", r.err)
		}
	}
	bs.mu.Lock()
	defer bs.mu.Unlock()
	// The leader alone, then MaxBatch, then the other 3; the batch with
	// the poison is followed by its reports one by one.
	var groups []int
	for i := 0; i < len(bs.batches); i++ {
		size := bs.batches[i]
		if size < 0 {
			size = -size
			if size > 1 {
				retries := bs.batches[i+1 : min(i+1+size, len(bs.batches))]
				if len(retries) != size || slices.ContainsFunc(retries, func(n int) bool { return n != 1 && n != -1 }) {
					t.Fatalf("batches %v: batch %d not retried one by one", bs.batches, i)
				}
				i += size
			}
		}
		groups = append(groups, size)
	}
	if !slices.Equal(groups, []int{1, 8, 3}) {
		t.Errorf("batches %v (grouped %v), want 1, 8, 3", bs.batches, groups)
	}
	bs.mu.Unlock()
	// Idle again: a lone call leads at once, alone in its batch.
	if res, err := gc.PutReport(ctx, reports.Incoming{Report: reportstest.SynthReport(n), Raw: []byte("{}"), Source: reports.SourceHTTP, ReceivedAt: reportstest.FixedNow()}); err != nil || res.ID == 0 {
		t.Errorf("a lone call after the batches: %+v, %v", res, err)
	}
	bs.mu.Lock()
	if last := bs.batches[len(bs.batches)-1]; last != 1 || gc.group.Queued() != 0 {
		t.Errorf("idle committer: last batch %d, %d queued; want 1, 0", last, gc.group.Queued())
	}
}

// waitFor polls cond every millisecond for up to 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}
