package dnsresolve

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Fake is an in-memory [Resolver] for unit tests, so that every mailsts
// package tests its DNS handling the same way, without a network.
//
// Map keys are normalized names (see [Normalize]): lowercase A-labels
// without trailing dot, e.g. "_mta-sts.example.com" or
// "_25._tcp.mx.example.com". Lookups normalize their input, so U-labels and
// trailing dots work on the query side.
//
// The zero value is an empty zone (every lookup is ErrNotFound). Either fill
// the exported maps before the first lookup and leave them alone afterwards,
// or use the Set* methods, which normalize the name, lock, and may be called
// at any time, also concurrently with lookups. Lookups are safe for
// concurrent use.
//
// Semantics, mirroring [Client]:
//   - Errors[name] (any type) or Errors["TXT name"] (one type; the key has
//     the form of a [Fake.Queries] entry) is returned as the cause of an
//     [*Error]; an error matching neither ErrNotFound nor ErrLookupFailed
//     is wrapped with ErrLookupFailed.
//   - CNAME[name] is followed (at most 8 hops; a loop is ErrLookupFailed),
//     with Errors checked at each name; CanonicalName reports the end.
//   - No records: ErrNotFound, with Rcode 0 (NODATA) if the name has records
//     of another type or a CNAME, 3 (NXDOMAIN) otherwise.
//   - Answer.Authenticated is true when Authenticated[n] is true for every
//     name n of the chain, also on ErrNotFound (a secure denial, DANE-4).
type Fake struct {
	TXT           map[string][]string
	MX            map[string][]MX
	IP            map[string][]netip.Addr
	TLSA          map[string][]TLSA
	SRV           map[string][]SRV
	CNAME         map[string]string
	Errors        map[string]error
	Authenticated map[string]bool

	mu      sync.RWMutex // guards the maps for Set* methods
	qmu     sync.Mutex
	queries []string
}

// Queries returns the lookups made so far, in order, as "TYPE name" with the
// normalized name: "TXT _mta-sts.example.com", "MX example.com",
// "IP mx.example.com", "TLSA _25._tcp.mx.example.com". Lookups with an
// invalid name are not recorded.
func (f *Fake) Queries() []string {
	f.qmu.Lock()
	defer f.qmu.Unlock()
	return slices.Clone(f.queries)
}

// ResetQueries clears the query log.
func (f *Fake) ResetQueries() {
	f.qmu.Lock()
	defer f.qmu.Unlock()
	f.queries = nil
}

// fakeKey normalizes a name for the Set* methods; a name Normalize rejects is
// stored lowercased as given, so the mistake shows up as ErrNotFound.
func fakeKey(name string) string {
	if name == "." {
		return "." // the root (ValidatesDNSSEC)
	}
	if n, err := Normalize(name); err == nil {
		return n
	}
	return strings.ToLower(strings.TrimSuffix(name, "."))
}

// SetTXT sets the TXT records of name (replacing any).
func (f *Fake) SetTXT(name string, txt ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.TXT == nil {
		f.TXT = map[string][]string{}
	}
	f.TXT[fakeKey(name)] = txt
}

// SetMX sets the MX records of name (replacing any).
func (f *Fake) SetMX(name string, mx ...MX) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.MX == nil {
		f.MX = map[string][]MX{}
	}
	f.MX[fakeKey(name)] = mx
}

// SetIP sets the A and AAAA records of name (replacing any).
func (f *Fake) SetIP(name string, addrs ...netip.Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.IP == nil {
		f.IP = map[string][]netip.Addr{}
	}
	f.IP[fakeKey(name)] = addrs
}

// SetTLSA sets the TLSA records at the owner name (e.g.
// "_25._tcp.mx.example.com"), replacing any.
func (f *Fake) SetTLSA(name string, tlsa ...TLSA) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.TLSA == nil {
		f.TLSA = map[string][]TLSA{}
	}
	f.TLSA[fakeKey(name)] = tlsa
}

// SetCNAME makes name an alias of target; an empty target removes it.
func (f *Fake) SetCNAME(name, target string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.CNAME == nil {
		f.CNAME = map[string]string{}
	}
	if target == "" {
		delete(f.CNAME, fakeKey(name))
		return
	}
	f.CNAME[fakeKey(name)] = fakeKey(target)
}

// SetError makes lookups of name fail with err; a nil err removes the
// fault. key is a name (all types) or "TYPE name" (one type, as in
// [Fake.Queries]).
func (f *Fake) SetError(key string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Errors == nil {
		f.Errors = map[string]error{}
	}
	if typ, name, ok := strings.Cut(key, " "); ok {
		key = typ + " " + fakeKey(name)
	} else {
		key = fakeKey(key)
	}
	if err == nil {
		delete(f.Errors, key)
		return
	}
	f.Errors[key] = err
}

// SetAuthenticated sets whether answers for name carry the AD bit.
func (f *Fake) SetAuthenticated(name string, ad bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Authenticated == nil {
		f.Authenticated = map[string]bool{}
	}
	f.Authenticated[fakeKey(name)] = ad
}

// resolve does the shared work of all lookups: normalize, log, follow
// CNAMEs, apply faults. has reports whether a name has records of the
// asked type. It returns the canonical name. Callers hold f.mu.RLock.
func (f *Fake) resolve(ctx context.Context, typ, name string, has func(string) bool) (string, Answer, error) {
	qname, err := Normalize(name)
	if err != nil {
		return "", Answer{}, &Error{Name: name, Qtype: typ, Rcode: RcodeNone,
			Err: fmt.Errorf("%w: %w", err, ErrLookupFailed)}
	}
	f.qmu.Lock()
	f.queries = append(f.queries, typ+" "+qname)
	f.qmu.Unlock()

	fail := func(rcode int, err error) *Error {
		return &Error{Name: qname, Qtype: typ, Rcode: rcode, Server: "fake", Err: err}
	}
	if err := ctx.Err(); err != nil {
		return "", Answer{}, fail(RcodeNone, fmt.Errorf("%w: %w", err, ErrLookupFailed))
	}
	cur := qname
	ans := Answer{Authenticated: true}
	var seen map[string]bool
	for hops := 0; ; hops++ {
		ans.Authenticated = ans.Authenticated && f.Authenticated[cur]
		ans.CanonicalName = cur + "."
		// An error set for "IP host" also fails the A query alone.
		for _, key := range []string{typ + " " + cur, strings.Replace(typ, "IP4", "IP", 1) + " " + cur, cur} {
			if e, ok := f.Errors[key]; ok && e != nil {
				return cur, Answer{CanonicalName: cur + "."}, fail(RcodeNone, withSentinel(e))
			}
		}
		if has(cur) {
			return cur, ans, nil
		}
		target, ok := f.CNAME[cur]
		if !ok {
			break
		}
		if hops == maxCNAMEHops {
			return cur, Answer{CanonicalName: cur + "."}, fail(RcodeNone,
				fmt.Errorf("CNAME chain longer than %d: %w", maxCNAMEHops, ErrLookupFailed))
		}
		if seen == nil {
			seen = map[string]bool{}
		}
		seen[cur] = true
		cur = strings.ToLower(strings.TrimSuffix(target, "."))
		if seen[cur] {
			return cur, Answer{CanonicalName: cur + "."}, fail(RcodeNone,
				fmt.Errorf("CNAME loop at %s.: %w", cur, ErrLookupFailed))
		}
	}
	if f.exists(cur) {
		return cur, ans, fail(0, fmt.Errorf("NODATA%s from fake: %w", at(cur+".", qname), ErrNotFound))
	}
	return cur, ans, fail(3, fmt.Errorf("NXDOMAIN%s from fake: %w", at(cur+".", qname), ErrNotFound))
}

// exists reports whether name owns any record in the fake zone.
func (f *Fake) exists(name string) bool {
	return len(f.TXT[name]) > 0 || len(f.MX[name]) > 0 || len(f.IP[name]) > 0 ||
		len(f.TLSA[name]) > 0 || len(f.SRV[name]) > 0 || f.CNAME[name] != ""
}

// LookupTXT implements [Resolver].
func (f *Fake) LookupTXT(ctx context.Context, name string) ([]string, Answer, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	cn, ans, err := f.resolve(ctx, "TXT", name, func(n string) bool { return len(f.TXT[n]) > 0 })
	if err != nil {
		return nil, ans, err
	}
	return slices.Clone(f.TXT[cn]), ans, nil
}

// LookupMX implements [Resolver]. Hosts are returned as the Client returns
// them (lowercase, no trailing dot, "." for a null MX), sorted by preference.
func (f *Fake) LookupMX(ctx context.Context, name string) ([]MX, Answer, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	cn, ans, err := f.resolve(ctx, "MX", name, func(n string) bool { return len(f.MX[n]) > 0 })
	if err != nil {
		return nil, ans, err
	}
	mxs := slices.Clone(f.MX[cn])
	for i := range mxs {
		mxs[i].Host = mxHost(mxs[i].Host)
	}
	sortMX(mxs)
	return mxs, ans, nil
}

// LookupIP implements [Resolver]. It is logged once, as "IP host".
func (f *Fake) LookupIP(ctx context.Context, host string) ([]netip.Addr, Answer, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	cn, ans, err := f.resolve(ctx, "IP", host, func(n string) bool { return len(f.IP[n]) > 0 })
	if err != nil {
		return nil, ans, err
	}
	return slices.Clone(f.IP[cn]), ans, nil
}

// LookupIPv4 implements [IPv4Resolver]: the IPv4 addresses of IP[host]
// (ErrNotFound when there are none). It is logged as "IP4 host".
func (f *Fake) LookupIPv4(ctx context.Context, host string) ([]netip.Addr, Answer, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	v4 := func(n string) bool { return slices.ContainsFunc(f.IP[n], netip.Addr.Is4) }
	cn, ans, err := f.resolve(ctx, "IP4", host, v4)
	if err != nil {
		return nil, ans, err
	}
	var out []netip.Addr
	for _, a := range f.IP[cn] {
		if a.Is4() {
			out = append(out, a)
		}
	}
	return out, ans, nil
}

// LookupTLSA implements [Resolver], reading TLSA["_port._proto.host"].
func (f *Fake) LookupTLSA(ctx context.Context, port int, proto, host string) ([]TLSA, Answer, error) {
	name, err := TLSAName(port, proto, host)
	if err != nil {
		return nil, Answer{}, &Error{Name: "_" + strconv.Itoa(port) + "._" + proto + "." + host,
			Qtype: "TLSA", Rcode: RcodeNone, Err: fmt.Errorf("%w: %w", err, ErrLookupFailed)}
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	cn, ans, err := f.resolve(ctx, "TLSA", name, func(n string) bool { return len(f.TLSA[n]) > 0 })
	if err != nil {
		return nil, ans, err
	}
	out := slices.Clone(f.TLSA[cn])
	for i := range out {
		out[i].Data = slices.Clone(out[i].Data)
	}
	return out, ans, nil
}

var _ Resolver = (*Fake)(nil)
var _ Resolver = (*Client)(nil)
var _ IPv4Resolver = (*Fake)(nil)
var _ IPv4Resolver = (*Client)(nil)

// ValidatesDNSSEC implements [DNSSECProber]. It is logged as "SOA .";
// Errors["SOA ."] makes it fail (wrapped with ErrLookupFailed, as any error
// of unknown meaning), and otherwise it reports Authenticated["."] (set it
// with SetAuthenticated(".", true)).
func (f *Fake) ValidatesDNSSEC(ctx context.Context) (bool, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	f.qmu.Lock()
	f.queries = append(f.queries, "SOA .")
	f.qmu.Unlock()
	fail := func(err error) (bool, error) {
		return false, &Error{Name: ".", Qtype: "SOA", Rcode: RcodeNone, Server: "fake", Err: err}
	}
	if err := ctx.Err(); err != nil {
		return fail(fmt.Errorf("%w: %w", err, ErrLookupFailed))
	}
	if e := f.Errors["SOA ."]; e != nil {
		if errors.Is(e, ErrNotFound) {
			// The root always has a SOA record: a denial of it is
			// as unusable as any failure.
			e = fmt.Errorf("%v: %w", e, ErrLookupFailed)
		}
		return fail(withSentinel(e))
	}
	return f.Authenticated["."], nil
}
