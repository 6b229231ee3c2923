// Package mtasts implements the sending side of SMTP MTA Strict Transport
// Security (MTA-STS, RFC 8461): the _mta-sts TXT record, the policy format,
// fetching the policy over HTTPS, matching MX hosts against the policy, and a
// cache that never downgrades.
//
// A sending MTA looks up the TXT record at _mta-sts.<domain>
// ([SelectRecord], [ParseRecord]); when its id is new, it fetches
// [PolicyURL] and parses the body ([ParsePolicy]); it then delivers only to
// MX hosts that match one of the policy's mx patterns ([Policy.Match]), over
// TLS with a certificate valid for that MX host name.
//
// Layers, bottom up:
//   - pure formats: [ParseRecord], [SelectRecord], [ParsePolicy],
//     [ParsePolicyStrict], [ParsePolicyDetail], [Policy.String],
//     [ValidPattern], [MatchPattern], [Policy.Match], [Policy.CheckMX];
//     no I/O, fuzzed;
//   - network: [Client] ([Client.LookupRecord]: TXT through dnsresolve;
//     [Client.Fetch]: HTTPS; [Client.Get]: both);
//   - [Cache] over a small [Store] interface, with an injected clock.
//
// Errors are classified with sentinels (ErrNoRecord, ErrDNS, ErrPolicyFetch,
// …) and mapped to RFC 8460 result types by [ResultType].
//
// Conformance of the pure layer (IDs from docs/rfc-checklist.md):
//   - RFC 8461 §3.1 TXT record: the ABNF exactly, "v=STSv1" first and
//     case-sensitive, id of 1-32 letters and digits, extensions kept,
//     first of a repeated field wins (STS-TXT-2..8, STS-TXT-12); exactly
//     one record beginning "v=STSv1" must remain (STS-TXT-7).
//   - RFC 8461 §3.2 policy: LF or CRLF lines, case-sensitive keys and
//     values, required version/mode/max_age and mx unless mode none, one
//     mx per line, extensions kept, first of a repeated key wins
//     (STS-POL-3..12, STS-ERRATA-1, STS-ERRATA-3).
//   - RFC 8461 §4.1 MX matching: ASCII case-insensitive, "*." covers
//     exactly one label, A-labels compared (STS-MX-2..5, TLS-NAME-1/3/5/6).
//
// Checklist decisions (see docs/rfc-checklist.md, OPEN table):
//   - OPEN-2: [ParsePolicy] clamps max_age above 31557600 to 31557600 and
//     reports it as a [Notice]; [ParsePolicyStrict] rejects it.
//   - OPEN-3: [ParsePolicy] is lenient where senders meet known publisher
//     mistakes, and reports each tolerance as a [Notice];
//     [ParsePolicyStrict] follows the ABNF and rejects each one:
//     trailing blank (or whitespace-only) lines (STS-POL-5); a leading UTF-8
//     byte-order mark (STS-POL-14); whitespace before a key (STS-POL-5);
//     one trailing dot on an mx pattern, which is removed (STS-POL-8); an
//     extension with an empty value, which is dropped (STS-POL-10).
//     Both modes reject everything else the grammar forbids, including
//     mode/version case (STS-POL-6), WSP before ":" (STS-POL-5), blank
//     lines elsewhere, comments, CR-only line ends (STS-POL-4), several
//     mx in one line (STS-POL-9), 11-digit max_age (STS-POL-7), invalid
//     UTF-8 (STS-POL-14), and bodies over 64 KiB (STS-POL-13).
//   - STS-POL-11: later occurrences of a repeated key are ignored without
//     checking their values (each is a [Notice] in both modes); for
//     extensions too, the first occurrence is kept.
//   - STS-POL-8: mx patterns are RFC 5321 domains within the DNS limits of
//     63 bytes a label and 253 in all.
//   - STS-MX-5, TLS-NAME-1: a host with U-labels is converted with the
//     IDNA Lookup profile and must survive the round trip unchanged (up to
//     ASCII case), so UTS 46 mapping never folds, say, the Kelvin sign
//     into "k". Any invalid host or pattern matches nothing.
//   - OPEN-4: an unchanged TXT id does not extend a cached policy's life;
//     only a successful fetch does.
//   - STS-FETCH-11: a cached policy due for refresh is fetched even when the
//     TXT lookup fails (RFC 8461 §10.2: "regardless of the state of the TXT
//     record"), so suppressing the record does not make a policy expire.
//   - STS-SEL-4: IP addresses, bracketed or bare, are not policy domains:
//     every entry point rejects them with ErrInvalidDomain.
//   - STS-ERRATA-2: a TXT record is a candidate when it begins with
//     "v=STSv1", optional WSP, then ";" (or is exactly "v=STSv1"). A
//     record with trailing WSP and no final ";" is invalid, as the ABNF
//     says (STS-TXT-5).
package mtasts

import (
	"errors"
	"log/slog"
	"strings"

	"github.com/mailsts/mailsts/tlsrpt/result"
)

// Version is the only defined value of the TXT "v" field and the policy
// "version" field.
const Version = "STSv1"

// MaxMaxAge is the largest max_age RFC 8461 §3.2 allows (about one year).
const MaxMaxAge = 31557600

// Mode is a policy mode.
type Mode string

// The policy modes of RFC 8461 §5.
const (
	ModeEnforce Mode = "enforce"
	ModeTesting Mode = "testing"
	ModeNone    Mode = "none"
)

// Extension is an unknown key/value pair, kept so records and policies
// round-trip. RFC 8461 §3.1/§3.2: unknown fields are accepted and ignored.
type Extension struct {
	Key   string
	Value string
}

// Record is a parsed _mta-sts TXT record (RFC 8461 §3.1).
type Record struct {
	// ID identifies the policy instance: 1-32 letters and digits, opaque,
	// compared case-sensitively (STS-CACHE-3).
	ID         string
	Extensions []Extension
}

// Policy is a parsed MTA-STS policy (RFC 8461 §3.2).
type Policy struct {
	Mode Mode
	// MX holds the mx patterns in policy order, as written (a lenient parse
	// strips one trailing dot). Matching is case-insensitive.
	MX []string
	// MaxAge is the policy lifetime in seconds, 0..MaxMaxAge (clamped).
	MaxAge     int64
	Extensions []Extension
}

// LogValue implements slog.LogValuer.
func (p *Policy) LogValue() slog.Value {
	if p == nil {
		return slog.StringValue("<nil>")
	}
	return slog.GroupValue(
		slog.String("mode", string(p.Mode)),
		slog.String("mx", strings.Join(p.MX, ",")),
		slog.Int64("max_age", p.MaxAge),
	)
}

// Sentinel errors, grouped by phase. Every error returned by Lookup, Fetch
// and the Cache matches at most one of these with errors.Is (plus the cause,
// wrapped with %w).
var (
	// ErrNoRecord: the domain has no usable _mta-sts record (NXDOMAIN,
	// NODATA, or no record beginning v=STSv1). The domain has no MTA-STS
	// policy; a cached unexpired policy still applies (STS-TXT-11).
	ErrNoRecord = errors.New("mtasts: no MTA-STS TXT record")
	// ErrMultipleRecords: more than one v=STSv1 record (STS-TXT-7). Treated
	// as no policy available; a cached policy still applies.
	ErrMultipleRecords = errors.New("mtasts: multiple MTA-STS TXT records")
	// ErrRecordSyntax: the single v=STSv1 record is malformed (STS-TXT-8).
	// Treated as no policy available; a cached policy still applies.
	ErrRecordSyntax = errors.New("mtasts: invalid MTA-STS TXT record")
	// ErrDNS: a DNS lookup failed (SERVFAIL, timeout, ...); the answer is
	// unknown. Keep cached state; with none, the caller decides (OPEN-1).
	ErrDNS = errors.New("mtasts: DNS lookup failed")
	// ErrPolicyFetch: the HTTPS fetch failed (connection, timeout, status
	// other than 200, redirect, body over the cap). RFC 8460:
	// sts-policy-fetch-error.
	ErrPolicyFetch = errors.New("mtasts: policy fetch failed")
	// ErrPolicyCertificate: the policy host failed PKIX validation for
	// mta-sts.<domain>. RFC 8460: sts-webpki-invalid.
	ErrPolicyCertificate = errors.New("mtasts: policy host certificate invalid")
	// ErrPolicySyntax: the body is not a valid policy, or has the wrong
	// media type. RFC 8460: sts-policy-invalid.
	ErrPolicySyntax = errors.New("mtasts: invalid policy")
)

// RFC 8460 §4.3 result types for MTA-STS policy discovery failures
// (RPT-RES-9..11), as [result.Type] values.
const (
	ResultFetchError    = result.STSPolicyFetchError
	ResultPolicyInvalid = result.STSPolicyInvalid
	ResultWebPKIInvalid = result.STSWebPKIInvalid
)

// ResultType classifies an error from this package: its RFC 8460 result
// type ([result.STSWebPKIInvalid], [result.STSPolicyInvalid],
// [result.STSPolicyFetchError]), or the local class [result.DNSError] for
// ErrDNS and [result.NoPolicy] for the no-usable-record errors. It returns
// "" for a nil error and [result.ValidationFailure] for anything else.
// Errors a [Cache] brings back from its Store keep their class.
//
// It returns the typed [result.Type] rather than a string so that one
// function and one vocabulary serve every caller: comparisons with the
// constants (or with string literals) read as before, and a caller that
// needs a plain string (a JSON field, a metrics label) converts once.
func ResultType(err error) result.Type {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrPolicyCertificate):
		return ResultWebPKIInvalid
	case errors.Is(err, ErrPolicySyntax):
		return ResultPolicyInvalid
	case errors.Is(err, ErrPolicyFetch):
		return ResultFetchError
	case errors.Is(err, ErrDNS):
		return result.DNSError
	case errors.Is(err, ErrNoRecord), errors.Is(err, ErrMultipleRecords), errors.Is(err, ErrRecordSyntax):
		return result.NoPolicy
	default:
		return result.ValidationFailure
	}
}
