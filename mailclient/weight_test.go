package mailclient

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"

	"github.com/mailsts/mailsts/dnsresolve"
)

func ep(s Service, host string, prio, weight uint16) Endpoint {
	return Endpoint{Service: s, Host: host, Port: 993, Priority: prio, Weight: weight, Source: FromSRV}
}

func hosts(eps []Endpoint) []string {
	var out []string
	for _, e := range eps {
		out = append(out, e.Host)
	}
	return out
}

// RFC 2782 (TLS8314-1): targets of one priority come first in proportion
// to their weights; priorities and services never mix; weight 0 alone
// keeps the order.
func TestWeightedOrder(t *testing.T) {
	t.Parallel()
	eps := []Endpoint{
		ep(IMAPS, "a", 0, 60), ep(IMAPS, "b", 0, 30), ep(IMAPS, "c", 0, 10),
		ep(IMAPS, "backup", 10, 0),
		ep(IMAPPlain, "plain1", 0, 0), ep(IMAPPlain, "plain2", 0, 0),
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	first := map[string]int{}
	const n = 10000
	for range n {
		got := weightedOrder(eps, rnd.IntN)
		h := hosts(got)
		if !slices.Equal(h[3:], []string{"backup", "plain1", "plain2"}) {
			t.Fatalf("order %v: priorities or services mixed, or weight 0 reordered", h)
		}
		s := slices.Clone(h[:3])
		slices.Sort(s)
		if !slices.Equal(s, []string{"a", "b", "c"}) {
			t.Fatalf("order %v: not a permutation of the first priority", h)
		}
		first[h[0]]++
	}
	// Expected shares 0.6, 0.3, 0.1 (RFC 2782 counts the inclusive
	// bound: 61/101, 30/101, 10/101); a fixed seed, so the test is
	// deterministic, with a margin far beyond the seed's noise.
	for host, want := range map[string]float64{"a": 61.0 / 101, "b": 30.0 / 101, "c": 10.0 / 101} {
		if got := float64(first[host]) / n; got < want-0.03 || got > want+0.03 {
			t.Errorf("%s first in %.3f of the orders, want about %.3f", host, got, want)
		}
	}
	// A zero-weight target is placed first, then chosen only when the
	// draw is 0.
	zero := []Endpoint{ep(IMAPS, "heavy", 0, 5), ep(IMAPS, "zero", 0, 0)}
	if h := hosts(weightedOrder(zero, func(int) int { return 0 })); !slices.Equal(h, []string{"zero", "heavy"}) {
		t.Errorf("draw 0: %v", h)
	}
	if h := hosts(weightedOrder(zero, func(n int) int { return n - 1 })); !slices.Equal(h, []string{"heavy", "zero"}) {
		t.Errorf("draw max: %v", h)
	}
}

// recordingDialer fails every connection and records the addresses.
type recordingDialer struct {
	mu    sync.Mutex
	addrs []string
}

func (r *recordingDialer) DialContext(_ context.Context, _, address string) (net.Conn, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addrs = append(r.addrs, address)
	return nil, errors.New("refused by the test")
}

// DialProtocol tries equal priorities in the weighted order its Rand
// gives, and the lower priority after.
func TestDialProtocolWeightedOrder(t *testing.T) {
	t.Parallel()
	disc := &Discovery{Domain: "example.org", Endpoints: []Endpoint{
		{Service: IMAPS, Host: "imap1.example.org", Port: 1001, Priority: 0, Weight: 90, Source: FromSRV},
		{Service: IMAPS, Host: "imap2.example.org", Port: 1002, Priority: 0, Weight: 10, Source: FromSRV},
		{Service: IMAPS, Host: "backup.example.org", Port: 1003, Priority: 5, Weight: 0, Source: FromSRV},
	}}
	f := &dnsresolve.Fake{}
	for _, h := range []string{"imap1.example.org", "imap2.example.org", "backup.example.org"} {
		f.SetIP(h, netip.MustParseAddr("127.0.0.1"))
	}
	rec := &recordingDialer{}
	// A draw of 95 of 0..100 passes the first target's running sum (90):
	// the weight-10 target goes first.
	d := &Dialer{Resolver: f, NetDialer: rec, Rand: func(n int) int { return min(95, n-1) }}
	if _, err := d.DialProtocol(context.Background(), "user@example.org", disc, IMAP); err == nil {
		t.Fatal("dial succeeded through a dialer that refuses everything")
	}
	want := []string{"127.0.0.1:1002", "127.0.0.1:1001", "127.0.0.1:1003"}
	if !slices.Equal(rec.addrs, want) {
		t.Errorf("dialled %v, want %v", rec.addrs, want)
	}
}
