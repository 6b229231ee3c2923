package cli

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/mailsts/mailsts/internal/policyd"
	"github.com/mailsts/mailsts/internal/stscache"
	"github.com/mailsts/mailsts/mtasts"
)

// warmStore is the store of one `cache warm` run. It
// reads the shared store the daemons use, but writes back only what the
// run learned: a valid policy, fetched or confirmed by this run without a
// failure. Everything else the run's Cache records (failures, back-off,
// "no policy until") stays in the run's own memory and is forgotten when it
// ends.
//
// A warm run's failures are often its own fault (a wrong --dns,
// --ca-file or --https-port, a resolver that cannot reach the Internet)
// and cannot be told apart from the domain's: stored in the shared store,
// they would make running daemons answer TEMP (or NOTFOUND) for domains
// they can fetch, and make the next, corrected warm refuse with the
// remembered failure. Failures a daemon records itself are its own to keep
// (RFC 8461 §3.3 back-off, STS-FETCH-7); a warm run reads them like any
// entry and does not clear them.
type warmStore struct {
	shared mtasts.Store
	now    func() time.Time

	mu  sync.Mutex
	own map[string]mtasts.Entry // what this run recorded and did not share
}

func newWarmStore(shared mtasts.Store, now func() time.Time) *warmStore {
	if now == nil {
		now = time.Now
	}
	return &warmStore{shared: shared, now: now, own: map[string]mtasts.Entry{}}
}

var _ mtasts.Store = (*warmStore)(nil)

// learned reports whether e is knowledge worth sharing: a valid policy and
// no failure of any kind attached.
func learned(e *mtasts.Entry, now time.Time) bool {
	return e.Valid(now) && e.LastError == "" && e.Failures == 0 && e.FailedID == ""
}

// Get returns what this run recorded for domain, else the shared entry.
func (w *warmStore) Get(ctx context.Context, domain string) (*mtasts.Entry, error) {
	w.mu.Lock()
	e, ok := w.own[domain]
	w.mu.Unlock()
	if ok {
		return &e, nil
	}
	return w.shared.Get(ctx, domain)
}

// Put writes e to the shared store when it is learned, else keeps it in
// the run's memory only.
func (w *warmStore) Put(ctx context.Context, e *mtasts.Entry) error {
	if learned(e, w.now()) {
		w.mu.Lock()
		delete(w.own, e.Domain)
		w.mu.Unlock()
		return w.shared.Put(ctx, e)
	}
	w.mu.Lock()
	w.own[e.Domain] = *e
	w.mu.Unlock()
	return nil
}

// Delete forgets domain in the run's memory; the shared store is not
// touched (the Cache never deletes).
func (w *warmStore) Delete(_ context.Context, domain string) error {
	w.mu.Lock()
	delete(w.own, domain)
	w.mu.Unlock()
	return nil
}

// Range ranges over the shared store.
func (w *warmStore) Range(ctx context.Context, fn func(*mtasts.Entry) bool) error {
	return w.shared.Range(ctx, fn)
}

// cacheImport copies postfix-mta-sts-resolver's cached policies into st.
func cacheImport(ctx context.Context, env Env, cfg *policyd.Config, st *stscache.Cache, source string) int {
	stats, err := policyd.ImportResolver(ctx, st, cfg, source, time.Now())
	if err != nil {
		fmt.Fprintf(env.Stderr, "mailsts cache import: %v\n", err)
		return ExitError
	}
	fmt.Fprintf(env.Stdout, "%s: %d imported, %d kept (already cached as recently), %d expired, %d unreadable (skipped)\n",
		plural(stats.Read, "record", "records"), stats.Imported, stats.Kept, stats.Expired, stats.Bad)
	if stats.Bad > 0 {
		return ExitFailure
	}
	return ExitOK
}
