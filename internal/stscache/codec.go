package stscache

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/mailsts/mailsts/mtasts"
	"github.com/mailsts/mailsts/tlsrpt/result"
)

// ErrCorruptEntry means a stored entry could not be decoded (a truncated
// row, a value written by something else under our Redis prefix, a value
// over MaxEntrySize). Get returns it wrapped; Range skips such entries and
// logs them. The caller should treat the domain as not cached and Put a
// fresh entry, which replaces the corrupt one.
var ErrCorruptEntry = errors.New("stscache: corrupt cache entry")

// MaxEntrySize caps the encoded size of one entry read back from a shared
// store. A real policy is far smaller (RFC 8461 §3.3 suggests fetchers cap
// the policy body at 64 KiB); the cap keeps a hostile or buggy writer of the
// shared Redis from making every daemon decode megabytes per lookup.
const MaxEntrySize = 256 << 10

// zeroMS is the millisecond value that stands for the zero time.Time. The
// zero time is 0001-01-01, whose Unix millisecond value is far outside any
// real timestamp, so it cannot collide with one.
var zeroMS = time.Time{}.UnixMilli()

// toMS converts t to Unix milliseconds (rounding down), with the zero time
// mapped to zeroMS.
func toMS(t time.Time) int64 {
	if t.IsZero() {
		return zeroMS
	}
	return t.UnixMilli()
}

// fromMS is the inverse of toMS. Non-zero times come back in UTC.
func fromMS(ms int64) time.Time {
	if ms == zeroMS {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// msTime is a time.Time that encodes in JSON as Unix milliseconds, with the
// zero time as null.
type msTime time.Time

func (t msTime) MarshalJSON() ([]byte, error) {
	tt := time.Time(t)
	if tt.IsZero() {
		return []byte("null"), nil
	}
	return json.Marshal(tt.UnixMilli())
}

func (t *msTime) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*t = msTime{}
		return nil
	}
	var ms int64
	if err := json.Unmarshal(b, &ms); err != nil {
		return err
	}
	*t = msTime(fromMS(ms))
	return nil
}

// policyJSON is the stored form of an mtasts.Policy. It is our own format
// (not the RFC 8461 text form) so that a store never depends on the policy
// parser, and nil and empty slices round-trip as they were.
type policyJSON struct {
	Mode       string     `json:"mode"`
	MX         []string   `json:"mx"`
	MaxAge     int64      `json:"max_age"`
	Extensions [][]string `json:"ext"`
}

func encodePolicy(p *mtasts.Policy) *policyJSON {
	if p == nil {
		return nil
	}
	pj := &policyJSON{Mode: string(p.Mode), MX: p.MX, MaxAge: p.MaxAge}
	if p.Extensions != nil {
		pj.Extensions = make([][]string, len(p.Extensions))
		for i, x := range p.Extensions {
			pj.Extensions[i] = []string{x.Key, x.Value}
		}
	}
	return pj
}

func decodePolicy(pj *policyJSON) (*mtasts.Policy, error) {
	if pj == nil {
		return nil, nil
	}
	switch mtasts.Mode(pj.Mode) {
	case mtasts.ModeEnforce, mtasts.ModeTesting, mtasts.ModeNone:
	default:
		return nil, fmt.Errorf("unknown policy mode %q", pj.Mode)
	}
	// The stored max_age is bounded like a parsed one (RFC 8461 §3.2: at
	// most 31557600), so a corrupt value cannot make a policy immortal.
	if pj.MaxAge < 0 || pj.MaxAge > mtasts.MaxMaxAge {
		return nil, fmt.Errorf("max_age %d out of range", pj.MaxAge)
	}
	p := &mtasts.Policy{Mode: mtasts.Mode(pj.Mode), MX: pj.MX, MaxAge: pj.MaxAge}
	if pj.Extensions != nil {
		p.Extensions = make([]mtasts.Extension, len(pj.Extensions))
		for i, kv := range pj.Extensions {
			if len(kv) != 2 {
				return nil, fmt.Errorf("extension %d has %d parts, want 2", i, len(kv))
			}
			p.Extensions[i] = mtasts.Extension{Key: kv[0], Value: kv[1]}
		}
	}
	return p, nil
}

// entryJSON is the stored form of an mtasts.Entry (Redis values, fuzzing).
type entryJSON struct {
	Domain        string      `json:"domain"`
	Policy        *policyJSON `json:"policy"`
	ID            string      `json:"id,omitempty"`
	FetchedAt     msTime      `json:"fetched_at"`
	CheckedAt     msTime      `json:"checked_at"`
	NoPolicyUntil msTime      `json:"no_policy_until"`
	FailedID      string      `json:"failed_id,omitempty"`
	FailedAt      msTime      `json:"failed_at"`
	Failures      int         `json:"failures,omitempty"`
	LastError     string      `json:"last_error,omitempty"`
	// LastErrorType and LastErrorTemporary were added after the first
	// release: values written before have neither (they decode as zero,
	// and mtasts reads the class from LastError's text, its legacy path).
	// omitempty keeps entries without a failure as they were.
	LastErrorType      string `json:"last_error_type,omitempty"`
	LastErrorTemporary bool   `json:"last_error_temporary,omitempty"`
	LastUsed           msTime `json:"last_used"`
}

// encodeEntry returns the JSON form of e. Times keep millisecond precision.
func encodeEntry(e *mtasts.Entry) ([]byte, error) {
	ej := entryJSON{
		Domain:        e.Domain,
		Policy:        encodePolicy(e.Policy),
		ID:            e.ID,
		FetchedAt:     msTime(e.FetchedAt),
		CheckedAt:     msTime(e.CheckedAt),
		NoPolicyUntil: msTime(e.NoPolicyUntil),
		FailedID:      e.FailedID,
		FailedAt:      msTime(e.FailedAt),
		Failures:      e.Failures,
		LastError:     e.LastError,
		LastUsed:      msTime(e.LastUsed),

		LastErrorType:      string(e.LastErrorType),
		LastErrorTemporary: e.LastErrorTemporary,
	}
	return json.Marshal(&ej)
}

// decodeEntry parses the JSON form of an entry. It never panics; every
// failure matches ErrCorruptEntry.
func decodeEntry(b []byte) (*mtasts.Entry, error) {
	if len(b) > MaxEntrySize {
		return nil, fmt.Errorf("%w: %d bytes, over the %d byte cap", ErrCorruptEntry, len(b), MaxEntrySize)
	}
	var ej entryJSON
	if err := json.Unmarshal(b, &ej); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorruptEntry, err)
	}
	p, err := decodePolicy(ej.Policy)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorruptEntry, err)
	}
	if err := checkDomain(ej.Domain); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorruptEntry, err)
	}
	if ej.Failures < 0 || ej.Failures > math.MaxInt32 {
		return nil, fmt.Errorf("%w: failures %d out of range", ErrCorruptEntry, ej.Failures)
	}
	return &mtasts.Entry{
		Domain:        ej.Domain,
		Policy:        p,
		ID:            ej.ID,
		FetchedAt:     time.Time(ej.FetchedAt),
		CheckedAt:     time.Time(ej.CheckedAt),
		NoPolicyUntil: time.Time(ej.NoPolicyUntil),
		FailedID:      ej.FailedID,
		FailedAt:      time.Time(ej.FailedAt),
		Failures:      ej.Failures,
		LastError:     ej.LastError,
		LastUsed:      time.Time(ej.LastUsed),

		LastErrorType:      result.Type(ej.LastErrorType),
		LastErrorTemporary: ej.LastErrorTemporary,
	}, nil
}

// ErrInvalidDomain is returned by Put for a domain no
// policy domain can have (empty, longer than 253 octets, or holding bytes
// that would break a Redis key pattern or a log line). It is a caller bug:
// mtasts normalises domains to lowercase A-labels before they get here.
var ErrInvalidDomain = errors.New("stscache: invalid domain")

// checkDomain rejects domains that cannot be a policy domain. It is not a
// full hostname check (the mtasts package owns that); it only keeps keys
// printable and bounded.
func checkDomain(d string) error {
	if d == "" || len(d) > 253 {
		return fmt.Errorf("%w: length %d", ErrInvalidDomain, len(d))
	}
	if i := strings.IndexFunc(d, func(r rune) bool {
		return r <= ' ' || r >= 0x7f || strings.ContainsRune(`*?[]\`, r)
	}); i >= 0 {
		return fmt.Errorf("%w: %q", ErrInvalidDomain, d)
	}
	return nil
}
