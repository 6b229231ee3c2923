package mtasts

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailsts/mailsts/tlsrpt/result"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"
)

// Defaults for the [Cache] fields.
const (
	// DefaultCheckInterval is how long a TXT id that was found unchanged is
	// trusted before the next lookup that needs the policy re-checks it.
	DefaultCheckInterval = 15 * time.Minute
	// DefaultRetryInterval is the minimum wait after a failed GET before
	// the same policy id is fetched again (RFC 8461 §3.3, STS-FETCH-7).
	DefaultRetryInterval = 5 * time.Minute
	// DefaultMaxRetryInterval caps the exponential back-off of repeated
	// failures.
	DefaultMaxRetryInterval = time.Hour
	// DefaultRefreshInterval is the age after which a cached policy is
	// fetched again whatever the TXT record says (RFC 8461 §10.2,
	// STS-FETCH-11).
	DefaultRefreshInterval = 24 * time.Hour
	// DefaultRefreshAhead: a policy is refreshed when it expires within
	// this, and never later than when three quarters of max_age are gone.
	DefaultRefreshAhead = time.Hour
	// DefaultRefreshConcurrency bounds the discoveries RefreshDue runs at
	// once.
	DefaultRefreshConcurrency = 8
	// DefaultNegativeTTL is how long "no usable policy" is remembered.
	DefaultNegativeTTL = 5 * time.Minute
	// DefaultForceInterval is the minimum time between a successful fetch
	// and a forced re-fetch of the same policy id.
	DefaultForceInterval = time.Minute

	// lastErrorMax caps Entry.LastError: error messages may quote what
	// a policy host sent.
	lastErrorMax = 512
)

// Source says where the policy of a [Result] comes from.
type Source uint8

// Sources of a Result.
const (
	// SourceNone: no policy applies. The domain has none, its policy
	// expired, or discovery failed with nothing valid cached (Err says
	// which). Deliver without MTA-STS (RFC 8461 §3.3, STS-FETCH-9), or,
	// when Err is ErrDNS, decide per OPEN-1.
	SourceNone Source = iota
	// SourceCache: a cached policy that is current as far as the cache
	// knows (its TXT id was checked recently, or the check found it
	// unchanged).
	SourceCache
	// SourceFetched: the policy was fetched during this call. Err is nil,
	// except when the TXT lookup failed and the cached policy, due for
	// refresh, was fetched regardless (RFC 8461 §10.2, STS-FETCH-11): Err
	// then says what the TXT lookup gave.
	SourceFetched
	// SourceStale: a cached, unexpired policy applied because the latest
	// discovery failed (RFC 8461 §3.3, STS-FETCH-10, STS-CACHE-5). Err
	// says what failed.
	SourceStale
)

func (s Source) String() string {
	switch s {
	case SourceNone:
		return "none"
	case SourceCache:
		return "cache"
	case SourceFetched:
		return "fetched"
	case SourceStale:
		return "stale"
	}
	return fmt.Sprintf("Source(%d)", uint8(s))
}

// Result is the policy to apply to a domain now, with its provenance.
type Result struct {
	// Domain is the normalized policy domain.
	Domain string
	// Policy is the policy to apply, nil when none applies. A policy with
	// mode none is returned as is: apply it as "no policy" (RFC 8461 §5).
	Policy *Policy
	// ID is the TXT id Policy was fetched for.
	ID string
	// FetchedAt and Expires bound Policy's life (zero without a policy).
	FetchedAt, Expires time.Time
	// Source says where Policy comes from.
	Source Source
	// Err is the discovery error, even when a cached policy is applied
	// (Source == SourceStale); nil when discovery succeeded or was not
	// needed. Use [ResultType] to classify it.
	Err error
	// Failures counts consecutive failed discovery attempts for this
	// domain; set when Err is not nil. Callers can use it to bound how long
	// a DNS failure defers mail (OPEN-1).
	Failures int
	// Until is set on answers from the store (Source cache or stale, or a
	// remembered "no policy"): the time at which Get stops giving this
	// answer without going to the network (the next TXT check or refresh,
	// the policy's expiry, or the end of negative caching). A caller may
	// reuse the answer until then as long as [Cache.Generation] of the
	// domain is unchanged. Zero on other answers.
	Until time.Time
}

// LogValue implements slog.LogValuer.
func (r Result) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("domain", r.Domain), slog.String("source", r.Source.String())}
	if r.Policy != nil {
		attrs = append(attrs, slog.String("id", r.ID), slog.Any("policy", r.Policy), slog.Time("expires", r.Expires))
	}
	if r.Err != nil {
		attrs = append(attrs, slog.String("error", r.Err.Error()))
	}
	return slog.GroupValue(attrs...)
}

// Cache answers "which MTA-STS policy applies to this domain now" with as
// little network traffic as RFC 8461 allows, and never downgrades: a valid
// cached policy is only replaced by a newer valid one (RFC 8461 §3.3,
// STS-CACHE-5). The zero value is ready to use (with an in-memory store and
// a zero [Client]); a Cache is safe for concurrent use and must not be
// copied after first use. Durations left at 0 take the Default* values.
//
// How a lookup proceeds:
//   - a valid policy whose TXT id was checked within CheckInterval, and that
//     is not due for refresh, is answered from the store: no network;
//   - a domain known to have no usable policy is answered from the store
//     until NoPolicyUntil (NegativeTTL after the check);
//   - otherwise the TXT record is read. An equal id (compared exactly,
//     STS-CACHE-3) keeps the policy (STS-CACHE-4) without extending its life
//     (OPEN-4). A different id, a policy older than RefreshInterval or
//     close to expiry (STS-FETCH-11), or no valid policy, leads to a fetch;
//   - when the TXT lookup fails (DNS, no record, several records, bad
//     record) but the valid cached policy is due for refresh, the policy is
//     fetched anyway, under the cached id: RFC 8461 §10.2 refreshes cached
//     policies "regardless of the state of the TXT record", so suppressing
//     the record does not let a policy run out (STS-FETCH-11). With
//     nothing valid cached, a TXT failure ends discovery (STS-TXT-7);
//   - a successful fetch replaces the entry, mode none included
//     (STS-CACHE-6). Any failure (DNS, no record, several records, bad
//     record, fetch, invalid body) keeps a valid policy and applies it
//     (STS-CACHE-5, STS-TXT-11, STS-FETCH-10, OPEN-9);
//   - after a failed GET, the same id is not fetched again before
//     RetryInterval, doubling on each further failure up to
//     MaxRetryInterval (STS-FETCH-7, STS-CACHE-8); a new id is fetched at
//     once. The back-off is kept for the last failing id of a domain only
//     (one slot in [Entry]): when the TXT record flips between two failing
//     ids, Refresh may fetch an id again sooner, but Get never goes to the
//     network sooner than RetryInterval after any failure;
//   - a policy with max_age 0 decides the lookup that fetched it but is not
//     reused; the same id is not fetched again before RetryInterval, so
//     it cannot cause a fetch per message (STS-CACHE-9);
//   - concurrent lookups of one domain share one discovery. A caller
//     whose ctx ends stops waiting, but the discovery goes on (bounded by
//     the Client's Timeout, DNS included) and its result lands in the
//     store: give Get a short deadline to deliver the first message without
//     waiting for a slow policy host (RFC 8461 §5.1, STS-CACHE-7).
//
// OPEN-1 (the TXT lookup fails and nothing is cached) is left to the
// caller: the Result has no policy, Err wraps ErrDNS and Failures counts the
// attempts.
type Cache struct {
	// Client discovers policies; nil means a zero Client.
	Client *Client
	// Store keeps entries; nil means a new [MemoryStore]. Use a persistent
	// store in daemons (STS-CACHE-10).
	Store Store
	// Now returns the current time; nil means time.Now.
	Now func() time.Time

	// CheckInterval: how long an unchanged TXT id is trusted.
	CheckInterval time.Duration
	// RetryInterval: wait after a failed GET before fetching the same id
	// again, and after a failed TXT lookup before looking again.
	RetryInterval time.Duration
	// MaxRetryInterval caps the back-off of repeated failures.
	MaxRetryInterval time.Duration
	// RefreshInterval: re-fetch a policy this old even when its id is
	// unchanged.
	RefreshInterval time.Duration
	// RefreshAhead: re-fetch a policy expiring within this (at most a
	// quarter of its max_age).
	RefreshAhead time.Duration
	// NegativeTTL: how long "no usable policy" is remembered.
	NegativeTTL time.Duration
	// ForceInterval: minimum time between a successful fetch and a forced
	// re-fetch (Refresh with force).
	ForceInterval time.Duration
	// RefreshConcurrency bounds the discoveries RefreshDue runs at once;
	// 0 means DefaultRefreshConcurrency.
	RefreshConcurrency int

	// Logger gets refresh failures (Warn while a policy other than mode
	// none is cached, RFC 8461 §10.2, STS-FETCH-12) and debug logs; nil
	// discards.
	Logger *slog.Logger
	// Observer, when not nil, receives events for metrics.
	Observer Observer

	initOnce sync.Once
	store    Store
	client   *Client
	group    singleflight.Group
	seed     maphash.Seed
	gens     [genSlots]atomic.Uint64
}

// genSlots is the number of write counters behind Generation; domains
// share them by hash.
const genSlots = 256

// Generation returns a counter that moves whenever this Cache writes the
// entry of domain (given as in Result.Domain), and on writes of the few
// other domains that share its slot. A caller that memoises what it derived
// from Get reads it before calling Get and reuses the memo only while it is
// unchanged (and before Result.Until). Writes made to the Store by other
// processes or other Cache values are not seen.
func (c *Cache) Generation(domain string) uint64 {
	c.init()
	return c.gens[maphash.String(c.seed, domain)%genSlots].Load()
}

// discovery modes.
type mode uint8

const (
	modeGet     mode = iota // a lookup: answer from the store when possible
	modeRefresh             // Refresh(force=false): always check the TXT record
	modeForce               // Refresh(force=true): also re-fetch an unchanged id
	modeDue                 // RefreshDue: like modeRefresh, not a use of the entry
)

func (c *Cache) init() {
	c.initOnce.Do(func() {
		c.seed = maphash.MakeSeed()
		c.store = c.Store
		if c.store == nil {
			c.store = NewMemoryStore()
		}
		c.client = c.Client
		if c.client == nil {
			c.client = &Client{Logger: c.Logger}
		}
	})
}

func (c *Cache) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Cache) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

// withDomain returns l with the attribute domain=d on every record, as
// l.With would, but formatting it only for a record that is logged:
// Logger.With makes a text or JSON handler format the attribute at once,
// on every discovery, for logs that are mostly at a disabled level.
func withDomain(l *slog.Logger, d string) *slog.Logger {
	return slog.New(domainHandler{h: l.Handler(), domain: d})
}

// domainHandler adds domain=<domain> to the records it handles.
type domainHandler struct {
	h      slog.Handler
	domain string
}

func (h domainHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.h.Enabled(ctx, l) }

func (h domainHandler) Handle(ctx context.Context, r slog.Record) error {
	r = r.Clone()
	r.AddAttrs(slog.String("domain", h.domain))
	return h.h.Handle(ctx, r)
}

func (h domainHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return domainHandler{h: h.h.WithAttrs(as), domain: h.domain}
}

// WithGroup keeps domain outside the group, as Logger.With before
// WithGroup does.
func (h domainHandler) WithGroup(name string) slog.Handler {
	return h.h.WithAttrs([]slog.Attr{slog.String("domain", h.domain)}).WithGroup(name)
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func (c *Cache) checkInterval() time.Duration {
	return orDefault(c.CheckInterval, DefaultCheckInterval)
}
func (c *Cache) retryInterval() time.Duration {
	return orDefault(c.RetryInterval, DefaultRetryInterval)
}
func (c *Cache) negativeTTL() time.Duration { return orDefault(c.NegativeTTL, DefaultNegativeTTL) }
func (c *Cache) forceInterval() time.Duration {
	return orDefault(c.ForceInterval, DefaultForceInterval)
}

// backoff returns the wait after n consecutive failures: RetryInterval
// doubled n-1 times, at most MaxRetryInterval (and never below
// RetryInterval).
func (c *Cache) backoff(n int) time.Duration {
	d := c.retryInterval()
	limit := max(orDefault(c.MaxRetryInterval, DefaultMaxRetryInterval), d)
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// refreshAt returns when the cached policy of e should be fetched again even
// if its id is unchanged (STS-FETCH-11): after RefreshInterval, or when it
// expires within RefreshAhead (at most a quarter of max_age), whichever is
// first, but not sooner than RetryInterval after the fetch (STS-CACHE-9).
func (c *Cache) refreshAt(e *Entry) time.Time {
	life := time.Duration(e.Policy.MaxAge) * time.Second
	ahead := min(orDefault(c.RefreshAhead, DefaultRefreshAhead), life/4)
	after := min(orDefault(c.RefreshInterval, DefaultRefreshInterval), life-ahead)
	return e.FetchedAt.Add(max(after, c.retryInterval()))
}

// nextCheck returns when a valid entry needs the network again.
func (c *Cache) nextCheck(e *Entry) time.Time {
	if e.LastError != "" {
		// The last attempt failed: keep applying the policy, look again
		// after RetryInterval.
		return e.FailedAt.Add(c.retryInterval())
	}
	t := e.CheckedAt.Add(c.checkInterval())
	if r := c.refreshAt(e); r.Before(t) {
		t = r
	}
	return t
}

// rateLimited reports whether fetching id now would break STS-FETCH-7: the
// last fetch of this id failed less than the back-off ago.
func (c *Cache) rateLimited(e *Entry, id string, now time.Time) (time.Time, bool) {
	if e.FailedID != id || e.Failures == 0 {
		return time.Time{}, false
	}
	next := e.FailedAt.Add(c.backoff(e.Failures))
	return next, now.Before(next)
}

// Get returns the policy to apply to domain now (see [Cache] for how). The
// discovery outcome is in Result.Err; the error return is for problems that
// leave no answer at all: an invalid domain (ErrInvalidDomain), a failing
// Store, or ctx ending while waiting for the network. Callers should then
// defer delivery.
func (c *Cache) Get(ctx context.Context, domain string) (Result, error) {
	c.init()
	d, err := normalizeDomain(domain)
	if err != nil {
		return Result{Domain: domain, Err: err}, err
	}
	now := c.now()
	e, err := c.store.Get(ctx, d)
	if err != nil {
		err = fmt.Errorf("mtasts: reading the policy cache for %s: %w", d, err)
		return Result{Domain: d, Err: err}, err
	}
	if r, ok := c.fromCache(e, now); ok {
		c.observe(r)
		return r, nil
	}
	return c.flight(ctx, d, modeGet, now)
}

// Refresh checks the TXT record of domain now, ignoring CheckInterval and
// negative caching, and fetches the policy when the id changed, the policy
// is due for refresh or none is valid, all subject to the failure back-off.
// With force, it also re-fetches an unchanged id, unless the last successful
// fetch is less than ForceInterval old: the policy daemon uses this when the
// live MX set no longer matches the cached policy, and when a delivery is
// about to fail for good (RFC 8461 §5.1, STS-APPLY-4: check for a newer
// policy before bouncing). Results and errors are as for [Cache.Get]. A
// Refresh that arrives while a discovery of the domain is running shares its
// outcome.
func (c *Cache) Refresh(ctx context.Context, domain string, force bool) (Result, error) {
	c.init()
	d, err := normalizeDomain(domain)
	if err != nil {
		return Result{Domain: domain, Err: err}, err
	}
	m := modeRefresh
	if force {
		m = modeForce
	}
	return c.flight(ctx, d, m, c.now())
}

// RefreshDue refreshes up to limit cached, unexpired policies that are due
// (by RefreshInterval and RefreshAhead, STS-FETCH-11), soonest due first,
// with now as the current time. Entries whose last attempt failed wait for the
// back-off. A background loop calls it periodically, with jitter. It returns
// how many domains it refreshed; failures of single domains are recorded in
// their entries, not returned. The error reports a failing store or ctx.
func (c *Cache) RefreshDue(ctx context.Context, now time.Time, limit int) (int, error) {
	c.init()
	type due struct {
		domain string
		at     time.Time
	}
	var list []due
	err := c.store.Range(ctx, func(e *Entry) bool {
		if !e.Valid(now) {
			// Negative and expired entries are looked up on demand only:
			// a domain that dropped MTA-STS is not polled forever.
			return true
		}
		at := c.refreshAt(e)
		if e.LastError != "" {
			at = maxTime(at, e.FailedAt.Add(c.backoff(e.Failures)))
		}
		if !at.After(now) {
			list = append(list, due{e.Domain, at})
		}
		return true
	})
	if err != nil {
		return 0, fmt.Errorf("mtasts: scanning the policy cache: %w", err)
	}
	slices.SortFunc(list, func(a, b due) int { return a.at.Compare(b.at) })
	list = list[:min(max(limit, 0), len(list))]
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.refreshConcurrency())
	var n atomic.Int64
	for _, d := range list {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if _, err := c.flight(gctx, d.domain, modeDue, now); err != nil {
				return err
			}
			n.Add(1)
			return nil
		})
	}
	err = g.Wait()
	if err == nil {
		err = ctx.Err()
	}
	return int(n.Load()), err
}

func (c *Cache) refreshConcurrency() int {
	if c.RefreshConcurrency > 0 {
		return c.RefreshConcurrency
	}
	return DefaultRefreshConcurrency
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// flight runs one discovery of d, shared with concurrent callers.
func (c *Cache) flight(ctx context.Context, d string, m mode, now time.Time) (Result, error) {
	ch := c.group.DoChan(d, func() (any, error) {
		// The discovery outlives a caller that gives up, so the callers
		// sharing it are not hurt; it is bounded on its own, by the
		// Client's Timeout for every step (TXT, A/AAAA, HTTPS): a
		// daemon that answers within Timeout never has discoveries
		// piling up behind it for longer.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.client.timeout())
		defer cancel()
		return c.discover(fctx, d, m, now)
	})
	select {
	case <-ctx.Done():
		err := fmt.Errorf("mtasts: policy discovery for %s: %w", d, ctx.Err())
		return Result{Domain: d, Err: err}, err
	case res := <-ch:
		r := res.Val.(Result)
		if res.Err == nil && m != modeDue {
			c.observe(r)
		}
		return r, res.Err
	}
}

func (c *Cache) observe(r Result) {
	if c.Observer != nil {
		c.Observer.Answered(r.Domain, r.Source, r.Err)
	}
}

// fromCache answers from e without network when the rules allow.
func (c *Cache) fromCache(e *Entry, now time.Time) (Result, bool) {
	if e == nil {
		return Result{}, false
	}
	if e.Valid(now) {
		if !now.Before(c.nextCheck(e)) {
			return Result{}, false
		}
		r := entryResult(e, SourceCache)
		if e.LastError != "" {
			r.Source, r.Err, r.Failures = SourceStale, rememberedError(e), e.Failures
		}
		r.Until = c.nextCheck(e)
		if exp := r.Expires; exp.Before(r.Until) {
			r.Until = exp
		}
		return r, true
	}
	if now.Before(e.NoPolicyUntil) {
		r := Result{Domain: e.Domain, Source: SourceNone, Err: rememberedError(e), Until: e.NoPolicyUntil}
		if r.Err != nil {
			r.Failures = e.Failures
		}
		return r, true
	}
	return Result{}, false
}

func entryResult(e *Entry, src Source) Result {
	return Result{
		Domain:    e.Domain,
		Policy:    e.Policy,
		ID:        e.ID,
		FetchedAt: e.FetchedAt,
		Expires:   e.Expires(),
		Source:    src,
	}
}

// discover does the network part of a lookup and updates the store.
func (c *Cache) discover(ctx context.Context, d string, m mode, now time.Time) (Result, error) {
	e, err := c.store.Get(ctx, d)
	if err != nil {
		err = fmt.Errorf("mtasts: reading the policy cache for %s: %w", d, err)
		return Result{Domain: d, Err: err}, err
	}
	if e == nil {
		e = &Entry{Domain: d}
	}
	if m == modeGet {
		// Another discovery may have finished since the caller looked.
		if r, ok := c.fromCache(e, now); ok {
			return r, nil
		}
	}
	if m != modeDue {
		e.LastUsed = now
	}
	log := withDomain(c.logger(), d)

	var ahead *addrLookup
	if lookAhead(e) {
		// Look up the policy host's addresses together with the TXT
		// record: one round trip instead of two. Nothing is fetched
		// before the record says a policy exists (RFC 8461 §3.3): without
		// one, the addresses are dropped unused.
		actx, cancel := context.WithCancel(ctx)
		defer cancel()
		ahead = c.client.lookupAhead(actx, d)
	}

	rec, _, err := c.client.LookupRecord(ctx, d)
	if err != nil {
		if e.Valid(now) && !now.Before(c.refreshAt(e)) {
			// RFC 8461 §10.2 (STS-FETCH-11): a cached policy due for
			// refresh is fetched "regardless of the state of the TXT
			// record", so an attacker who suppresses the record must
			// do so for the policy's whole max_age to make it expire.
			return c.refreshWithoutRecord(ctx, log, e, now, err), nil
		}
		// RFC 8461 §3.1 note, §3.3 (STS-TXT-11, STS-CACHE-5, OPEN-9): a
		// missing, duplicated or invalid record, or a DNS failure, does not
		// remove a valid cached policy.
		return c.failed(ctx, log, e, now, "", err), nil
	}
	id := rec.ID
	valid := e.Valid(now)
	need := false
	switch {
	case e.Policy == nil || e.ID != id:
		// RFC 8461 §3.1: the id is opaque; any difference, case included,
		// means a new policy (STS-CACHE-3, STS-CACHE-4).
		need = true
	case m == modeForce:
		need = !now.Before(e.FetchedAt.Add(c.forceInterval()))
	case !valid || !now.Before(c.refreshAt(e)):
		// RFC 8461 §10.2: refresh regardless of the TXT record
		// (STS-FETCH-11); not more often than RetryInterval, so a tiny
		// max_age cannot cause a fetch storm (STS-CACHE-9).
		need = !now.Before(e.FetchedAt.Add(c.retryInterval()))
	}
	if !need {
		// OPEN-4: an unchanged id does not extend the policy's life.
		e.CheckedAt = now
		setLastError(e, nil)
		if e.FailedID == "" {
			// A streak of TXT-level failures ends here. A failing fetch
			// of another id keeps its back-off (STS-FETCH-7).
			e.Failures, e.FailedAt = 0, time.Time{}
		}
		c.put(ctx, log, e)
		if valid {
			return entryResult(e, SourceCache), nil
		}
		return Result{Domain: d, Source: SourceNone}, nil
	}
	if next, limited := c.rateLimited(e, id, now); limited {
		// RFC 8461 §3.3: wait before fetching the same id again after a
		// failure (STS-FETCH-7, STS-CACHE-8).
		cause := rememberedError(e)
		if cause == nil {
			cause = ErrPolicyFetch
		}
		err := fmt.Errorf("not fetching the policy for id %q again before %s after %d failed attempts: %w",
			id, next.UTC().Format(time.RFC3339), e.Failures, cause)
		return c.settle(ctx, log, e, now, err), nil
	}

	p, err := c.fetch(ctx, d, ahead)
	if err != nil {
		return c.failed(ctx, log, e, now, id, err), nil
	}
	// RFC 8461 §3.3: a new valid policy replaces the cached one, mode none
	// included (STS-CACHE-6).
	*e = Entry{
		Domain:    d,
		Policy:    p,
		ID:        id,
		FetchedAt: now,
		CheckedAt: now,
		// Only consulted once the policy expired: with max_age 0 (or
		// tiny), "no policy" until the same id may be fetched again
		// (STS-CACHE-9).
		NoPolicyUntil: now.Add(c.retryInterval()),
		LastUsed:      e.LastUsed,
	}
	c.put(ctx, log, e)
	log.LogAttrs(ctx, slog.LevelDebug, "mta-sts policy fetched", slog.String("id", id), slog.Any("policy", p))
	r := entryResult(e, SourceFetched)
	return r, nil
}

// lookAhead reports whether discovering e should look up the policy host's
// addresses before the TXT record is known: when nothing is known about the
// domain (a never-seen domain, the cold lookup a sender waits for), so a
// fetch is likely. A domain remembered without a record, or with a policy
// whose id will most likely be unchanged, needs the TXT query alone.
func lookAhead(e *Entry) bool { return e.Policy == nil && e.LastError == "" }

// fetch fetches the policy of d (with the policy host's addresses looked
// up ahead, or nil) and tells the Observer.
func (c *Cache) fetch(ctx context.Context, d string, ahead *addrLookup) (*Policy, error) {
	start := time.Now()
	p, err := c.client.fetchPolicy(ctx, d, ahead)
	if c.Observer != nil {
		c.Observer.Fetched(d, time.Since(start), err)
	}
	return p, err
}

// refreshWithoutRecord handles a failed TXT lookup while the valid cached
// policy of e is due for refresh: the policy is fetched anyway (RFC 8461
// §10.2, STS-FETCH-11), under the back-off of the cached id (STS-FETCH-7).
//
// On success the new policy replaces the cached one under the cached id
// (the live id is unknown), and the answer is SourceFetched with txtErr as
// Err: the TXT failure stays recorded, so the record is looked up again
// after RetryInterval. On failure the cached policy still applies
// (STS-CACHE-5) and the fetch error, which says the policy could not be
// refreshed, is the answer's Err.
func (c *Cache) refreshWithoutRecord(ctx context.Context, log *slog.Logger, e *Entry, now time.Time, txtErr error) Result {
	if _, limited := c.rateLimited(e, e.ID, now); limited {
		// The back-off of the cached id stands as it is: counting this
		// TXT failure into it would push the next refresh further away
		// with every lookup.
		return c.report(ctx, log, e, now, txtErr)
	}
	p, err := c.fetch(ctx, e.Domain, nil)
	if err != nil {
		// %v: the answer's error matches one sentinel only, the fetch's.
		err = fmt.Errorf("%w (refreshing the cached policy because the TXT lookup failed: %v)", err, txtErr)
		return c.failed(ctx, log, e, now, e.ID, err)
	}
	// The fetch of the cached id works again: its back-off ends; the TXT
	// failure continues the streak.
	e.Policy, e.FetchedAt = p, now
	e.NoPolicyUntil = now.Add(c.retryInterval())
	e.FailedID = ""
	e.Failures++
	e.FailedAt = now
	setLastError(e, txtErr)
	c.put(ctx, log, e)
	log.LogAttrs(ctx, slog.LevelWarn, "mta-sts TXT lookup failed; cached policy refreshed over HTTPS regardless (RFC 8461 §10.2)",
		slog.String("id", e.ID), slog.Any("policy", p), slog.Int("failures", e.Failures), slog.String("error", txtErr.Error()))
	r := entryResult(e, SourceFetched)
	r.Err, r.Failures = txtErr, e.Failures
	return r
}

// failed records a failed attempt (id is "" for a TXT-level failure) and
// returns the answer: the valid cached policy if any, else no policy.
func (c *Cache) failed(ctx context.Context, log *slog.Logger, e *Entry, now time.Time, id string, err error) Result {
	valid := e.Valid(now)
	// Without a valid policy, "no record" is the normal state of most
	// domains, not a failure; DNS and fetch failures always count.
	if valid || id != "" || errors.Is(err, ErrDNS) {
		switch {
		case id != "" && e.FailedID != id:
			e.FailedID, e.Failures = id, 1
		default:
			// A TXT-level failure continues the current streak, which
			// can only delay the retry of e.FailedID (STS-FETCH-7).
			e.Failures++
		}
		e.FailedAt = now
	}
	return c.report(ctx, log, e, now, err)
}

// report records err as the last error of e without touching the failure
// count or the back-off, logs it, stores e and returns the answer.
func (c *Cache) report(ctx context.Context, log *slog.Logger, e *Entry, now time.Time, err error) Result {
	valid := e.Valid(now)
	setLastError(e, err)
	lvl := slog.LevelDebug
	if valid && e.Policy.Mode != ModeNone {
		// RFC 8461 §10.2: alert on refresh failures, louder as expiry
		// nears, but not for mode none (STS-FETCH-12).
		lvl = slog.LevelWarn
		if e.Expires().Sub(now) < orDefault(c.RefreshInterval, DefaultRefreshInterval) {
			lvl = slog.LevelError
		}
	}
	log.LogAttrs(ctx, lvl, "mta-sts policy discovery failed",
		slog.Bool("cached_policy_applies", valid), slog.Int("failures", e.Failures),
		slog.Time("cached_expires", e.Expires()), slog.String("error", err.Error()))
	return c.settle(ctx, log, e, now, err)
}

// settle stores e after an unsuccessful attempt and builds the answer.
func (c *Cache) settle(ctx context.Context, log *slog.Logger, e *Entry, now time.Time, err error) Result {
	if !e.Valid(now) {
		e.NoPolicyUntil = now.Add(c.negativeTTL())
	}
	c.put(ctx, log, e)
	if e.Valid(now) {
		r := entryResult(e, SourceStale)
		r.Err, r.Failures = err, e.Failures
		return r
	}
	return Result{Domain: e.Domain, Source: SourceNone, Err: err, Failures: e.Failures}
}

func (c *Cache) put(ctx context.Context, log *slog.Logger, e *Entry) {
	// After the write: a reader that saw the old counter may have read the
	// old entry, and must see the counter move.
	defer c.gens[maphash.String(c.seed, e.Domain)%genSlots].Add(1)
	if err := c.store.Put(ctx, e); err != nil {
		// The answer stands; the next lookup will discover again.
		log.LogAttrs(ctx, slog.LevelError, "mta-sts cache store failed", slog.String("error", err.Error()))
	}
}

func clip(s string) string {
	if len(s) <= lastErrorMax {
		return s
	}
	return strings.ToValidUTF8(s[:lastErrorMax], "") + "…"
}

// temporaryMark follows the result type in Entry.LastError when the
// failure was Temporary.
const temporaryMark = "+temporary"

// setLastError records err (nil for none) as the last failure of e: its
// class and temporariness as fields, and its text for operators.
func setLastError(e *Entry, err error) {
	if err == nil {
		e.LastError, e.LastErrorType, e.LastErrorTemporary = "", "", false
		return
	}
	e.LastError, e.LastErrorType, e.LastErrorTemporary = lastError(err), ResultType(err), Temporary(err)
}

// lastError is how err is kept in Entry.LastError:
// "<result type>[+temporary]: <message>", clipped. The prefix repeats
// LastErrorType and LastErrorTemporary for operators (and for mailsts
// versions that read only LastError, sharing a store).
func lastError(err error) string {
	return clip(lastErrorPrefix(ResultType(err), Temporary(err)) + err.Error())
}

// lastErrorPrefix is the start of a LastError written by lastError.
func lastErrorPrefix(typ result.Type, temp bool) string {
	s := string(typ)
	if temp {
		s += temporaryMark
	}
	return s + ": "
}

// cachedError is a failure remembered in an Entry, brought back as an error
// that matches the sentinel of the original failure and keeps its
// temporariness (see Temporary and Remembered).
type cachedError struct {
	msg      string
	sentinel error
	temp     bool
}

func (e *cachedError) Error() string   { return e.msg + " (remembered from an earlier attempt)" }
func (e *cachedError) Unwrap() error   { return e.sentinel }
func (e *cachedError) temporary() bool { return e.temp }

// rememberedError rebuilds the last failure of e from its class and
// temporariness fields. It returns nil when e records no failure.
func rememberedError(e *Entry) error {
	if e.LastErrorType == "" {
		return storedError(e.LastError)
	}
	// The prefix only repeats the fields; cut it for the message.
	msg, ok := strings.CutPrefix(e.LastError, lastErrorPrefix(e.LastErrorType, e.LastErrorTemporary))
	if !ok {
		msg = e.LastError
	}
	sentinel := classSentinel(e.LastErrorType, msg)
	if sentinel == nil {
		// A class without a sentinel (result.ValidationFailure, a class
		// of a later version): an opaque remembered failure, as
		// storedError makes of it.
		return &cachedError{msg: e.LastError}
	}
	return &cachedError{msg: msg, sentinel: sentinel, temp: e.LastErrorTemporary}
}

// storedError rebuilds an error from an Entry.LastError written by
// lastError, for entries without LastErrorType. It returns nil for "".
//
// Legacy: this reads the class from the text, for entries stored before
// Entry had LastErrorType and LastErrorTemporary (and for Stores that do
// not keep them). The Cache writes the fields with every failure, so an
// entry takes this path until its next failure or success.
func storedError(s string) error {
	if s == "" {
		return nil
	}
	typ, msg, ok := strings.Cut(s, ": ")
	if !ok {
		return &cachedError{msg: s}
	}
	typ, temp := strings.CutSuffix(typ, temporaryMark)
	sentinel := classSentinel(result.Type(typ), msg)
	if sentinel == nil {
		return &cachedError{msg: s}
	}
	return &cachedError{msg: msg, sentinel: sentinel, temp: temp}
}

// classSentinel returns the sentinel error of class typ, the inverse of
// ResultType, or nil for a class without one. result.NoPolicy stands for
// three sentinels; which one msg (the remembered error's text) wraps is
// the one distinction still read from text, since the class has no room
// for it: it only refines errors.Is, never ResultType, Temporary or
// Remembered.
func classSentinel(typ result.Type, msg string) error {
	switch typ {
	case ResultWebPKIInvalid:
		return ErrPolicyCertificate
	case ResultPolicyInvalid:
		return ErrPolicySyntax
	case ResultFetchError:
		return ErrPolicyFetch
	case result.DNSError:
		return ErrDNS
	case result.NoPolicy:
		sentinel := ErrNoRecord
		for _, s := range []error{ErrMultipleRecords, ErrRecordSyntax} {
			if strings.Contains(msg, s.Error()) {
				sentinel = s
			}
		}
		return sentinel
	}
	return nil
}
