package mtasts

import (
	"net/netip"
	"testing"
)

// Without an IPv6 route (Client.IPv6 false) the policy host's AAAA query
// is skipped only when it cannot change the fetch: an IPv4 address exists
// and accepts the connection. Otherwise AAAA is asked as before.
func TestClient_IPv6Route_AAAAQuery(t *testing.T) {
	t.Parallel()
	mapped := netip.MustParseAddr("::ffff:127.0.0.1") // an AAAA answer loopback reaches
	refused := netip.MustParseAddr("127.0.0.2")       // nothing listens there
	doc6 := netip.MustParseAddr("2001:db8::1")
	cases := []struct {
		name   string
		ipv6   func() bool
		addrs  []netip.Addr
		v4, ip int // "IP4 host" and "IP host" queries per lookup
	}{
		{"no IPv6 hook", nil, []netip.Addr{loopback, doc6}, 0, 1},
		{"IPv6 route", func() bool { return true }, []netip.Addr{loopback, doc6}, 0, 1},
		{"no route, A answers", func() bool { return false }, []netip.Addr{loopback, doc6}, 1, 0},
		{"no route, A only", func() bool { return false }, []netip.Addr{loopback}, 1, 0},
		{"no route, AAAA only", func() bool { return false }, []netip.Addr{mapped}, 1, 1},
		{"no route, A refuses the connection", func() bool { return false }, []netip.Addr{refused, mapped}, 1, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, ahead := range []bool{true, false} {
				env := newCacheEnv(t)
				env.client.IPv6 = tc.ipv6
				env.dns.SetIP("mta-sts."+testDomain, tc.addrs...)
				if ahead {
					// Cache.Get looks the host up with the TXT query.
					wantResult(t, env.get(t), SourceFetched, ModeEnforce, nil)
				} else if _, err := env.client.Fetch(t.Context(), testDomain); err != nil {
					t.Fatalf("Fetch: %v", err)
				}
				host := "mta-sts." + testDomain
				if v4, ip := countQueries(env.dns, "IP4 "+host), countQueries(env.dns, "IP "+host); v4 != tc.v4 || ip != tc.ip {
					t.Errorf("ahead=%v: %d A-only and %d A+AAAA lookups, want %d and %d; queries %v",
						ahead, v4, ip, tc.v4, tc.ip, env.dns.Queries())
				}
			}
		})
	}
}
