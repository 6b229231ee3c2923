package mtasts

import (
	"context"
	"fmt"
	"sync"
)

// MemoryStore is a [Store] that keeps entries in memory. It is safe for
// concurrent use, and its zero value is an empty store ready to use. It does
// not survive a restart (STS-CACHE-10): daemons should use a persistent
// store and keep MemoryStore for tests, tools and short-lived processes.
// It is deliberately plain (a map of copied entries, no size bound, no
// use times): mailsts's own daemon uses a compact, interned, size-capped
// memory store in front of SQLite or Redis, built for hundreds of
// thousands of domains; a program that holds a few domains needs none of
// that.
//
// Entries are copied on Put and on the way out, so callers may modify what
// they pass in or get back. Policies are shared, not copied: a [Policy]
// handed to a Store is treated as immutable.
type MemoryStore struct {
	mu sync.RWMutex
	m  map[string]Entry
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore { return &MemoryStore{} }

// Get implements [Store].
func (s *MemoryStore) Get(ctx context.Context, domain string) (*Entry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	e, ok := s.m[domain]
	s.mu.RUnlock()
	if !ok {
		return nil, nil
	}
	return &e, nil
}

// Put implements [Store]. A domain that is not in normalized form
// (lowercase A-labels, no trailing dot) is rejected with ErrInvalidDomain.
func (s *MemoryStore) Put(ctx context.Context, e *Entry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, err := normalizeDomain(e.Domain); err != nil {
		return err
	} else if d != e.Domain {
		return fmt.Errorf("%w: %q is not in normalized form (%q)", ErrInvalidDomain, e.Domain, d)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string]Entry)
	}
	s.m[e.Domain] = *e
	return nil
}

// Delete implements [Store].
func (s *MemoryStore) Delete(ctx context.Context, domain string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.m, domain)
	s.mu.Unlock()
	return nil
}

// Range implements [Store]. It calls fn on a snapshot taken when Range
// starts, without holding the lock, so fn may call the store's other
// methods; entries added or changed meanwhile may or may not be seen.
func (s *MemoryStore) Range(ctx context.Context, fn func(*Entry) bool) error {
	s.mu.RLock()
	snap := make([]Entry, 0, len(s.m))
	for _, e := range s.m {
		snap = append(snap, e)
	}
	s.mu.RUnlock()
	for i := range snap {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !fn(&snap[i]) {
			return nil
		}
	}
	return nil
}

// Len returns the number of entries.
func (s *MemoryStore) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.m)
}
