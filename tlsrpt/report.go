package tlsrpt

import (
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/mail"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// MaxCount is the largest count I-JSON can carry exactly (RFC 7493 §2.2:
// integers within ±2^53; RPT-JSON-1).
const MaxCount = 1 << 53

// Report is an RFC 8460 §4.4 aggregate report. Field order and names follow
// the JSON members.
type Report struct {
	OrganizationName string
	DateRange        DateRange
	// ContactInfo is an RFC 5322 addr-spec; its domain is the report
	// submitter (RPT-JSON-10).
	ContactInfo string
	ReportID    string
	Policies    []PolicyResult
}

// DateRange is the reporting window. Times are UTC.
type DateRange struct {
	Start time.Time
	End   time.Time
}

// PolicyResult is one element of "policies": the policy applied and the
// sessions it covered.
type PolicyResult struct {
	Policy         Policy
	Summary        Summary
	FailureDetails []FailureDetails
}

// Policy describes the applied policy (RPT-JSON-3).
type Policy struct {
	// Type is "tlsa", "sts" or "no-policy-found" (PolicyType* constants);
	// other values are kept as sent.
	Type string
	// String is the policy text: one element per MTA-STS policy line, or
	// one per TLSA record in presentation form (RFC 8460 §4.5, RPT-JSON-6).
	String []string
	// Domain is the Policy Domain in A-labels.
	Domain string
	// MXHost lists the MX patterns of an STS policy. RFC 8460 §4.4 defines
	// an array; the Appendix B example's string is accepted (erratum 6241).
	MXHost []string
}

// Summary holds the session totals (RPT-JSON-4).
type Summary struct {
	TotalSuccessfulSessionCount int64
	TotalFailureSessionCount    int64
}

// FailureDetails is one element of "failure-details" (RPT-JSON-5). Every
// member except ResultType and FailedSessionCount is optional.
type FailureDetails struct {
	ResultType            ResultType
	SendingMTAIP          string
	ReceivingMXHostname   string
	ReceivingMXHelo       string
	ReceivingIP           string
	FailedSessionCount    int64
	AdditionalInformation string
	FailureReasonCode     string
}

// LogValue implements slog.LogValuer.
func (r *Report) LogValue() slog.Value {
	if r == nil {
		return slog.StringValue("<nil>")
	}
	return slog.GroupValue(
		slog.String("report_id", r.ReportID),
		slog.String("organization", r.OrganizationName),
		slog.Time("start", r.DateRange.Start),
		slog.Time("end", r.DateRange.End),
		slog.Int("policies", len(r.Policies)),
	)
}

// Totals returns the success and failure totals over all policies. The
// sums saturate at math.MaxInt64 rather than overflow.
func (r *Report) Totals() (success, failure int64) {
	for _, p := range r.Policies {
		success = SaturatingAdd(success, p.Summary.TotalSuccessfulSessionCount)
		failure = SaturatingAdd(failure, p.Summary.TotalFailureSessionCount)
	}
	return success, failure
}

// SaturatingAdd returns a+b for counts (non-negative), or math.MaxInt64
// when the sum does not fit; a negative operand counts as 0.
func SaturatingAdd(a, b int64) int64 {
	a, b = max(a, 0), max(b, 0)
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// Wire form. Member order follows RFC 8460 Appendix B (F-10c).
// FormatTime formats t as an RFC 3339 date-time in UTC with a "Z"
// (GO-8), with fractional seconds only when t has them.
func FormatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// Marshal encodes r in the shape of RFC 8460 Appendix B as corrected by
// erratum 6241 (F-10c): members in the RFC's order, two-space indentation,
// times in UTC with "Z", mx-host and policy-string always arrays (empty for
// none, RPT-JSON-7), optional failure-detail members left out when empty.
// Marshal does not validate; call Validate first for reports you send.
func Marshal(r *Report) ([]byte, error) {
	if r == nil {
		return nil, fmt.Errorf("%w: nil report", ErrInvalid)
	}
	return appendReport(make([]byte, 0, 256+512*len(r.Policies)), r), nil
}

// Validate checks the rules a report we generate must follow (RFC 8460 §4,
// strict): non-empty organization, report-id and addr-spec contact-info;
// a whole-second UTC date range with start before end; at least one
// policy; known policy types; A-label domains and MX patterns
// (RPT-JSON-11); empty policy-string and mx-host for no-policy-found
// (RPT-JSON-7); counts in 0..2^53 (I-JSON); result types present;
// IPv4 addresses in the §4.4 grammar (F-12) and IPv6 in RFC 5952 form.
// All violations are reported, joined, each wrapping ErrInvalid.
func (r *Report) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...))
	}
	if r.OrganizationName == "" {
		bad("organization-name is empty")
	}
	if r.ReportID == "" {
		bad("report-id is empty")
	}
	if !validAddrSpec(r.ContactInfo) {
		bad("contact-info %q is not an addr-spec", clip(r.ContactInfo))
	}
	for _, t := range []struct {
		name string
		t    time.Time
	}{{"start-datetime", r.DateRange.Start}, {"end-datetime", r.DateRange.End}} {
		if t.t.IsZero() {
			bad("%s is missing", t.name)
		} else if t.t.Location() != time.UTC || t.t.Nanosecond() != 0 {
			bad("%s must be whole seconds in UTC", t.name)
		}
	}
	if !r.DateRange.End.After(r.DateRange.Start) {
		bad("end-datetime is not after start-datetime")
	}
	if len(r.Policies) == 0 {
		bad("policies is empty")
	}
	for i, p := range r.Policies {
		where := fmt.Sprintf("policies[%d]", i)
		switch p.Policy.Type {
		case PolicyTypeSTS, PolicyTypeTLSA:
			if len(p.Policy.String) == 0 {
				bad("%s: policy-string is empty", where)
			}
			for _, line := range p.Policy.String {
				if !validPolicyLine(p.Policy.Type, line) {
					bad("%s: policy-string element %q is not in the RFC 8460 §4.5 form", where, clip(line))
				}
			}
		case PolicyTypeNoPolicyFound:
			if len(p.Policy.String) != 0 || len(p.Policy.MXHost) != 0 {
				bad("%s: no-policy-found must have empty policy-string and mx-host", where)
			}
		default:
			bad("%s: unknown policy-type %q", where, clip(p.Policy.Type))
		}
		if !validALabelHost(p.Policy.Domain, false) {
			bad("%s: policy-domain %q is not a domain in A-labels", where, clip(p.Policy.Domain))
		}
		for _, mx := range p.Policy.MXHost {
			if !validALabelHost(mx, true) {
				bad("%s: mx-host %q is not an MX pattern in A-labels", where, clip(mx))
			}
		}
		if !validCount(p.Summary.TotalSuccessfulSessionCount) || !validCount(p.Summary.TotalFailureSessionCount) {
			bad("%s: summary counts must be in 0..2^53", where)
		}
		for j, d := range p.FailureDetails {
			dw := fmt.Sprintf("%s.failure-details[%d]", where, j)
			if d.ResultType == "" {
				bad("%s: result-type is empty", dw)
			}
			if !validCount(d.FailedSessionCount) {
				bad("%s: failed-session-count must be in 0..2^53", dw)
			}
			for _, ip := range []string{d.SendingMTAIP, d.ReceivingIP} {
				if ip != "" && !ValidReportIP(ip) {
					bad("%s: %q is not a dotted-decimal IPv4 or RFC 5952 IPv6 address", dw, clip(ip))
				}
			}
			if d.ReceivingMXHostname != "" && !validALabelHost(d.ReceivingMXHostname, false) {
				bad("%s: receiving-mx-hostname %q is not in A-labels", dw, clip(d.ReceivingMXHostname))
			}
		}
	}
	// RFC 7493 §2.1 (I-JSON): strings are valid UTF-8.
	if !r.validUTF8() {
		bad("a string is not valid UTF-8")
	}
	return errors.Join(errs...)
}

func (r *Report) validUTF8() bool {
	ss := []string{r.OrganizationName, r.ContactInfo, r.ReportID}
	for _, p := range r.Policies {
		ss = append(ss, p.Policy.Type, p.Policy.Domain)
		ss = append(ss, p.Policy.String...)
		ss = append(ss, p.Policy.MXHost...)
		for _, d := range p.FailureDetails {
			ss = append(ss, string(d.ResultType), d.SendingMTAIP, d.ReceivingMXHostname, d.ReceivingMXHelo,
				d.ReceivingIP, d.AdditionalInformation, d.FailureReasonCode)
		}
	}
	for _, s := range ss {
		if !utf8.ValidString(s) {
			return false
		}
	}
	return true
}

// validPolicyLine checks one policy-string element (RFC 8460 §4.5,
// RPT-JSON-6): for sts a "key: value" policy line; for tlsa the four TLSA
// RDATA fields in presentation form, separated by single spaces, with the
// association data as hex without spaces.
func validPolicyLine(ptype, line string) bool {
	switch ptype {
	case PolicyTypeSTS:
		k, v, ok := strings.Cut(line, ": ")
		return ok && k != "" && strings.TrimSpace(v) != "" && !strings.ContainsAny(line, "\r\n") && !strings.ContainsAny(k, " \t")
	case PolicyTypeTLSA:
		f := strings.Split(line, " ")
		if len(f) != 4 {
			return false
		}
		for _, n := range f[:3] {
			if v, err := strconv.ParseUint(n, 10, 8); err != nil || strconv.FormatUint(v, 10) != n {
				return false
			}
		}
		_, err := hex.DecodeString(f[3])
		return err == nil && f[3] != ""
	}
	return true
}

func validCount(n int64) bool { return n >= 0 && n <= MaxCount }

// ValidReportIP reports whether s is an address as we generate it: IPv4 in
// the RFC 8460 §4.4 dotted-decimal grammar (no leading zeros, each octet
// 0-255; F-12), or IPv6 in RFC 5952 canonical text without a zone.
func ValidReportIP(s string) bool {
	if strings.Contains(s, ":") {
		a, err := netip.ParseAddr(s)
		return err == nil && a.Is6() && a.Zone() == "" && a.String() == s
	}
	return validIPv4(s)
}

// validIPv4 follows the ABNF of RFC 8460 §4.4 literally:
// dec-octet = DIGIT / %x31-39 DIGIT / "1" 2DIGIT / "2" %x30-34 DIGIT / "25" %x30-35.
func validIPv4(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 4 {
		return false
	}
	for _, p := range parts {
		if len(p) == 0 || len(p) > 3 || (len(p) > 1 && p[0] == '0') {
			return false
		}
		n := 0
		for i := 0; i < len(p); i++ {
			if p[i] < '0' || p[i] > '9' {
				return false
			}
			n = n*10 + int(p[i]-'0')
		}
		if n > 255 {
			return false
		}
	}
	return true
}

func validAddrSpec(s string) bool {
	a, err := mail.ParseAddress(s)
	// A quoted local part ("tls,reports"@example.com, the decoded form of
	// RFC 8460 §3's own rua example) is an addr-spec too; net/mail
	// returns it unquoted in Address.
	return err == nil && a.Name == "" && (a.Address == s || a.String() == "<"+s+">")
}

// validALabelHost reports whether s is a lowercase-insensitive host name in
// A-labels (RFC 8460 §4.4: MUST be A-labels), optionally with a leading
// "*." wildcard label for MX patterns.
func validALabelHost(s string, wildcard bool) bool {
	if wildcard {
		s = strings.TrimPrefix(s, "*.")
	}
	if s == "" || len(s) > 253 || strings.HasSuffix(s, ".") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '-' && c != '.' && c != '_' {
			return false
		}
	}
	a, err := idna.Lookup.ToASCII(s)
	return err == nil && strings.EqualFold(a, s)
}

// Problem is a semantic oddity of a parsed report that a receiver may want
// to flag. It is not a parse error.
type Problem struct {
	Code   string `json:"code"`
	Detail string `json:"detail"`
}

// Problems returns what a receiver should flag about r at time now:
//   - "date-range-future": the range starts after now (a clock error or a
//     forged report; Parse does not reject it);
//   - "date-range-inverted": end before start;
//   - "date-range-multi-day": the range spans more than a day plus an hour
//     (RFC 8460 §4.1 asks for one day; quirk 16);
//   - "policy-type-unknown" (quirk 14), "policy-domain-missing" (quirk 13);
//   - "result-type-unknown": a value outside the registry (kept, RPT-RES-12);
//   - "tlsa-policy-domain-not-mx": a tlsa policy whose policy-domain is not
//     the MX host it covers; RFC 8460 §3 makes the TLSA base domain the
//     Policy Domain (quirks 12 and 31);
//   - "no-sessions": every count is zero (quirk 30: report loops).
func (r *Report) Problems(now time.Time) []Problem {
	var ps []Problem
	add := func(code, format string, args ...any) {
		ps = append(ps, Problem{Code: code, Detail: fmt.Sprintf(format, args...)})
	}
	dr := r.DateRange
	if dr.Start.After(now) {
		add("date-range-future", "start-datetime %s is after %s", FormatTime(dr.Start), FormatTime(now))
	}
	if dr.End.Before(dr.Start) {
		add("date-range-inverted", "end-datetime %s is before start-datetime %s", FormatTime(dr.End), FormatTime(dr.Start))
	} else if dr.End.Sub(dr.Start) > 25*time.Hour {
		add("date-range-multi-day", "range covers %s", dr.End.Sub(dr.Start))
	}
	for i, p := range r.Policies {
		switch p.Policy.Type {
		case PolicyTypeSTS, PolicyTypeTLSA, PolicyTypeNoPolicyFound:
		default:
			add("policy-type-unknown", "policies[%d]: policy-type %q", i, clip(p.Policy.Type))
		}
		if p.Policy.Domain == "" {
			add("policy-domain-missing", "policies[%d]: no policy-domain", i)
		}
		if p.Policy.Type == PolicyTypeTLSA && p.Policy.Domain != "" {
			hosts := append([]string(nil), p.Policy.MXHost...)
			for _, d := range p.FailureDetails {
				if d.ReceivingMXHostname != "" {
					hosts = append(hosts, d.ReceivingMXHostname)
				}
			}
			for _, h := range hosts {
				if !strings.EqualFold(strings.TrimSuffix(h, "."), p.Policy.Domain) {
					add("tlsa-policy-domain-not-mx", "policies[%d]: tlsa policy-domain %q but MX host %q", i, clip(p.Policy.Domain), clip(h))
					break
				}
			}
		}
		for j, d := range p.FailureDetails {
			if !d.ResultType.Known() {
				add("result-type-unknown", "policies[%d].failure-details[%d]: %q", i, j, clip(string(d.ResultType)))
			}
		}
	}
	if s, f := r.Totals(); s == 0 && f == 0 {
		add("no-sessions", "the report counts no sessions at all")
	}
	return ps
}
