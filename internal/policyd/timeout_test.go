package policyd

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/testnet"
	"github.com/mailsts/mailsts/mtasts"
)

// deadlineResolver delegates to a Resolver after checking that the call
// carries a deadline at most limit away. A call without one, or with a
// later one, is recorded as a violation and fails at once, so that the code
// under test does not sit on a server that never answers.
type deadlineResolver struct {
	dnsresolve.Resolver
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

func (d *deadlineResolver) LookupTXT(ctx context.Context, name string) ([]string, dnsresolve.Answer, error) {
	if err := d.check(ctx, "TXT "+name); err != nil {
		return nil, dnsresolve.Answer{}, err
	}
	return d.Resolver.LookupTXT(ctx, name)
}

func (d *deadlineResolver) LookupMX(ctx context.Context, name string) ([]dnsresolve.MX, dnsresolve.Answer, error) {
	if err := d.check(ctx, "MX "+name); err != nil {
		return nil, dnsresolve.Answer{}, err
	}
	return d.Resolver.LookupMX(ctx, name)
}

func (d *deadlineResolver) LookupIP(ctx context.Context, host string) ([]netip.Addr, dnsresolve.Answer, error) {
	if err := d.check(ctx, "IP "+host); err != nil {
		return nil, dnsresolve.Answer{}, err
	}
	return d.Resolver.LookupIP(ctx, host)
}

func (d *deadlineResolver) LookupTLSA(ctx context.Context, port int, proto, host string) ([]dnsresolve.TLSA, dnsresolve.Answer, error) {
	if err := d.check(ctx, "TLSA "+host); err != nil {
		return nil, dnsresolve.Answer{}, err
	}
	return d.Resolver.LookupTLSA(ctx, port, proto, host)
}

// Issue #10 item 9 (--timeout 3s took 4.5 s with DNS timing out), STS-DANE-3,
// OPEN-1, PFX-SOCKETMAP-6: fetch.timeout bounds every step of a policyd
// answer, whatever the DNS client's own per-query timeout and retries (20 s
// here): the DANE MX lookup, the TXT lookup and the policy host's A/AAAA
// lookups all run under a deadline at most fetch.timeout away, and Postfix
// gets TEMP. Checked on the deadlines handed to the resolver, against a
// testnet DNS server that never answers for these names, not on the clock.
func TestDaemonLookupBoundedByTimeout(t *testing.T) {
	t.Parallel()
	dead := stsDomain("dead.example", "d1", "enforce", "mx.dead.example")
	dead.STSFault, dead.MXFault = testnet.FaultTimeout, testnet.FaultTimeout
	slowA := stsDomain("slow-a.example", "s1", "enforce", "mx.slow-a.example")
	slowA.Policy.Fault = testnet.FaultTimeout
	n := startNet(t, dead, slowA)
	cfg := testConfig(t, n, "memory", "")
	cfg.Fetch.Timeout = 300 * time.Millisecond
	cfg.DefaultZone.DANE = string(DANEOn) // the MX lookup always decides
	dc, err := dnsresolve.NewClient(n.DNSAddr())
	if err != nil {
		t.Fatal(err)
	}
	dc.Timeout = 20 * time.Second // per query; far beyond fetch.timeout
	dns := &deadlineResolver{Resolver: dc, limit: cfg.Fetch.Timeout}
	r := startDaemon(t, &Daemon{Config: cfg, DNS: dns}, nil)
	for _, key := range []string{"dead.example", "slow-a.example"} {
		if got := lookup(t, r.addr, "postfix", key); !strings.HasPrefix(got, "TEMP ") {
			t.Errorf("%s: %q, want TEMP", key, got)
		}
	}
	dns.mu.Lock()
	defer dns.mu.Unlock()
	seen := strings.Join(dns.calls, ", ")
	for _, want := range []string{"MX dead.example", "MX slow-a.example"} {
		if !strings.Contains(seen, want) {
			t.Errorf("no %s lookup (calls: %s)", want, seen)
		}
	}
	for _, b := range dns.bad {
		t.Error(b)
	}
}

// gatedTXT holds TXT lookups until open is closed (or their ctx ends).
type gatedTXT struct {
	dnsresolve.Resolver
	open chan struct{}
}

func (g *gatedTXT) LookupTXT(ctx context.Context, name string) ([]string, dnsresolve.Answer, error) {
	select {
	case <-g.open:
	case <-ctx.Done():
		return nil, dnsresolve.Answer{}, fmt.Errorf("%w: %w", ctx.Err(), dnsresolve.ErrLookupFailed)
	}
	return g.Resolver.LookupTXT(ctx, name)
}

// answeredLog is an mtasts.Observer that reports Answered calls.
type answeredLog struct{ answered chan string }

func (a *answeredLog) Answered(domain string, _ mtasts.Source, _ error) { a.answered <- domain }
func (a *answeredLog) Fetched(string, time.Duration, error)             {}

// With Timeout set, an answer that DANE decides still lets the MTA-STS
// discovery it started meanwhile finish within the limit, so that the
// Cache counts it as a lookup (docs/policyd.md, "Cold lookups"): the
// answer's deadline is not cut short when the answer returns.
func TestTimeoutKeepsEarlyDiscovery(t *testing.T) {
	t.Parallel()
	fake := daneFake(map[string][]dnsresolve.TLSA{"mx1.example.com": {usableTLSA}, "mx2.example.com": {usableTLSA}}, true)
	fake.SetTXT("_mta-sts.example.com", "v=STSv1; id=1")
	dns := &gatedTXT{Resolver: fake, open: make(chan struct{})}
	obs := &answeredLog{answered: make(chan string, 4)}
	r := &Responder{
		Cache:   &mtasts.Cache{Client: &mtasts.Client{DNS: dns}, Observer: obs},
		DNS:     dns,
		Timeout: time.Minute,
	}
	if err := r.SetRules(&Rules{Default: Zone{DANE: DANEOn}}); err != nil {
		t.Fatal(err)
	}
	if rep, _ := r.Answer(context.Background(), "postfix", "example.com"); rep.Data != "dane-only" {
		t.Fatalf("%v %q, want OK dane-only", rep.Status, rep.Data)
	}
	close(dns.open) // the TXT lookup answers only now, after the answer
	select {
	case d := <-obs.answered:
		if d != "example.com" {
			t.Errorf("answered %q", d)
		}
	case <-time.After(30 * time.Second):
		t.Error("the discovery started with the answer was abandoned when the answer returned")
	}
}
