package dane

import (
	"context"
	"errors"
	"sync"

	"github.com/mailsts/mailsts/dnsresolve"
)

// DefaultMaxHosts is how many MX hosts a [Decider] looks at when its
// MaxHosts is 0: the DNS work of one decision stays bounded whatever the
// MX RRset holds.
const DefaultMaxHosts = 16

// Summary says whether DANE applies to a destination (RFC 7672 §2.2).
type Summary uint8

// Summaries, from the weakest claim to the strongest; TemporaryFailure
// stands apart.
const (
	// None: DANE applies to no MX host (insecure or null MX, or no host
	// with DNSSEC-validated TLSA records). MTA-STS may decide (DANE-4).
	None Summary = iota
	// Some: some MX hosts, not all, have DNSSEC-validated TLSA records
	// (usable or not); or all have them and some are unusable (DANE-3).
	Some
	// All: every MX host has DNSSEC-validated usable TLSA records.
	All
	// TemporaryFailure: a lookup failed where DANE could apply; whether it
	// applies is unknown. Defer; never downgrade (DANE-5, STS-DANE-3).
	TemporaryFailure
)

func (s Summary) String() string {
	switch s {
	case None:
		return "none"
	case Some:
		return "some"
	case All:
		return "all"
	case TemporaryFailure:
		return "temporary-failure"
	}
	return "invalid"
}

// HostStatus is the DANE situation of one MX host.
type HostStatus uint8

// Host statuses (RFC 7672 §2.2).
const (
	// HostInsecure: the MX RRset, the host's address records or its TLSA
	// RRset is not DNSSEC-validated: no DANE for the host (DANE-1).
	HostInsecure HostStatus = iota
	// HostNoTLSA: no TLSA records at _25._tcp.<host>: no DANE (DANE-4).
	HostNoTLSA
	// HostUnusable: validated TLSA records, none usable for SMTP: TLS is
	// mandatory but unauthenticated (DANE-3, DANE-6).
	HostUnusable
	// HostUsable: validated usable TLSA records: DANE authenticates the
	// host, and only DANE (DANE-2).
	HostUsable
	// HostNoAddress: the host has no address records; a sender cannot
	// connect to it, so it does not count towards the Summary.
	HostNoAddress
	// HostFailed: the address or TLSA lookup failed under a secure MX
	// RRset (DANE-5).
	HostFailed
)

func (s HostStatus) String() string {
	switch s {
	case HostInsecure:
		return "insecure"
	case HostNoTLSA:
		return "no-tlsa"
	case HostUnusable:
		return "unusable"
	case HostUsable:
		return "usable"
	case HostNoAddress:
		return "no-address"
	case HostFailed:
		return "failed"
	}
	return "invalid"
}

// MXLookup is the outcome of the MX lookup of a destination, as
// [dnsresolve.Resolver.LookupMX] returned it.
type MXLookup struct {
	Records []dnsresolve.MX
	Answer  dnsresolve.Answer
	Err     error
}

// HostLookup is what DNS said about one MX host: its address records (A
// and AAAA together, as [dnsresolve.Resolver.LookupIP] returns them) and
// its TLSA RRset at _25._tcp.<host>. The TLSA fields are ignored when the
// address records decide alone (not validated, absent, failed).
type HostLookup struct {
	Name    string
	AddrAD  bool
	AddrErr error
	TLSA    []dnsresolve.TLSA
	TLSAAD  bool
	TLSAErr error
}

// Host is the decision for one MX host.
type Host struct {
	Name   string
	Status HostStatus
	// TLSA is the validated TLSA RRset for HostUsable and HostUnusable.
	TLSA []dnsresolve.TLSA
	// Err is the failed lookup for HostFailed, nil otherwise.
	Err error
}

// Result is a DANE decision for a destination domain.
type Result struct {
	Domain  string
	Summary Summary
	// MXSecure: the MX RRset (or its secure denial, for the implicit MX)
	// was DNSSEC-validated.
	MXSecure bool
	// NullMX: the domain publishes a null MX (RFC 7505); Summary is None.
	NullMX bool
	// ImplicitMX: the domain has no MX RRset and the domain itself is
	// the MX host (RFC 5321 §5.1).
	ImplicitMX bool
	// Hosts are the MX hosts looked at, in preference order: empty when
	// the MX lookup failed, the MX RRset is null, and without lookups
	// when it is insecure (every host HostInsecure).
	Hosts []Host
	// Err is the first failed lookup when Summary is TemporaryFailure.
	Err error
	// MXErr is the MX lookup's error: nil, one matching
	// dnsresolve.ErrNotFound (implicit MX), or one matching
	// dnsresolve.ErrLookupFailed (Summary TemporaryFailure).
	MXErr error
}

// Decide makes the DANE decision of RFC 7672 §2.2 from DNS answers already
// at hand: hosts must be the MX hosts of mx, in its order ("." entries and
// hosts beyond a caller's own bound left out), or the domain itself when
// mx is a denial. It does no I/O; [Decider.Applies] collects the answers
// and calls it.
//
// The rules, in order:
//   - a failed MX lookup is TemporaryFailure: nothing proves DANE does not
//     apply (DANE-5);
//   - a null MX is None;
//   - an MX RRset (or the denial that makes the domain its own MX) that is
//     not DNSSEC-validated is None: DANE does not apply (DANE-1);
//   - per host: failed address lookup → HostFailed; no address →
//     HostNoAddress; address records not validated → HostInsecure, and
//     the TLSA RRset is not looked at (DANE-1, as Postfix); failed TLSA
//     lookup → HostFailed; no TLSA → HostNoTLSA; TLSA not validated →
//     HostInsecure; else HostUsable or HostUnusable (DANE-3, DANE-6);
//   - any HostFailed makes the Summary TemporaryFailure; otherwise, over
//     the hosts with addresses: all usable → All, any with TLSA → Some,
//     else None.
func Decide(domain string, mx MXLookup, hosts []HostLookup) Result {
	res := Result{Domain: domain, MXErr: mx.Err}
	switch {
	case errors.Is(mx.Err, dnsresolve.ErrNotFound):
		res.ImplicitMX = true
	case mx.Err != nil:
		res.Summary, res.Err = TemporaryFailure, mx.Err
		return res
	case len(mx.Records) == 1 && mx.Records[0].Host == ".":
		res.NullMX = true
		res.MXSecure = mx.Answer.Authenticated
		return res
	}
	res.MXSecure = mx.Answer.Authenticated
	res.Hosts = make([]Host, len(hosts))
	if !res.MXSecure {
		for i, h := range hosts {
			res.Hosts[i] = Host{Name: h.Name, Status: HostInsecure}
		}
		return res
	}
	counted, usable, withTLSA := 0, 0, 0
	for i, h := range hosts {
		out := &res.Hosts[i]
		out.Name = h.Name
		out.Status, out.Err = hostStatus(h)
		switch out.Status {
		case HostFailed:
			if res.Err == nil {
				res.Err = out.Err
			}
		case HostNoAddress:
			continue
		case HostUsable:
			usable++
			withTLSA++
			out.TLSA = h.TLSA
		case HostUnusable:
			withTLSA++
			out.TLSA = h.TLSA
		}
		counted++
	}
	switch {
	case res.Err != nil:
		res.Summary = TemporaryFailure
	case counted > 0 && usable == counted:
		res.Summary = All
	case withTLSA > 0:
		res.Summary = Some
	default:
		res.Summary = None
	}
	return res
}

func hostStatus(h HostLookup) (HostStatus, error) {
	switch {
	case errors.Is(h.AddrErr, dnsresolve.ErrNotFound):
		return HostNoAddress, nil
	case h.AddrErr != nil:
		return HostFailed, h.AddrErr
	case !h.AddrAD:
		// RFC 7672 §2.2 (DANE-1): TLSA records of a host whose
		// address records are insecure are not used.
		return HostInsecure, nil
	case errors.Is(h.TLSAErr, dnsresolve.ErrNotFound):
		return HostNoTLSA, nil
	case h.TLSAErr != nil:
		// DANE-5: a failed TLSA lookup under a secure MX RRset.
		return HostFailed, h.TLSAErr
	case len(h.TLSA) == 0:
		return HostNoTLSA, nil
	case !h.TLSAAD:
		return HostInsecure, nil
	case AnyUsable(h.TLSA):
		return HostUsable, nil
	default:
		return HostUnusable, nil
	}
}

// Decider decides whether DANE applies to a destination domain, looking up
// the MX RRset, then each MX host's address records and TLSA RRset
// concurrently. The zero value is ready to use.
type Decider struct {
	// Resolver answers the lookups; it must report the DNSSEC AD bit of a
	// validating resolver the caller trusts. nil means a zero
	// dnsresolve.Client (the servers of /etc/resolv.conf).
	Resolver dnsresolve.Resolver
	// MaxHosts bounds the MX hosts looked at; 0 means DefaultMaxHosts.
	MaxHosts int
}

func (d *Decider) resolver() dnsresolve.Resolver {
	if d.Resolver != nil {
		return d.Resolver
	}
	return &dnsresolve.Client{}
}

// Applies looks up the MX RRset of domain and decides (see [Decide]).
func (d *Decider) Applies(ctx context.Context, domain string) Result {
	var mx MXLookup
	mx.Records, mx.Answer, mx.Err = d.resolver().LookupMX(ctx, domain)
	return d.ForMX(ctx, domain, mx)
}

// ForMX decides for domain from an MX lookup the caller already made (a
// caller that keeps MX sets saves the query). Hosts are looked up only
// when the MX RRset is secure.
func (d *Decider) ForMX(ctx context.Context, domain string, mx MXLookup) Result {
	if mx.Err != nil && !errors.Is(mx.Err, dnsresolve.ErrNotFound) ||
		!mx.Answer.Authenticated ||
		len(mx.Records) == 1 && mx.Records[0].Host == "." {
		return Decide(domain, mx, hostsOf(domain, mx, d.maxHosts()))
	}
	names := hostsOf(domain, mx, d.maxHosts())
	hosts := make([]HostLookup, len(names))
	r := d.resolver()
	var wg sync.WaitGroup
	for i := range names {
		h := &hosts[i]
		h.Name = names[i].Name
		// Both at once: one round trip. The TLSA answer is ignored when
		// the address records are not validated (Decide).
		wg.Go(func() {
			var ans dnsresolve.Answer
			_, ans, h.AddrErr = r.LookupIP(ctx, h.Name)
			h.AddrAD = ans.Authenticated
		})
		wg.Go(func() {
			var ans dnsresolve.Answer
			h.TLSA, ans, h.TLSAErr = r.LookupTLSA(ctx, 25, "tcp", h.Name)
			h.TLSAAD = ans.Authenticated
		})
	}
	wg.Wait()
	return Decide(domain, mx, hosts)
}

// Applies decides with a Decider using r (see [Decider.Applies]).
func Applies(ctx context.Context, r dnsresolve.Resolver, domain string) Result {
	return (&Decider{Resolver: r}).Applies(ctx, domain)
}

func (d *Decider) maxHosts() int {
	if d.MaxHosts > 0 {
		return d.MaxHosts
	}
	return DefaultMaxHosts
}

// hostsOf returns the MX hosts to look at, without lookups: the records'
// hosts in order ("." left out), bounded by max; the domain itself for a
// denial of MX (RFC 5321 §5.1).
func hostsOf(domain string, mx MXLookup, max int) []HostLookup {
	if mx.Err != nil {
		if errors.Is(mx.Err, dnsresolve.ErrNotFound) {
			return []HostLookup{{Name: domain}}
		}
		return nil
	}
	var out []HostLookup
	for _, r := range mx.Records {
		if r.Host == "." {
			continue
		}
		if len(out) == max {
			break
		}
		out = append(out, HostLookup{Name: r.Host})
	}
	return out
}
