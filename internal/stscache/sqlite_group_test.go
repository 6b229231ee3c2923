package stscache

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/sqlitedb"
	"github.com/mailsts/mailsts/internal/watchdog"
	"github.com/mailsts/mailsts/mtasts"
)

// waitQueued waits, without sleeping, until n puts are queued behind the
// leader; bounded.
func waitQueued(t *testing.T, s *SQLite, n int) {
	t.Helper()
	for range 50_000_000 {
		if s.puts.Queued() >= n {
			return
		}
		runtime.Gosched()
	}
	t.Fatalf("%d puts queued, want %d", s.puts.Queued(), n)
}

// Concurrent puts share a transaction, and each returns only once its
// row is committed: readable through another connection.
func TestSQLiteGroupCommit(t *testing.T) {
	t.Parallel()
	s, path := openTestSQLite(t)
	ctx := context.Background()
	now := time.Now()
	const n = 24
	release := make(chan struct{})
	var (
		mu       sync.Mutex
		sizes    []int
		returned atomic.Int32
	)
	s.beforeBatch = func(batch []putRow) {
		mu.Lock()
		sizes = append(sizes, len(batch))
		first := len(sizes) == 1
		mu.Unlock()
		if first {
			<-release // the others queue meanwhile
			return
		}
		// At most the first leader's put has returned (it may still be
		// on its way out when the next leader starts): the rows of this
		// batch are not committed yet, and their callers wait.
		if got := returned.Load(); got > 1 {
			t.Errorf("%d puts returned before their batch was written, want at most 1", got)
		}
	}
	put := func(i int) error {
		e := benchEntry(i, now)
		err := s.Put(ctx, e)
		returned.Add(1)
		if err != nil {
			return err
		}
		// Committed: the reader connections see it.
		got, err := s.Get(ctx, e.Domain)
		if err != nil || got == nil || got.ID != e.ID {
			return fmt.Errorf("%s after Put: %+v, %v", e.Domain, got, err)
		}
		return nil
	}
	errs := make(chan error, n)
	go func() { errs <- put(0) }()
	// The leader is blocked in its hook with a batch of one.
	watchdog.Within(t, time.Minute, func() int {
		for range 50_000_000 {
			mu.Lock()
			started := len(sizes) == 1
			mu.Unlock()
			if started {
				return 0
			}
			runtime.Gosched()
		}
		t.Fatal("the first put never reached its batch")
		return 0
	})
	for i := 1; i < n; i++ {
		go func() { errs <- put(i) }()
	}
	waitQueued(t, s, n-1)
	close(release)
	for range n {
		if err := watchdog.Within(t, time.Minute, func() error { return <-errs }); err != nil {
			t.Error(err)
		}
	}
	mu.Lock()
	if len(sizes) != 2 || sizes[0] != 1 || sizes[1] != n-1 {
		t.Errorf("batches %v, want [1 %d]", sizes, n-1)
	}
	mu.Unlock()
	// And on disk for another process: a second handle on the file.
	s2, err := OpenSQLite(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	for i := range n {
		if e, err := s2.Get(ctx, benchEntry(i, now).Domain); err != nil || e == nil {
			t.Errorf("entry %d not in the file: %v", i, err)
		}
	}
}

// A batch that fails is written again row by row, each under its own
// caller's context: the leader's ended context fails its own put only.
func TestSQLiteGroupCommitFailureIsolated(t *testing.T) {
	t.Parallel()
	s, _ := openTestSQLite(t)
	now := time.Now()
	release := make(chan struct{})
	var once sync.Once
	led := make(chan struct{})
	s.beforeBatch = func([]putRow) { once.Do(func() { close(led); <-release }) }
	errs := make(chan error, 8)
	go func() { errs <- s.Put(context.Background(), benchEntry(0, now)) }()
	// The first put leads, alone in its batch.
	watchdog.Within(t, time.Minute, func() struct{} { <-led; return struct{}{} })
	// The next leader's context has ended: its batch cannot begin.
	dead, cancel := context.WithCancel(context.Background())
	cancel()
	deadErr := make(chan error, 1)
	go func() { deadErr <- s.Put(dead, benchEntry(1, now)) }()
	waitQueued(t, s, 1)
	for i := 2; i < 6; i++ {
		go func() { errs <- s.Put(context.Background(), benchEntry(i, now)) }()
	}
	waitQueued(t, s, 5)
	close(release)
	for range 5 {
		if err := watchdog.Within(t, time.Minute, func() error { return <-errs }); err != nil {
			t.Errorf("a put with a live context failed: %v", err)
		}
	}
	if err := watchdog.Within(t, time.Minute, func() error { return <-deadErr }); !errors.Is(err, context.Canceled) {
		t.Errorf("the put with an ended context: %v, want context.Canceled", err)
	}
	ctx := context.Background()
	for i := 2; i < 6; i++ {
		if e, err := s.Get(ctx, benchEntry(i, now).Domain); err != nil || e == nil {
			t.Errorf("entry %d: %v, %v", i, e, err)
		}
	}
	if e, err := s.Get(ctx, benchEntry(1, now).Domain); err != nil || e != nil {
		t.Errorf("the failed put's entry: %v, %v; want none", e, err)
	}
}

// crashChildEnv makes the test binary the child of TestSQLitePutSurvivesKill.
const crashChildEnv = "STSCACHE_TEST_CRASH_CHILD"

// Every Put that returned is on disk, whatever the moment the process is
// killed (SIGKILL: no deferred code, no close): the group commit answers a
// put only after the commit holding it.
func TestSQLitePutSurvivesKill(t *testing.T) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(path)
		return
	}
	t.Parallel()
	path := filepath.Join(t.TempDir(), "cache.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestSQLitePutSurvivesKill$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := watchdog.Within(t, 5*time.Minute, func() []string {
		var acked []string
		sc := bufio.NewScanner(out)
		for sc.Scan() && len(acked) < 400 {
			if d, ok := strings.CutPrefix(sc.Text(), "acked "); ok {
				acked = append(acked, d)
			}
		}
		return acked
	})
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	if len(acked) < 400 {
		t.Fatalf("the child acknowledged %d puts before ending, want 400", len(acked))
	}
	s, err := OpenSQLite(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, d := range acked {
		if e, err := s.Get(context.Background(), d); err != nil || e == nil {
			t.Errorf("%s was acknowledged before the kill but is not in the file: %v", d, err)
		}
	}
}

// crashChild puts entries from 16 goroutines and prints each domain once
// its Put returned, until killed (bounded).
func crashChild(path string) {
	s, err := OpenSQLite(context.Background(), path, nil)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	var mu sync.Mutex
	var next atomic.Int64
	var wg sync.WaitGroup
	now := time.Now()
	for range 16 {
		wg.Go(func() {
			for range 10_000 {
				e := benchEntry(int(next.Add(1)), now)
				if err := s.Put(context.Background(), e); err != nil {
					fmt.Println("error", err)
					os.Exit(1)
				}
				mu.Lock()
				fmt.Println("acked", e.Domain)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	os.Exit(0)
}

// Put writes through the connection that never waits for a lock, under a
// context without cancellation: a put whose context ends while its row
// is being written still commits it and succeeds (through the writer
// connection and the caller's context, it would fail with
// context.Canceled: the driver would interrupt it).
func TestSQLitePutNotInterruptedOnceWriting(t *testing.T) {
	t.Parallel()
	s, _ := openTestSQLite(t)
	ctx, cancel := context.WithCancel(context.Background())
	s.beforeBatch = func([]putRow) { cancel() }
	e := benchEntry(1, time.Now())
	if err := s.Put(ctx, e); err != nil {
		t.Fatalf("put whose context ended during the write: %v", err)
	}
	if got, err := s.Get(context.Background(), e.Domain); err != nil || got == nil {
		t.Errorf("its entry: %v, %v", got, err)
	}
	if n := s.waitedPuts.Load(); n != 0 {
		t.Errorf("%d puts went through the waiting writer with the file unlocked", n)
	}
}

// While another process holds the file's write lock, Put waits for it as
// before the connection that never waits: through the writer connection,
// under the caller's context (Tiered's BackTimeout bounds it), and
// succeeds once the lock is released.
func TestSQLitePutWaitsForAnotherWriter(t *testing.T) {
	t.Parallel()
	s, path := openTestSQLite(t)
	now := time.Now()
	other, err := sqlitedb.Open(path, sqlitedb.Options{BusyTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	tx, err := other.W.BeginTx(context.Background(), nil) // BEGIN IMMEDIATE: the write lock
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() // after a failure; a no-op after the Commit below
	// A bounded wait ends with the caller's context, not SQLITE_BUSY: the
	// context ends once the put waits on the writer connection (not on a
	// timer, which a loaded machine could run out before the write).
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer cancel()
		for i := 0; s.waitedPuts.Load() < 1 && i < 50_000_000; i++ {
			runtime.Gosched()
		}
	}()
	err = s.Put(ctx, benchEntry(1, now))
	cancel()
	if !errors.Is(err, context.Canceled) || s.waitedPuts.Load() != 1 {
		t.Errorf("put against a locked file: %v after %d waits; want context.Canceled after 1", err, s.waitedPuts.Load())
	}
	done := make(chan error, 1)
	go func() { done <- s.Put(context.Background(), benchEntry(2, now)) }()
	for i := 0; s.waitedPuts.Load() < 2; i++ {
		select {
		case err := <-done:
			t.Fatalf("put returned without waiting for the lock: %v", err)
		default:
		}
		if i == 50_000_000 {
			t.Fatal("the put does not wait for the lock")
		}
		runtime.Gosched()
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := watchdog.Within(t, time.Minute, func() error { return <-done }); err != nil {
		t.Errorf("put once the lock was released: %v", err)
	}
	if e, err := s.Get(context.Background(), benchEntry(2, now).Domain); err != nil || e == nil {
		t.Errorf("its entry: %v, %v", e, err)
	}
}

// When the connection that never waits could not prepare Put's statement
// at open (another process held the file exclusively), Puts, lone and
// batched, go through the writer connection.
func TestSQLitePutWithoutNoWait(t *testing.T) {
	t.Parallel()
	s, _ := openTestSQLite(t)
	s.putNoWait.Close()
	s.putNoWait = nil // as OpenSQLite leaves it after SQLITE_BUSY
	ctx := context.Background()
	now := time.Now()
	if err := s.Put(ctx, benchEntry(0, now)); err != nil {
		t.Fatal(err)
	}
	if err := s.putBatch(ctx, []putRow{row(t, benchEntry(1, now)), row(t, benchEntry(2, now))}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if e, err := s.Get(ctx, benchEntry(i, now).Domain); err != nil || e == nil {
			t.Errorf("entry %d: %v, %v", i, e, err)
		}
	}
}

// row is e as a queued Put.
func row(t *testing.T, e *mtasts.Entry) putRow {
	t.Helper()
	args, err := entryArgs(e)
	if err != nil {
		t.Fatal(err)
	}
	return putRow{domain: e.Domain, args: args}
}
