package mtasts

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
)

// deadlineResolver answers from a Fake, except that lookups of the names in
// hang block until their context ends, as against a DNS server that never
// answers. Every call must carry a deadline at most limit after the call:
// one that has none, or a later one, is recorded as a violation and fails
// at once (so that the code under test does not wait for it).
type deadlineResolver struct {
	*dnsresolve.Fake
	hang  map[string]bool
	limit time.Duration

	mu    sync.Mutex
	calls []string
	bad   []string
}

func (d *deadlineResolver) check(ctx context.Context, what string) error {
	now := time.Now()
	dl, ok := ctx.Deadline()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, what)
	switch {
	case !ok:
		d.bad = append(d.bad, what+": no deadline")
	case dl.After(now.Add(d.limit)):
		d.bad = append(d.bad, fmt.Sprintf("%s: deadline %v away, over the %v timeout", what, dl.Sub(now).Round(time.Millisecond), d.limit))
	default:
		return nil
	}
	return fmt.Errorf("%s: unbounded: %w", what, dnsresolve.ErrLookupFailed)
}

func (d *deadlineResolver) wait(ctx context.Context, name string) error {
	if !d.hang[name] {
		return nil
	}
	<-ctx.Done()
	return fmt.Errorf("%s: %w: %w", name, ctx.Err(), dnsresolve.ErrLookupFailed)
}

func (d *deadlineResolver) LookupTXT(ctx context.Context, name string) ([]string, dnsresolve.Answer, error) {
	if err := d.check(ctx, "TXT "+name); err != nil {
		return nil, dnsresolve.Answer{}, err
	}
	if err := d.wait(ctx, name); err != nil {
		return nil, dnsresolve.Answer{}, err
	}
	return d.Fake.LookupTXT(ctx, name)
}

func (d *deadlineResolver) LookupIP(ctx context.Context, host string) ([]netip.Addr, dnsresolve.Answer, error) {
	if err := d.check(ctx, "IP "+host); err != nil {
		return nil, dnsresolve.Answer{}, err
	}
	if err := d.wait(ctx, host); err != nil {
		return nil, dnsresolve.Answer{}, err
	}
	return d.Fake.LookupIP(ctx, host)
}

// Issue #10 item 9, STS-FETCH-8, STS-CACHE-7: a Cache discovery runs every
// step (the TXT lookup, the policy host's A/AAAA lookups, HTTPS) under the
// Client's Timeout, not Timeout plus a DNS allowance: a daemon configured
// with a 3 s limit has no discovery running longer behind it. Checked on the
// deadlines the resolver is handed, not on the clock.
func TestCacheDiscoveryBoundedByTimeout(t *testing.T) {
	t.Parallel()
	const timeout = 200 * time.Millisecond
	fake := &dnsresolve.Fake{}
	fake.SetTXT("_mta-sts.slow-txt.example", "v=STSv1; id=1")
	fake.SetTXT("_mta-sts.slow-a.example", "v=STSv1; id=1")
	dns := &deadlineResolver{Fake: fake, limit: timeout, hang: map[string]bool{
		"_mta-sts.slow-txt.example": true,
		"mta-sts.slow-a.example":    true,
	}}
	c := &Cache{Client: &Client{DNS: dns, Timeout: timeout}}
	for _, domain := range []string{"slow-txt.example", "slow-a.example"} {
		// The caller has no deadline of its own (Postfix's connection).
		res, err := c.Get(context.Background(), domain)
		if err != nil {
			t.Fatalf("%s: %v", domain, err)
		}
		if res.Policy != nil || !Temporary(res.Err) {
			t.Errorf("%s: %+v, want a temporary failure and no policy", domain, res)
		}
	}
	dns.mu.Lock()
	defer dns.mu.Unlock()
	want := map[string]bool{"TXT _mta-sts.slow-txt.example": false, "IP mta-sts.slow-a.example": false}
	for _, c := range dns.calls {
		if _, ok := want[c]; ok {
			want[c] = true
		}
	}
	for c, seen := range want {
		if !seen {
			t.Errorf("no lookup %q (calls %q)", c, dns.calls)
		}
	}
	for _, b := range dns.bad {
		t.Error(b)
	}
}
