package policyd

import (
	"context"
	"time"
)

// CacheStatus is the state of a policy cache store, for `mailsts cache
// status` and the daemon's logs and metrics.
type CacheStatus struct {
	// Kind and Where are Store's.
	Kind, Where string
	// Entries is the number of entries in memory.
	Entries int
	// Degraded is true while the back store (SQLite or Redis) is failing:
	// lookups are answered from memory, domains not in memory are looked
	// up afresh, and what is written meanwhile waits in memory (Pending
	// entries) to be written back when the store answers again.
	Degraded bool
	// Since is when the degraded state began; Err is the last failure.
	Since time.Time
	Err   error
	// Pending is the number of entries waiting to be written back.
	Pending int
}

// Live returns the store's state as this process sees it now.
func (s *Store) Live() CacheStatus {
	cs := CacheStatus{Kind: s.Kind, Where: s.Where, Entries: s.front.Len()}
	if s.tiered != nil {
		b := s.tiered.BackState()
		cs.Degraded, cs.Since, cs.Err, cs.Pending = b.Degraded, b.Since, b.Err, b.Pending
	}
	return cs
}

// Check asks the back store now (bounded by a short timeout) and returns
// the store's state: a command that opened the store (`mailsts cache
// status`) learns whether the back store answers. A failure is logged at
// ERROR.
func (s *Store) Check(ctx context.Context) CacheStatus {
	if s.tiered != nil {
		s.tiered.Check(ctx)
	}
	return s.Live()
}

// CacheStatus returns the running daemon's cache state (zero before Run
// opened the store).
func (d *Daemon) CacheStatus() CacheStatus {
	if d.store == nil {
		return CacheStatus{}
	}
	return d.store.Live()
}
