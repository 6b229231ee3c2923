package httpapi

import (
	"math"
	"net"
	"net/netip"
	"sync"
	"time"
)

// RateLimiter is a token bucket per client address for the report
// receiver (without it nothing stopped one client from filling the disk
// with rejected input). IPv6 clients are grouped by /64, which one host
// can rotate through. Safe for concurrent use; the zero value is not
// usable: set Rate and Burst.
type RateLimiter struct {
	// Rate is the sustained requests per second per client; Burst the
	// requests a client may make at once.
	Rate  float64
	Burst int
	// MaxClients bounds the tracked clients (memory); 0 means 10,000.
	// Beyond it, clients whose bucket is full again are forgotten first.
	MaxClients int
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu      sync.Mutex
	buckets map[netip.Prefix]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// ClientKey returns the rate-limit key of a remote address (host:port or
// host): the address, or its /64 for IPv6.
func ClientKey(remote string) netip.Prefix {
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Prefix{}
	}
	a = a.Unmap()
	bits := a.BitLen()
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

// Allow takes a token for the client at remote. When none is left it
// returns false and how long until one is.
func (l *RateLimiter) Allow(remote string) (bool, time.Duration) {
	now := time.Now()
	if l.Now != nil {
		now = l.Now()
	}
	key := ClientKey(remote)
	burst := float64(max(l.Burst, 1))
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buckets == nil {
		l.buckets = make(map[netip.Prefix]*bucket)
	}
	b := l.buckets[key]
	if b == nil {
		l.makeRoom(now, burst)
		b = &bucket{tokens: burst, last: now}
		l.buckets[key] = b
	}
	l.refill(b, now, burst)
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration(math.Ceil((1 - b.tokens) / l.Rate * float64(time.Second)))
	return false, wait
}

func (l *RateLimiter) refill(b *bucket, now time.Time, burst float64) {
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(burst, b.tokens+dt*l.Rate)
		b.last = now
	}
}

// makeRoom forgets clients when the map is full: first those whose
// bucket has refilled (forgetting them changes nothing), then any.
func (l *RateLimiter) makeRoom(now time.Time, burst float64) {
	maxClients := l.MaxClients
	if maxClients <= 0 {
		maxClients = 10000
	}
	if len(l.buckets) < maxClients {
		return
	}
	for k, b := range l.buckets {
		l.refill(b, now, burst)
		if b.tokens >= burst {
			delete(l.buckets, k)
		}
	}
	for k := range l.buckets {
		if len(l.buckets) < maxClients {
			break
		}
		delete(l.buckets, k)
	}
}
