package stscache

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailsts/mailsts/mtasts"
)

// LastUsedWriter is implemented by back stores that can record LastUsed for
// many domains at once without rewriting whole entries ([SQLite], [Redis]).
// [Tiered.Flush] uses it; with other back stores it falls back to Get and
// Put per domain.
type LastUsedWriter interface {
	// WriteLastUsed raises LastUsed of each listed domain to the given time
	// (never lowering it). Domains without an entry are ignored.
	WriteLastUsed(ctx context.Context, used map[string]time.Time) error
}

// ErrBackUnavailable is returned by a [Tiered] that is not watched
// ([Tiered.Watch]) while its back store is failing: by Get for a domain not
// in memory, by Put after writing memory only. After a back store error,
// Tiered stops asking it for FrontTTL instead of paying a timeout per
// query. Domains already in memory keep being answered from memory. A
// watched Tiered never returns it: it answers (nil, nil) for domains not
// in memory and writes Put entries back later.
var ErrBackUnavailable = errors.New("stscache: back store unavailable")

// DefaultFrontTTL is how long Tiered trusts a front entry before reading the
// back store again when FrontTTL is zero.
const DefaultFrontTTL = 30 * time.Second

// maxAbsent bounds the memory of domains known to be absent from Back; past
// it the set is cleared (the cost is one back read per domain).
const maxAbsent = 1 << 16

// Tiered is an [mtasts.Store] that answers from memory and persists to a
// slower store: a [Memory] Front before a [SQLite] or [Redis] Back.
//
//   - Get is served from Front. A miss reads through to Back and fills
//     Front; so does a hit older than FrontTTL, so that a policy another
//     daemon refreshed in a shared Redis is seen within FrontTTL. Domains
//     absent from Back are remembered for FrontTTL too, so a burst of
//     queries for an unknown domain costs one back read, not one each.
//   - Put and Delete write through to both.
//   - Use is recorded with [Tiered.Touch] in memory only, and written back
//     in batch by [Tiered.Flush]: never a disk write or a network round trip
//     per query.
//   - If Back loses a valid enforce or testing policy that Front still
//     holds (Redis restarted without persistence, or evicted it under
//     maxmemory), Tiered keeps it and writes it back (STS-CACHE-10).
//   - If Back fails, domains in Front are served from Front (STS-CACHE-5:
//     a back store outage must not drop a valid policy), and no query
//     waits on Back more than BackTimeout. With [Tiered.Watch] running
//     (a daemon), Tiered is then degraded ([BackState]) until Back answers
//     again: domains not in Front are reported as not cached, so the caller
//     looks them up instead of failing, entries Put meanwhile are written
//     back, and memory is reconciled with Back (a Redis that restarted
//     empty gets back what it lost; purges made meanwhile are honoured).
//     Without Watch, Back is not asked again for FrontTTL.
//
// Front and Back must be set before use; the other fields may be left
// zero. A Tiered must not be copied after first use.
type Tiered struct {
	Front *Memory
	Back  mtasts.Store
	// FrontTTL is how long a front entry is trusted before Back is read
	// again. Zero means DefaultFrontTTL (right for a shared Redis); a
	// negative value means forever (right when this process is Back's only
	// writer, as with a local SQLite file).
	FrontTTL time.Duration
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
	// Logger receives warnings about the back store. Nil discards.
	Logger *slog.Logger
	// BackTimeout bounds each back store call made for a query (the
	// read-through of Get, the write-through of Put). Zero means
	// DefaultBackTimeout.
	BackTimeout time.Duration
	// ProbeEvery is the first wait of [Tiered.Watch] before probing a
	// failed back store; it doubles up to 30 s. Zero means
	// DefaultProbeEvery.
	ProbeEvery time.Duration
	// OnBackState, when set, is called with true when the back store
	// fails and Tiered becomes degraded, and with false when it is healthy
	// again (see [BackState]); from the goroutine that noticed, never
	// concurrently with itself for one transition.
	OnBackState func(degraded bool)
	// OnResync, when set, is called by Watch after each reconciliation of
	// memory with the back store, with what it did.
	OnResync func(ResyncStats)

	seed     maphash.Seed
	seedOne  sync.Once
	epoch    time.Time // item.loadedAt counts from here; set by the first since
	epochSet sync.Once
	stripes  [64]sync.Mutex // serialise back reads and writes per domain

	absentMu sync.Mutex
	absent   map[string]time.Time // domain → when its absence stops being trusted

	isDown atomic.Bool // deg.down, read without the lock
	deg    degraded

	// complete is 1 + Front.drops at the start of the last Load that
	// copied all of Back into Front, 0 before: while Front.drops has not
	// moved since, and FrontTTL is negative (this process is Back's only
	// writer, so everything it writes goes through Front), Front holds
	// every entry of Back and a miss needs no back read.
	complete atomic.Uint64
}

var _ mtasts.Store = (*Tiered)(nil)

func (t *Tiered) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

func (t *Tiered) logger() *slog.Logger {
	if t.Logger != nil {
		return t.Logger
	}
	return discard
}

func (t *Tiered) ttl() time.Duration {
	if t.FrontTTL == 0 {
		return DefaultFrontTTL
	}
	return t.FrontTTL
}

// since returns now as an offset from t's epoch in nanoseconds, measured
// on the monotonic clock when the clock has one.
func (t *Tiered) since(now time.Time) int64 {
	t.epochSet.Do(func() { t.epoch = now })
	return int64(now.Sub(t.epoch))
}

// loadTime returns now in the form of an item's load time: milliseconds
// from t's epoch, rounded down (so that an item looks at most a
// millisecond older than it is, never younger).
func (t *Tiered) loadTime(now time.Time) int64 {
	ns := t.since(now)
	ms := ns / 1e6
	if ns%1e6 < 0 {
		ms--
	}
	return ms
}

// fresh reports whether it can be used at now without asking Back.
func (t *Tiered) fresh(it *item, now time.Time) bool {
	ttl := t.ttl()
	if ttl < 0 {
		return true
	}
	at := it.loadedMS()
	if at == neverLoaded {
		return false
	}
	return time.Duration(t.since(now)-at*1e6) < ttl
}

func (t *Tiered) stripe(domain string) *sync.Mutex {
	t.seedOne.Do(func() { t.seed = maphash.MakeSeed() })
	return &t.stripes[maphash.String(t.seed, domain)%uint64(len(t.stripes))]
}

func (t *Tiered) isAbsent(domain string, now time.Time) bool {
	t.absentMu.Lock()
	defer t.absentMu.Unlock()
	until, ok := t.absent[domain]
	return ok && (until.IsZero() || now.Before(until))
}

func (t *Tiered) setAbsent(domain string, now time.Time, absent bool) {
	t.absentMu.Lock()
	defer t.absentMu.Unlock()
	if !absent {
		delete(t.absent, domain)
		return
	}
	if t.absent == nil || len(t.absent) >= maxAbsent {
		t.absent = make(map[string]time.Time)
	}
	var until time.Time // zero: forever
	if ttl := t.ttl(); ttl > 0 {
		until = now.Add(ttl)
	}
	t.absent[domain] = until
}

// Get implements [mtasts.Store]. A fresh front hit takes one read lock and
// one copy; see the type documentation for misses.
func (t *Tiered) Get(ctx context.Context, domain string) (*mtasts.Entry, error) {
	it := t.Front.item(domain)
	if t.ttl() < 0 {
		if it != nil {
			return it.entry(domain), nil // no clock read when the front never goes stale
		}
		if t.frontComplete() {
			// Memory proves the domain absent: no disk read for a
			// never-seen domain.
			return nil, nil
		}
	}
	now := t.now()
	if it != nil && t.fresh(it, now) {
		return it.entry(domain), nil
	}
	mu := t.stripe(domain)
	mu.Lock()
	defer mu.Unlock()
	// Another goroutine may have filled the front while we waited.
	it = t.Front.item(domain)
	if it != nil && t.fresh(it, now) {
		return it.entry(domain), nil
	}
	if it == nil && t.isAbsent(domain, now) {
		return nil, nil
	}
	if !t.backUsable(now) {
		return t.unavailable(domain, it, nil)
	}

	bctx, cancel := t.backCtx(ctx)
	e, err := t.Back.Get(bctx, domain)
	cancel()
	if outage(err) {
		if ctx.Err() != nil {
			// The caller gave up, not Back.
			return nil, fmt.Errorf("stscache: back store read %s: %w", domain, err)
		}
		t.backFailed(ctx, err)
		return t.unavailable(domain, it, err)
	}
	t.backOK(ctx)
	if err != nil {
		// A corrupt back entry is as good as none; the caller's next Put
		// replaces it.
		t.logger().WarnContext(ctx, "stscache: ignoring corrupt back store entry", "domain", domain, "err", err)
		e = nil
	}
	if e == nil && it != nil && it.protected(now) && t.purged(ctx, domain) {
		// Deleted on purpose (another process's purge), not lost: drop it.
		t.Front.removeItem(domain, it)
		t.setAbsent(domain, now, true)
		t.logger().InfoContext(ctx, "stscache: policy purged from the back store; dropped from memory", "domain", domain)
		return nil, nil
	}
	if e == nil {
		if it != nil && it.protected(now) {
			// STS-CACHE-10: Back lost a valid enforce/testing policy (a
			// Redis restart without persistence, maxmemory eviction, or a
			// Delete by another daemon). Dropping it would reopen the
			// downgrade window, so keep it and put it back.
			cur := it.entry(domain)
			nit := t.Front.newItem(cur, t.loadTime(now))
			nit.inheritDirty(it)
			t.Front.putItem(domain, nit)
			t.logger().WarnContext(ctx, "stscache: back store lost a valid policy; restoring it from memory",
				"domain", domain, "mode", cur.Policy.Mode, "expires", cur.Expires())
			bcur := *cur // Back may swap in a shared policy of its own
			bctx, cancel := t.backCtx(ctx)
			err := t.Back.Put(bctx, &bcur)
			cancel()
			if err != nil {
				t.logger().WarnContext(ctx, "stscache: restoring policy to back store failed", "domain", domain, "err", err)
				if outage(err) && ctx.Err() == nil {
					t.backFailed(ctx, err)
					t.queueIfDown(domain)
				}
			}
			return cur, nil
		}
		if it != nil {
			t.Front.removeItem(domain, it)
		}
		t.setAbsent(domain, now, true)
		return nil, nil
	}
	nit := t.Front.newItem(e, t.loadTime(now))
	if it != nil {
		// Keep use recorded here but not yet flushed.
		nit.inheritUse(it)
	}
	t.Front.putItem(domain, nit)
	t.setAbsent(domain, now, false)
	return nit.entry(domain), nil
}

// unavailable answers Get for domain while Back cannot be asked: from it
// when Front holds the domain (STS-CACHE-5); else (nil, nil) when a Watch
// runs (the caller looks the domain up afresh; its Put is written back
// later), or ErrBackUnavailable.
func (t *Tiered) unavailable(domain string, it *item, err error) (*mtasts.Entry, error) {
	if it != nil {
		return it.entry(domain), nil
	}
	if t.watched() {
		return nil, nil
	}
	if err == nil {
		err = t.downErr()
	}
	return nil, fmt.Errorf("%w: %s not in memory: %w", ErrBackUnavailable, domain, err)
}

// Put implements [mtasts.Store]: it writes Front, then Back. If Back fails
// the entry is still in Front (this process applies the new policy) and
// the error, wrapped, says that Back did not get it. Like [Memory.Put], it
// sets e.Policy to the equal policy Front shares among entries.
func (t *Tiered) Put(ctx context.Context, e *mtasts.Entry) error {
	if err := checkDomain(e.Domain); err != nil {
		return err
	}
	mu := t.stripe(e.Domain)
	mu.Lock()
	defer mu.Unlock()
	now := t.now()
	it := t.Front.newItem(e, t.loadTime(now))
	// The caller, and Back, get the shared policy too: an answer built
	// from e then does not keep a second copy alive.
	e.Policy = it.policy
	t.Front.putItem(e.Domain, it)
	t.setAbsent(e.Domain, now, false)
	// A copy: Back may swap in a shared policy of its own (a Memory does),
	// and the caller's e.Policy must be Front's, the one Get returns.
	be := *e
	if t.queueIfDown(e.Domain) {
		return nil // Watch writes it back
	}
	if !t.backUsable(now) {
		return fmt.Errorf("stscache: write-through to back store (the entry is in memory only): %w: %w", ErrBackUnavailable, t.downErr())
	}
	bctx, cancel := t.backCtx(ctx)
	err := t.Back.Put(bctx, &be)
	cancel()
	if err != nil {
		if outage(err) && ctx.Err() == nil {
			t.backFailed(ctx, err)
			if t.queueIfDown(e.Domain) {
				return nil
			}
		}
		return fmt.Errorf("stscache: write-through to back store (the entry is in memory only): %w", err)
	}
	t.backOK(ctx)
	return nil
}

// Delete implements [mtasts.Store]: it removes the entry from both tiers.
func (t *Tiered) Delete(ctx context.Context, domain string) error {
	mu := t.stripe(domain)
	mu.Lock()
	defer mu.Unlock()
	if err := t.Front.Delete(ctx, domain); err != nil {
		return err
	}
	t.setAbsent(domain, t.now(), true)
	t.unqueue(domain)
	if err := t.Back.Delete(ctx, domain); err != nil {
		return fmt.Errorf("stscache: delete from back store: %w", err)
	}
	return nil
}

// PurgeAware is implemented by back stores that remember deliberate
// deletions ([Redis.Purged]), so that Tiered can tell a purged policy from
// a lost one.
type PurgeAware interface {
	Purged(ctx context.Context, domain string) (bool, error)
}

// purged reports whether Back says domain was deleted on purpose; when it
// cannot tell, false (the policy is restored: the safe side).
func (t *Tiered) purged(ctx context.Context, domain string) bool {
	pa, ok := t.Back.(PurgeAware)
	if !ok {
		return false
	}
	bctx, cancel := t.backCtx(ctx)
	defer cancel()
	p, err := pa.Purged(bctx, domain)
	if err != nil {
		t.logger().WarnContext(ctx, "stscache: cannot tell whether a missing policy was purged; restoring it", "domain", domain, "err", err)
		return false
	}
	return p
}

// Forget drops domain from Front only, under the domain's lock: for
// entries another process deleted from Back (a purge). Holding the lock
// that Get holds from its Back read to its Front write means a Get that
// read the entry just before the delete cannot put it back afterwards.
func (t *Tiered) Forget(ctx context.Context, domain string) {
	mu := t.stripe(domain)
	mu.Lock()
	defer mu.Unlock()
	t.Front.Delete(ctx, domain)
}

// Range implements [mtasts.Store] over Back, the complete set, with
// LastUsed taken from Front where Front has seen more recent use. While
// degraded under Watch it ranges over Front, what this process holds (so
// that background refreshes go on).
func (t *Tiered) Range(ctx context.Context, fn func(*mtasts.Entry) bool) error {
	if t.isDown.Load() && t.watched() {
		return t.Front.Range(ctx, fn)
	}
	return t.Back.Range(ctx, func(e *mtasts.Entry) bool {
		if it := t.Front.item(e.Domain); it != nil {
			if u := it.lastUsed(); u > toMS(e.LastUsed) {
				e.LastUsed = fromMS(u)
			}
		}
		return fn(e)
	})
}

// Touch records that domain answered a query at now, in memory only (an
// atomic store). It reports whether the domain is in Front. Flush writes
// the recorded times back.
func (t *Tiered) Touch(domain string, now time.Time) bool {
	return t.Front.Touch(domain, now)
}

// Flush writes LastUsed of the entries touched since the last Flush to
// Back, in one batch when Back is a [LastUsedWriter]. Call it periodically
// (every minute or so) and at shutdown. On failure the entries stay dirty
// and the next Flush retries them. It returns the number of domains
// written.
func (t *Tiered) Flush(ctx context.Context) (int, error) {
	if t.isDown.Load() && t.watched() {
		return 0, nil // the entries stay dirty until Watch ends the outage
	}
	var dirty []domainItem
	for _, it := range t.Front.snapshot() {
		if it.takeDirty() {
			dirty = append(dirty, it)
		}
	}
	if len(dirty) == 0 {
		return 0, nil
	}
	used := make(map[string]time.Time, len(dirty))
	for _, it := range dirty {
		used[it.domain] = fromMS(it.lastUsed())
	}
	var err error
	if w, ok := t.Back.(LastUsedWriter); ok {
		err = w.WriteLastUsed(ctx, used)
	} else {
		err = t.writeLastUsed(ctx, used)
	}
	if err != nil {
		for _, it := range dirty {
			it.setDirty()
		}
		return 0, fmt.Errorf("stscache: flush last used times: %w", err)
	}
	return len(dirty), nil
}

// writeLastUsed is Flush's fallback for back stores without
// LastUsedWriter: Get, raise LastUsed, Put, under the domain's stripe lock
// so that it cannot undo a concurrent Put through this Tiered.
func (t *Tiered) writeLastUsed(ctx context.Context, used map[string]time.Time) error {
	for d, u := range used {
		err := func() error {
			mu := t.stripe(d)
			mu.Lock()
			defer mu.Unlock()
			e, err := t.Back.Get(ctx, d)
			if err != nil || e == nil || !u.After(e.LastUsed) {
				return err
			}
			e.LastUsed = u
			return t.Back.Put(ctx, e)
		}()
		if err != nil {
			return err
		}
	}
	return nil
}

// frontComplete reports whether Front holds every entry of Back: a Load
// finished and nothing was dropped from Front alone since it started
// (see complete).
func (t *Tiered) frontComplete() bool {
	c := t.complete.Load()
	return c != 0 && c-1 == t.Front.drops.Load()
}

// Load warms Front with every entry of Back, keeping any entry Front
// already has. Call it at start with a SQLite back store; with a shared
// Redis it is optional. It returns the number of entries added.
//
// With a negative FrontTTL (this process is Back's only writer), a Load
// that succeeds makes Front complete: from then on a domain missing from
// Front is known to be missing from Back and Get answers it without a back
// read, until Cap or Evict drops an entry from Front alone.
func (t *Tiered) Load(ctx context.Context) (int, error) {
	drops := t.Front.drops.Load()
	loaded := t.loadTime(t.now())
	n := 0
	err := t.Back.Range(ctx, func(e *mtasts.Entry) bool {
		if t.Front.addItem(e.Domain, t.Front.newItem(e, loaded)) {
			n++
		}
		return true
	})
	if err != nil {
		return n, fmt.Errorf("stscache: load from back store: %w", err)
	}
	if t.ttl() < 0 {
		t.complete.Store(drops + 1)
	}
	return n, nil
}

// Cap bounds Front (the memory) to max entries with [Memory.Cap]'s rule:
// least recently used first, never a valid enforce or testing policy
// (STS-CACHE-10). Entries dropped from Front stay in Back and are read
// through again when queried. It flushes use times first, so that Back's
// LastUsed stays right. Bound Back separately ([SQLite.Cap]; a Redis back
// store is bounded by its TTLs).
func (t *Tiered) Cap(ctx context.Context, max int) (int, error) {
	if max < 0 {
		return 0, ErrNegativeCap
	}
	if t.Front.Len() <= max {
		return 0, nil
	}
	if _, err := t.Flush(ctx); err != nil {
		t.logger().WarnContext(ctx, "stscache: flush before cap failed", "err", err)
	}
	return t.Front.capAt(ctx, max, t.now())
}
