// Package dnsresolve is mailsts's one DNS layer: TXT, MX, A/AAAA and TLSA
// lookups with a context, through configurable servers, with the DNSSEC AD
// bit exposed per answer and a clear split between "no such record" and
// "the lookup failed".
//
// Every part of mailsts resolves through a [Resolver]: the [Client] (built on
// github.com/miekg/dns) in production, a [Fake] in unit tests, and the
// testnet DNS server on loopback in integration tests.
//
// Conformance notes:
//   - Names are converted to A-labels (IDNA, Lookup profile) and made fully
//     qualified before querying (RFC 8461 §3.1, STS-TXT-1).
//   - TXT records split into several character-strings are joined with no
//     separator (RFC 8461 §3.1, STS-TXT-9); each RR is one string.
//   - NXDOMAIN and NODATA are [ErrNotFound]; SERVFAIL, REFUSED, timeouts and
//     malformed answers are [ErrLookupFailed] (STS-TXT-13).
//   - CNAME chains are followed (bounded), and the answer reports the
//     canonical name (STS-TXT-10).
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
