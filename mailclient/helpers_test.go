package mailclient

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/testnet"
)

var shared testnet.Shared // the default scenario, read only

// testPorts maps the services to the ports of n.
func testPorts(n *testnet.Net) map[Service]int {
	m := map[Service]int{}
	for _, s := range Services() {
		m[s] = n.ClientPort(testnet.ClientService(s))
	}
	return m
}

// newDialer returns a Dialer on n with an in-memory store.
func newDialer(t testing.TB, n *testnet.Net) *Dialer {
	t.Helper()
	r, err := dnsresolve.NewClient(n.DNSAddr())
	if err != nil {
		t.Fatal(err)
	}
	return &Dialer{Resolver: r, RootCAs: n.RootCAs(), Ports: testPorts(n), Timeout: time.Hour, Store: &MemoryStore{}}
}

// ownNet starts a network of its own (for tests that change it).
func ownNet(t testing.TB, d ...testnet.Domain) *testnet.Net {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := testnet.Start(ctx, &testnet.Scenario{Domains: d}, testnet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n
}

func netipAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func errorsIs(err, target error) bool { return errors.Is(err, target) }
