// Package groupcommit shares one database transaction among concurrent
// writers, so that N callers arriving together pay for one commit (one
// disk sync) instead of N. It is the one group commit of mailsts: the
// policy cache's SQLite puts (stscache) and the reports store's PutReport
// (reports/sqlstore) use it.
//
// A [Group] has no background goroutine, hence nothing to start or stop.
// A call to [Group.Do] queues its item. When no batch is being written,
// the caller becomes the leader: it takes every queued item (up to
// MaxBatch, its own first) and hands them to Commit in one call. Callers
// that arrive meanwhile queue for the next batch, whose first caller
// leads once the current batch is done. A lone caller writes at once,
// in a batch of one: nothing waits for company.
//
// Guarantees:
//
//   - Durability before return: Do returns an item's result only after
//     the Commit holding it returned, that is after the transaction's
//     COMMIT (the leader's own item included). A crash before it loses
//     the batch, none of whose callers had their answer.
//   - Errors per caller: when the Commit of a batch of several items
//     fails, each item is written again alone, in queue order, so that
//     one bad item (or a leader whose context ended) fails only its own
//     call. A batch of one that fails returns its error as is. A failed
//     batch does not touch the next one: the next leader writes its batch
//     afresh.
//   - Ordering: items reach Commit in the order their Do calls queued,
//     and one batch is done (committed, or failed and retried) before the
//     next begins: an item whose Do returned is committed before any item
//     queued after that return.
//   - Bounded batches: at most MaxBatch items per Commit.
//   - Contexts: a queued caller waits for its batch even when its own
//     context ends meanwhile, since its item may already be in a
//     transaction and its outcome must reach it. The writes use the
//     contexts of the callers they serve (the batch the leader's, a retry
//     its own caller's), or, with FlushTimeout, one context per batch
//     that no caller's cancellation ends (a client hanging up does not
//     fail the others' writes).
//   - A Commit that panics fails the calls of its batch still without an
//     outcome with [ErrPanicked] and passes the lead on before the panic
//     goes on in the leader's goroutine: the Group keeps working.
package groupcommit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// DefaultMaxBatch is the batch size cap when Group.MaxBatch is 0.
const DefaultMaxBatch = 64

// ErrPanicked means Commit panicked while writing the caller's batch;
// whether the item was stored is unknown. The panic itself goes on in the
// leader's goroutine.
var ErrPanicked = errors.New("groupcommit: the commit of this batch panicked")

// ErrResults means Commit returned a number of results other than its
// number of items: a bug in the Commit function.
var ErrResults = errors.New("groupcommit: commit returned a wrong number of results")

// Group batches concurrent Do calls into shared Commit calls. Set its
// fields before the first Do and do not change them afterwards; the zero
// value of the other state is ready to use. A Group must not be copied
// after first use.
type Group[T, R any] struct {
	// Commit writes items in one transaction and returns one result per
	// item, in order, or an error when nothing of the batch was stored.
	// It is called by one goroutine at a time and must not keep items
	// after it returns (the slice is reused).
	Commit func(ctx context.Context, items []T) ([]R, error)
	// MaxBatch caps the items per Commit; 0 means DefaultMaxBatch.
	MaxBatch int
	// FlushTimeout, when positive, makes each batch (its Commit and its
	// retries) run under the leader's context without its cancellation,
	// bounded by FlushTimeout in all. Zero: the batch runs under the
	// leader's context and each retry under its own caller's.
	FlushTimeout time.Duration

	mu      sync.Mutex
	queue   []*call[T, R]
	writing bool // a leader is writing a batch
	// items is the leader's buffer of Commit's argument: only the
	// leader (writing set) touches it.
	items []T
}

// call is one queued Do.
type call[T, R any] struct {
	ctx  context.Context
	item T
	res  R
	err  error
	// wake is signalled once: done (res, err set) or lead (write the
	// next batch, done stays false).
	wake chan struct{}
	done bool
	// outcome: res or err is final (set by the leader).
	outcome bool
}

// Do writes item through the group commit and returns its result once
// the transaction holding it committed, or its error.
func (g *Group[T, R]) Do(ctx context.Context, item T) (R, error) {
	c := &call[T, R]{ctx: ctx, item: item, wake: make(chan struct{}, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, c)
	lead := !g.writing
	g.writing = true
	g.mu.Unlock()
	if !lead {
		// Not selectable on ctx: the item may already be in a
		// transaction, and its outcome must reach the caller.
		<-c.wake
		if c.done {
			return c.res, c.err
		}
	}
	g.flush(ctx)
	// The leader's own item is the first of the batch it wrote.
	return c.res, c.err
}

// Queued returns the number of calls waiting for a batch, not counting
// those of the batch being written.
func (g *Group[T, R]) Queued() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.queue)
}

// flush writes one batch from the queue and hands the lead to the next
// queued call, if any. ctx is the leader's.
func (g *Group[T, R]) flush(ctx context.Context) {
	maxBatch := g.MaxBatch
	if maxBatch <= 0 {
		maxBatch = DefaultMaxBatch
	}
	g.mu.Lock()
	n := min(len(g.queue), maxBatch)
	batch := g.queue[:n:n]
	g.queue = g.queue[n:]
	if len(g.queue) == 0 {
		g.queue = nil // let the array go
	}
	g.mu.Unlock()

	defer g.handOff(batch) // also when Commit panics
	g.write(ctx, batch)
}

// write commits batch, or, when that fails, each of its items alone.
func (g *Group[T, R]) write(ctx context.Context, batch []*call[T, R]) {
	detached := g.FlushTimeout > 0
	if detached {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), g.FlushTimeout)
		defer cancel()
	}
	items := g.items[:0]
	for _, c := range batch {
		items = append(items, c.item)
	}
	g.items = items
	defer clear(items) // keep no item alive past its call
	res, err := g.commit(ctx, items)
	switch {
	case err == nil:
		for i, c := range batch {
			c.res, c.outcome = res[i], true
		}
		return
	case len(batch) == 1:
		batch[0].err, batch[0].outcome = err, true
		return
	}
	// Retry one by one: the failure may be one item's, or the leader's
	// context.
	for i, c := range batch {
		cctx := c.ctx
		if detached {
			cctx = ctx
		}
		res, err := g.commit(cctx, items[i:i+1:i+1])
		if err == nil {
			c.res = res[0]
		}
		c.err, c.outcome = err, true
	}
}

// commit calls Commit and checks the number of results.
func (g *Group[T, R]) commit(ctx context.Context, items []T) ([]R, error) {
	res, err := g.Commit(ctx, items)
	if err == nil && len(res) != len(items) {
		return nil, fmt.Errorf("%w: %d results for %d items", ErrResults, len(res), len(items))
	}
	return res, err
}

// handOff wakes the batch's callers and passes the lead to the next
// queued call, or marks the Group idle.
func (g *Group[T, R]) handOff(batch []*call[T, R]) {
	g.mu.Lock()
	var next *call[T, R]
	if len(g.queue) > 0 {
		next = g.queue[0]
	} else {
		g.writing = false
	}
	g.mu.Unlock()
	for _, c := range batch {
		if !c.outcome { // Commit panicked before c's outcome was known
			c.err = ErrPanicked
		}
		c.done = true
		c.wake <- struct{}{}
	}
	if next != nil {
		next.wake <- struct{}{} // lead, done stays false
	}
}
