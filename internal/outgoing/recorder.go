package outgoing

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// ErrDropped means the Recorder's buffer was full for longer than
// RecorderOptions.MaxWait: the result was not counted (and the drop was).
var ErrDropped = errors.New("outgoing: recorder buffer full, result dropped")

// ErrClosed means the Recorder was closed.
var ErrClosed = errors.New("outgoing: recorder closed")

// Default Recorder settings.
const (
	DefaultBuffer     = 8192
	DefaultBatch      = 512
	DefaultFlushEvery = time.Second
	DefaultIdle       = 20 * time.Millisecond
	DefaultMaxWait    = 5 * time.Millisecond
)

// RecorderOptions configure a Recorder. Zero values mean the defaults.
type RecorderOptions struct {
	// Buffer is how many results wait for the writer at most.
	Buffer int
	// Batch is how many results make a full batch, written at once; one
	// transaction also takes every result that queued meanwhile (up to
	// Buffer), so that a busy writer merges more per transaction.
	Batch int
	// FlushEvery is the longest a result waits in a partial batch.
	FlushEvery time.Duration
	// Idle: a partial batch is also written when no result has come for
	// this long (a burst is committed soon after it ends).
	Idle time.Duration
	// MaxWait is how long Record waits for room in a full buffer before
	// it drops the result (counted, logged). Negative means not at all.
	MaxWait time.Duration
	// Exclude, when set, is asked about every result; true drops it as
	// excluded, like Result.ReportDelivery. The outbox can mark its own
	// deliveries' sessions this way.
	Exclude func(Result) bool
	// Logger receives drops (at most one line a second, with the
	// counts) and write errors; nil discards.
	Logger *slog.Logger
	// Now is the clock for results without a Time; nil is time.Now.
	Now func() time.Time
}

// RecorderStats are a Recorder's counters since it started.
type RecorderStats struct {
	Recorded uint64 // accepted into the buffer
	Written  uint64 // written to the store
	Dropped  uint64 // buffer full: not counted
	Excluded uint64 // report deliveries and Exclude: not counted by design
	Invalid  uint64 // refused with ErrInvalidResult
	Lost     uint64 // accepted but the store failed to write them
}

// Recorder records results into a Store without making the MTA wait for
// the database: Record checks a result (remembering the verdict on
// results that repeat) and puts it in a bounded buffer; a writer
// goroutine merges buffered results and writes them in batches.
// When the buffer stays full for MaxWait, Record drops the result, counts
// it and logs (rate-limited) instead of blocking. Safe for concurrent use.
type Recorder struct {
	st      *Store
	o       RecorderOptions
	logger  *slog.Logger
	ch      chan item
	cache   normCache
	done    chan struct{}
	stop    chan struct{} // closed by Close: wakes a napping writer
	napping func()
	mu      sync.RWMutex // guards closed against sends on ch
	closed  bool
	lastLog atomic.Int64

	recorded, written, dropped, excluded, invalid, lost atomic.Uint64
	writes                                              atomic.Uint64 // transactions (tests)
}

// NewRecorder starts a Recorder writing to st; Close stops it.
func NewRecorder(st *Store, o RecorderOptions) *Recorder {
	return newRecorder(st, o, nil)
}

// newRecorder is NewRecorder with a hook the writer calls each time it
// naps on a partial batch (tests).
func newRecorder(st *Store, o RecorderOptions, napping func()) *Recorder {
	if o.Buffer <= 0 {
		o.Buffer = DefaultBuffer
	}
	if o.Batch <= 0 {
		o.Batch = DefaultBatch
	}
	if o.FlushEvery <= 0 {
		o.FlushEvery = DefaultFlushEvery
	}
	if o.Idle <= 0 {
		o.Idle = DefaultIdle
	}
	if o.MaxWait == 0 {
		o.MaxWait = DefaultMaxWait
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Recorder{st: st, o: o, logger: logger, ch: make(chan item, o.Buffer), done: make(chan struct{}), stop: make(chan struct{}), napping: napping}
	go r.run()
	return r
}

// item is what the writer receives: one result, or (RecordCursor) a log
// source's results with its cursor, written in one transaction.
type item struct {
	r              normalized
	rs             []normalized
	source, cursor string
}

// Record counts one session's result. It returns ErrInvalidResult for a
// result the report could not carry, ErrDropped when the buffer stayed
// full, ErrClosed after Close, and nil otherwise (also for excluded
// results). It waits at most MaxWait, or until ctx ends.
func (r *Recorder) Record(ctx context.Context, res Result) error {
	if res.ReportDelivery || (r.o.Exclude != nil && r.o.Exclude(res)) {
		r.excluded.Add(1)
		return nil
	}
	n, err := r.cache.normalize(res, r.o.Now())
	if err != nil {
		r.invalid.Add(1)
		return err
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return ErrClosed
	}
	select {
	case r.ch <- item{r: n}:
		r.recorded.Add(1)
		return nil
	default:
	}
	if r.o.MaxWait > 0 {
		t := time.NewTimer(r.o.MaxWait)
		defer t.Stop()
		select {
		case r.ch <- item{r: n}:
			r.recorded.Add(1)
			return nil
		case <-t.C:
		case <-ctx.Done():
		}
	}
	d := r.dropped.Add(1)
	r.logDrop(d)
	return ErrDropped
}

// RecordCursor records the results a log source read up to its position
// cursor, and that position: the writer stores both in one transaction,
// so the stored cursor of source (Store.Cursor) never runs ahead of the
// stored results, nor behind them. Excluded and invalid results are
// counted and left out, as by Record. Unlike Record it waits for room in
// the buffer until ctx ends (a log keeps what is not read yet), and
// returns ctx's error then, ErrClosed after Close.
func (r *Recorder) RecordCursor(ctx context.Context, source, cursor string, rs ...Result) error {
	var norm []normalized
	for _, res := range rs {
		if res.ReportDelivery || (r.o.Exclude != nil && r.o.Exclude(res)) {
			r.excluded.Add(1)
			continue
		}
		n, err := r.cache.normalize(res, r.o.Now())
		if err != nil {
			r.invalid.Add(1)
			continue
		}
		norm = append(norm, n)
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return ErrClosed
	}
	select {
	case r.ch <- item{rs: norm, source: source, cursor: cursor}:
		r.recorded.Add(uint64(len(norm)))
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// logDrop logs a drop at most once a second, with the total so far.
func (r *Recorder) logDrop(total uint64) {
	now := time.Now().UnixNano()
	last := r.lastLog.Load()
	if now-last < int64(time.Second) || !r.lastLog.CompareAndSwap(last, now) {
		return
	}
	r.logger.Warn("outgoing: result buffer full, results dropped", "dropped_total", total, "buffer", r.o.Buffer)
}

// Stats returns the counters.
func (r *Recorder) Stats() RecorderStats {
	return RecorderStats{
		Recorded: r.recorded.Load(), Written: r.written.Load(), Dropped: r.dropped.Load(),
		Excluded: r.excluded.Load(), Invalid: r.invalid.Load(), Lost: r.lost.Load(),
	}
}

// Close stops accepting results, writes what is buffered and returns;
// ctx bounds the final write.
func (r *Recorder) Close(ctx context.Context) error {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.ch)
		close(r.stop)
	}
	r.mu.Unlock()
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *Recorder) run() {
	defer close(r.done)
	limit := max(r.o.Buffer, r.o.Batch)
	batch := make([]normalized, 0, r.o.Batch)
	cursors := map[string]string{}
	take := func(it item) {
		if it.source != "" {
			// A source's results stay in one batch with its cursor.
			batch = append(batch, it.rs...)
			cursors[it.source] = it.cursor
		} else {
			batch = append(batch, it.r)
		}
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		it, ok := <-r.ch
		if !ok {
			return
		}
		batch = batch[:0]
		clear(cursors)
		take(it)
		first := time.Now()
		last := first
		closed := false
	fill:
		for len(batch) < limit {
			select {
			case it, ok := <-r.ch:
				if !ok {
					closed = true
					break fill
				}
				take(it)
				continue
			default:
			}
			// Nothing more waits: a full batch is written now, with
			// all that queued meanwhile (group commit: the busier the
			// collector, the more each transaction merges); a partial
			// one when no result has come for Idle, or FlushEvery
			// after its first. Meanwhile the writer naps a quarter of
			// Idle at a time rather than wake for every result.
			now := time.Now()
			if len(batch) >= r.o.Batch || now.Sub(last) >= r.o.Idle || now.Sub(first) >= r.o.FlushEvery {
				break
			}
			timer.Reset(min(max(r.o.Idle/4, time.Millisecond), first.Add(r.o.FlushEvery).Sub(now), last.Add(r.o.Idle).Sub(now)))
			if r.napping != nil {
				r.napping()
			}
			select {
			case <-timer.C:
			case <-r.stop: // the channel is closed: drain it and write now
			}
			if len(r.ch) > 0 {
				last = time.Now()
			}
		}
		r.write(batch, cursors)
		if closed {
			return
		}
	}
}

// write writes one batch and the log sources' cursors in one transaction.
func (r *Recorder) write(batch []normalized, cursors map[string]string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	err := r.st.add(ctx, batch, cursors)
	cancel()
	r.writes.Add(1)
	if err != nil {
		r.lost.Add(uint64(len(batch)))
		r.logger.Error("outgoing: results not written", "results", len(batch), "err", err)
	} else {
		r.written.Add(uint64(len(batch)))
	}
}
