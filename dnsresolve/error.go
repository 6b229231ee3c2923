package dnsresolve

import (
	"errors"
	"fmt"
)

// RcodeNone is the [Error.Rcode] when no usable reply was received
// (timeout, network error, malformed reply, invalid name).
const RcodeNone = -1

// Error is the error returned by [Client] and [Fake] lookups. It says which
// question failed and why; errors.Is on it matches exactly one of
// [ErrNotFound] and [ErrLookupFailed], and also the underlying cause
// (context.DeadlineExceeded, a *net.OpError, [ErrInvalidName], …).
//
// Its message reads like
//
//	dns: _mta-sts.example.com TXT: SERVFAIL from 127.0.0.1:5300: dns: lookup failed
type Error struct {
	// Name is the queried name in normalized form (no trailing dot), or the
	// input as given when it could not be normalized.
	Name string
	// Qtype is the query type: "TXT", "MX", "A", "AAAA", "TLSA".
	Qtype string
	// Rcode is the DNS response code of the reply that decided the outcome
	// (0 for NODATA, 3 for NXDOMAIN, 2 for SERVFAIL, …), or [RcodeNone].
	Rcode int
	// Server is the "host:port" that gave that reply or failed last; empty
	// when no server was involved.
	Server string
	// Err is the cause. It wraps ErrNotFound or ErrLookupFailed.
	Err error
}

func (e *Error) Error() string {
	return "dns: " + e.Name + " " + e.Qtype + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// withSentinel makes sure err matches ErrNotFound or ErrLookupFailed,
// wrapping it with ErrLookupFailed when it matches neither: an error of
// unknown meaning is never "no record".
func withSentinel(err error) error {
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrLookupFailed) {
		return err
	}
	return fmt.Errorf("%w: %w", err, ErrLookupFailed)
}
