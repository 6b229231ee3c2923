package outgoing

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Answer is what the policy daemon answered for one next-hop domain: the
// policy that applies to the MTA's sessions to it. A log follower joins
// each delivery line with the domain's Answer to know the policy a result
// counts under.
type Answer struct {
	Domain string
	Time   time.Time
	// Answer is the daemon's answer kind (policyd.Answer* values).
	Answer string
	Policy Policy
}

// PutAnswers stores answers, keeping per domain the newest.
func (s *Store) PutAnswers(ctx context.Context, as []Answer) error {
	if len(as) == 0 {
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return s.errorf("put answers: %w", err)
	}
	defer tx.Rollback()
	for _, a := range as {
		strs, _ := json.Marshal(nonNil(a.Policy.Strings))
		mx, _ := json.Marshal(nonNil(a.Policy.MXHosts))
		_, err := tx.ExecContext(ctx, s.d.rebind(`INSERT INTO outgoing_answers
			(policy_domain, answered_at, answer, policy_type, policy_string, mx_host) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (policy_domain) DO UPDATE SET answered_at = excluded.answered_at, answer = excluded.answer,
				policy_type = excluded.policy_type, policy_string = excluded.policy_string, mx_host = excluded.mx_host
			WHERE excluded.answered_at >= outgoing_answers.answered_at`),
			strings.ToLower(a.Domain), a.Time.Unix(), a.Answer, a.Policy.Type, string(strs), string(mx))
		if err != nil {
			return s.errorf("put answers: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return s.errorf("put answers: %w", err)
	}
	return nil
}

// AnswerFor returns the newest stored answer for domain; ok is false when
// there is none.
func (s *Store) AnswerFor(ctx context.Context, domain string) (a Answer, ok bool, err error) {
	var at int64
	var strs, mx string
	err = s.r.QueryRowContext(ctx, s.d.rebind(`SELECT policy_domain, answered_at, answer, policy_type, policy_string, mx_host
		FROM outgoing_answers WHERE policy_domain = ?`), strings.ToLower(domain)).
		Scan(&a.Domain, &at, &a.Answer, &a.Policy.Type, &strs, &mx)
	if errors.Is(err, sql.ErrNoRows) {
		return a, false, nil
	}
	if err != nil {
		return a, false, s.errorf("read answer: %w", err)
	}
	a.Time = time.Unix(at, 0).UTC()
	if err := json.Unmarshal([]byte(strs), &a.Policy.Strings); err != nil {
		return a, false, s.errorf("answer %s: %w", domain, err)
	}
	if err := json.Unmarshal([]byte(mx), &a.Policy.MXHosts); err != nil {
		return a, false, s.errorf("answer %s: %w", domain, err)
	}
	return a, true, nil
}

// AnswerLog keeps the newest answer per domain in memory and writes them
// to the Store every FlushEvery, so that a busy policy daemon costs one
// write per domain per interval, not one per lookup. An answer for a
// domain it has not written yet, or whose policy or answer kind changed,
// is written at once (concurrent ones in one transaction): the MTA's
// session follows the lookup within milliseconds, and a log follower that
// joins the session with the answer must find it, or the session counts
// under the wrong policy. It never blocks: at MaxDomains pending domains,
// answers for new domains are dropped and counted until the next flush.
type AnswerLog struct {
	st      *Store
	logger  *slog.Logger
	mu      sync.Mutex
	pending map[string]Answer
	max     int
	// stored is what was last written per domain (answer kind and
	// policy), to tell a new or changed answer from a refresh; nil when
	// every answer waits for the periodic flush.
	stored     map[string]string
	kick       chan struct{}
	dropped    atomic.Uint64
	written    atomic.Uint64
	stop, done chan struct{}
	once       sync.Once
}

// NewAnswerLog starts an AnswerLog; Close flushes and stops it. Zero
// flushEvery means 10 s, zero maxDomains 50,000; a nil logger discards.
func NewAnswerLog(st *Store, flushEvery time.Duration, maxDomains int, logger *slog.Logger) *AnswerLog {
	return newAnswerLog(st, flushEvery, maxDomains, logger, true)
}

// newAnswerLog is NewAnswerLog; prompt false leaves every write to the
// periodic flush (for tests of the bound).
func newAnswerLog(st *Store, flushEvery time.Duration, maxDomains int, logger *slog.Logger, prompt bool) *AnswerLog {
	if flushEvery <= 0 {
		flushEvery = 10 * time.Second
	}
	if maxDomains <= 0 {
		maxDomains = 50000
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	l := &AnswerLog{st: st, logger: logger, pending: map[string]Answer{}, max: maxDomains,
		stop: make(chan struct{}), done: make(chan struct{}), kick: make(chan struct{}, 1)}
	if prompt {
		l.stored = map[string]string{}
	}
	go l.run(flushEvery)
	return l
}

// Note records an answer (the newest per domain wins).
func (l *AnswerLog) Note(a Answer) {
	a.Domain = strings.ToLower(a.Domain)
	l.mu.Lock()
	defer l.mu.Unlock()
	if old, ok := l.pending[a.Domain]; ok {
		if !a.Time.Before(old.Time) {
			l.pending[a.Domain] = a
			l.kickIfNew(a)
		}
		return
	}
	if len(l.pending) >= l.max {
		l.dropped.Add(1)
		return
	}
	l.pending[a.Domain] = a
	l.kickIfNew(a)
}

// answerKey identifies what an answer says, without its time.
func answerKey(a Answer) string { return a.Answer + "\x00" + policyKey(a.Policy) }

// kickIfNew asks the writer for a flush now when a differs from what was
// last written for its domain. l.mu is held.
func (l *AnswerLog) kickIfNew(a Answer) {
	if l.stored == nil || l.stored[a.Domain] == answerKey(a) {
		return
	}
	select {
	case l.kick <- struct{}{}:
	default: // a flush is already due
	}
}

// Stats returns the answers written and dropped so far.
func (l *AnswerLog) Stats() (written, dropped uint64) { return l.written.Load(), l.dropped.Load() }

// Flush writes the pending answers now.
func (l *AnswerLog) Flush(ctx context.Context) error {
	l.mu.Lock()
	batch := make([]Answer, 0, len(l.pending))
	for _, a := range l.pending {
		batch = append(batch, a)
	}
	l.pending = map[string]Answer{}
	l.mu.Unlock()
	if err := l.st.PutAnswers(ctx, batch); err != nil {
		return err
	}
	l.written.Add(uint64(len(batch)))
	if l.stored != nil {
		l.mu.Lock()
		if len(l.stored)+len(batch) > l.max {
			clear(l.stored) // bounded; a domain forgotten is written once more
		}
		for _, a := range batch {
			l.stored[a.Domain] = answerKey(a)
		}
		l.mu.Unlock()
	}
	return nil
}

func (l *AnswerLog) run(every time.Duration) {
	defer close(l.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-l.kick:
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if err := l.Flush(ctx); err != nil {
				l.logger.Error("outgoing: policy answers not written", "err", err)
			}
			cancel()
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if err := l.Flush(ctx); err != nil {
				l.logger.Error("outgoing: policy answers not written", "err", err)
			}
			cancel()
		}
	}
}

// Close stops the periodic flush and writes what is pending.
func (l *AnswerLog) Close(ctx context.Context) error {
	l.once.Do(func() { close(l.stop) })
	select {
	case <-l.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return l.Flush(ctx)
}
