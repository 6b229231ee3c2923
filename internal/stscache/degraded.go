package stscache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mailsts/mailsts/mtasts"
)

// DefaultBackTimeout bounds one back store call made on behalf of a query
// (a read-through in Get, a write-through in Put) when Tiered.BackTimeout
// is zero.
const DefaultBackTimeout = time.Second

// Probe back-off of [Tiered.Watch] while the back store is down: the first
// probe after DefaultProbeEvery (or Tiered.ProbeEvery), doubling up to
// maxProbeEvery.
const (
	DefaultProbeEvery = time.Second
	maxProbeEvery     = 30 * time.Second
)

// resyncBatch is the number of entries one [Restorer.Restore] call checks
// (one pipeline); resyncRounds bounds the rounds that write back entries
// Put while a resync ran.
const (
	resyncBatch  = scanBatch
	resyncRounds = 100
)

// probeDomain is read to find out whether the back store answers again.
// .invalid is reserved (RFC 2606): no policy is ever stored under it.
const probeDomain = "mailsts-probe.invalid"

// Restorer is implemented by shared back stores ([Redis]) that can check
// many entries at once against what they hold, so that a [Tiered] can
// reconcile its memory with a store that restarted empty, or that other
// processes purged while this one was not listening.
type Restorer interface {
	// Restore writes each entry that the store lacks and was not deleted
	// on purpose recently, atomically per entry, and reports per entry
	// what it found. A per-entry outcome is only valid when err is nil.
	Restore(ctx context.Context, entries []*mtasts.Entry) ([]RestoreOutcome, error)
}

// RestoreOutcome is what [Restorer.Restore] found for one entry.
type RestoreOutcome uint8

// Outcomes of Restore.
const (
	// Restored: the store had no entry and no tombstone; the given entry
	// was written.
	Restored RestoreOutcome = iota
	// Present: the store holds an entry for the domain; nothing written.
	Present
	// Purged: the domain was deleted on purpose recently (a tombstone);
	// nothing written. The caller should drop it from memory.
	Purged
	// Foreign: the key holds something that is not an entry (another
	// program's data under our prefix); left alone.
	Foreign
)

// BackState is the health of a Tiered's back store as the Tiered sees it.
type BackState struct {
	// Degraded is true from a failed back store call until [Tiered.Watch]
	// found the store reachable again and wrote back what it missed.
	// While degraded, queries are answered from memory, domains not in
	// memory are looked up afresh, and the back store is not asked.
	Degraded bool
	// Since is when the current degraded period began (zero when not
	// degraded).
	Since time.Time
	// Err is the failure that began it, or the latest probe failure.
	Err error
	// Pending is the number of entries written to memory while degraded,
	// waiting to be written back.
	Pending int
}

// degraded is the back store health state of a Tiered.
type degraded struct {
	mu       sync.Mutex
	down     bool
	since    time.Time
	err      error
	retryAt  time.Time           // unwatched: when a call may try Back again
	resync   bool                // Watch should reconcile Front with Back
	probeNow bool                // Resync: probe without waiting
	pending  map[string]struct{} // domains Put while down (watched only)
	watchers int
	wake     chan struct{} // capacity 1: a request for Watch
}

func (t *Tiered) wakeCh() chan struct{} {
	// Under t.deg.mu.
	if t.deg.wake == nil {
		t.deg.wake = make(chan struct{}, 1)
	}
	return t.deg.wake
}

func (t *Tiered) signal() {
	// Under t.deg.mu.
	select {
	case t.wakeCh() <- struct{}{}:
	default:
	}
}

func (t *Tiered) backTimeout() time.Duration {
	if t.BackTimeout > 0 {
		return t.BackTimeout
	}
	return DefaultBackTimeout
}

// backCtx bounds one back store call made for a query.
func (t *Tiered) backCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, t.backTimeout())
}

// outage reports whether err from a back store call means the store is not
// working (as opposed to one bad entry or a caller bug).
func outage(err error) bool {
	return err != nil && !errors.Is(err, ErrCorruptEntry) && !errors.Is(err, ErrInvalidDomain)
}

// backUsable reports whether a call may go to Back now: Back is healthy,
// or (without Watch) its retry time has come.
func (t *Tiered) backUsable(now time.Time) bool {
	if !t.isDown.Load() {
		return true
	}
	t.deg.mu.Lock()
	defer t.deg.mu.Unlock()
	if !t.deg.down {
		return true
	}
	return t.deg.watchers == 0 && !now.Before(t.deg.retryAt)
}

// watched reports whether a Watch is running.
func (t *Tiered) watched() bool {
	t.deg.mu.Lock()
	defer t.deg.mu.Unlock()
	return t.deg.watchers > 0
}

// downErr returns the failure that made Back unusable.
func (t *Tiered) downErr() error {
	t.deg.mu.Lock()
	defer t.deg.mu.Unlock()
	if t.deg.err != nil {
		return t.deg.err
	}
	return ErrBackUnavailable
}

// backFailed records a back store failure: it enters the degraded state
// (an ERROR line and OnBackState(true) on entry) and asks Watch to probe.
func (t *Tiered) backFailed(ctx context.Context, err error) {
	t.markDown(ctx, err, true)
}

// markDown is backFailed; wake says whether to signal Watch (not when
// Watch itself failed: its back-off must not be cut short).
func (t *Tiered) markDown(ctx context.Context, err error, wake bool) {
	now := t.now()
	t.deg.mu.Lock()
	entered := !t.deg.down
	if entered {
		t.deg.down = true
		t.deg.since = now
		t.isDown.Store(true)
	}
	t.deg.err = err
	retry := t.ttl()
	if retry < 0 {
		retry = DefaultFrontTTL
	}
	t.deg.retryAt = now.Add(retry)
	t.deg.resync = true
	if wake {
		t.signal()
	}
	watched := t.deg.watchers > 0
	t.deg.mu.Unlock()
	if !entered {
		return
	}
	if watched {
		t.logger().ErrorContext(ctx, "stscache: policy cache back store failed; degraded: answering from memory, "+
			"looking up domains not in memory afresh, writing back when it returns", "error", err)
	} else {
		t.logger().ErrorContext(ctx, "stscache: policy cache back store failed; answering from memory", "error", err)
	}
	if t.OnBackState != nil {
		t.OnBackState(true)
	}
}

// backOK records a successful back store call. It ends the degraded state
// only without Watch (a half-open retry that worked); with Watch, only
// Watch ends it, after writing back what Back missed.
func (t *Tiered) backOK(ctx context.Context) {
	if !t.isDown.Load() {
		return
	}
	t.deg.mu.Lock()
	if !t.deg.down || t.deg.watchers > 0 {
		t.deg.mu.Unlock()
		return
	}
	since := t.deg.since
	t.leaveLocked()
	t.deg.mu.Unlock()
	t.logger().InfoContext(ctx, "stscache: policy cache back store works again", "down_for", t.now().Sub(since).Round(time.Millisecond))
	if t.OnBackState != nil {
		t.OnBackState(false)
	}
}

func (t *Tiered) leaveLocked() {
	t.deg.down = false
	t.deg.since = time.Time{}
	t.deg.err = nil
	t.isDown.Store(false)
}

// queueIfDown records domain for write-back and reports true when Back is
// down and a Watch will write it back.
func (t *Tiered) queueIfDown(domain string) bool {
	if !t.isDown.Load() {
		return false
	}
	t.deg.mu.Lock()
	defer t.deg.mu.Unlock()
	if !t.deg.down || t.deg.watchers == 0 {
		return false
	}
	if t.deg.pending == nil {
		t.deg.pending = make(map[string]struct{})
	}
	t.deg.pending[domain] = struct{}{}
	return true
}

// unqueue drops domain from the write-back set (it was deleted).
func (t *Tiered) unqueue(domain string) {
	t.deg.mu.Lock()
	defer t.deg.mu.Unlock()
	delete(t.deg.pending, domain)
}

// BackState returns the health of the back store (see [BackState]).
func (t *Tiered) BackState() BackState {
	t.deg.mu.Lock()
	defer t.deg.mu.Unlock()
	return BackState{Degraded: t.deg.down, Since: t.deg.since, Err: t.deg.err, Pending: len(t.deg.pending)}
}

// Resync asks [Tiered.Watch] to reconcile memory with the back store: call
// it when the back store may have lost entries or missed deletions without
// a failed call telling (a Redis Pub/Sub subscription that dropped and came
// back). While degraded, it also makes Watch probe at once. It does not
// wait. Without a running Watch it does nothing.
func (t *Tiered) Resync() {
	t.deg.mu.Lock()
	defer t.deg.mu.Unlock()
	t.deg.resync = true
	t.deg.probeNow = true
	t.signal()
}

// Check asks the back store now (one call bounded by BackTimeout) and
// returns its error. A failure makes the Tiered degraded as a failed query
// would (an ERROR line, OnBackState); call it at start so that a back store
// that is down is reported before the first query.
func (t *Tiered) Check(ctx context.Context) error {
	err := t.probe(ctx)
	if err != nil && ctx.Err() == nil {
		t.backFailed(ctx, err)
	}
	return err
}

func (t *Tiered) probeEvery() time.Duration {
	if t.ProbeEvery > 0 {
		return t.ProbeEvery
	}
	return DefaultProbeEvery
}

// Watch keeps the back store in step with memory until ctx ends; a daemon
// runs it for the Tiered's lifetime. While it runs:
//
//   - after a failed back store call, Tiered is degraded (see [BackState]):
//     no query waits on Back; Get answers from Front, and returns (nil,
//     nil) for domains Front does not hold, so the caller looks them up
//     afresh instead of failing; Put keeps the entry in Front and queues
//     it for write-back; Range ranges over Front;
//   - Watch probes Back in the background with a doubling back-off, and
//     once it answers, reconciles (below) and ends the degraded state;
//   - after [Tiered.Resync], Watch reconciles too.
//
// Reconciling checks every Front entry against Back, in batches, when Back
// is a [Restorer]: an entry Back lacks is written back (unless Back holds
// a purge tombstone for it, then it is dropped from Front: another process
// deleted it on purpose); an entry Back holds is kept, and Back's version
// is read after FrontTTL as usual. An entry Put while degraded replaces
// Back's only if it is newer (by FetchedAt, CheckedAt and FailedAt). With
// other back stores, only the entries Put while degraded are written back.
//
// Without Watch, a failed back store call makes Tiered skip Back for
// FrontTTL (at least DefaultFrontTTL): Get then returns
// ErrBackUnavailable for domains not in memory, Put returns it after
// writing Front, and nothing is written back later.
func (t *Tiered) Watch(ctx context.Context) {
	wake := t.register()
	defer t.unregister()
	t.watch(ctx, wake)
}

// StartWatch runs [Tiered.Watch] in a goroutine until ctx ends or stop is
// called; stop waits for it to return. Unlike go t.Watch(ctx), the Tiered
// is watched when StartWatch returns, so no query in between gets
// ErrBackUnavailable.
func (t *Tiered) StartWatch(ctx context.Context) (stop func()) {
	wake := t.register()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer t.unregister()
		t.watch(ctx, wake)
	}()
	return func() { cancel(); <-done }
}

func (t *Tiered) register() chan struct{} {
	t.deg.mu.Lock()
	defer t.deg.mu.Unlock()
	t.deg.watchers++
	if t.deg.resync || t.deg.down {
		t.signal()
	}
	return t.wakeCh()
}

func (t *Tiered) unregister() {
	t.deg.mu.Lock()
	defer t.deg.mu.Unlock()
	t.deg.watchers--
}

func (t *Tiered) watch(ctx context.Context, wake chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
		}
		t.recover(ctx, wake)
	}
}

// recover probes Back until it answers, then resyncs; it returns when the
// Tiered is healthy and in step, or ctx ends. A signal on wake (Resync)
// cuts a probe wait short.
func (t *Tiered) recover(ctx context.Context, wake <-chan struct{}) {
	delay := t.probeEvery()
	for ctx.Err() == nil {
		t.deg.mu.Lock()
		down, resync, now := t.deg.down, t.deg.resync, t.deg.probeNow
		t.deg.resync, t.deg.probeNow = false, false
		t.deg.mu.Unlock()
		if !down && !resync {
			return
		}
		if down && !now {
			timer := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
			case <-wake:
				timer.Stop()
			}
			delay = min(delay*2, maxProbeEvery)
		}
		if down {
			if err := t.probe(ctx); err != nil {
				t.deg.mu.Lock()
				t.deg.err = err
				t.deg.resync = true
				t.deg.mu.Unlock()
				t.logger().DebugContext(ctx, "stscache: policy cache back store still failing", "error", err)
				continue
			}
		}
		if err := t.resync(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			t.markDown(ctx, err, false)
			continue
		}
	}
}

func (t *Tiered) probe(ctx context.Context) error {
	bctx, cancel := t.backCtx(ctx)
	defer cancel()
	_, err := t.Back.Get(bctx, probeDomain)
	if !outage(err) {
		return nil
	}
	return err
}

// ResyncStats counts what one reconciliation of memory with the back store
// did ([Tiered.Watch]).
type ResyncStats struct {
	// Restored: entries the back store had lost, written back.
	Restored int
	// WrittenBack: entries Put while degraded, written to the back store.
	WrittenBack int
	// Purged: entries dropped from memory because another process purged
	// them meanwhile (a tombstone).
	Purged int
	// Adopted: entries Put while degraded that the back store held in a
	// newer version, which replaced them in memory.
	Adopted int
}

// resync reconciles Front with Back (see Watch), writes back the entries
// Put while degraded, and ends the degraded state.
func (t *Tiered) resync(ctx context.Context) error {
	var st ResyncStats
	t.deg.mu.Lock()
	pending := t.deg.pending
	t.deg.pending = nil
	t.deg.mu.Unlock()
	requeue := func(p map[string]struct{}) {
		t.deg.mu.Lock()
		defer t.deg.mu.Unlock()
		if t.deg.pending == nil {
			t.deg.pending = make(map[string]struct{})
		}
		for d := range p {
			t.deg.pending[d] = struct{}{}
		}
	}
	var err error
	if _, ok := t.Back.(Restorer); ok {
		var domains []string
		for _, it := range t.Front.snapshot() {
			domains = append(domains, it.domain)
		}
		err = t.reconcile(ctx, domains, pending, &st)
	} else {
		err = t.writeBack(ctx, pending, &st)
	}
	if err != nil {
		requeue(pending)
		return err
	}
	// Entries Put while this ran (Back was still marked down).
	for range resyncRounds {
		t.deg.mu.Lock()
		pending = t.deg.pending
		t.deg.pending = nil
		if len(pending) == 0 {
			since := t.deg.since
			down := t.deg.down
			t.leaveLocked()
			t.deg.mu.Unlock()
			// down, not wasDown: a call may have failed (and said so)
			// while this ran; the store answered this resync since.
			t.resynced(ctx, down, since, st)
			return nil
		}
		t.deg.mu.Unlock()
		if _, ok := t.Back.(Restorer); ok {
			domains := make([]string, 0, len(pending))
			for d := range pending {
				domains = append(domains, d)
			}
			err = t.reconcile(ctx, domains, pending, &st)
		} else {
			err = t.writeBack(ctx, pending, &st)
		}
		if err != nil {
			requeue(pending)
			return err
		}
	}
	return fmt.Errorf("stscache: entries kept being written while writing back for %d rounds", resyncRounds)
}

func (t *Tiered) resynced(ctx context.Context, left bool, since time.Time, st ResyncStats) {
	log := t.logger()
	attrs := []any{"restored", st.Restored, "written_back", st.WrittenBack, "purged", st.Purged, "adopted", st.Adopted}
	if left {
		log.InfoContext(ctx, "stscache: policy cache back store works again; memory written back",
			append(attrs, "down_for", t.now().Sub(since).Round(time.Millisecond))...)
		if t.OnBackState != nil {
			t.OnBackState(false)
		}
	} else if st.Restored+st.Purged+st.WrittenBack+st.Adopted > 0 {
		log.InfoContext(ctx, "stscache: policy cache memory reconciled with the back store", attrs...)
	}
	if t.OnResync != nil {
		t.OnResync(st)
	}
}

// reconcile checks the Front entries of domains against a Restorer Back
// in batches. pending are the domains Put while degraded.
func (t *Tiered) reconcile(ctx context.Context, domains []string, pending map[string]struct{}, st *ResyncStats) error {
	r := t.Back.(Restorer)
	for start := 0; start < len(domains); start += resyncBatch {
		if err := ctx.Err(); err != nil {
			return err
		}
		var (
			entries []*mtasts.Entry
			items   []*item
		)
		for _, d := range domains[start:min(start+resyncBatch, len(domains))] {
			it := t.Front.item(d)
			if it == nil {
				continue // dropped meanwhile (a purge, Cap)
			}
			entries = append(entries, it.entry(d))
			items = append(items, it)
		}
		if len(entries) == 0 {
			continue
		}
		// Restore is given copies: Back must not swap Front's policies.
		outs, err := r.Restore(ctx, entries)
		if err != nil {
			return fmt.Errorf("stscache: reconciling memory with the back store: %w", err)
		}
		for i, e := range entries {
			_, isPending := pending[e.Domain]
			switch outs[i] {
			case Restored:
				if isPending {
					st.WrittenBack++
				} else {
					st.Restored++
				}
			case Purged:
				if t.dropPurged(e.Domain, items[i]) {
					st.Purged++
				}
			case Present:
				if isPending {
					if err := t.settle(ctx, e, items[i], st); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// dropPurged drops domain from Front when it still holds it (another
// process purged it while we were not listening).
func (t *Tiered) dropPurged(domain string, it *item) bool {
	mu := t.stripe(domain)
	mu.Lock()
	defer mu.Unlock()
	t.unqueue(domain)
	if !t.Front.removeItem(domain, it) {
		return false
	}
	t.setAbsent(domain, t.now(), true)
	return true
}

// settle decides between an entry Put while degraded and the one Back
// holds: the newer wins; Back's on a tie (it is the shared state).
func (t *Tiered) settle(ctx context.Context, mine *mtasts.Entry, it *item, st *ResyncStats) error {
	mu := t.stripe(mine.Domain)
	mu.Lock()
	defer mu.Unlock()
	bctx, cancel := t.backCtx(ctx)
	defer cancel()
	theirs, err := t.Back.Get(bctx, mine.Domain)
	if outage(err) {
		return err
	}
	if err != nil || theirs == nil || newer(mine, theirs) {
		be := *mine
		if err := t.Back.Put(bctx, &be); outage(err) {
			return err
		}
		st.WrittenBack++
		return nil
	}
	if t.Front.item(mine.Domain) != it {
		return nil // replaced meanwhile: the newer Put is queued again
	}
	nit := t.Front.newItem(theirs, t.loadTime(t.now()))
	nit.inheritUse(it)
	t.Front.putItem(mine.Domain, nit)
	st.Adopted++
	return nil
}

// newer reports whether a records a later discovery than b.
func newer(a, b *mtasts.Entry) bool {
	return stamp(a).After(stamp(b))
}

func stamp(e *mtasts.Entry) time.Time {
	s := e.FetchedAt
	for _, t := range []time.Time{e.CheckedAt, e.FailedAt} {
		if t.After(s) {
			s = t
		}
	}
	return s
}

// writeBack Puts the Front entries of pending into a Back that is not a
// Restorer.
func (t *Tiered) writeBack(ctx context.Context, pending map[string]struct{}, st *ResyncStats) error {
	for d := range pending {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := func() error {
			mu := t.stripe(d)
			mu.Lock()
			defer mu.Unlock()
			it := t.Front.item(d)
			if it == nil {
				return nil
			}
			be := it.entry(d)
			bctx, cancel := t.backCtx(ctx)
			defer cancel()
			if err := t.Back.Put(bctx, be); outage(err) {
				return err
			}
			st.WrittenBack++
			return nil
		}()
		if err != nil {
			return fmt.Errorf("stscache: writing back %s: %w", d, err)
		}
	}
	return nil
}
