package testnet

import (
	"errors"
	"fmt"
	"sync"
	"testing"
)

// fatalRecorder is a TB that records Fatal instead of stopping the test.
type fatalRecorder struct {
	mu  sync.Mutex
	msg []string
}

func (*fatalRecorder) Helper() {}

func (*fatalRecorder) Cleanup(func()) {}

func (r *fatalRecorder) Fatal(args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msg = append(r.msg, fmt.Sprint(args...))
}

func TestSharedStartsOnce(t *testing.T) {
	t.Parallel()
	calls := 0
	want := &Net{}
	s := &Shared{Start: func() (*Net, error) { calls++; return want, nil }}
	var wg sync.WaitGroup
	got := make([]*Net, 8)
	for i := range got {
		wg.Add(1)
		go func() { defer wg.Done(); got[i] = s.Net(t) }()
	}
	wg.Wait()
	if calls != 1 {
		t.Errorf("Start called %d times, want 1", calls)
	}
	for i, n := range got {
		if n != want {
			t.Errorf("caller %d got %p, want the shared %p", i, n, want)
		}
	}
}

func TestSharedStartError(t *testing.T) {
	t.Parallel()
	s := &Shared{Start: func() (*Net, error) { return nil, errors.New("no loopback") }}
	for range 2 {
		r := &fatalRecorder{}
		s.Net(r)
		if len(r.msg) != 1 || r.msg[0] != "testnet: no loopback" {
			t.Errorf("Fatal calls %q, want one for the start error", r.msg)
		}
	}
}
