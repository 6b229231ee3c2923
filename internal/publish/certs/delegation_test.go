package certs

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
)

// fakeClock is a settable clock for the rate limiter.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// providerFake is the DNS of provider.example as the delegation checks see
// it: our policy host, our _mta-sts record.
func providerFake() *dnsresolve.Fake {
	f := &dnsresolve.Fake{}
	f.SetIP("mta-sts.provider.example", netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1"))
	f.SetTXT("_mta-sts.provider.example", "v=STSv1; id=1")
	return f
}

func newDecider(t *testing.T, f dnsresolve.Resolver, d Delegation, clock *fakeClock) *Manager {
	t.Helper()
	if d.Host == "" {
		d.Host = "mta-sts.provider.example"
	}
	now := time.Now
	if clock != nil {
		now = clock.Now
	}
	m, err := New(Config{CA: "https://acme.invalid/dir", Email: "hostmaster@provider.example", Dir: t.TempDir(), Delegation: &d, Resolver: f, Now: now, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// RFC 8461 §8.2: both mta-sts.<domain> and _mta-sts.<domain> must point at
// the provider before a certificate is requested.
func TestDecideDelegation(t *testing.T) {
	t.Parallel()
	ours := []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")}
	type setup func(f *dnsresolve.Fake)
	both := func(d string) setup {
		return func(f *dnsresolve.Fake) {
			f.SetCNAME("mta-sts."+d, "mta-sts.provider.example")
			f.SetCNAME("_mta-sts."+d, "_mta-sts.provider.example")
		}
	}
	cases := []struct {
		name  string
		setup setup
		want  error
	}{
		{"mta-sts.good.example", both("good.example"), nil},
		{"MTA-STS.Good.Example.", both("good.example"), nil},
		{"mta-sts.chain.example", func(f *dnsresolve.Fake) {
			// CNAME chains ending at our names count.
			f.SetCNAME("mta-sts.chain.example", "policy.chain.example")
			f.SetCNAME("policy.chain.example", "mta-sts.provider.example")
			f.SetCNAME("_mta-sts.chain.example", "_sts.chain.example")
			f.SetCNAME("_sts.chain.example", "_mta-sts.provider.example")
		}, nil},
		{"mta-sts.addr.example", func(f *dnsresolve.Fake) {
			f.SetIP("mta-sts.addr.example", ours...)
			f.SetCNAME("_mta-sts.addr.example", "_mta-sts.provider.example")
		}, nil},
		{"mta-sts.v6.example", func(f *dnsresolve.Fake) {
			f.SetIP("mta-sts.v6.example", ours[1])
			f.SetCNAME("_mta-sts.v6.example", "_mta-sts.provider.example")
		}, nil},
		{"mta-sts.mixed.example", func(f *dnsresolve.Fake) {
			// One of ours and one foreign address: not delegated.
			f.SetIP("mta-sts.mixed.example", ours[0], netip.MustParseAddr("198.51.100.7"))
			f.SetCNAME("_mta-sts.mixed.example", "_mta-sts.provider.example")
		}, ErrNotDelegated},
		{"mta-sts.half.example", func(f *dnsresolve.Fake) {
			f.SetCNAME("mta-sts.half.example", "mta-sts.provider.example")
		}, ErrNotDelegated},
		{"mta-sts.otherhalf.example", func(f *dnsresolve.Fake) {
			f.SetCNAME("_mta-sts.otherhalf.example", "_mta-sts.provider.example")
		}, ErrNotDelegated},
		{"mta-sts.elsewhere.example", func(f *dnsresolve.Fake) {
			f.SetCNAME("mta-sts.elsewhere.example", "mta-sts.provider.example")
			f.SetCNAME("_mta-sts.elsewhere.example", "_mta-sts.other-provider.example")
			f.SetTXT("_mta-sts.other-provider.example", "v=STSv1; id=2")
		}, ErrNotDelegated},
		{"mta-sts.owntxt.example", func(f *dnsresolve.Fake) {
			f.SetCNAME("mta-sts.owntxt.example", "mta-sts.provider.example")
			f.SetTXT("_mta-sts.owntxt.example", "v=STSv1; id=3")
		}, ErrNotDelegated},
		{"mta-sts.servfail.example", func(f *dnsresolve.Fake) {
			f.SetError("mta-sts.servfail.example", dnsresolve.ErrLookupFailed)
		}, ErrDNS},
		{"mta-sts.txtfail.example", func(f *dnsresolve.Fake) {
			f.SetCNAME("mta-sts.txtfail.example", "mta-sts.provider.example")
			f.SetError("_mta-sts.txtfail.example", dnsresolve.ErrLookupFailed)
		}, ErrDNS},
		{"www.good.example", both("good.example"), ErrNotPolicyHost},
		{"mta-sts.", nil, ErrNotPolicyHost},
		{"mta-sts.com", nil, ErrNotPolicyHost},
		{"mta-sts.bad..example", nil, ErrNotPolicyHost},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := providerFake()
			if c.setup != nil {
				c.setup(f)
			}
			m := newDecider(t, f, Delegation{Addresses: ours}, nil)
			err := m.Decide(context.Background(), c.name)
			if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("Decide(%q) = %v, want %v", c.name, err, c.want)
			}
			if errors.Is(c.want, ErrNotPolicyHost) && len(f.Queries()) > 0 {
				t.Errorf("DNS queried for a name that is no policy host: %v", f.Queries())
			}
		})
	}
}

// Without configured addresses only a CNAME to our host delegates.
func TestDecideNoAddresses(t *testing.T) {
	t.Parallel()
	f := providerFake()
	f.SetIP("mta-sts.addr.example", netip.MustParseAddr("192.0.2.1"))
	f.SetCNAME("_mta-sts.addr.example", "_mta-sts.provider.example")
	m := newDecider(t, f, Delegation{}, nil)
	if err := m.Decide(context.Background(), "mta-sts.addr.example"); !errors.Is(err, ErrNotDelegated) {
		t.Fatalf("Decide = %v, want ErrNotDelegated", err)
	}
}

// Names passed to Manage are ours: no DNS check, no rate limit.
func TestDecideManaged(t *testing.T) {
	t.Parallel()
	f := providerFake()
	m := newDecider(t, f, Delegation{Attempts: 1}, nil)
	m.mu.Lock()
	m.managed["mta-sts.hosted.example"] = true
	m.mu.Unlock()
	for i := range 3 {
		if err := m.Decide(context.Background(), "mta-sts.hosted.example"); err != nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if q := f.Queries(); len(q) > 0 {
		t.Errorf("queried DNS for a managed name: %v", q)
	}
}

// Each name gets Attempts decisions per Window; past that it is refused
// without a DNS query, and other names are not affected.
func TestDecideRateLimit(t *testing.T) {
	t.Parallel()
	f := providerFake()
	clock := &fakeClock{t: time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)}
	m := newDecider(t, f, Delegation{Attempts: 2, Window: 10 * time.Minute}, clock)
	ctx := context.Background()
	name := "mta-sts.late.example"
	for i := range 2 {
		if err := m.Decide(ctx, name); !errors.Is(err, ErrNotDelegated) {
			t.Fatalf("attempt %d: %v, want ErrNotDelegated", i, err)
		}
	}
	// The owner finishes the delegation, but the name has used its checks.
	f.SetCNAME("mta-sts.late.example", "mta-sts.provider.example")
	f.SetCNAME("_mta-sts.late.example", "_mta-sts.provider.example")
	before := len(f.Queries())
	for i := range 5 {
		if err := m.Decide(ctx, name); !errors.Is(err, ErrRateLimited) {
			t.Fatalf("attempt %d past the limit: %v, want ErrRateLimited", i, err)
		}
	}
	if after := len(f.Queries()); after != before {
		t.Errorf("rate-limited decisions queried DNS: %v", f.Queries()[before:])
	}
	// Another name is unaffected.
	f.SetCNAME("mta-sts.other.example", "mta-sts.provider.example")
	f.SetCNAME("_mta-sts.other.example", "_mta-sts.provider.example")
	if err := m.Decide(ctx, "mta-sts.other.example"); err != nil {
		t.Fatalf("other name: %v", err)
	}
	clock.Advance(9 * time.Minute)
	if err := m.Decide(ctx, name); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("inside the window: %v, want ErrRateLimited", err)
	}
	clock.Advance(time.Minute)
	if err := m.Decide(ctx, name); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

// The limiter remembers at most MaxTracked names: a flood of new names is
// refused once it is full, and expired names make room again.
func TestDecideRateLimitBounded(t *testing.T) {
	t.Parallel()
	f := providerFake()
	clock := &fakeClock{t: time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)}
	m := newDecider(t, f, Delegation{Attempts: 1, Window: time.Minute, MaxTracked: 10}, clock)
	ctx := context.Background()
	for i := range 10 {
		if err := m.Decide(ctx, fmt.Sprintf("mta-sts.d%d.example", i)); !errors.Is(err, ErrNotDelegated) {
			t.Fatalf("name %d: %v", i, err)
		}
	}
	if err := m.Decide(ctx, "mta-sts.d10.example"); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("eleventh name: %v, want ErrRateLimited", err)
	}
	if n := len(m.limit.names); n > 10 {
		t.Errorf("limiter holds %d names, cap 10", n)
	}
	clock.Advance(time.Minute)
	if err := m.Decide(ctx, "mta-sts.d10.example"); !errors.Is(err, ErrNotDelegated) {
		t.Fatalf("after expiry: %v, want ErrNotDelegated", err)
	}
	if n := len(m.limit.names); n != 1 {
		t.Errorf("limiter holds %d names after pruning, want 1", n)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	bad := []Config{
		{DisableHTTP01: true, DisableTLSALPN01: true},
		{Email: "a@b.example", Delegation: &Delegation{}},
		{Email: "a@b.example", Delegation: &Delegation{Host: "provider"}},
		{Email: "a@b.example", Delegation: &Delegation{Host: "mta-sts.provider.example", Addresses: []netip.Addr{{}}}},
		{Delegation: &Delegation{Host: "mta-sts.provider.example"}}, // no email
	}
	for i, c := range bad {
		c.Dir = t.TempDir()
		if m, err := New(c); !errors.Is(err, ErrConfig) {
			if m != nil {
				m.Close()
			}
			t.Errorf("case %d: %v, want ErrConfig", i, err)
		}
	}
}
