package mtasts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mailsts/mailsts/dnsresolve"
)

// fakeClock is an injected clock that only moves when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func (c *fakeClock) Add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// hostResponse is what the programmable policy host answers.
type hostResponse struct {
	mu      sync.Mutex
	status  int
	body    string
	headers map[string]string
}

func (h *hostResponse) set(status int, body string) {
	h.mu.Lock()
	h.status, h.body = status, body
	h.mu.Unlock()
}

func (h *hostResponse) serve(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	status, body, headers := h.status, h.body, h.headers
	h.mu.Unlock()
	for k, v := range headers {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

type cacheEnv struct {
	*netEnv
	clock *fakeClock
	resp  *hostResponse
	store *MemoryStore
	cache *Cache
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func policyBody(mode Mode, maxAge int) string {
	mx := "mx: mail.example.com\n"
	return fmt.Sprintf("version: STSv1\nmode: %s\n%smax_age: %d\n", mode, mx, maxAge)
}

// newCacheEnv serves an enforce policy (max_age 7 days) with TXT id "1".
func newCacheEnv(t *testing.T) *cacheEnv {
	t.Helper()
	resp := &hostResponse{status: 200, body: policyBody(ModeEnforce, 604800)}
	env := newNetEnv(t, resp.serve)
	clock := &fakeClock{t: t0}
	store := NewMemoryStore()
	return &cacheEnv{
		netEnv: env,
		clock:  clock,
		resp:   resp,
		store:  store,
		cache:  &Cache{Client: env.client, Store: store, Now: clock.Now},
	}
}

func (e *cacheEnv) fetches() int { return len(e.host.requests()) }

func (e *cacheEnv) txtQueries() int {
	n := 0
	for _, q := range e.dns.Queries() {
		if strings.HasPrefix(q, "TXT ") {
			n++
		}
	}
	return n
}

func (e *cacheEnv) setID(id string) { e.dns.SetTXT("_mta-sts."+testDomain, "v=STSv1; id="+id) }

func (e *cacheEnv) get(t *testing.T) Result {
	t.Helper()
	r, err := e.cache.Get(t.Context(), testDomain)
	if err != nil {
		t.Fatalf("Cache.Get: %v", err)
	}
	return r
}

func (e *cacheEnv) refresh(t *testing.T, force bool) Result {
	t.Helper()
	r, err := e.cache.Refresh(t.Context(), testDomain, force)
	if err != nil {
		t.Fatalf("Cache.Refresh: %v", err)
	}
	return r
}

func (e *cacheEnv) entry(t *testing.T) *Entry {
	t.Helper()
	en, err := e.store.Get(t.Context(), testDomain)
	if err != nil || en == nil {
		t.Fatalf("store entry: %v, %v", en, err)
	}
	return en
}

func wantResult(t *testing.T, r Result, src Source, mode Mode, errIs error) {
	t.Helper()
	if r.Source != src {
		t.Errorf("Source = %v, want %v (err %v)", r.Source, src, r.Err)
	}
	switch {
	case mode == "" && r.Policy != nil:
		t.Errorf("Policy = %v, want none", r.Policy.Mode)
	case mode != "" && (r.Policy == nil || r.Policy.Mode != mode):
		t.Errorf("Policy = %v, want mode %s", r.Policy, mode)
	}
	switch {
	case errIs == nil && r.Err != nil:
		t.Errorf("Err = %v, want nil", r.Err)
	case errIs != nil && !errors.Is(r.Err, errIs):
		t.Errorf("Err = %v, want %v", r.Err, errIs)
	}
}

// STS-CACHE-1, STS-CACHE-4: a fetched policy is cached with its id; within
// CheckInterval no network at all; afterwards an equal id means no GET; a
// new id means a GET.
func TestCache_STS_CACHE_1_4(t *testing.T) {
	t.Parallel()
	env := newCacheEnv(t)
	r := env.get(t)
	wantResult(t, r, SourceFetched, ModeEnforce, nil)
	if r.ID != "1" || !r.FetchedAt.Equal(t0) || !r.Expires.Equal(t0.Add(7*24*time.Hour)) || r.Domain != testDomain {
		t.Errorf("result %+v", r)
	}
	if env.fetches() != 1 || env.txtQueries() != 1 {
		t.Fatalf("fetches %d, txt %d", env.fetches(), env.txtQueries())
	}
	en := env.entry(t)
	if en.ID != "1" || !en.FetchedAt.Equal(t0) || en.Policy.Mode != ModeEnforce {
		t.Errorf("entry %+v", en)
	}

	env.clock.Add(DefaultCheckInterval - time.Second)
	wantResult(t, env.get(t), SourceCache, ModeEnforce, nil)
	if env.fetches() != 1 || env.txtQueries() != 1 {
		t.Fatalf("within CheckInterval: fetches %d, txt %d", env.fetches(), env.txtQueries())
	}

	env.clock.Add(time.Second)
	wantResult(t, env.get(t), SourceCache, ModeEnforce, nil)
	if env.fetches() != 1 || env.txtQueries() != 2 {
		t.Fatalf("unchanged id: fetches %d, txt %d", env.fetches(), env.txtQueries())
	}

	env.setID("2")
	env.resp.set(200, policyBody(ModeTesting, 604800))
	env.clock.Add(DefaultCheckInterval)
	r = env.get(t)
	wantResult(t, r, SourceFetched, ModeTesting, nil)
	if r.ID != "2" || env.fetches() != 2 {
		t.Fatalf("new id: %+v, fetches %d", r, env.fetches())
	}
}

// STS-CACHE-2: valid while now - fetched_at < max_age. Fetched at 00:00:00
// with max_age 86400: valid at 23:59:59, expired at 24:00:00, even while
// refreshes fail.
func TestCache_STS_CACHE_2_Boundary(t *testing.T) {
	t.Parallel()
	e := &Entry{Policy: &Policy{Mode: ModeEnforce, MaxAge: 86400}, FetchedAt: t0}
	if !e.Valid(t0.Add(86399 * time.Second)) {
		t.Error("Entry not valid at 23:59:59")
	}
	if e.Valid(t0.Add(86400 * time.Second)) {
		t.Error("Entry valid at 24:00:00")
	}

	env := newCacheEnv(t)
	env.resp.set(200, policyBody(ModeEnforce, 86400))
	wantResult(t, env.get(t), SourceFetched, ModeEnforce, nil)
	env.resp.set(500, "down")
	env.clock.Set(t0.Add(86399 * time.Second))
	r := env.get(t)
	wantResult(t, r, SourceStale, ModeEnforce, ErrPolicyFetch)
	if !r.Expires.Equal(t0.Add(24 * time.Hour)) {
		t.Errorf("Expires = %v", r.Expires)
	}
	env.clock.Set(t0.Add(86400 * time.Second))
	wantResult(t, env.get(t), SourceNone, "", ErrPolicyFetch)
}

// STS-CACHE-3: ids are opaque and compared exactly, case included; a
// "smaller" id is still a change.
func TestCache_STS_CACHE_3_IDComparison(t *testing.T) {
	t.Parallel()
	for _, tc := range [][2]string{{"ABC", "abc"}, {"20190101", "20180101"}, {"a", "a0"}} {
		t.Run(tc[0]+"->"+tc[1], func(t *testing.T) {
			t.Parallel()
			env := newCacheEnv(t)
			env.setID(tc[0])
			wantResult(t, env.get(t), SourceFetched, ModeEnforce, nil)
			env.setID(tc[1])
			r := env.refresh(t, false)
			wantResult(t, r, SourceFetched, ModeEnforce, nil)
			if r.ID != tc[1] || env.fetches() != 2 {
				t.Errorf("id %q, fetches %d", r.ID, env.fetches())
			}
		})
	}
}

// STS-CACHE-5, STS-FETCH-10, STS-TXT-11, STS-TXT-13, OPEN-9: no failure
// replaces or drops a valid cached policy.
func TestCache_STS_CACHE_5_NeverDowngrade(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		break_ func(env *cacheEnv)
		errIs  error
	}{
		{"(a) new id, HTTPS 500", func(env *cacheEnv) { env.setID("2"); env.resp.set(500, "oops") }, ErrPolicyFetch},
		{"(b) new id, body syntax error", func(env *cacheEnv) { env.setID("2"); env.resp.set(200, "version: STSv1\nmode: enforce\n") }, ErrPolicySyntax},
		{"(c) OPEN-9 two records", func(env *cacheEnv) {
			env.dns.SetTXT("_mta-sts."+testDomain, "v=STSv1; id=1", "v=STSv1; id=2")
		}, ErrMultipleRecords},
		{"STS-TXT-11 NXDOMAIN", func(env *cacheEnv) { env.dns.SetTXT("_mta-sts." + testDomain) }, ErrNoRecord},
		{"invalid record", func(env *cacheEnv) { env.dns.SetTXT("_mta-sts."+testDomain, "v=STSv1; id=#") }, ErrRecordSyntax},
		{"STS-TXT-13 SERVFAIL", func(env *cacheEnv) {
			env.dns.SetError("TXT _mta-sts."+testDomain, dnsresolve.ErrLookupFailed)
		}, ErrDNS},
		{"certificate", func(env *cacheEnv) { env.setID("2"); env.client.RootCAs = nil }, ErrPolicyCertificate},
		{"policy host gone", func(env *cacheEnv) { env.setID("2"); env.dns.SetIP("mta-sts." + testDomain) }, ErrPolicyFetch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := newCacheEnv(t)
			first := env.get(t)
			before := *env.entry(t)
			tt.break_(env)
			// Twelve hours later: the 7-day policy is not yet due for
			// refresh (RefreshInterval), so a TXT-level failure leads to
			// no fetch; TestCache_STS_FETCH_11_RegardlessOfTXT covers
			// the refresh that follows.
			env.clock.Add(12 * time.Hour)
			for i, r := range []Result{env.get(t), env.refresh(t, false), env.refresh(t, true)} {
				wantResult(t, r, SourceStale, ModeEnforce, tt.errIs)
				if r.Policy != first.Policy || r.ID != "1" || !r.Expires.Equal(first.Expires) {
					t.Errorf("call %d: result %+v, want the first policy", i, r)
				}
			}
			after := env.entry(t)
			if after.Policy != before.Policy || after.ID != before.ID || !after.FetchedAt.Equal(before.FetchedAt) {
				t.Errorf("entry changed: %+v", after)
			}
			if after.LastError == "" || after.Failures == 0 {
				t.Errorf("failure not recorded: %+v", after)
			}
		})
	}
}

// STS-FETCH-10: the id changed and the fetch times out: the cached policy
// applies.
func TestCache_STS_FETCH_10_Timeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	var slow atomic.Bool
	resp := &hostResponse{status: 200, body: policyBody(ModeEnforce, 604800)}
	env := newNetEnv(t, func(w http.ResponseWriter, r *http.Request) {
		if slow.Load() {
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		resp.serve(w, r)
	})
	clock := &fakeClock{t: t0}
	c := &Cache{Client: env.client, Now: clock.Now}
	if r, err := c.Get(t.Context(), testDomain); err != nil || r.Source != SourceFetched {
		t.Fatalf("first Get: %+v, %v", r, err)
	}
	env.dns.SetTXT("_mta-sts."+testDomain, "v=STSv1; id=2")
	slow.Store(true)
	env.client.Timeout = 200 * time.Millisecond
	clock.Add(time.Hour)
	r, err := c.Get(t.Context(), testDomain)
	if err != nil {
		t.Fatal(err)
	}
	wantResult(t, r, SourceStale, ModeEnforce, context.DeadlineExceeded)
	if ResultType(r.Err) != ResultFetchError {
		t.Errorf("ResultType = %q", ResultType(r.Err))
	}
}

// STS-CACHE-6: a fetched mode none policy replaces an enforce policy at
// once and stays cached for its max_age.
func TestCache_STS_CACHE_6_ModeNone(t *testing.T) {
	t.Parallel()
	env := newCacheEnv(t)
	wantResult(t, env.get(t), SourceFetched, ModeEnforce, nil)
	env.setID("2")
	env.resp.set(200, "version: STSv1\nmode: none\nmax_age: 86400\n")
	r := env.refresh(t, false)
	wantResult(t, r, SourceFetched, ModeNone, nil)
	env.clock.Add(time.Minute)
	wantResult(t, env.get(t), SourceCache, ModeNone, nil)
	if en := env.entry(t); en.Policy.Mode != ModeNone || en.ID != "2" {
		t.Errorf("entry %+v", en)
	}
	// A failing refresh of a none policy is kept quietly too.
	env.setID("3")
	env.resp.set(500, "")
	env.clock.Add(DefaultCheckInterval)
	wantResult(t, env.get(t), SourceStale, ModeNone, ErrPolicyFetch)
}

// STS-FETCH-7, STS-CACHE-8: after a failed GET of id X, no GET of X for
// RetryInterval (doubling on further failures); a new id is fetched at once.
func TestCache_STS_FETCH_7_RetryTiming(t *testing.T) {
	t.Parallel()
	env := newCacheEnv(t)
	env.setID("X")
	env.resp.set(500, "")
	wantResult(t, env.refresh(t, false), SourceNone, "", ErrPolicyFetch)
	steps := []struct {
		at      time.Duration
		id      string
		fetches int
	}{
		{time.Minute, "X", 1},
		{4*time.Minute + 59*time.Second, "X", 1},
		{5 * time.Minute, "X", 2},                  // second failure: back-off 10 minutes
		{14*time.Minute + 59*time.Second, "X", 2},  // 5m + 10m - 1s
		{15 * time.Minute, "X", 3},                 // third failure: 20 minutes
		{34*time.Minute + 59*time.Second, "X", 3},  // 15m + 20m - 1s
		{35 * time.Minute, "X", 4},                 // fourth failure: 40 minutes
		{75 * time.Minute, "X", 5},                 // fifth failure: 80m, capped at 1h
		{134*time.Minute + 59*time.Second, "X", 5}, // 75m + 1h - 1s
		{135 * time.Minute, "X", 6},                // 75m + 1h
		{136 * time.Minute, "Y", 7},                // a new id: at once
		{137 * time.Minute, "Y", 7},                // Y failed at 136m
		{141 * time.Minute, "Y", 8},                // 136m + 5m
		{150*time.Minute + 59*time.Second, "Y", 8}, // 141m + 10m - 1s
	}
	for _, s := range steps {
		env.clock.Set(t0.Add(s.at))
		env.setID(s.id)
		r := env.refresh(t, false)
		if got := env.fetches(); got != s.fetches {
			t.Fatalf("at +%v id %s: %d fetches, want %d", s.at, s.id, got, s.fetches)
		}
		wantResult(t, r, SourceNone, "", ErrPolicyFetch)
	}
	// Success resets the back-off.
	env.resp.set(200, policyBody(ModeEnforce, 604800))
	env.clock.Set(t0.Add(151 * time.Minute))
	wantResult(t, env.refresh(t, false), SourceFetched, ModeEnforce, nil)
	if en := env.entry(t); en.Failures != 0 || en.FailedID != "" || en.LastError != "" {
		t.Errorf("failure state not reset: %+v", en)
	}
}

// STS-CACHE-8: the rate limit is per domain.
func TestCache_STS_CACHE_8_PerDomain(t *testing.T) {
	t.Parallel()
	env := newCacheEnv(t)
	env.resp.set(500, "")
	env.dns.SetIP("mta-sts.other.example", loopback)
	env.dns.SetTXT("_mta-sts.other.example", "v=STSv1; id=1")
	if _, err := env.cache.Refresh(t.Context(), testDomain, false); err != nil {
		t.Fatal(err)
	}
	// other.example is a different host name: the certificate fails, but
	// a GET is attempted (TLS handshake) and recorded per domain.
	r, err := env.cache.Refresh(t.Context(), "other.example", false)
	if err != nil || !errors.Is(r.Err, ErrPolicyCertificate) {
		t.Fatalf("other.example: %+v, %v", r, err)
	}
	if en, _ := env.store.Get(t.Context(), "other.example"); en == nil || en.FailedID != "1" || en.Failures != 1 {
		t.Errorf("other.example entry %+v", en)
	}
	if en := env.entry(t); en.FailedID != "1" || en.Failures != 1 {
		t.Errorf("example.com entry %+v", en)
	}
}

func TestCache_Backoff(t *testing.T) {
	t.Parallel()
	c := &Cache{}
	want := []time.Duration{5 * time.Minute, 5 * time.Minute, 10 * time.Minute, 20 * time.Minute, 40 * time.Minute, time.Hour, time.Hour}
	for n, w := range want {
		if got := c.backoff(n); got != w {
			t.Errorf("backoff(%d) = %v, want %v", n, got, w)
		}
	}
	if got := c.backoff(1 << 30); got != time.Hour {
		t.Errorf("backoff(huge) = %v", got)
	}
	c = &Cache{RetryInterval: 2 * time.Hour, MaxRetryInterval: time.Hour}
	if got := c.backoff(3); got != 2*time.Hour {
		t.Errorf("backoff with max < retry = %v, want the retry interval", got)
	}
}

// STS-TXT-13, OPEN-1: SERVFAIL with no cache gives no policy and ErrDNS
// with a failure count, remembered for RetryInterval/NegativeTTL.
func TestCache_STS_TXT_13_NoCache(t *testing.T) {
	t.Parallel()
	env := newCacheEnv(t)
	env.dns.SetError("TXT _mta-sts."+testDomain, dnsresolve.ErrLookupFailed)
	r := env.get(t)
	wantResult(t, r, SourceNone, "", ErrDNS)
	if r.Failures != 1 || ResultType(r.Err) != "dns-error" {
		t.Errorf("result %+v", r)
	}
	env.clock.Add(time.Minute)
	r = env.get(t)
	wantResult(t, r, SourceNone, "", ErrDNS)
	if env.txtQueries() != 1 || r.Failures != 1 {
		t.Errorf("negative cache: %d TXT queries, failures %d", env.txtQueries(), r.Failures)
	}
	env.clock.Add(DefaultNegativeTTL)
	r = env.get(t)
	if env.txtQueries() != 2 || r.Failures != 2 {
		t.Errorf("after NegativeTTL: %d TXT queries, failures %d", env.txtQueries(), r.Failures)
	}
	env.dns.SetError("TXT _mta-sts."+testDomain, nil)
	env.clock.Add(DefaultNegativeTTL)
	wantResult(t, env.get(t), SourceFetched, ModeEnforce, nil)
}

// STS-FETCH-9: valid TXT, failed fetch, nothing cached: no policy.
func TestCache_STS_FETCH_9(t *testing.T) {
	t.Parallel()
	env := newCacheEnv(t)
	env.resp.set(404, "")
	r := env.get(t)
	wantResult(t, r, SourceNone, "", ErrPolicyFetch)
	if ResultType(r.Err) != ResultFetchError {
		t.Errorf("ResultType %q", ResultType(r.Err))
	}
}

// Negative caching of "no record": no DNS query within NegativeTTL, and a
// domain without MTA-STS is not counted as failing.
func TestCache_NegativeTTL(t *testing.T) {
	t.Parallel()
	env := newCacheEnv(t)
	env.dns.SetTXT("_mta-sts." + testDomain)
	for range 3 {
		wantResult(t, env.get(t), SourceNone, "", ErrNoRecord)
		env.clock.Add(DefaultNegativeTTL - time.Second)
		wantResult(t, env.get(t), SourceNone, "", ErrNoRecord)
		env.clock.Add(time.Second)
	}
	if n := env.txtQueries(); n != 3 {
		t.Errorf("%d TXT queries, want 3", n)
	}
	if en := env.entry(t); en.Failures != 0 || en.Policy != nil {
		t.Errorf("entry %+v", en)
	}
	env.dns.SetTXT("_mta-sts."+testDomain, "v=STSv1; id=1", "v=STSv1; id=2")
	wantResult(t, env.get(t), SourceNone, "", ErrMultipleRecords)
	env.clock.Add(time.Second)
	wantResult(t, env.get(t), SourceNone, "", ErrMultipleRecords) // remembered, same class
	if n := env.txtQueries(); n != 4 {
		t.Errorf("%d TXT queries, want 4", n)
	}
}

// STS-CACHE-9: a max_age 0 policy decides the lookup that fetched it, is
// not reused, and cannot cause a fetch per lookup.
func TestCache_STS_CACHE_9_MaxAgeZero(t *testing.T) {
	t.Parallel()
	env := newCacheEnv(t)
	env.resp.set(200, policyBody(ModeEnforce, 0))
	wantResult(t, env.get(t), SourceFetched, ModeEnforce, nil)
	for i := range 300 {
		env.clock.Set(t0.Add(time.Duration(i) * time.Second))
		wantResult(t, env.get(t), SourceNone, "", nil)
	}
	if n := env.txtQueries(); n != 1 {
		t.Fatalf("Get made %d TXT queries within RetryInterval, want 1", n)
	}
	for i := range 300 {
		env.clock.Set(t0.Add(time.Duration(i) * time.Second))
		wantResult(t, env.refresh(t, false), SourceNone, "", nil)
	}
	if n := env.fetches(); n != 1 {
		t.Fatalf("%d fetches within RetryInterval, want 1", n)
	}
	env.clock.Set(t0.Add(DefaultRetryInterval))
	wantResult(t, env.get(t), SourceFetched, ModeEnforce, nil)
	if n := env.fetches(); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
}

// OPEN-4: an unchanged id does not extend the policy's life; only a
// successful GET does. STS-FETCH-11: a policy older than RefreshInterval is
// fetched again whatever the id.
func TestCache_OPEN_4_STS_FETCH_11(t *testing.T) {
	t.Parallel()
	env := newCacheEnv(t)
	first := env.get(t)
	for i := 1; i <= 20; i++ {
		env.clock.Set(t0.Add(time.Duration(i) * time.Hour))
		r := env.get(t)
		wantResult(t, r, SourceCache, ModeEnforce, nil)
		if !r.Expires.Equal(first.Expires) || !r.FetchedAt.Equal(t0) {
			t.Fatalf("at +%dh expiry moved to %v", i, r.Expires)
		}
	}
	if env.fetches() != 1 {
		t.Fatalf("%d fetches before RefreshInterval", env.fetches())
	}
	en := env.entry(t)
	if !en.CheckedAt.Equal(t0.Add(20*time.Hour)) || !en.FetchedAt.Equal(t0) {
		t.Errorf("entry %+v", en)
	}
	env.clock.Set(t0.Add(DefaultRefreshInterval))
	r := env.get(t)
	wantResult(t, r, SourceFetched, ModeEnforce, nil)
	if env.fetches() != 2 || !r.FetchedAt.Equal(t0.Add(DefaultRefreshInterval)) {
		t.Fatalf("refresh: fetches %d, %+v", env.fetches(), r)
	}
}

// RefreshAhead: a short-lived policy is refreshed when a quarter of its
// life is left, not only after RefreshInterval.
func TestCache_RefreshAhead(t *testing.T) {
	t.Parallel()
	env := newCacheEnv(t)
	env.resp.set(200, policyBody(ModeEnforce, 3600))
	env.get(t)
	env.clock.Set(t0.Add(44 * time.Minute))
	wantResult(t, env.get(t), SourceCache, ModeEnforce, nil)
	env.clock.Set(t0.Add(45 * time.Minute))
	wantResult(t, env.get(t), SourceFetched, ModeEnforce, nil)
	if env.fetches() != 2 {
		t.Errorf("%d fetches", env.fetches())
	}
}

// STS-FETCH-6: caching headers do not matter; a refresh is a full GET whose
// result replaces the stored policy.
func TestCache_STS_FETCH_6_Replace(t *testing.T) {
	t.Parallel()
	env := newCacheEnv(t)
	env.resp.headers = map[string]string{"Cache-Control": "max-age=31536000", "ETag": `"abc"`, "Expires": "Thu, 01 Jan 2099 00:00:00 GMT"}
	env.get(t)
	env.resp.set(200, policyBody(ModeTesting, 604800))
	env.clock.Add(DefaultRefreshInterval)
	wantResult(t, env.get(t), SourceFetched, ModeTesting, nil)
	for _, r := range env.host.requests() {
		if r.Header.Get("If-None-Match") != "" || r.Header.Get("If-Modified-Since") != "" {
			t.Errorf("validators sent: %v", r.Header)
		}
	}
}

// Refresh with force re-fetches an unchanged id (the policy daemon's MX
// mismatch case), not more than once per ForceInterval.
func TestCache_RefreshForce(t *testing.T) {
	t.Parallel()
	env := newCacheEnv(t)
	env.get(t)
	env.resp.set(200, policyBody(ModeTesting, 604800))
	wantResult(t, env.refresh(t, true), SourceCache, ModeEnforce, nil) // within ForceInterval
	wantResult(t, env.refresh(t, false), SourceCache, ModeEnforce, nil)
	if env.fetches() != 1 {
		t.Fatalf("%d fetches", env.fetches())
	}
	env.clock.Add(DefaultForceInterval)
	wantResult(t, env.refresh(t, false), SourceCache, ModeEnforce, nil)
	wantResult(t, env.refresh(t, true), SourceFetched, ModeTesting, nil)
	if env.fetches() != 2 {
		t.Fatalf("%d fetches", env.fetches())
	}
}

// STS-APPLY-4: Refresh re-reads the TXT record even within CheckInterval,
// so a newer policy is found before a message bounces.
func TestCache_STS_APPLY_4_RecheckBeforeBounce(t *testing.T) {
	t.Parallel()
	env := newCacheEnv(t)
	env.get(t)
	env.setID("2")
	env.resp.set(200, policyBody(ModeTesting, 604800))
	env.clock.Add(time.Minute)
	wantResult(t, env.get(t), SourceCache, ModeEnforce, nil) // Get trusts the recent check
	q := env.txtQueries()
	r := env.refresh(t, false)
	wantResult(t, r, SourceFetched, ModeTesting, nil)
	if env.txtQueries() != q+1 || r.ID != "2" {
		t.Errorf("Refresh: %d TXT queries, id %q", env.txtQueries()-q, r.ID)
	}
}

// Coalescing: 100 concurrent Gets of one domain make one discovery.
func TestCache_Coalescing100(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	resp := &hostResponse{status: 200, body: policyBody(ModeEnforce, 604800)}
	env := newNetEnv(t, func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(started) })
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		resp.serve(w, r)
	})
	clock := &fakeClock{t: t0}
	c := &Cache{Client: env.client, Now: clock.Now}
	const n = 100
	results := make(chan Result, n)
	for range n {
		go func() {
			r, err := c.Get(t.Context(), testDomain)
			if err != nil {
				r.Err = err
			}
			results <- r
		}()
	}
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("no fetch started")
	}
	close(release)
	fetched := 0
	for range n {
		r := <-results
		if r.Policy == nil || r.Policy.Mode != ModeEnforce || (r.Source != SourceFetched && r.Source != SourceCache) {
			t.Errorf("result %+v", r)
		}
		if r.Source == SourceFetched {
			fetched++
		}
	}
	if got := len(env.host.requests()); got != 1 {
		t.Errorf("%d fetches, want 1", got)
	}
	if got := len(env.dns.Queries()); got != 2 { // one TXT, one IP
		t.Errorf("DNS queries %q, want 2", env.dns.Queries())
	}
	if fetched == 0 {
		t.Error("no result reports the fetch")
	}
}

// STS-CACHE-7: a caller whose context ends stops waiting; the shared
// discovery goes on in the background and its outcome is cached for the
// next caller.
func TestCache_STS_CACHE_7_CallerContext(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	resp := &hostResponse{status: 200, body: policyBody(ModeEnforce, 604800)}
	env := newNetEnv(t, func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(started) })
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		resp.serve(w, r)
	})
	clock := &fakeClock{t: t0}
	store := &putSignalStore{put: make(chan string, 16)}
	c := &Cache{Client: env.client, Now: clock.Now, Store: store}
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Get(ctx, testDomain)
		errc <- err
	}()
	<-started
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want Canceled", err)
	}
	close(release)
	// The detached discovery stores the policy.
	timeout := time.After(30 * time.Second)
	for stored := false; !stored; {
		select {
		case <-store.put:
			e, err := store.Get(t.Context(), testDomain)
			stored = err == nil && e != nil && e.Policy != nil
		case <-timeout:
			t.Fatal("the detached discovery stored no policy")
		}
	}
	r, err := c.Get(t.Context(), testDomain)
	if err != nil || r.Source != SourceCache || r.Policy == nil {
		t.Fatalf("after: %+v, %v", r, err)
	}
}

type countingObserver struct {
	mu       sync.Mutex
	answered map[Source]int
	fetched  atomic.Int32
	failed   atomic.Int32
}

func (o *countingObserver) Answered(domain string, src Source, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.answered == nil {
		o.answered = map[Source]int{}
	}
	o.answered[src]++
}

func (o *countingObserver) Fetched(domain string, elapsed time.Duration, err error) {
	if err != nil {
		o.failed.Add(1)
	}
	o.fetched.Add(1)
}

func TestCache_Observer(t *testing.T) {
	t.Parallel()
	env := newCacheEnv(t)
	obs := &countingObserver{}
	env.cache.Observer = obs
	env.get(t)
	env.get(t)
	env.setID("2")
	env.resp.set(500, "")
	env.refresh(t, false)
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if obs.answered[SourceFetched] != 1 || obs.answered[SourceCache] != 1 || obs.answered[SourceStale] != 1 {
		t.Errorf("answered %v", obs.answered)
	}
	if obs.fetched.Load() != 2 || obs.failed.Load() != 1 {
		t.Errorf("fetched %d failed %d", obs.fetched.Load(), obs.failed.Load())
	}
}

// STS-CACHE-10: the cache lives in the Store; a new Cache over the same
// store (a restart) applies the cached policy without network.
func TestCache_STS_CACHE_10_Restart(t *testing.T) {
	t.Parallel()
	env := newCacheEnv(t)
	env.get(t)
	restarted := &Cache{Client: env.client, Store: env.store, Now: env.clock.Now}
	env.clock.Add(time.Minute)
	r, err := restarted.Get(t.Context(), testDomain)
	if err != nil {
		t.Fatal(err)
	}
	wantResult(t, r, SourceCache, ModeEnforce, nil)
	if env.fetches() != 1 || env.txtQueries() != 1 {
		t.Errorf("fetches %d, TXT %d", env.fetches(), env.txtQueries())
	}
}

// RefreshDue refreshes due entries, soonest first, up to limit, and skips
// entries in back-off and negative entries.
func TestCache_RefreshDue(t *testing.T) {
	t.Parallel()
	env := newCacheEnv(t)
	env.dns.SetTXT("_mta-sts.none.example.com")
	env.get(t)
	if _, err := env.cache.Get(t.Context(), "none.example.com"); err != nil {
		t.Fatal(err)
	}
	n, err := env.cache.RefreshDue(t.Context(), env.clock.Now(), 10)
	if err != nil || n != 0 {
		t.Fatalf("RefreshDue right after fetch = %d, %v", n, err)
	}
	env.clock.Set(t0.Add(DefaultRefreshInterval))
	if n, err := env.cache.RefreshDue(t.Context(), env.clock.Now(), 0); err != nil || n != 0 {
		t.Fatalf("RefreshDue limit 0 = %d, %v", n, err)
	}
	n, err = env.cache.RefreshDue(t.Context(), env.clock.Now(), 10)
	if err != nil || n != 1 || env.fetches() != 2 {
		t.Fatalf("RefreshDue = %d, %v; fetches %d", n, err, env.fetches())
	}
	if en := env.entry(t); !en.FetchedAt.Equal(t0.Add(DefaultRefreshInterval)) || !en.LastUsed.Equal(t0) {
		t.Errorf("entry after RefreshDue %+v", en)
	}
	// A failing refresh waits for the back-off.
	env.resp.set(500, "")
	env.clock.Set(t0.Add(2 * DefaultRefreshInterval))
	if n, _ := env.cache.RefreshDue(t.Context(), env.clock.Now(), 10); n != 1 {
		t.Fatalf("RefreshDue = %d, want 1", n)
	}
	env.clock.Add(DefaultRetryInterval - time.Second)
	if n, _ := env.cache.RefreshDue(t.Context(), env.clock.Now(), 10); n != 0 {
		t.Fatalf("RefreshDue within back-off = %d, want 0", n)
	}
	env.clock.Add(time.Second)
	if n, _ := env.cache.RefreshDue(t.Context(), env.clock.Now(), 10); n != 1 {
		t.Fatalf("RefreshDue after back-off = %d, want 1", n)
	}
	if env.fetches() != 4 {
		t.Errorf("%d fetches, want 4", env.fetches())
	}
	// The domain drops MTA-STS; once the policy expired it is no longer
	// polled.
	env.dns.SetTXT("_mta-sts." + testDomain)
	q := env.txtQueries()
	for i := range 20 {
		env.clock.Set(t0.Add(9*24*time.Hour + time.Duration(i)*time.Hour))
		if _, err := env.cache.RefreshDue(t.Context(), env.clock.Now(), 10); err != nil {
			t.Fatal(err)
		}
	}
	if n := env.txtQueries() - q; n != 0 {
		t.Errorf("%d TXT queries for an expired entry", n)
	}
}

// putSignalStore is a MemoryStore that sends the domain of each Put, once
// stored, on put (dropped when put is full).
type putSignalStore struct {
	MemoryStore
	put chan string
}

func (s *putSignalStore) Put(ctx context.Context, e *Entry) error {
	err := s.MemoryStore.Put(ctx, e)
	select {
	case s.put <- e.Domain:
	default:
	}
	return err
}

// The Store's failures are errors of Get: the caller defers.
type failingStore struct{ MemoryStore }

var errStoreDown = errors.New("store down")

func (s *failingStore) Get(context.Context, string) (*Entry, error) { return nil, errStoreDown }

func TestCache_StoreFailure(t *testing.T) {
	t.Parallel()
	env := newCacheEnv(t)
	c := &Cache{Client: env.client, Store: &failingStore{}, Now: env.clock.Now}
	r, err := c.Get(t.Context(), testDomain)
	if !errors.Is(err, errStoreDown) || r.Policy != nil {
		t.Fatalf("Get = %+v, %v", r, err)
	}
	if _, err := c.Get(t.Context(), "a..b"); !errors.Is(err, ErrInvalidDomain) {
		t.Fatalf("invalid domain err = %v", err)
	}
	if _, err := c.Refresh(t.Context(), "", true); !errors.Is(err, ErrInvalidDomain) {
		t.Fatalf("invalid domain err = %v", err)
	}
}

// The zero Cache works (with a MemoryStore and the given Client's defaults).
func TestCache_ZeroValueDefaults(t *testing.T) {
	t.Parallel()
	env := newCacheEnv(t)
	c := &Cache{Client: env.client}
	r, err := c.Get(t.Context(), "EXAMPLE.com.")
	if err != nil || r.Source != SourceFetched || r.Domain != testDomain {
		t.Fatalf("Get = %+v, %v", r, err)
	}
	r, err = c.Get(t.Context(), testDomain)
	if err != nil || r.Source != SourceCache {
		t.Fatalf("second Get = %+v, %v", r, err)
	}
}

// Remembered errors keep their class (ResultType) across the store.
func TestStoredError(t *testing.T) {
	t.Parallel()
	for _, err := range []error{
		fmt.Errorf("%w: x", ErrPolicyCertificate),
		fmt.Errorf("%w: x", ErrPolicyFetch),
		&SyntaxError{Line: 2, Msg: "bad"},
		fmt.Errorf("%w: SERVFAIL", ErrDNS),
		ErrNoRecord,
		fmt.Errorf("_mta-sts.x: %w: 2 records", ErrMultipleRecords),
		fmt.Errorf("%w: missing id", ErrRecordSyntax),
	} {
		s := clip(string(ResultType(err)) + ": " + err.Error())
		got := storedError(s)
		if ResultType(got) != ResultType(err) {
			t.Errorf("%v: ResultType %q, want %q", err, ResultType(got), ResultType(err))
		}
		for _, sentinel := range []error{ErrNoRecord, ErrMultipleRecords, ErrRecordSyntax, ErrDNS, ErrPolicyFetch, ErrPolicyCertificate, ErrPolicySyntax} {
			if errors.Is(err, sentinel) != errors.Is(got, sentinel) {
				t.Errorf("%v: errors.Is(%v) differs after the round trip (%v)", err, sentinel, got)
			}
		}
	}
	if storedError("") != nil {
		t.Error("storedError(\"\") != nil")
	}
}

// FuzzStoredError: any stored string comes back without panic, as an error
// whose message contains it; errors written by the cache keep their class.
func FuzzStoredError(f *testing.F) {
	for _, s := range []string{"", "dns-error: mtasts: DNS lookup failed: x", "no-policy: mtasts: multiple MTA-STS TXT records",
		"sts-webpki-invalid: x", "sts-policy-invalid: y", "sts-policy-fetch-error: z", "validation-failure: q", "garbage"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := storedError(s)
		if s == "" {
			if err != nil {
				t.Fatal("non-nil for empty")
			}
			return
		}
		_, msg, _ := strings.Cut(s, ": ")
		if !strings.Contains(err.Error(), msg) {
			t.Errorf("message %q lost in %q", msg, err)
		}
		// Round trip: writing the rebuilt error again gives the same class.
		again := storedError(clip(string(ResultType(err)) + ": " + err.Error()))
		if ResultType(again) != ResultType(err) {
			t.Errorf("class changed: %q -> %q", ResultType(err), ResultType(again))
		}
	})
}

func TestSourceString(t *testing.T) {
	t.Parallel()
	for s, want := range map[Source]string{SourceNone: "none", SourceCache: "cache", SourceFetched: "fetched", SourceStale: "stale", 9: "Source(9)"} {
		if s.String() != want {
			t.Errorf("%d.String() = %q", s, s.String())
		}
	}
}

// levelRecorder is a slog.Handler that keeps the level of each record.
type levelRecorder struct {
	mu     sync.Mutex
	levels []slog.Level
	msgs   []string // every message, as "LEVEL message"
}

func (h *levelRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *levelRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs = append(h.msgs, r.Level.String()+" "+r.Message)
	if r.Message == "mta-sts policy discovery failed" {
		h.levels = append(h.levels, r.Level)
	}
	return nil
}
func (h *levelRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *levelRecorder) WithGroup(string) slog.Handler      { return h }

func (h *levelRecorder) last() slog.Level {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.levels) == 0 {
		return slog.LevelDebug - 1
	}
	return h.levels[len(h.levels)-1]
}

// STS-FETCH-12: refresh failures are logged as warnings, as errors when the
// cached policy expires within a day, and quietly for mode none.
func TestCache_STS_FETCH_12_Alerts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mode  Mode
		after time.Duration
		want  slog.Level
	}{
		{ModeEnforce, 3 * 24 * time.Hour, slog.LevelWarn},
		{ModeTesting, 3 * 24 * time.Hour, slog.LevelWarn},
		{ModeEnforce, 6*24*time.Hour + time.Hour, slog.LevelError},
		{ModeNone, 6*24*time.Hour + time.Hour, slog.LevelDebug},
	} {
		t.Run(fmt.Sprint(tc.mode, tc.after), func(t *testing.T) {
			t.Parallel()
			env := newCacheEnv(t)
			rec := &levelRecorder{}
			env.cache.Logger = slog.New(rec)
			env.resp.set(200, policyBody(tc.mode, 604800))
			env.get(t)
			env.resp.set(503, "")
			env.clock.Add(tc.after)
			wantResult(t, env.get(t), SourceStale, tc.mode, ErrPolicyFetch)
			if got := rec.last(); got != tc.want {
				t.Errorf("level %v, want %v", got, tc.want)
			}
		})
	}
}

// A streak of TXT-level failures ends with a successful check; Failures
// counts consecutive failures only.
func TestCache_FailuresReset(t *testing.T) {
	t.Parallel()
	env := newCacheEnv(t)
	env.get(t)
	env.dns.SetError("TXT _mta-sts."+testDomain, dnsresolve.ErrLookupFailed)
	for i := 1; i <= 3; i++ {
		r := env.refresh(t, false)
		if r.Failures != i || r.Source != SourceStale {
			t.Fatalf("failure %d: %+v", i, r)
		}
	}
	env.dns.SetError("TXT _mta-sts."+testDomain, nil)
	wantResult(t, env.refresh(t, false), SourceCache, ModeEnforce, nil)
	if en := env.entry(t); en.Failures != 0 || en.LastError != "" {
		t.Errorf("entry %+v", en)
	}
}

func BenchmarkCacheGetHit(b *testing.B) {
	store := NewMemoryStore()
	p := &Policy{Mode: ModeEnforce, MX: []string{"mail.example.com"}, MaxAge: 604800}
	now := time.Now()
	for i := range 1000 {
		_ = store.Put(b.Context(), &Entry{Domain: fmt.Sprintf("d%d.example.com", i), Policy: p, ID: "1", FetchedAt: now, CheckedAt: now})
	}
	c := &Cache{Store: store, Now: func() time.Time { return now }}
	domains := make([]string, 1000)
	for i := range domains {
		domains[i] = fmt.Sprintf("d%d.example.com", i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			r, err := c.Get(b.Context(), domains[i%len(domains)])
			if err != nil || r.Source != SourceCache {
				b.Fatalf("%+v %v", r, err)
			}
			i++
		}
	})
}

// STS-FETCH-7: fetch of id X fails at t0; the TXT id changes to Y at
// t0+1m: a GET is allowed at once.
func TestCache_STS_FETCH_7_NewIDAtOnce(t *testing.T) {
	t.Parallel()
	env := newCacheEnv(t)
	env.setID("X")
	env.resp.set(500, "")
	wantResult(t, env.get(t), SourceNone, "", ErrPolicyFetch)
	env.clock.Add(time.Minute)
	env.setID("Y")
	env.resp.set(200, policyBody(ModeEnforce, 604800))
	r := env.refresh(t, false)
	wantResult(t, r, SourceFetched, ModeEnforce, nil)
	if r.ID != "Y" || env.fetches() != 2 {
		t.Errorf("id %q, fetches %d", r.ID, env.fetches())
	}
}

// A Store that cannot write does not stop the answer; the error is logged.
type readOnlyStore struct{ MemoryStore }

func (s *readOnlyStore) Put(context.Context, *Entry) error { return errStoreDown }

func TestCache_StorePutFailure(t *testing.T) {
	t.Parallel()
	env := newCacheEnv(t)
	rec := &levelRecorder{}
	c := &Cache{Client: env.client, Store: &readOnlyStore{}, Now: env.clock.Now, Logger: slog.New(rec)}
	r, err := c.Get(t.Context(), testDomain)
	if err != nil {
		t.Fatal(err)
	}
	wantResult(t, r, SourceFetched, ModeEnforce, nil)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if !slices.Contains(rec.msgs, "ERROR mta-sts cache store failed") {
		t.Errorf("store failure not logged: %q", rec.msgs)
	}
}

// Entry.LastError is capped and stays valid UTF-8 whatever the error says.
func TestClip(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", lastErrorMax) // 2 bytes each
	got := clip(long)
	if len(got) > lastErrorMax+len("…") || !utf8.ValidString(got) || !strings.HasSuffix(got, "…") {
		t.Errorf("clip: %d bytes, valid %v", len(got), utf8.ValidString(got))
	}
	if clip("short") != "short" {
		t.Error("clip changed a short string")
	}
}

func TestResultLogValue(t *testing.T) {
	t.Parallel()
	r := Result{Domain: testDomain, Policy: &Policy{Mode: ModeEnforce, MX: []string{"mx.example.com"}, MaxAge: 60}, ID: "1",
		Source: SourceStale, Err: ErrPolicyFetch}
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("x", "result", r)
	for _, want := range []string{"result.domain=example.com", "result.source=stale", "result.id=1", "result.policy.mode=enforce", "result.error="} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("log %q lacks %q", b.String(), want)
		}
	}
}

// Result.Until and Cache.Generation let a caller memoise answers: Until is
// exactly the first instant at which Get goes back to the network, and the
// generation moves on every write of the domain's entry.
func TestCache_UntilAndGeneration(t *testing.T) {
	t.Parallel()
	env := newCacheEnv(t)
	g0 := env.cache.Generation(testDomain)
	r := env.get(t)
	if !r.Until.IsZero() {
		t.Errorf("fetched answer has Until %v", r.Until)
	}
	g1 := env.cache.Generation(testDomain)
	if g1 == g0 {
		t.Error("generation unchanged by the fetch")
	}
	r = env.get(t)
	wantResult(t, r, SourceCache, ModeEnforce, nil)
	if want := t0.Add(DefaultCheckInterval); !r.Until.Equal(want) {
		t.Errorf("Until %v, want the next TXT check %v", r.Until, want)
	}
	// Just before Until: still from the store, no network; at Until: TXT.
	env.clock.Set(r.Until.Add(-time.Nanosecond))
	wantResult(t, env.get(t), SourceCache, ModeEnforce, nil)
	txt := env.txtQueries()
	env.clock.Set(r.Until)
	env.get(t)
	if env.txtQueries() != txt+1 {
		t.Errorf("no TXT lookup at Until")
	}
	if env.cache.Generation(testDomain) == g1 {
		t.Error("generation unchanged by the TXT check's write")
	}
	// A forced refresh writes too.
	g2 := env.cache.Generation(testDomain)
	env.clock.Add(DefaultForceInterval)
	env.refresh(t, true)
	if env.cache.Generation(testDomain) == g2 {
		t.Error("generation unchanged by a forced refresh")
	}

	// A policy expiring before the next check: Until is the expiry.
	short := newCacheEnv(t)
	short.resp.set(200, policyBody(ModeEnforce, 60))
	short.get(t)
	if r := short.get(t); !r.Until.Equal(t0.Add(60*time.Second)) && !r.Until.Before(t0.Add(60*time.Second)) {
		t.Errorf("Until %v after the expiry %v", r.Until, t0.Add(60*time.Second))
	}

	// Negative caching: Until is the end of it.
	neg := newCacheEnv(t)
	neg.dns.SetTXT("_mta-sts." + testDomain)
	neg.get(t)
	if r := neg.get(t); r.Source != SourceNone || !r.Until.Equal(t0.Add(DefaultNegativeTTL)) {
		t.Errorf("negative answer: source %v, Until %v, want %v", r.Source, r.Until, t0.Add(DefaultNegativeTTL))
	}
}

// The discovery's logger names the domain on every line it writes, at
// the top level even under a group, like Logger.With.
func TestWithDomainLogger(t *testing.T) {
	t.Parallel()
	var buf strings.Builder
	base := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	l := withDomain(base, "example.com")
	l.Debug("hidden")
	l.Info("one", "k", 1)
	l.With("a", "b").Info("two")
	l.WithGroup("g").Info("three", "k", 3)
	out := buf.String()
	for _, want := range []string{"msg=one k=1 domain=example.com", "msg=two a=b domain=example.com", "msg=three domain=example.com g.k=3"} {
		if !strings.Contains(out, want) {
			t.Errorf("log %q lacks %q", out, want)
		}
	}
	if strings.Contains(out, "hidden") {
		t.Errorf("a disabled level was logged: %q", out)
	}
}
