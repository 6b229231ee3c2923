package mtasts

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestMemoryStore(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	var s MemoryStore // zero value usable
	if e, err := s.Get(ctx, "a.example"); e != nil || err != nil {
		t.Fatalf("Get on empty = %v, %v", e, err)
	}
	p := &Policy{Mode: ModeEnforce, MX: []string{"mx.a.example"}, MaxAge: 86400}
	in := &Entry{Domain: "a.example", Policy: p, ID: "1", FetchedAt: t0, Failures: 2, LastError: "x"}
	if err := s.Put(ctx, in); err != nil {
		t.Fatal(err)
	}
	in.ID = "changed after Put" // the store must not share the entry
	got, err := s.Get(ctx, "a.example")
	if err != nil || got.ID != "1" || got.Policy != p || !got.FetchedAt.Equal(t0) || got.Failures != 2 || got.LastError != "x" {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	got.ID = "changed after Get"
	if again, _ := s.Get(ctx, "a.example"); again.ID != "1" {
		t.Fatalf("Get returned shared entry: %+v", again)
	}
	if err := s.Put(ctx, &Entry{Domain: "b.example"}); err != nil {
		t.Fatal(err)
	}
	if s.Len() != 2 {
		t.Fatalf("Len = %d", s.Len())
	}
	// Range may call the store (no deadlock) and stops when fn says so.
	seen := 0
	err = s.Range(ctx, func(e *Entry) bool {
		seen++
		e.ID = "mutated in Range"
		_ = s.Put(ctx, &Entry{Domain: "c.example"})
		return false
	})
	if err != nil || seen != 1 {
		t.Fatalf("Range: seen %d, %v", seen, err)
	}
	if e, _ := s.Get(ctx, "a.example"); e.ID != "1" {
		t.Errorf("Range shared the entry: %+v", e)
	}
	all := map[string]bool{}
	_ = s.Range(ctx, func(e *Entry) bool { all[e.Domain] = true; return true })
	if len(all) != 3 {
		t.Errorf("Range saw %v", all)
	}
	for _, d := range []string{"", "A.example", "a.example.", "a..example", "bücher.example"} {
		if err := s.Put(ctx, &Entry{Domain: d}); !errors.Is(err, ErrInvalidDomain) {
			t.Errorf("Put(%q) = %v, want ErrInvalidDomain", d, err)
		}
	}
	if err := s.Delete(ctx, "a.example"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "missing.example"); err != nil {
		t.Errorf("Delete(missing) = %v", err)
	}
	if e, _ := s.Get(ctx, "a.example"); e != nil || s.Len() != 2 {
		t.Errorf("after Delete: %v, Len %d", e, s.Len())
	}
}

func TestMemoryStore_Concurrent(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := NewMemoryStore()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				d := fmt.Sprintf("d%d.example", i%20)
				_ = s.Put(ctx, &Entry{Domain: d, Failures: g, LastUsed: time.Unix(int64(i), 0)})
				// Another goroutine may delete d0 and d10 between the Put
				// and the Get; every other domain must be there.
				if e, err := s.Get(ctx, d); err != nil || (e == nil && i%10 != 0) {
					t.Errorf("Get(%s) = %v, %v", d, e, err)
					return
				}
				_ = s.Range(ctx, func(*Entry) bool { return true })
				if i%50 == 0 {
					_ = s.Delete(ctx, d)
				}
			}
		})
	}
	wg.Wait()
	if n := s.Len(); n > 20 {
		t.Errorf("Len = %d", n)
	}
}
