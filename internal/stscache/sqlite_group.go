package stscache

import (
	"context"
	"fmt"

	"github.com/mailsts/mailsts/internal/sqlitedb"
)

// maxPutBatch caps the entries one group commit writes.
const maxPutBatch = 64

// Group commit of [SQLite.Put]: concurrent puts (cold lookups of many
// domains at once) share one transaction. A put queues its row; when no
// batch is being written the caller leads and writes every queued row (up
// to maxPutBatch) in one transaction, and the callers that arrive meanwhile
// queue for the next batch, led by its first caller once the current one
// is committed. A lone put writes at once, in a transaction of its own, as
// before: nothing waits for company and there is no background goroutine.
//
// Durability is unchanged: Put returns only after the COMMIT of the
// transaction holding its row (synchronous=NORMAL in WAL mode: durable
// across a crash of the process), never before, so an answer built on a
// fetched policy is never given while the entry could still be lost to a
// crash. A crash before the commit loses the whole batch, and none of its
// puts had returned. What is saved is the per-transaction work: the WAL
// frames of the index pages that every new row touches (expires_at and
// last_used grow at one end), the locks and the commit record, once per
// batch instead of once per row.
//
// A batch that fails is written again one row at a time, each under its
// own caller's context, so that one bad row, or a leader whose context
// ended, fails only its own put.

// putCall is one queued Put.
type putCall struct {
	ctx    context.Context
	domain string
	args   []any
	err    error
	// wake is signalled once: done (err set) or lead (write the next
	// batch).
	wake chan struct{}
	done bool
}

// groupPut writes one row through the group commit.
func (s *SQLite) groupPut(ctx context.Context, domain string, args []any) error {
	c := &putCall{ctx: ctx, domain: domain, args: args, wake: make(chan struct{}, 1)}
	s.putMu.Lock()
	s.pending = append(s.pending, c)
	lead := !s.flushing
	if lead {
		s.flushing = true
	}
	s.putMu.Unlock()
	if !lead {
		// Not selectable on ctx: the row may already be in a
		// transaction, and its outcome must reach the caller.
		<-c.wake
		if c.done {
			return c.err
		}
	}
	s.flushPuts(ctx)
	// The leader's own row is in the batch it wrote.
	return c.err
}

// flushPuts writes one batch from the queue and hands the lead to the next
// queued call, if any.
func (s *SQLite) flushPuts(ctx context.Context) {
	s.putMu.Lock()
	n := min(len(s.pending), maxPutBatch)
	batch := s.pending[:n:n]
	s.pending = s.pending[n:]
	if len(s.pending) == 0 {
		s.pending = nil // let the array go
	}
	s.putMu.Unlock()

	if s.beforeBatch != nil {
		s.beforeBatch(batch)
	}
	if len(batch) == 1 {
		batch[0].err = s.putOne(batch[0])
	} else if err := s.putBatch(ctx, batch); err != nil {
		// Retry one by one: the failure may be one row's, or the
		// leader's context.
		for _, c := range batch {
			c.err = s.putOne(c)
		}
	}

	s.putMu.Lock()
	var next *putCall
	if len(s.pending) > 0 {
		next = s.pending[0]
	} else {
		s.flushing = false
	}
	s.putMu.Unlock()
	for _, c := range batch {
		c.done = true
		c.wake <- struct{}{}
	}
	if next != nil {
		next.wake <- struct{}{} // lead, done stays false
	}
}

// queued returns the number of puts waiting for a batch (tests).
func (s *SQLite) queued() int {
	s.putMu.Lock()
	defer s.putMu.Unlock()
	return len(s.pending)
}

// putOne writes one row in a transaction of its own.
func (s *SQLite) putOne(c *putCall) error {
	if _, err := s.put.ExecContext(c.ctx, c.args...); err != nil {
		return s.putFailed(c.ctx, c.domain, err)
	}
	return nil
}

// putBatch writes the rows of batch in one transaction.
func (s *SQLite) putBatch(ctx context.Context, batch []*putCall) (err error) {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return s.putFailed(ctx, batch[0].domain, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	st := tx.StmtContext(ctx, s.put)
	for _, c := range batch {
		if _, err := st.ExecContext(ctx, c.args...); err != nil {
			return s.putFailed(ctx, c.domain, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return s.putFailed(ctx, batch[0].domain, err)
	}
	return nil
}

// putFailed notes damage and wraps a failed write of domain's row.
func (s *SQLite) putFailed(ctx context.Context, domain string, err error) error {
	if sqlitedb.Damaged(err) {
		s.noteDamage(ctx, err)
	}
	return fmt.Errorf("stscache: sqlite put %s: %w", domain, err)
}
