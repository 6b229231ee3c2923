package mtasts

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
)

// acceptCounter is a TCP listener on loopback that counts connections and
// closes them: a policy host that must never be reached.
type acceptCounter struct {
	ln    net.Listener
	count atomic.Int64
}

func newAcceptCounter(t *testing.T) *acceptCounter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &acceptCounter{ln: ln}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			a.count.Add(1)
			_ = c.Close()
		}
	}()
	return a
}

func (a *acceptCounter) port() int { return a.ln.Addr().(*net.TCPAddr).Port }

func countQueries(f *dnsresolve.Fake, q string) int {
	n := 0
	for _, x := range f.Queries() {
		if x == q {
			n++
		}
	}
	return n
}

// STS-TXT-7, STS-TXT-8, RFC 8461 §3.3: the policy host's address lookup
// starts together with the TXT query of a never-seen domain, but without a
// usable TXT record nothing is fetched: no TCP connection reaches the
// policy host, although its address was looked up and is reachable.
func TestCache_LookAhead_NoRecordNoFetch(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		txt  []string // nil: no TXT record at all
	}{
		{"no record", nil},
		{"not an STS record", []string{"v=spf1 -all"}},
		{"two STS records", []string{"v=STSv1; id=1", "v=STSv1; id=2"}},
		{"invalid record", []string{"v=STSv1; id="}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			host := newAcceptCounter(t)
			fake := &dnsresolve.Fake{}
			fake.SetIP("mta-sts."+testDomain, loopback)
			if tc.txt != nil {
				fake.SetTXT("_mta-sts."+testDomain, tc.txt...)
			}
			// The TXT answer waits for the address lookup, so the address
			// lookup has certainly run (and finished) before the Cache
			// decides whether to fetch.
			dns := &gatedTXT{Fake: fake, ipDone: make(chan struct{})}
			c := &Cache{Client: &Client{DNS: dns, HTTPSPort: host.port(), Timeout: time.Hour}}
			r, err := c.Get(t.Context(), testDomain)
			if err != nil {
				t.Fatal(err)
			}
			if r.Policy != nil || r.Source != SourceNone {
				t.Fatalf("Get = %+v, want no policy", r)
			}
			if n := countQueries(fake, "IP mta-sts."+testDomain); n != 1 {
				t.Errorf("policy host address lookups = %d, want 1 (started with the TXT query); queries %v", n, fake.Queries())
			}
			// A connection attempt would have been made before Get
			// returned: Get waits for the fetch it starts.
			if n := host.count.Load(); n != 0 {
				t.Errorf("policy host saw %d TCP connections without a usable TXT record (RFC 8461 §3.3)", n)
			}
		})
	}
}

// gatedTXT answers a TXT lookup only after a LookupIP has returned (or
// when ctx ends, which the tests set to an hour away: a sequential lookup
// would hang there, and the test's own deadline would report it).
type gatedTXT struct {
	*dnsresolve.Fake
	ipDone chan struct{}
	closed atomic.Bool
}

func (g *gatedTXT) LookupIP(ctx context.Context, host string) ([]netip.Addr, dnsresolve.Answer, error) {
	a, ans, err := g.Fake.LookupIP(ctx, host)
	if g.closed.CompareAndSwap(false, true) {
		close(g.ipDone)
	}
	return a, ans, err
}

func (g *gatedTXT) LookupTXT(ctx context.Context, name string) ([]string, dnsresolve.Answer, error) {
	select {
	case <-g.ipDone:
	case <-ctx.Done():
		return nil, dnsresolve.Answer{}, ctx.Err()
	}
	return g.Fake.LookupTXT(ctx, name)
}

// A cold lookup of a domain with a policy sends the TXT and address
// queries together (the TXT answer here waits for the address lookup: run
// one after the other, the lookup would never finish) and the fetch uses
// the addresses found ahead: one address lookup, one GET.
func TestCache_LookAhead_ConcurrentWithTXT(t *testing.T) {
	t.Parallel()
	env := newCacheEnv(t)
	dns := &gatedTXT{Fake: env.dns, ipDone: make(chan struct{})}
	env.client.DNS = dns
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	r, err := env.cache.Get(ctx, testDomain)
	if err != nil {
		t.Fatal(err)
	}
	wantResult(t, r, SourceFetched, ModeEnforce, nil)
	if n := countQueries(env.dns, "IP mta-sts."+testDomain); n != 1 {
		t.Errorf("address lookups = %d, want 1 (the one made ahead); queries %v", n, env.dns.Queries())
	}
	if n := env.fetches(); n != 1 {
		t.Errorf("fetches = %d, want 1", n)
	}
}

// A failed address lookup ahead (SERVFAIL) is not final: the fetch looks
// the host up again, as it would have without the lookup ahead.
func TestCache_LookAhead_FailureRetried(t *testing.T) {
	t.Parallel()
	env := newCacheEnv(t)
	fail := &failFirstIP{Fake: env.dns}
	env.client.DNS = fail
	r := env.get(t)
	wantResult(t, r, SourceFetched, ModeEnforce, nil)
	if n := countQueries(env.dns, "IP mta-sts."+testDomain); n != 1 {
		t.Errorf("address lookups reaching the zone = %d, want 1 (after the failed one)", n)
	}
	if n := fail.calls.Load(); n != 2 {
		t.Errorf("address lookups = %d, want 2 (ahead, failed; at connect)", n)
	}
}

type failFirstIP struct {
	*dnsresolve.Fake
	calls atomic.Int64
}

func (f *failFirstIP) LookupIP(ctx context.Context, host string) ([]netip.Addr, dnsresolve.Answer, error) {
	if f.calls.Add(1) == 1 {
		return nil, dnsresolve.Answer{}, &dnsresolve.Error{Name: host, Qtype: "A", Rcode: 2,
			Err: fmt.Errorf("SERVFAIL: %w", dnsresolve.ErrLookupFailed)}
	}
	return f.Fake.LookupIP(ctx, host)
}

// Only a domain the Cache knows nothing about is looked up ahead: one
// remembered to have no record, or with a cached policy (whose refresh
// usually finds the id unchanged), is checked with the TXT query alone.
func TestCache_LookAhead_OnlyUnknown(t *testing.T) {
	t.Parallel()
	env := newCacheEnv(t)
	if !lookAhead(&Entry{Domain: testDomain}) {
		t.Error("a never-seen domain is not looked up ahead")
	}
	wantResult(t, env.get(t), SourceFetched, ModeEnforce, nil)
	if lookAhead(env.entry(t)) {
		t.Error("a domain with a cached policy is looked up ahead")
	}

	neg := newCacheEnv(t)
	neg.dns.SetTXT("_mta-sts." + testDomain) // no record
	wantResult(t, neg.get(t), SourceNone, "", ErrNoRecord)
	if lookAhead(neg.entry(t)) {
		t.Error("a domain remembered to have no record is looked up ahead")
	}
}
