package reports

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mailsts/mailsts/tlsrpt"
)

// TestGroupCommitConcurrentPOSTs (RPT-HTTP-3, RPT-RECV-4): concurrent
// POSTs through a GroupCommit store are all answered 2xx, and each is
// stored (once) when its answer arrives.
func TestGroupCommitConcurrentPOSTs(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, st Store) {
		gc := &GroupCommit{Store: st}
		srv := newTestServer(t, gc, tlsrpt.Limits{MaxInput: 1 << 20, MaxOutput: 2 << 20})
		ctx := context.Background()
		const n = 40
		var wg sync.WaitGroup
		errs := make(chan error, 2*n)
		for i := range n {
			body, err := tlsrpt.MarshalGzip(synthReport(i))
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
					if got, err := st.Show(ctx, synthReport(i).ReportID); err != nil || len(got) != 1 {
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
		rows, err := st.Summary(ctx, Filter{GroupBy: []string{GroupPolicyType}})
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

// batchStore records PutReports batch sizes; its first PutReports waits
// for release, and a report with ReportID "poison" fails every write.
type batchStore struct {
	Store
	release chan struct{}
	mu      sync.Mutex
	batches []int // sizes, negative when the batch held the poison
}

func (b *batchStore) PutReports(ctx context.Context, ins []Incoming) ([]PutResult, error) {
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
		return nil, ErrStorage
	}
	return b.Store.PutReports(ctx, ins)
}

func (b *batchStore) PutReport(ctx context.Context, in Incoming) (PutResult, error) {
	res, err := b.PutReports(ctx, []Incoming{in})
	if err != nil {
		return PutResult{}, err
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
		res PutResult
		err error
	}
	results := make(chan result, n)
	call := func(i int) {
		r := synthReport(i)
		if i == 5 {
			r.ReportID = "poison"
		}
		res, err := gc.PutReport(ctx, Incoming{Report: r, Raw: []byte("{}"), Source: SourceHTTP, ReceivedAt: fixedNow()})
		results <- result{i, res, err}
	}
	go call(0) // the leader: its PutReports waits for release
	waitFor(t, func() bool { bs.mu.Lock(); defer bs.mu.Unlock(); return len(bs.batches) == 1 })
	for i := 1; i < n; i++ {
		go call(i)
	}
	waitFor(t, func() bool { gc.mu.Lock(); defer gc.mu.Unlock(); return len(gc.pending) == n-1 })
	close(bs.release)
	for range n {
		r := <-results
		if (r.err != nil) != (r.i == 5) || r.err == nil && (r.res.ID == 0 || r.res.Duplicate) {
			t.Errorf("call %d: %+v %v", r.i, r.res, r.err)
		}
		if r.i == 5 && !errors.Is(r.err, ErrStorage) {
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
	gc.mu.Lock()
	defer gc.mu.Unlock()
	if gc.flushing || len(gc.pending) != 0 {
		t.Errorf("idle committer: flushing %v, %d pending", gc.flushing, len(gc.pending))
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
