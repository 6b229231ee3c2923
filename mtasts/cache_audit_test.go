package mtasts

import (
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
)

// txtFailures are the ways the _mta-sts lookup can fail, each with the
// sentinel it gives (STS-TXT-7, STS-TXT-8, STS-TXT-11, STS-TXT-13).
func txtFailures() []struct {
	name  string
	apply func(env *cacheEnv)
	errIs error
} {
	return []struct {
		name  string
		apply func(env *cacheEnv)
		errIs error
	}{
		{"NXDOMAIN", func(env *cacheEnv) { env.dns.SetTXT("_mta-sts." + testDomain) }, ErrNoRecord},
		{"SERVFAIL", func(env *cacheEnv) {
			env.dns.SetError("TXT _mta-sts."+testDomain, dnsresolve.ErrLookupFailed)
		}, ErrDNS},
		{"two records", func(env *cacheEnv) {
			env.dns.SetTXT("_mta-sts."+testDomain, "v=STSv1; id=1", "v=STSv1; id=2")
		}, ErrMultipleRecords},
		{"invalid record", func(env *cacheEnv) { env.dns.SetTXT("_mta-sts."+testDomain, "v=STSv1; id=") }, ErrRecordSyntax},
	}
}

// STS-FETCH-11, RFC 8461 §10.2: a cached policy is refreshed "regardless of
// the state of the TXT record". While the TXT lookup fails, the policy is
// not fetched before it is due; once due it is fetched anyway and replaces
// the cached one under the cached id; an attacker who suppresses the TXT
// record for longer than max_age does not make the policy expire.
func TestCache_STS_FETCH_11_RegardlessOfTXT(t *testing.T) {
	t.Parallel()
	for _, tf := range txtFailures() {
		t.Run(tf.name, func(t *testing.T) {
			t.Parallel()
			env := newCacheEnv(t)
			wantResult(t, env.get(t), SourceFetched, ModeEnforce, nil)
			tf.apply(env)
			env.resp.set(200, policyBody(ModeTesting, 604800))

			// Not due yet: the TXT failure alone causes no GET.
			env.clock.Set(t0.Add(12 * time.Hour))
			wantResult(t, env.get(t), SourceStale, ModeEnforce, tf.errIs)
			if n := env.fetches(); n != 1 {
				t.Fatalf("%d fetches before the refresh is due, want 1", n)
			}

			// Due: fetched regardless of the TXT record.
			due := t0.Add(DefaultRefreshInterval)
			env.clock.Set(due)
			r := env.get(t)
			wantResult(t, r, SourceFetched, ModeTesting, tf.errIs)
			if n := env.fetches(); n != 2 {
				t.Fatalf("%d fetches once due, want 2", n)
			}
			if r.ID != "1" || !r.FetchedAt.Equal(due) || !r.Expires.Equal(due.Add(7*24*time.Hour)) || r.Failures == 0 {
				t.Errorf("result %+v", r)
			}
			en := env.entry(t)
			if en.ID != "1" || !en.FetchedAt.Equal(due) || en.Policy.Mode != ModeTesting || en.LastError == "" || en.FailedID != "" {
				t.Errorf("entry %+v", en)
			}

			// The TXT failure is remembered, and the next lookups look at
			// the TXT record again, without another GET.
			env.clock.Add(time.Minute)
			wantResult(t, env.get(t), SourceStale, ModeTesting, tf.errIs)
			env.clock.Add(DefaultRetryInterval)
			wantResult(t, env.get(t), SourceStale, ModeTesting, tf.errIs)
			if n := env.fetches(); n != 2 {
				t.Fatalf("%d fetches after the refresh, want 2", n)
			}

			// The TXT record stays broken for 30 days, four times the
			// max_age: the policy never expires, with about one GET a day.
			for h := 30; h <= 30*24; h += 6 {
				env.clock.Set(t0.Add(time.Duration(h) * time.Hour))
				r := env.get(t)
				if r.Policy == nil || r.Policy.Mode != ModeTesting || !errors.Is(r.Err, tf.errIs) {
					t.Fatalf("at +%dh: %+v", h, r)
				}
			}
			if n := env.fetches(); n < 25 || n > 35 {
				t.Errorf("%d fetches in 30 days, want about one a day", n)
			}

			// The TXT record comes back with the cached id: no new GET
			// is needed, and the failure state ends.
			env.setID("1")
			env.dns.SetError("TXT _mta-sts."+testDomain, nil)
			before := env.fetches()
			env.clock.Add(DefaultRetryInterval)
			wantResult(t, env.refresh(t, false), SourceCache, ModeTesting, nil)
			if env.fetches() != before {
				t.Errorf("a GET for the unchanged id")
			}
		})
	}
}

// STS-FETCH-11, STS-FETCH-7, STS-CACHE-5: the TXT record is gone and the
// refresh over HTTPS fails too: the cached policy applies until it expires,
// GETs wait for the back-off of the cached id, and once the policy has
// expired a failing TXT lookup ends discovery without any GET (STS-TXT-7).
func TestCache_STS_FETCH_11_RegardlessOfTXT_FetchFails(t *testing.T) {
	t.Parallel()
	env := newCacheEnv(t)
	wantResult(t, env.get(t), SourceFetched, ModeEnforce, nil)
	env.dns.SetTXT("_mta-sts." + testDomain)
	env.resp.set(500, "")

	due := t0.Add(DefaultRefreshInterval)
	env.clock.Set(due)
	r := env.get(t)
	// One sentinel: the fetch's (the refresh failed); the TXT failure is
	// in the message.
	wantResult(t, r, SourceStale, ModeEnforce, ErrPolicyFetch)
	if errors.Is(r.Err, ErrNoRecord) || ResultType(r.Err) != ResultFetchError {
		t.Errorf("Err = %v (%s)", r.Err, ResultType(r.Err))
	}
	if n := env.fetches(); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
	if en := env.entry(t); en.FailedID != "1" || en.Failures != 1 || !en.FetchedAt.Equal(t0) {
		t.Errorf("entry %+v", en)
	}
	// Within RetryInterval: no GET, however often asked.
	for i := range 10 {
		env.clock.Set(due.Add(time.Duration(i) * 29 * time.Second))
		for _, r := range []Result{env.get(t), env.refresh(t, false)} {
			if r.Source != SourceStale || r.Policy == nil || r.Policy.Mode != ModeEnforce || r.Err == nil {
				t.Fatalf("at +%v: %+v", time.Duration(i)*29*time.Second, r)
			}
		}
	}
	if n := env.fetches(); n != 2 {
		t.Fatalf("%d fetches within the back-off, want 2", n)
	}
	env.clock.Set(due.Add(DefaultRetryInterval))
	wantResult(t, env.refresh(t, false), SourceStale, ModeEnforce, ErrPolicyFetch)
	if n := env.fetches(); n != 3 {
		t.Fatalf("%d fetches after the back-off, want 3", n)
	}
	// Expired: no policy, and a TXT failure with nothing valid cached
	// does not lead to a GET.
	env.clock.Set(t0.Add(7 * 24 * time.Hour))
	before := env.fetches()
	for i := range 5 {
		env.clock.Add(time.Duration(i+1) * time.Hour)
		wantResult(t, env.refresh(t, false), SourceNone, "", ErrNoRecord)
	}
	if n := env.fetches() - before; n != 0 {
		t.Errorf("%d fetches without a TXT record and without a valid policy", n)
	}
}

// STS-POL-3, STS-FETCH-9: an invalid policy with nothing cached is not
// cached, counts as a failed fetch of that id (rate-limited, STS-FETCH-7),
// and gives no policy; once the body is fixed it is fetched.
func TestCache_STS_POL_3_InvalidNotCached(t *testing.T) {
	t.Parallel()
	env := newCacheEnv(t)
	env.resp.set(200, "version: STSv1\nmode: enforce\nmax_age: 86400\n") // no mx
	r := env.get(t)
	wantResult(t, r, SourceNone, "", ErrPolicySyntax)
	if ResultType(r.Err) != ResultPolicyInvalid {
		t.Errorf("ResultType = %q", ResultType(r.Err))
	}
	en := env.entry(t)
	if en.Policy != nil || en.FailedID != "1" || en.Failures != 1 {
		t.Errorf("entry %+v", en)
	}
	env.clock.Add(time.Minute)
	wantResult(t, env.get(t), SourceNone, "", ErrPolicySyntax)
	wantResult(t, env.refresh(t, false), SourceNone, "", ErrPolicySyntax)
	if n := env.fetches(); n != 1 {
		t.Fatalf("%d fetches within RetryInterval, want 1", n)
	}
	env.resp.set(200, policyBody(ModeEnforce, 86400))
	env.clock.Set(t0.Add(DefaultRetryInterval))
	wantResult(t, env.refresh(t, false), SourceFetched, ModeEnforce, nil)
	if n := env.fetches(); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
}

// STS-SEL-3: RFC 8461 §3.4: no fallback to a parent domain. A policy at
// example.com says nothing about mail.example.com, which is looked up (and
// only it).
func TestCache_STS_SEL_3_NoParentFallback(t *testing.T) {
	t.Parallel()
	env := newCacheEnv(t) // example.com has a policy
	env.dns.SetIP("mta-sts.mail."+testDomain, loopback)
	r, err := env.cache.Get(t.Context(), "mail."+testDomain)
	if err != nil {
		t.Fatal(err)
	}
	wantResult(t, r, SourceNone, "", ErrNoRecord)
	// The policy host's addresses are looked up together with the TXT
	// record of a never-seen domain; nothing about example.com is asked.
	q := env.dns.Queries()
	if !slices.Contains(q, "TXT _mta-sts.mail."+testDomain) {
		t.Errorf("queries %q, want the TXT record of mail.example.com", q)
	}
	for _, x := range q {
		if x != "TXT _mta-sts.mail."+testDomain && x != "IP mta-sts.mail."+testDomain {
			t.Errorf("queries %q, want only names of mail.example.com", q)
		}
	}
	if n := env.fetches(); n != 0 {
		t.Errorf("%d fetches", n)
	}
	// And the other way round: a cached policy of example.com does not
	// apply to mail.example.com.
	wantResult(t, env.get(t), SourceFetched, ModeEnforce, nil)
	env.clock.Add(DefaultNegativeTTL)
	r, err = env.cache.Get(t.Context(), "mail."+testDomain)
	if err != nil {
		t.Fatal(err)
	}
	wantResult(t, r, SourceNone, "", ErrNoRecord)
}

// STS-SEL-4: RFC 8461 §3.4: address literals have no MTA-STS policy. They
// are rejected as invalid domains before any DNS query or fetch.
func TestCache_STS_SEL_4_AddressLiterals(t *testing.T) {
	t.Parallel()
	env := newCacheEnv(t)
	for _, d := range []string{"[192.0.2.1]", "192.0.2.1", "192.0.2.1.", "[IPv6:2001:db8::1]", "2001:db8::1", "::1", "::ffff:192.0.2.1"} {
		if _, err := env.cache.Get(t.Context(), d); !errors.Is(err, ErrInvalidDomain) {
			t.Errorf("Cache.Get(%q) err = %v, want ErrInvalidDomain", d, err)
		}
		if _, _, err := env.client.LookupRecord(t.Context(), d); !errors.Is(err, ErrInvalidDomain) {
			t.Errorf("LookupRecord(%q) err = %v, want ErrInvalidDomain", d, err)
		}
		if _, err := env.client.Fetch(t.Context(), d); !errors.Is(err, ErrInvalidDomain) {
			t.Errorf("Fetch(%q) err = %v, want ErrInvalidDomain", d, err)
		}
	}
	if q := env.dns.Queries(); len(q) != 0 {
		t.Errorf("queries for address literals: %q", q)
	}
	if n := env.fetches(); n != 0 {
		t.Errorf("%d fetches for address literals", n)
	}
	// Names that only look numeric in part are domains.
	for _, d := range []string{"192.0.2.1.example", "1.2.3", "123.example"} {
		if _, err := normalizeDomain(d); err != nil {
			t.Errorf("normalizeDomain(%q) = %v", d, err)
		}
	}
}

// STS-POL-3, STS-APPLY-3, STS-CACHE-6 at the HTTP level: a policy host that
// answers mode none with no mx gives a valid none policy.
func TestCache_STS_APPLY_3_ModeNoneIsPolicy(t *testing.T) {
	t.Parallel()
	env := newCacheEnv(t)
	env.resp.set(http.StatusOK, "version: STSv1\nmode: none\nmax_age: 86400\n")
	r := env.get(t)
	wantResult(t, r, SourceFetched, ModeNone, nil)
	if len(r.Policy.MX) != 0 {
		t.Errorf("mx %q", r.Policy.MX)
	}
	if _, ok := r.Policy.Match("mail.example.com"); ok {
		t.Error("a none policy without mx matched a host")
	}
}
