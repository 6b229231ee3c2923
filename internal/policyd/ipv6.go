package policyd

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// Values of fetch.policy_host_aaaa.
const (
	// AAAAAuto asks for the policy host's AAAA records only while this
	// machine has a route to the IPv6 Internet, or when the host has no
	// usable IPv4 address (mtasts.Client.IPv6).
	AAAAAuto = "auto"
	// AAAAAlways asks for A and AAAA together on every cold lookup.
	AAAAAlways = "always"
)

// ipv6RouteInterval is how long a route decision is trusted before the
// routing table is asked again.
const ipv6RouteInterval = 10 * time.Minute

// ipv6ProbeAddr is where the route probe "connects": 2001:db8::1, in the
// documentation prefix (RFC 3849), never sent anything. Connecting a UDP
// socket only asks the kernel for a route and a source address, so a host
// with a default IPv6 route succeeds and one without fails at once.
var ipv6ProbeAddr = netip.AddrPortFrom(netip.MustParseAddr("2001:db8::1"), 53)

// probeIPv6Route reports whether this machine has a route to global IPv6
// addresses from a global source address.
func probeIPv6Route() bool {
	c, err := net.DialUDP("udp6", nil, net.UDPAddrFromAddrPort(ipv6ProbeAddr))
	if err != nil {
		return false
	}
	defer c.Close()
	la, ok := c.LocalAddr().(*net.UDPAddr)
	if !ok {
		return false
	}
	src, ok := netip.AddrFromSlice(la.IP)
	return ok && src.Is6() && !src.Is4In6() && src.IsGlobalUnicast() && !src.IsPrivate()
}

// ipv6Route is the cached answer to "can this machine reach IPv6 policy
// hosts?" (mtasts.Client.IPv6): decided at start, asked again every
// ipv6RouteInterval, at a lookup (one socket, no packet).
type ipv6Route struct {
	probe    func() bool // nil: probeIPv6Route
	now      func() time.Time
	interval time.Duration

	mu sync.Mutex
	at time.Time
	ok bool
}

// reachable implements mtasts.Client.IPv6.
func (r *ipv6Route) reachable() bool {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.at.IsZero() || now.Sub(r.at) >= r.interval || now.Before(r.at) {
		probe := r.probe
		if probe == nil {
			probe = probeIPv6Route
		}
		r.ok, r.at = probe(), now
	}
	return r.ok
}

// policyHostIPv6 returns the mtasts.Client.IPv6 hook for the
// fetch.policy_host_aaaa setting (nil: AAAA always asked) and the decision
// at start, for the log.
func policyHostIPv6(setting string, probe func() bool, now func() time.Time) (func() bool, string) {
	if setting == AAAAAlways {
		return nil, "policy host AAAA records asked on every lookup (fetch.policy_host_aaaa: always)"
	}
	if now == nil {
		now = time.Now
	}
	r := &ipv6Route{probe: probe, now: now, interval: ipv6RouteInterval}
	if r.reachable() {
		return r.reachable, "IPv6 route found: policy host AAAA records asked with A (fetch.policy_host_aaaa: auto, checked every 10 minutes)"
	}
	return r.reachable, "no route to the IPv6 Internet: policy host AAAA records asked only when there is no usable IPv4 address (fetch.policy_host_aaaa: auto, checked every 10 minutes)"
}
