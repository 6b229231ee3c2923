package groupcommit

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/watchdog"
)

// errBad is the error of a "bad" item (negative) in a fakeDB.
var errBad = errors.New("bad item")

// fakeDB is a Commit that records batches and what is committed. A
// negative item fails any batch holding it; hold, when set, is called
// first with the batch (to block a leader).
type fakeDB struct {
	mu        sync.Mutex
	batches   [][]int
	committed map[int]bool
	hold      func(items []int)
	// failBatch, when set, fails the n-th Commit call (from 1) as a whole.
	failBatch int
}

func (f *fakeDB) commit(ctx context.Context, items []int) ([]string, error) {
	f.mu.Lock()
	f.batches = append(f.batches, slices.Clone(items))
	nth := len(f.batches)
	hold := f.hold
	f.mu.Unlock()
	if hold != nil {
		hold(items)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if nth == f.failBatch {
		return nil, fmt.Errorf("batch %d: disk full", nth)
	}
	res := make([]string, len(items))
	for i, it := range items {
		if it < 0 {
			return nil, errBad
		}
		res[i] = fmt.Sprint("r", it)
	}
	f.mu.Lock()
	if f.committed == nil {
		f.committed = map[int]bool{}
	}
	for _, it := range items {
		f.committed[it] = true
	}
	f.mu.Unlock()
	return res, nil
}

func (f *fakeDB) isCommitted(it int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.committed[it]
}

func (f *fakeDB) sizes() [][]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.batches)
}

// waitQueued waits, without sleeping, until n calls are queued; bounded.
func waitQueued[T, R any](t *testing.T, g *Group[T, R], n int) {
	t.Helper()
	for range 50_000_000 {
		if g.Queued() >= n {
			return
		}
		runtime.Gosched()
	}
	t.Fatalf("%d calls queued, want %d", g.Queued(), n)
}

type outcome struct {
	item int
	res  string
	err  error
}

// goDo starts Do(ctx, item) and sends its outcome to out.
func goDo(g *Group[int, string], ctx context.Context, item int, out chan<- outcome) {
	go func() {
		res, err := g.Do(ctx, item)
		out <- outcome{item, res, err}
	}()
}

// blockedLeader starts Do(0) and returns once its Commit holds it, and the
// function that releases it.
func blockedLeader(t *testing.T, f *fakeDB, g *Group[int, string], out chan<- outcome) (release func()) {
	t.Helper()
	held, rel := make(chan struct{}), make(chan struct{})
	var once sync.Once
	f.mu.Lock()
	f.hold = func([]int) {
		once.Do(func() { close(held); <-rel })
	}
	f.mu.Unlock()
	goDo(g, context.Background(), 0, out)
	watchdog.Within(t, time.Minute, func() struct{} { <-held; return struct{}{} })
	return func() { close(rel) }
}

// Calls that arrive while a batch is written go together, in arrival
// order, into the next Commit, at most MaxBatch at a time; each gets its
// own result.
func TestBatchesInOrder(t *testing.T) {
	t.Parallel()
	f := &fakeDB{}
	g := &Group[int, string]{Commit: f.commit, MaxBatch: 8}
	const n = 12
	out := make(chan outcome, n)
	release := blockedLeader(t, f, g, out)
	for i := 1; i < n; i++ {
		goDo(g, context.Background(), i, out)
		waitQueued(t, g, i) // one at a time: the queue order is i's
	}
	release()
	for range n {
		o := watchdog.Within(t, time.Minute, func() outcome { return <-out })
		if o.err != nil || o.res != fmt.Sprint("r", o.item) {
			t.Errorf("Do(%d) = %q, %v", o.item, o.res, o.err)
		}
	}
	want := [][]int{{0}, {1, 2, 3, 4, 5, 6, 7, 8}, {9, 10, 11}}
	if got := f.sizes(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("batches %v, want %v", got, want)
	}
	if q := g.Queued(); q != 0 {
		t.Errorf("%d calls still queued", q)
	}
	// Idle again: a lone call leads at once, in a batch of one.
	if res, err := g.Do(context.Background(), 99); err != nil || res != "r99" {
		t.Errorf("lone Do = %q, %v", res, err)
	}
	if got := f.sizes(); !slices.Equal(got[len(got)-1], []int{99}) {
		t.Errorf("last batch %v, want [99]", got[len(got)-1])
	}
}

// No call returns before the Commit holding its item returned: the
// leader's included, and the callers of a batch still wait when their
// batch's Commit begins.
func TestReturnsOnlyAfterCommit(t *testing.T) {
	t.Parallel()
	f := &fakeDB{}
	g := &Group[int, string]{Commit: f.commit}
	const n = 6
	var mu sync.Mutex
	returned := map[int]bool{}
	out := make(chan outcome, n)
	do := func(i int) {
		res, err := g.Do(context.Background(), i)
		if err == nil && !f.isCommitted(i) {
			t.Errorf("Do(%d) returned before its item was committed", i)
		}
		mu.Lock()
		returned[i] = true
		mu.Unlock()
		out <- outcome{i, res, err}
	}
	held, rel := make(chan struct{}), make(chan struct{})
	var once sync.Once
	f.hold = func(items []int) {
		mu.Lock()
		for _, it := range items {
			if returned[it] {
				t.Errorf("Do(%d) returned before its batch %v was committed", it, items)
			}
		}
		mu.Unlock()
		once.Do(func() { close(held); <-rel })
	}
	go do(0)
	watchdog.Within(t, time.Minute, func() struct{} { <-held; return struct{}{} })
	for i := 1; i < n; i++ {
		go do(i)
	}
	waitQueued(t, g, n-1)
	mu.Lock()
	if returned[0] {
		t.Error("the leader returned while its Commit was held")
	}
	mu.Unlock()
	close(rel)
	for range n {
		if o := watchdog.Within(t, time.Minute, func() outcome { return <-out }); o.err != nil {
			t.Errorf("Do(%d): %v", o.item, o.err)
		}
	}
}

// A batch that fails is written again item by item: only the bad item's
// call fails, and the next batch is written as a batch again.
func TestFailureIsolated(t *testing.T) {
	t.Parallel()
	f := &fakeDB{}
	g := &Group[int, string]{Commit: f.commit}
	out := make(chan outcome, 16)
	release := blockedLeader(t, f, g, out)
	for _, i := range []int{1, -2, 3} {
		goDo(g, context.Background(), i, out)
		waitQueued(t, g, 1+slices.Index([]int{1, -2, 3}, i))
	}
	release()
	for range 4 {
		o := watchdog.Within(t, time.Minute, func() outcome { return <-out })
		if bad := o.item < 0; bad != errors.Is(o.err, errBad) || !bad && o.res != fmt.Sprint("r", o.item) {
			t.Errorf("Do(%d) = %q, %v", o.item, o.res, o.err)
		}
	}
	// The next batch: two calls behind a held leader, written together.
	release = blockedLeader(t, f, g, out)
	for i := 4; i < 6; i++ {
		goDo(g, context.Background(), i, out)
	}
	waitQueued(t, g, 2)
	release()
	for range 3 {
		if o := watchdog.Within(t, time.Minute, func() outcome { return <-out }); o.err != nil {
			t.Errorf("Do(%d): %v", o.item, o.err)
		}
	}
	got := f.sizes()
	want := [][]int{{0}, {1, -2, 3}, {1}, {-2}, {3}, {0}}
	if !slices.EqualFunc(got[:len(want)], want, slices.Equal) || len(got[len(want)]) != 2 || len(got) != len(want)+1 {
		t.Errorf("batches %v, want %v then the two of the next batch", got, want)
	}
}

// A whole batch failing (not one item's fault) fails nothing when its
// items succeed alone; a batch of one that fails returns its error.
func TestBatchFailureRetried(t *testing.T) {
	t.Parallel()
	f := &fakeDB{failBatch: 2}
	g := &Group[int, string]{Commit: f.commit}
	out := make(chan outcome, 4)
	release := blockedLeader(t, f, g, out)
	for i := 1; i < 3; i++ {
		goDo(g, context.Background(), i, out)
	}
	waitQueued(t, g, 2)
	release()
	for range 3 {
		if o := watchdog.Within(t, time.Minute, func() outcome { return <-out }); o.err != nil || o.res != fmt.Sprint("r", o.item) {
			t.Errorf("Do(%d) = %q, %v", o.item, o.res, o.err)
		}
	}
	f.mu.Lock()
	f.failBatch = len(f.batches) + 1
	f.mu.Unlock()
	if _, err := g.Do(context.Background(), 7); err == nil {
		t.Error("a lone call whose Commit failed succeeded")
	}
	if f.isCommitted(7) {
		t.Error("the failed lone item is committed")
	}
}

type ctxKey struct{}

// Without FlushTimeout the batch runs under the leader's context and each
// retry under its own caller's: a leader whose context ended fails its
// own call only.
func TestContextsPerCaller(t *testing.T) {
	t.Parallel()
	f := &fakeDB{}
	var mu sync.Mutex
	seen := map[int]any{} // item → context value of its lone retry
	g := &Group[int, string]{Commit: func(ctx context.Context, items []int) ([]string, error) {
		if len(items) == 1 {
			mu.Lock()
			seen[items[0]] = ctx.Value(ctxKey{})
			mu.Unlock()
		}
		return f.commit(ctx, items)
	}}
	out := make(chan outcome, 8)
	release := blockedLeader(t, f, g, out)
	dead, cancel := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, 1))
	cancel()
	go func() {
		res, err := g.Do(dead, 1) // leads the next batch
		out <- outcome{1, res, err}
	}()
	waitQueued(t, g, 1)
	for i := 2; i < 5; i++ {
		goDo(g, context.WithValue(context.Background(), ctxKey{}, i), i, out)
		waitQueued(t, g, i)
	}
	release()
	for range 5 {
		o := watchdog.Within(t, time.Minute, func() outcome { return <-out })
		if (o.item == 1) != errors.Is(o.err, context.Canceled) {
			t.Errorf("Do(%d) = %q, %v", o.item, o.res, o.err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < 5; i++ {
		if seen[i] != i {
			t.Errorf("the retry of %d ran under the context of %v", i, seen[i])
		}
	}
}

// With FlushTimeout the batch and its retries share one context that the
// leader's cancellation does not end, with a deadline; a queued caller
// whose context ends still gets its committed result.
func TestFlushTimeoutDetaches(t *testing.T) {
	t.Parallel()
	f := &fakeDB{}
	var mu sync.Mutex
	var ctxs []context.Context
	g := &Group[int, string]{FlushTimeout: time.Hour, Commit: func(ctx context.Context, items []int) ([]string, error) {
		mu.Lock()
		ctxs = append(ctxs, ctx)
		mu.Unlock()
		return f.commit(ctx, items)
	}}
	out := make(chan outcome, 8)
	release := blockedLeader(t, f, g, out)
	dead, cancel := context.WithCancel(context.Background())
	cancel()
	for _, i := range []int{1, -2, 3} {
		goDo(g, dead, i, out)
		waitQueued(t, g, 1+slices.Index([]int{1, -2, 3}, i))
	}
	release()
	for range 4 {
		o := watchdog.Within(t, time.Minute, func() outcome { return <-out })
		if (o.item < 0) != errors.Is(o.err, errBad) || o.item >= 0 && o.err != nil {
			t.Errorf("Do(%d) = %q, %v", o.item, o.res, o.err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	// ctxs: the leader's batch, then {1,-2,3} and its three retries.
	if len(ctxs) != 5 {
		t.Fatalf("%d commits, want 5", len(ctxs))
	}
	for i, c := range ctxs[1:] {
		if c != ctxs[1] {
			t.Errorf("commit %d ran under another context than its batch", i+2)
		}
	}
	if _, ok := ctxs[1].Deadline(); !ok || ctxs[1].Err() == nil {
		// The flush is over: its context was cancelled on the way out.
		t.Errorf("batch context: deadline %v, err %v; want a deadline, cancelled after the flush", ok, ctxs[1].Err())
	}
}

// A Commit that panics: the panic goes on in the leader, the other calls
// of the batch fail with ErrPanicked, and the Group keeps working.
func TestCommitPanics(t *testing.T) {
	t.Parallel()
	f := &fakeDB{}
	g := &Group[int, string]{Commit: func(ctx context.Context, items []int) ([]string, error) {
		if slices.Contains(items, 13) {
			panic("boom")
		}
		return f.commit(ctx, items)
	}}
	out := make(chan outcome, 4)
	release := blockedLeader(t, f, g, out)
	panicked := make(chan any, 1)
	go func() {
		defer func() { panicked <- recover() }()
		g.Do(context.Background(), 13) // leads the next batch
	}()
	waitQueued(t, g, 1)
	goDo(g, context.Background(), 14, out)
	waitQueued(t, g, 2)
	release()
	for range 2 {
		o := watchdog.Within(t, time.Minute, func() outcome { return <-out })
		if (o.item == 14) != errors.Is(o.err, ErrPanicked) {
			t.Errorf("Do(%d) = %q, %v", o.item, o.res, o.err)
		}
	}
	if p := watchdog.Within(t, time.Minute, func() any { return <-panicked }); p != "boom" {
		t.Errorf("the leader's panic: %v", p)
	}
	if o := watchdog.Within(t, time.Minute, func() outcome {
		res, err := g.Do(context.Background(), 15)
		return outcome{15, res, err}
	}); o.err != nil || o.res != "r15" {
		t.Errorf("after the panic: Do(15) = %q, %v", o.res, o.err)
	}
}

// A Commit returning too few results fails its calls with ErrResults.
func TestWrongResultCount(t *testing.T) {
	t.Parallel()
	g := &Group[int, string]{Commit: func(context.Context, []int) ([]string, error) { return nil, nil }}
	if _, err := g.Do(context.Background(), 1); !errors.Is(err, ErrResults) {
		t.Errorf("Do = %v, want ErrResults", err)
	}
}

// Many concurrent callers (run with -race): every call gets its own
// result, every item is committed exactly once, no batch exceeds
// MaxBatch, and the batches of one goroutine's calls keep its order.
func TestConcurrent(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var order []int
	g := &Group[int, int]{MaxBatch: 5, Commit: func(_ context.Context, items []int) ([]int, error) {
		if len(items) > 5 {
			return nil, fmt.Errorf("batch of %d", len(items))
		}
		res := make([]int, len(items))
		mu.Lock()
		for i, it := range items {
			order = append(order, it)
			res[i] = it * 2
		}
		mu.Unlock()
		return res, nil
	}}
	const workers, each = 16, 200
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for k := range each {
				it := w*each + k
				if r, err := g.Do(context.Background(), it); err != nil || r != it*2 {
					t.Errorf("Do(%d) = %d, %v", it, r, err)
					return
				}
			}
		})
	}
	watchdog.Within(t, 5*time.Minute, func() struct{} { wg.Wait(); return struct{}{} })
	if len(order) != workers*each {
		t.Fatalf("%d items committed, want %d", len(order), workers*each)
	}
	last := map[int]int{}
	seen := map[int]bool{}
	for _, it := range order {
		if seen[it] {
			t.Fatalf("item %d committed twice", it)
		}
		seen[it] = true
		w := it / each
		if prev, ok := last[w]; ok && it < prev {
			t.Fatalf("worker %d: item %d committed after %d", w, it, prev)
		}
		last[w] = it
	}
}
