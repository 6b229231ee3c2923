package dnsresolve

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// SRV is one SRV record (RFC 2782), as used by RFC 6186 to locate mail
// submission and access services.
type SRV struct {
	Priority uint16
	Weight   uint16
	Port     uint16
	// Target is lowercased, in A-label form, without the trailing dot. A
	// target of "." (RFC 2782, RFC 6186 §4) means the service is decidedly
	// not available at this domain.
	Target string
}

// SRVResolver looks up SRV records. [Client] and [Fake] implement it; it
// is not part of [Resolver] so that other resolvers need not.
type SRVResolver interface {
	// LookupSRV returns the SRV records at _service._proto.name, sorted by
	// priority and then by weight, heaviest first.
	LookupSRV(ctx context.Context, service, proto, name string) ([]SRV, Answer, error)
}

// SRVName returns the normalized owner name of SRV records:
// "_imaps._tcp.example.org" for ("imaps", "tcp", "Example.org.").
func SRVName(service, proto, name string) (string, error) {
	if service == "" || proto == "" || strings.ContainsAny(service+proto, "._") {
		return "", fmt.Errorf("%w: SRV service %q or protocol %q", ErrInvalidName, service, proto)
	}
	return Normalize("_" + service + "._" + proto + "." + name)
}

// sortSRV orders by priority, then weight (heaviest first), keeping the
// received order otherwise. RFC 2782 asks for a weighted random choice
// among equal priorities; a stable order keeps results reproducible and
// still tries the heaviest first.
func sortSRV(srvs []SRV) {
	slices.SortStableFunc(srvs, func(a, b SRV) int {
		if a.Priority != b.Priority {
			return int(a.Priority) - int(b.Priority)
		}
		return int(b.Weight) - int(a.Weight)
	})
}

// LookupSRV implements [SRVResolver].
func (c *Client) LookupSRV(ctx context.Context, service, proto, name string) ([]SRV, Answer, error) {
	owner, err := SRVName(service, proto, name)
	if err != nil {
		return nil, Answer{}, &Error{Name: name, Qtype: "SRV", Rcode: RcodeNone,
			Err: fmt.Errorf("%w: %w", err, ErrLookupFailed)}
	}
	rrs, ans, err := c.lookup(ctx, owner, dns.TypeSRV)
	if err != nil {
		return nil, ans, err
	}
	out := make([]SRV, 0, len(rrs))
	for _, rr := range rrs {
		s, ok := rr.(*dns.SRV)
		if !ok {
			continue
		}
		out = append(out, SRV{Priority: s.Priority, Weight: s.Weight, Port: s.Port, Target: mxHost(s.Target)})
	}
	sortSRV(out)
	return out, ans, nil
}

// SetSRV sets the SRV records at the owner name (e.g.
// "_imaps._tcp.example.org"), replacing any.
func (f *Fake) SetSRV(name string, srv ...SRV) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.SRV == nil {
		f.SRV = map[string][]SRV{}
	}
	f.SRV[fakeKey(name)] = srv
}

// LookupSRV implements [SRVResolver], reading SRV["_service._proto.name"].
func (f *Fake) LookupSRV(ctx context.Context, service, proto, name string) ([]SRV, Answer, error) {
	owner, err := SRVName(service, proto, name)
	if err != nil {
		return nil, Answer{}, &Error{Name: name, Qtype: "SRV", Rcode: RcodeNone,
			Err: fmt.Errorf("%w: %w", err, ErrLookupFailed)}
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	cn, ans, err := f.resolve(ctx, "SRV", owner, func(n string) bool { return len(f.SRV[n]) > 0 })
	if err != nil {
		return nil, ans, err
	}
	out := slices.Clone(f.SRV[cn])
	for i := range out {
		out[i].Target = mxHost(out[i].Target)
	}
	sortSRV(out)
	return out, ans, nil
}
