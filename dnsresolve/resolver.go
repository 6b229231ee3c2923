// Package dnsresolve is mailsts's one DNS layer: TXT, MX, A/AAAA and TLSA
// lookups with a context, through configurable servers, with the DNSSEC AD
// bit exposed per answer and a clear split between "no such record" and
// "the lookup failed".
//
// Every part of mailsts resolves through a [Resolver]: the [Client] (built on
// github.com/miekg/dns) in production, a [Fake] in unit tests, and the
// testnet DNS server on loopback in integration tests.
//
// # Using it
//
// A [Client] asks recursive resolvers (by default those of /etc/resolv.conf,
// see [ServersFromResolvConf]); its zero value works, [NewClient] validates
// the addresses up front:
//
//	c, err := dnsresolve.NewClient("127.0.0.1:53")
//	txts, ans, err := c.LookupTXT(ctx, "_mta-sts.example.com")
//	switch {
//	case errors.Is(err, dnsresolve.ErrNotFound):   // no record: act on it
//	case errors.Is(err, dnsresolve.ErrLookupFailed): // unknown: keep state, defer
//	}
//
// Every error is an [*Error] naming the question, the rcode and the server,
// and matches exactly one of [ErrNotFound] and [ErrLookupFailed].
//
// # DNSSEC
//
// The Client does not validate DNSSEC itself. It sets the DO bit so that a
// validating resolver reports, through the AD bit, whether it validated the
// reply; [Answer.Authenticated] carries that bit, also for denials
// (ErrNotFound), which is what DANE needs: secure TLSA data (DANE-1), or a
// secure proof that there is none (DANE-4). A failed lookup is never
// authenticated (DANE-5). The bit is only as trustworthy as the path to the
// resolver: use one on loopback or over a trusted link (RFC 6698 §4.1,
// RFC 7672 §2.1).
//
// Conformance notes:
//   - Names are converted to A-labels (IDNA, Lookup profile, with '_'
//     allowed for service labels) and made fully qualified before querying
//     (RFC 8461 §3.1, STS-TXT-1, GO-10); a trailing dot is accepted once.
//   - TXT records split into several character-strings are joined with no
//     separator (RFC 8461 §3.1, STS-TXT-9, GO-1); each RR is one string,
//     with its raw bytes.
//   - NXDOMAIN and NODATA are [ErrNotFound]; SERVFAIL, REFUSED, other
//     rcodes, timeouts, network errors and malformed or mismatched replies
//     are [ErrLookupFailed] (STS-TXT-13). With a CNAME chain the rcode is
//     about the chain's last name (RFC 6604 §3).
//   - CNAME chains are followed (at most 8 hops, loops detected), and the
//     answer reports the canonical name (STS-TXT-10, RFC 1034 §3.6.2).
//   - Queries carry EDNS0 with a 1232-byte UDP payload and the DO bit
//     (RFC 6891, RFC 3225); truncated UDP replies are retried over TCP
//     (RFC 7766 §5).
//   - MX hosts are lowercase without the trailing dot; a null MX keeps the
//     host "." (RFC 7505). TLSA records are looked up at _port._proto.host
//     (RFC 6698 §3, RFC 7672 §2.2).
package dnsresolve

import (
	"context"
	"errors"
	"net/netip"
)

// Sentinel errors. Every error returned by a Resolver matches exactly one of
// them with errors.Is.
var (
	// ErrNotFound means the name does not exist (NXDOMAIN) or has no records
	// of the asked type (NODATA). For MTA-STS this means "no record": the
	// caller may act on it.
	ErrNotFound = errors.New("dns: no such record")
	// ErrLookupFailed means the answer is unknown: SERVFAIL, REFUSED,
	// timeout, network error or a malformed reply. Callers must not treat it
	// as "no record" (keep cached state, defer, or report dns-error).
	ErrLookupFailed = errors.New("dns: lookup failed")
)

// Answer describes how an answer was obtained.
//
// Lookups that fail with ErrNotFound still return the Answer of the denial:
// Authenticated then says whether the absence is DNSSEC-proven (DANE-4).
// With ErrLookupFailed, Authenticated is always false.
type Answer struct {
	// Authenticated is the DNSSEC AD bit of the final response. It is only
	// meaningful when the configured server is a validating resolver that the
	// caller trusts (e.g. unbound on loopback).
	Authenticated bool
	// CanonicalName is the owner name of the records after following CNAMEs,
	// fully qualified with a trailing dot. Equal to the queried name when no
	// CNAME was involved.
	CanonicalName string
}

// MX is one MX record.
type MX struct {
	Pref uint16
	// Host is the exchange, lowercased, in A-label form, with the trailing
	// dot removed. A null MX (RFC 7505) has Host ".".
	Host string
}

// TLSA is one TLSA record (RFC 6698).
type TLSA struct {
	Usage        uint8
	Selector     uint8
	MatchingType uint8
	Data         []byte // certificate association data
}

// IPv4Resolver is implemented by resolvers that can look up a host's A
// records alone ([Client] and [Fake] do): a caller that cannot connect to
// IPv6 addresses saves the AAAA query.
type IPv4Resolver interface {
	// LookupIPv4 returns the A addresses of host. ErrNotFound when it has
	// none (NXDOMAIN/NODATA): it may still have AAAA records.
	LookupIPv4(ctx context.Context, host string) ([]netip.Addr, Answer, error)
}

// Resolver is the DNS interface used everywhere in mailsts. Implementations
// must be safe for concurrent use. Names may be given with or without the
// trailing dot, and as U-labels or A-labels.
type Resolver interface {
	// LookupTXT returns the TXT records at name, one string per RR, with
	// multi-string RRs joined with no separator.
	LookupTXT(ctx context.Context, name string) ([]string, Answer, error)
	// LookupMX returns the MX records at name sorted by preference
	// (stable order for equal preference as received).
	LookupMX(ctx context.Context, name string) ([]MX, Answer, error)
	// LookupIP returns the A and AAAA addresses of host. ErrNotFound only
	// when both are NXDOMAIN/NODATA; ErrLookupFailed when either failed and
	// none was found.
	LookupIP(ctx context.Context, host string) ([]netip.Addr, Answer, error)
	// LookupTLSA returns the TLSA records at _port._proto.host
	// (e.g. port 25, proto "tcp").
	LookupTLSA(ctx context.Context, port int, proto, host string) ([]TLSA, Answer, error)
}

// DNSSECProber is implemented by resolvers that can tell whether their
// servers validate DNSSEC ([Client] and [Fake] do).
//
// A validating resolver sets the AD bit on data it has validated
// (RFC 4035 §3.2.3) when the query asks for it with the DO or the AD bit
// (RFC 6840 §5.7, §5.8), and it always validates the root zone, signed
// since 2010 with the trust anchor every validator ships. So an answer for
// the root without the AD bit proves that the server does not validate:
// none of its answers will ever be authenticated, and DANE (RFC 7672
// §2.1, which needs authenticated MX, address and TLSA answers) cannot
// apply through it.
type DNSSECProber interface {
	// ValidatesDNSSEC asks every server for the root zone's SOA record
	// with the DO and AD bits. It returns true as soon as one answer
	// carries the AD bit, false when every server answered NOERROR
	// without it, and an error wrapping ErrLookupFailed when it cannot
	// tell (a server did not answer, or answered with another rcode):
	// "unknown", which proves nothing either way.
	ValidatesDNSSEC(ctx context.Context) (bool, error)
}
