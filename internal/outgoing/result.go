package outgoing

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/mailsts/mailsts/tlsrpt"
	"github.com/mailsts/mailsts/tlsrpt/result"
)

// Result is what one SMTP session (or one attempt to find a policy for
// it) under one policy came to: a success, or a failure with the details
// the sending MTA logged. Collectors turn what they hear into Results; the
// Store counts them per UTC day, policy domain and policy.
type Result struct {
	// Time is when the session happened; its UTC day is the report it
	// counts in. Zero means now.
	Time time.Time
	// PolicyDomain is the domain the report is about: the recipient
	// domain (next hop) whose policy applied. It becomes every policy's
	// "policy-domain" in the report (RFC 8460 §4.4).
	PolicyDomain string
	// Policy is the policy that applied.
	Policy Policy
	// Failed marks a failed session. A Result with Failures is failed
	// whatever Failed says.
	Failed bool
	// Failures are the failure details of a failed session (RFC 8460
	// §4.3): one session may log several (an expired and mismatched
	// certificate); each counts the session once.
	Failures []Failure
	// ReportDelivery marks a session that delivered a TLS report itself
	// (to a rua destination). Such sessions are never counted: reports
	// about report deliveries would loop between two reporting domains.
	// The Recorder drops them and counts them as excluded.
	ReportDelivery bool
}

// Policy is the policy applied to a session (RFC 8460 §4.4 "policy").
type Policy struct {
	// Type is tlsrpt.PolicyTypeSTS, PolicyTypeTLSA or
	// PolicyTypeNoPolicyFound.
	Type string
	// Strings are the policy-string lines: the MTA-STS policy's lines or
	// the TLSA records in presentation form; empty for no-policy-found.
	Strings []string
	// MXHosts are the MTA-STS policy's mx patterns.
	MXHosts []string
}

// Failure is one failure detail (RFC 8460 §4.4 "failure-details"), less
// the count, which the Store keeps.
type Failure struct {
	ResultType          result.Type
	SendingMTAIP        string
	ReceivingMXHostname string
	ReceivingMXHelo     string
	ReceivingIP         string
	AdditionalInfo      string
	FailureReasonCode   string
}

// LogValue implements slog.LogValuer.
func (r Result) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("policy_domain", r.PolicyDomain),
		slog.String("policy_type", r.Policy.Type),
		slog.Bool("failed", r.failed()),
		slog.Int("failures", len(r.Failures)),
	)
}

func (r Result) failed() bool { return r.Failed || len(r.Failures) > 0 }

// ErrInvalidResult means a Result cannot be counted: an empty or
// malformed policy domain, an unknown policy type, a result type that is
// not an RFC 8460 result type, an address that is not an IP address, or a
// member over its size cap. Fix the collector; the Recorder counts these.
var ErrInvalidResult = errors.New("outgoing: invalid result")

// Size caps of one result: what a real policy or failure detail needs,
// with room, so that one bad collector cannot grow the store without
// bound.
const (
	maxPolicyLines = 64
	maxLineLen     = 1024
	maxInfoLen     = 1024
	maxFailures    = 64
)

// normalize checks r and returns it in the form the store keeps:
// lowercase domains without a trailing dot, the time in UTC. The policy
// and failure members must be what RFC 8460's report allows, checked by
// the tlsrpt package's own Validate so that every stored result can be
// reported.
func normalize(r Result, now time.Time) (Result, error) {
	bad := func(format string, args ...any) (Result, error) {
		return Result{}, fmt.Errorf("%w: "+format, append([]any{ErrInvalidResult}, args...)...)
	}
	if r.Time.IsZero() {
		r.Time = now
	}
	r.Time = r.Time.UTC()
	r.PolicyDomain = strings.TrimSuffix(strings.ToLower(r.PolicyDomain), ".")
	if r.PolicyDomain == "" || len(r.PolicyDomain) > 253 {
		return bad("policy domain %q", clip(r.PolicyDomain))
	}
	if len(r.Policy.Strings) > maxPolicyLines || len(r.Policy.MXHosts) > maxPolicyLines {
		return bad("more than %d policy lines or MX patterns", maxPolicyLines)
	}
	if len(r.Failures) > maxFailures {
		return bad("more than %d failure details", maxFailures)
	}
	for _, s := range append(append([]string(nil), r.Policy.Strings...), r.Policy.MXHosts...) {
		if len(s) > maxLineLen {
			return bad("a policy line or MX pattern is longer than %d bytes", maxLineLen)
		}
	}
	mx := make([]string, len(r.Policy.MXHosts))
	for i, m := range r.Policy.MXHosts {
		mx[i] = strings.TrimSuffix(strings.ToLower(m), ".")
	}
	r.Policy.MXHosts = mx
	r.Policy.Strings = append([]string(nil), r.Policy.Strings...)
	fs := make([]Failure, len(r.Failures))
	for i, f := range r.Failures {
		if !f.ResultType.Known() {
			return bad("result type %q is not an RFC 8460 result type", clip(string(f.ResultType)))
		}
		f.ReceivingMXHostname = strings.TrimSuffix(strings.ToLower(f.ReceivingMXHostname), ".")
		f.ReceivingMXHelo = clipTo(f.ReceivingMXHelo, 255)
		f.AdditionalInfo = clipTo(f.AdditionalInfo, maxInfoLen)
		f.FailureReasonCode = clipTo(f.FailureReasonCode, maxInfoLen)
		fs[i] = f
	}
	r.Failures = fs
	// One check, the report's: a result the strict Validate would
	// refuse is refused here, where the collector can still be told.
	rep := &tlsrpt.Report{
		OrganizationName: "x", ContactInfo: "x@x.example", ReportID: "x",
		DateRange: tlsrpt.DayRange(r.Time),
		Policies:  []tlsrpt.PolicyResult{{Policy: r.tlsrptPolicy(), FailureDetails: tlsrptDetails(r.Failures)}},
	}
	if err := rep.Validate(); err != nil {
		return bad("%w", err)
	}
	return r, nil
}

func (r Result) tlsrptPolicy() tlsrpt.Policy {
	return tlsrpt.Policy{Type: r.Policy.Type, String: r.Policy.Strings, Domain: r.PolicyDomain, MXHost: r.Policy.MXHosts}
}

func tlsrptDetails(fs []Failure) []tlsrpt.FailureDetails {
	out := make([]tlsrpt.FailureDetails, len(fs))
	for i, f := range fs {
		out[i] = f.detail(1)
	}
	return out
}

func (f Failure) detail(n int64) tlsrpt.FailureDetails {
	return tlsrpt.FailureDetails{
		ResultType:            f.ResultType,
		SendingMTAIP:          f.SendingMTAIP,
		ReceivingMXHostname:   f.ReceivingMXHostname,
		ReceivingMXHelo:       f.ReceivingMXHelo,
		ReceivingIP:           f.ReceivingIP,
		FailedSessionCount:    n,
		AdditionalInformation: f.AdditionalInfo,
		FailureReasonCode:     f.FailureReasonCode,
	}
}

// clipTo cuts s to at most n bytes without splitting a UTF-8 sequence.
func clipTo(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// clip shortens s for messages.
func clip(s string) string {
	if len(s) > 64 {
		return clipTo(s, 64) + "…"
	}
	return s
}

// dayString is the store's day key: the UTC date as YYYY-MM-DD.
func dayString(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// parseDay is the inverse of dayString.
func parseDay(s string) (time.Time, error) { return time.ParseInLocation(time.DateOnly, s, time.UTC) }
