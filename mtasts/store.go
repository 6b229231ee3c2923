package mtasts

import (
	"context"
	"time"

	"github.com/mailsts/mailsts/tlsrpt/result"
)

// Entry is what a [Cache] keeps per policy domain: the last policy that was
// fetched successfully (if any), the TXT id it was fetched for, and the
// failure and back-off state of later attempts.
//
// A Store must round-trip every field exactly (times at least to the
// millisecond).
type Entry struct {
	// Domain is the policy domain: lowercase A-labels, no trailing dot.
	Domain string
	// Policy is the last successfully fetched policy, or nil when none is
	// known (a negative entry: the domain had no usable policy when last
	// checked).
	Policy *Policy
	// ID is the TXT record id that Policy was fetched for.
	ID string
	// FetchedAt is when Policy was fetched. The policy is valid while
	// now < FetchedAt + MaxAge (STS-CACHE-2).
	FetchedAt time.Time
	// CheckedAt is when the TXT record was last read successfully (the id
	// was found equal, or a new policy was fetched).
	CheckedAt time.Time
	// NoPolicyUntil is the end of negative caching: until then the domain
	// is known to have no usable policy and is not looked up again.
	NoPolicyUntil time.Time

	// FailedID is the TXT id whose fetch last failed, FailedAt when, and
	// Failures how many times in a row (STS-FETCH-7, STS-CACHE-8).
	FailedID string
	FailedAt time.Time
	Failures int
	// LastError is the RFC 8460 result type (or "dns-error") and message of
	// the last failed attempt, for operators; empty after a success.
	LastError string
	// LastErrorType is the class of the last failed attempt ([ResultType]
	// of its error), and LastErrorTemporary whether it was [Temporary];
	// both zero after a success. The Cache brings a remembered failure
	// back from these fields, not from LastError's text.
	//
	// Legacy: entries written before these fields existed (and Stores that
	// do not keep them) have only LastError; for those the Cache reads the
	// class from LastError's "<type>[+temporary]: " prefix.
	LastErrorType      result.Type
	LastErrorTemporary bool

	// LastUsed is when the entry last answered a query, for eviction of
	// entries unused for a long time. Stores may keep it coarse.
	LastUsed time.Time
}

// Expires returns when the cached policy stops being valid: FetchedAt plus
// max_age. It returns the zero time when there is no policy.
func (e *Entry) Expires() time.Time {
	if e == nil || e.Policy == nil {
		return time.Time{}
	}
	return e.FetchedAt.Add(time.Duration(e.Policy.MaxAge) * time.Second)
}

// Valid reports whether the entry holds a policy that has not expired at
// now (STS-CACHE-2: valid while now - fetched_at < max_age).
func (e *Entry) Valid(now time.Time) bool {
	return e != nil && e.Policy != nil && now.Before(e.Expires())
}

// Store persists cache entries. Implementations must be safe for concurrent
// use. The mtasts package ships [MemoryStore]; mailsts's daemon adds SQLite
// and Redis stores.
type Store interface {
	// Get returns the entry for domain, or (nil, nil) when there is none.
	Get(ctx context.Context, domain string) (*Entry, error)
	// Put stores e under e.Domain, replacing any earlier entry. The store
	// must not keep a reference to e's mutable parts after returning
	// (callers may reuse it); stored policies are treated as immutable.
	Put(ctx context.Context, e *Entry) error
	// Delete removes the entry for domain; deleting a missing entry is not
	// an error.
	Delete(ctx context.Context, domain string) error
	// Range calls fn for every entry, in no particular order, until fn
	// returns false.
	Range(ctx context.Context, fn func(*Entry) bool) error
}
