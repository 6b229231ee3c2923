package alerts

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/mailsts/mailsts/internal/atomicfile"
	"github.com/mailsts/mailsts/internal/reports"
)

// Alert is an open or resolved alert.
type Alert struct {
	ID string `json:"id"`
	Finding
	// Since is when it fired; ResolvedAt when its finding went away.
	Since      time.Time  `json:"since"`
	ResolvedAt *time.Time `json:"resolved_at,omitempty"`
}

// Event types.
const (
	EventFiring   = "firing"
	EventResolved = "resolved"
	EventDigest   = "digest"
)

// Event is what a Notifier sends: one alert firing or resolved, or the
// digest of the open alerts.
type Event struct {
	Type  string    `json:"type"`
	At    time.Time `json:"at"`
	Alert *Alert    `json:"alert,omitempty"`
	// Open lists the open alerts (digest only).
	Open []Alert `json:"open,omitempty"`
}

// Notifier delivers events. Notify returns an error when the event was
// not delivered; the Engine retries later.
type Notifier interface {
	Name() string
	Notify(ctx context.Context, ev Event) error
}

// Observer is told what the Engine does (internal/metrics implements it
// for Prometheus).
type Observer interface {
	// Open sets the number of open alerts of a rule.
	Open(rule string, n int)
	Fired(rule string)
	Resolved(rule string)
	// Delivered counts a delivery attempt by notifier and outcome.
	Delivered(notifier string, ok bool)
}

// Defaults of the Engine.
const (
	DefaultInterval = time.Hour
	// Retries of a failed delivery: after 1 min, doubling, at most an
	// hour apart, MaxAttempts in all (about 16 hours).
	retryBase   = time.Minute
	retryMax    = time.Hour
	MaxAttempts = 20
	// maxPending bounds the deliveries kept waiting (a notifier down for
	// long while many alerts change); the oldest are dropped beyond it.
	maxPending = 10000
)

// Engine evaluates the rules, keeps the alerts and delivers the events.
// Set Store, Rules and StatePath; the zero values of the rest are
// usable. Safe for concurrent use.
type Engine struct {
	Store reports.Store
	Rules []Rule
	// Notifiers receive every event; none is fine (the dashboard and the
	// metrics still show the alerts).
	Notifiers []Notifier
	Observer  Observer
	// StatePath is the JSON file of the open alerts and pending
	// deliveries; empty keeps them in memory only.
	StatePath string
	// Interval between rule evaluations (default DefaultInterval).
	Interval time.Duration
	// Digest sends a digest of the open alerts every day at DigestHour
	// (0 to 23, UTC) to every notifier.
	Digest     bool
	DigestHour int
	Logger     *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu     sync.Mutex
	loaded bool
	st     state
	// notReady are the rules that returned ErrNotReady at the last
	// evaluation.
	notReady []Rule
}

// state is what StatePath keeps.
type state struct {
	Open       map[string]Alert `json:"open"`
	Pending    []delivery       `json:"pending"`
	LastEval   time.Time        `json:"last_eval"`
	LastDigest string           `json:"last_digest,omitempty"`
}

type delivery struct {
	Notifier string    `json:"notifier"`
	Event    Event     `json:"event"`
	Attempts int       `json:"attempts"`
	NextAt   time.Time `json:"next_at"`
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now().UTC()
	}
	return time.Now().UTC()
}

func (e *Engine) log() *slog.Logger {
	if e.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Logger
}

// load reads the state file once; a missing file is an empty state. A
// damaged one is set aside (name.bad) and the alerts start afresh.
func (e *Engine) load() error {
	if e.loaded {
		return nil
	}
	e.st = state{Open: map[string]Alert{}}
	if e.StatePath != "" {
		b, err := os.ReadFile(e.StatePath)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return fmt.Errorf("alerts: %w", err)
		default:
			if err := json.Unmarshal(b, &e.st); err != nil {
				e.log().Error("alerts: state file damaged, set aside; open alerts may fire again", "file", e.StatePath, "error", err)
				os.Rename(e.StatePath, e.StatePath+".bad")
				e.st = state{}
			}
			if e.st.Open == nil {
				e.st.Open = map[string]Alert{}
			}
		}
	}
	e.loaded = true
	return nil
}

// save writes the state file atomically (a temporary file renamed over
// it).
func (e *Engine) save() error {
	if e.StatePath == "" {
		return nil
	}
	b, err := json.MarshalIndent(e.st, "", " ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(e.StatePath, b, 0o600); err != nil {
		return fmt.Errorf("alerts: %w", err)
	}
	return nil
}

// Tick does what is due: evaluate the rules (every Interval), queue a
// digest (once a day at DigestHour), and deliver the events whose time
// has come. Run calls it every minute; tests call it with their clock.
func (e *Engine) Tick(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.load(); err != nil {
		return err
	}
	now := e.now()
	var errs []error
	switch {
	case now.Sub(e.st.LastEval) >= cmp.Or(e.Interval, DefaultInterval):
		notReady, err := e.evaluate(ctx, now, e.Rules)
		e.notReady = notReady
		if err != nil {
			errs = append(errs, err)
		} else {
			e.st.LastEval = now
		}
	case len(e.notReady) > 0:
		// Rules that were not ready run again at each tick until they
		// are, without waiting for the next evaluation of the others.
		notReady, err := e.evaluate(ctx, now, e.notReady)
		e.notReady = notReady
		if err != nil {
			errs = append(errs, err)
		}
	}
	if e.Digest && now.Hour() >= e.DigestHour && e.st.LastDigest != dayString(now) {
		e.st.LastDigest = dayString(now)
		e.queue(Event{Type: EventDigest, At: now, Open: e.openLocked(nil)}, now)
	}
	e.deliver(ctx, now)
	if err := e.save(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// ErrNotReady is returned (wrapped) by a rule whose data is not there
// yet (the first checks after a start): its alerts stay as they are, and
// it runs again at each Tick until it is ready.
var ErrNotReady = errors.New("alerts: not ready")

// evaluate runs every rule on the last complete day and turns the
// difference with the open alerts into events. A rule that fails keeps
// its alerts as they are.
func (e *Engine) evaluate(ctx context.Context, now time.Time, rules []Rule) (notReady []Rule, _ error) {
	y, m, d := now.Date()
	day := time.Date(y, m, d-1, 0, 0, 0, 0, time.UTC)
	var errs []error
	for _, r := range rules {
		found, err := r.Check(ctx, e.Store, day)
		if errors.Is(err, ErrNotReady) {
			e.log().Debug("alerts: rule not ready", "rule", r.Name(), "error", err)
			notReady = append(notReady, r)
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ids := map[string]bool{}
		slices.SortFunc(found, func(a, b Finding) int { return cmp.Compare(a.ID(), b.ID()) })
		for _, f := range found {
			id := f.ID()
			ids[id] = true
			if _, open := e.st.Open[id]; open {
				continue
			}
			a := Alert{ID: id, Finding: f, Since: now}
			e.st.Open[id] = a
			e.log().Warn("alert firing", "rule", f.Rule, "domain", f.Domain, "key", f.Key, "subject", f.Subject)
			if e.Observer != nil {
				e.Observer.Fired(r.Name())
			}
			e.queue(Event{Type: EventFiring, At: now, Alert: &a}, now)
		}
		n := 0
		for id, a := range e.st.Open {
			if a.Rule != r.Name() {
				continue
			}
			if ids[id] {
				n++
				continue
			}
			delete(e.st.Open, id)
			at := now
			a.ResolvedAt = &at
			e.log().Info("alert resolved", "rule", a.Rule, "domain", a.Domain, "key", a.Key)
			if e.Observer != nil {
				e.Observer.Resolved(r.Name())
			}
			e.queue(Event{Type: EventResolved, At: now, Alert: &a}, now)
		}
		if e.Observer != nil {
			e.Observer.Open(r.Name(), n)
		}
	}
	return notReady, errors.Join(errs...)
}

func (e *Engine) queue(ev Event, now time.Time) {
	for _, n := range e.Notifiers {
		e.st.Pending = append(e.st.Pending, delivery{Notifier: n.Name(), Event: ev, NextAt: now})
	}
	if over := len(e.st.Pending) - maxPending; over > 0 {
		e.log().Error("alerts: too many undelivered events, dropping the oldest", "dropped", over)
		e.st.Pending = slices.Delete(e.st.Pending, 0, over)
	}
}

// backoff is the wait after the nth failed attempt (n >= 1).
func backoff(n int) time.Duration {
	d := retryBase
	for i := 1; i < n && d < retryMax; i++ {
		d *= 2
	}
	return min(d, retryMax)
}

// deliver sends the due events, in order per notifier: a notifier that
// fails gets nothing more this tick, so that its events stay in order.
func (e *Engine) deliver(ctx context.Context, now time.Time) {
	byName := map[string]Notifier{}
	for _, n := range e.Notifiers {
		byName[n.Name()] = n
	}
	failed := map[string]bool{}
	kept := e.st.Pending[:0]
	for _, d := range e.st.Pending {
		n := byName[d.Notifier]
		if n == nil {
			continue // a notifier removed from the configuration
		}
		if failed[d.Notifier] || now.Before(d.NextAt) || ctx.Err() != nil {
			kept = append(kept, d)
			continue
		}
		err := n.Notify(ctx, d.Event)
		if e.Observer != nil {
			e.Observer.Delivered(d.Notifier, err == nil)
		}
		if err == nil {
			continue
		}
		failed[d.Notifier] = true
		d.Attempts++
		if d.Attempts >= MaxAttempts {
			e.log().Error("alerts: giving up a delivery", "notifier", d.Notifier, "event", d.Event.Type, "attempts", d.Attempts, "error", err)
			continue
		}
		d.NextAt = now.Add(backoff(d.Attempts))
		e.log().Warn("alerts: delivery failed, retrying", "notifier", d.Notifier, "event", d.Event.Type, "retry_at", d.NextAt, "error", err)
		kept = append(kept, d)
	}
	e.st.Pending = kept
}

// OpenAlerts returns the open alerts of the domains listed (all when
// domains is empty), oldest first.
func (e *Engine) OpenAlerts(_ context.Context, domains []string) ([]Alert, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.load(); err != nil {
		return nil, err
	}
	return e.openLocked(domains), nil
}

func (e *Engine) openLocked(domains []string) []Alert {
	var out []Alert
	for _, a := range e.st.Open {
		if len(domains) > 0 && !slices.ContainsFunc(domains, func(d string) bool { return reports.NormDomain(d) == a.Domain }) {
			continue
		}
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b Alert) int { return cmp.Or(a.Since.Compare(b.Since), cmp.Compare(a.ID, b.ID)) })
	return out
}

// Pending returns the number of events waiting for delivery.
func (e *Engine) Pending() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.st.Pending)
}

// Run calls Tick now and then every minute until ctx ends.
func (e *Engine) Run(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		if err := e.Tick(ctx); err != nil && ctx.Err() == nil {
			e.log().Error("alerts: evaluation failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
