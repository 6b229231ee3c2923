package stscache

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailsts/mailsts/mtasts"
)

// Memory is an in-memory [mtasts.Store]: a map guarded by a read-write
// mutex. It is the front of a [Tiered] store and is fast enough to sit on
// the per-query path: Get is one read-locked map lookup and one copy, and
// [Memory.Touch] records use with an atomic store, never a write lock.
//
// LastUsed is kept to the millisecond. The zero value is an empty store
// ready to use; a Memory must not be copied after first use.
type Memory struct {
	// Now returns the current time, used by Cap and Evict to tell valid
	// policies from expired ones. Nil means time.Now.
	Now func() time.Time
	// Logger receives eviction reports. Nil discards them.
	Logger *slog.Logger

	mu sync.RWMutex
	m  map[string]*item
}

// item is one stored entry. Everything but the atomics is immutable once
// the item is in the map; a Put installs a new item.
type item struct {
	e        mtasts.Entry // e.LastUsed is unused: lastUsed holds it
	lastUsed atomic.Int64 // Unix milliseconds (zeroMS for the zero time)
	dirty    atomic.Bool  // lastUsed moved since Back last saw it (Tiered)
	loadedAt time.Time    // when Tiered last synchronised it with Back
}

func newItem(e *mtasts.Entry, loadedAt time.Time) *item {
	it := &item{e: *e, loadedAt: loadedAt}
	it.e.LastUsed = time.Time{}
	it.lastUsed.Store(toMS(e.LastUsed))
	return it
}

// entry returns a copy of the stored entry that the caller owns.
func (it *item) entry() *mtasts.Entry {
	e := it.e
	e.LastUsed = fromMS(it.lastUsed.Load())
	return &e
}

// touch raises lastUsed to ms (never lowers it) and marks the item dirty
// when it moved.
func (it *item) touch(ms int64) {
	// Bounded CAS loop: each failed attempt means another toucher moved
	// the value; after a few rounds someone newer has won anyway.
	for range 64 {
		old := it.lastUsed.Load()
		if ms <= old {
			return
		}
		if it.lastUsed.CompareAndSwap(old, ms) {
			it.dirty.Store(true)
			return
		}
	}
}

var _ mtasts.Store = (*Memory)(nil)

func (m *Memory) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

func (m *Memory) logger() *slog.Logger {
	if m.Logger != nil {
		return m.Logger
	}
	return discard
}

var discard = slog.New(slog.DiscardHandler)

func (m *Memory) item(domain string) *item {
	m.mu.RLock()
	it := m.m[domain]
	m.mu.RUnlock()
	return it
}

// putItem installs it under its domain and returns the item it replaced.
func (m *Memory) putItem(it *item) *item {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = make(map[string]*item)
	}
	old := m.m[it.e.Domain]
	m.m[it.e.Domain] = it
	return old
}

// addItem installs it only when its domain has no item yet.
func (m *Memory) addItem(it *item) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = make(map[string]*item)
	}
	if _, ok := m.m[it.e.Domain]; ok {
		return false
	}
	m.m[it.e.Domain] = it
	return true
}

// removeItem deletes the domain's item if it is still it (not replaced by a
// concurrent Put).
func (m *Memory) removeItem(it *item) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m[it.e.Domain] != it {
		return false
	}
	delete(m.m, it.e.Domain)
	return true
}

// snapshot returns the current items; callers work on it without the lock
// so that long scans never stall the query path.
func (m *Memory) snapshot() []*item {
	m.mu.RLock()
	defer m.mu.RUnlock()
	items := make([]*item, 0, len(m.m))
	for _, it := range m.m {
		items = append(items, it)
	}
	return items
}

// Get implements [mtasts.Store]. It returns a copy the caller may modify.
func (m *Memory) Get(_ context.Context, domain string) (*mtasts.Entry, error) {
	it := m.item(domain)
	if it == nil {
		return nil, nil
	}
	return it.entry(), nil
}

// Put implements [mtasts.Store]. The entry is copied; its Policy is shared
// and must not be modified afterwards (the mtasts.Store contract).
func (m *Memory) Put(_ context.Context, e *mtasts.Entry) error {
	if err := checkDomain(e.Domain); err != nil {
		return err
	}
	m.putItem(newItem(e, time.Time{}))
	return nil
}

// Delete implements [mtasts.Store].
func (m *Memory) Delete(_ context.Context, domain string) error {
	m.mu.Lock()
	delete(m.m, domain)
	m.mu.Unlock()
	return nil
}

// Range implements [mtasts.Store]. It works on a snapshot, so fn may call
// back into m.
func (m *Memory) Range(ctx context.Context, fn func(*mtasts.Entry) bool) error {
	for _, it := range m.snapshot() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !fn(it.entry()) {
			return nil
		}
	}
	return nil
}

// Len returns the number of entries.
func (m *Memory) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.m)
}

// Touch records that domain answered a query at t: it raises the entry's
// LastUsed (never lowers it) without taking the write lock. It reports
// whether the domain has an entry. This is the call to make per query;
// Put is not.
func (m *Memory) Touch(domain string, t time.Time) bool {
	it := m.item(domain)
	if it == nil {
		return false
	}
	it.touch(toMS(t))
	return true
}

// ErrNegativeCap is returned by Cap for a negative size: a caller bug (a
// misread setting); pass 0 or more.
var ErrNegativeCap = errors.New("stscache: negative size cap")

// Cap evicts least recently used entries until at most max remain. It
// never evicts a valid enforce or testing policy (STS-CACHE-10: a size bound
// must never quietly drop enforce policies; STS-CACHE-5: a valid policy is
// applied until it expires): only negative entries, expired policies and
// mode none policies are candidates. When they are not enough, Cap keeps
// the protected entries, stays over max and logs a warning. Every eviction
// is logged at Warn level. It returns the number of entries evicted.
func (m *Memory) Cap(ctx context.Context, max int) (int, error) {
	return m.capAt(ctx, max, m.now())
}

func (m *Memory) capAt(ctx context.Context, max int, now time.Time) (int, error) {
	if max < 0 {
		return 0, ErrNegativeCap
	}
	if m.Len() <= max {
		return 0, nil
	}
	items := m.snapshot()
	over := len(items) - max
	cands := items[:0]
	for _, it := range items {
		if !protected(&it.e, now) {
			cands = append(cands, it)
		}
	}
	slices.SortFunc(cands, func(a, b *item) int {
		return cmp.Or(cmp.Compare(a.lastUsed.Load(), b.lastUsed.Load()), cmp.Compare(a.e.Domain, b.e.Domain))
	})
	evicted := 0
	for _, it := range cands {
		if evicted >= over {
			break
		}
		if err := ctx.Err(); err != nil {
			return evicted, err
		}
		if m.removeItem(it) {
			evicted++
		}
	}
	reportCap(ctx, m.logger(), "memory", evicted, over, max, m.Len())
	return evicted, nil
}

// reportCap logs the outcome of a Cap call.
func reportCap(ctx context.Context, log *slog.Logger, store string, evicted, over, max, remaining int) {
	if evicted > 0 {
		log.WarnContext(ctx, "stscache: size cap reached, evicted least recently used entries (never valid enforce/testing policies)",
			"store", store, "evicted", evicted, "cap", max, "remaining", remaining)
	}
	if evicted < over && remaining > max {
		log.WarnContext(ctx, "stscache: still over the size cap: the rest are valid enforce/testing policies, which are kept (STS-CACHE-10); raise the cap",
			"store", store, "cap", max, "remaining", remaining)
	}
}

// Evict removes entries unused since unusedSince that hold no valid policy
// worth keeping: negative (policy-less) entries, expired policies and mode
// none policies. Valid enforce and testing policies are never evicted,
// however long unused (STS-CACHE-10). It returns the number removed.
func (m *Memory) Evict(ctx context.Context, unusedSince time.Time) (int, error) {
	cut := toMS(unusedSince)
	now := m.now()
	n := 0
	for _, it := range m.snapshot() {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		if it.lastUsed.Load() < cut && !protected(&it.e, now) && m.removeItem(it) {
			n++
		}
	}
	return n, nil
}
