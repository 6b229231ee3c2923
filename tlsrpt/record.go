package tlsrpt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/mailsts/mailsts/dnsresolve"
	"golang.org/x/net/idna"
)

// Version is the only defined value of the record's v field (RFC 8460 §3).
const Version = "TLSRPTv1"

// RecordPrefix is the label prepended to a Policy Domain to find its
// reporting policy (RFC 8460 §3).
const RecordPrefix = "_smtp._tls."

// Extension is an unknown record field, kept so records round-trip.
// RFC 8460 §3: unknown fields MUST be accepted and SHALL be ignored.
type Extension struct {
	Key   string
	Value string
}

// Record is a parsed _smtp._tls TXT record (RFC 8460 §3).
type Record struct {
	// RUA holds every rua URI in record order, exactly as published (still
	// percent-encoded; several rua fields are collected). Use UsableRUA to
	// get the decoded destinations.
	RUA        []string
	Extensions []Extension
}

// RUA is one usable report destination.
type RUA struct {
	// Raw is the URI as published.
	Raw string
	// Scheme is "mailto" or "https".
	Scheme string
	// Address is the percent-decoded addr-spec of a mailto URI (RFC 6068).
	// Header fields such as ?subject= are ignored (RPT-MAIL-9).
	Address string
	// URL is the parsed https URI.
	URL *url.URL
}

// IgnoredRUA is a rua URI that cannot be used, with the reason.
type IgnoredRUA struct {
	Raw    string
	Reason string
}

// LogValue implements slog.LogValuer.
func (r *Record) LogValue() slog.Value {
	if r == nil {
		return slog.StringValue("<nil>")
	}
	return slog.GroupValue(slog.Any("rua", r.RUA), slog.Int("extensions", len(r.Extensions)))
}

// ParseRecord parses the text of one TXT record (multi-string records
// already joined with no separator, RPT-TXT-7).
//
// Grammar (RFC 8460 §3): "v=TLSRPTv1" then one or more fields separated by
// *WSP ";" *WSP, with an optional trailing delimiter; at least one rua field;
// rua holds URIs separated by *WSP "," *WSP; other fields are extensions in
// the MTA-STS syntax. A URI whose scheme is neither mailto nor https is kept
// here and reported by UsableRUA.
func ParseRecord(txt string) (*Record, error) {
	for i := 0; i < len(txt); i++ {
		// The record is US-ASCII; control characters other than WSP are not
		// allowed anywhere (same rule as the MTA-STS record).
		if c := txt[i]; c > 0x7e || (c < 0x20 && c != '\t') {
			return nil, fmt.Errorf("%w: byte 0x%02x at offset %d", ErrRecordSyntax, c, i)
		}
	}
	// RFC 8460 §3: v comes first and is exactly TLSRPTv1 (case-sensitive).
	rest, ok := strings.CutPrefix(txt, "v="+Version)
	if !ok {
		return nil, fmt.Errorf("%w: does not start with v=%s", ErrRecordSyntax, Version)
	}
	rec := &Record{}
	sawRUA := false
	for {
		// field-delim = *WSP ";" *WSP
		rest = trimWSP(rest)
		if rest == "" {
			break
		}
		if rest[0] != ';' {
			return nil, fmt.Errorf("%w: expected ';' before %q", ErrRecordSyntax, clip(rest))
		}
		rest = trimWSP(rest[1:])
		if rest == "" {
			break // one trailing delimiter is allowed
		}
		var field string
		if i := strings.IndexByte(rest, ';'); i >= 0 {
			field, rest = rest[:i], rest[i:]
		} else {
			field, rest = rest, ""
		}
		field = strings.TrimRight(field, " \t")
		key, value, ok := strings.Cut(field, "=")
		if !ok {
			return nil, fmt.Errorf("%w: field %q has no '='", ErrRecordSyntax, clip(field))
		}
		if key == "rua" {
			uris, err := parseRUAValue(value)
			if err != nil {
				return nil, err
			}
			rec.RUA = append(rec.RUA, uris...)
			sawRUA = true
			continue
		}
		if !validExtName(key) {
			return nil, fmt.Errorf("%w: invalid field name %q", ErrRecordSyntax, clip(key))
		}
		if !validExtValue(value) {
			return nil, fmt.Errorf("%w: invalid value for %q", ErrRecordSyntax, key)
		}
		rec.Extensions = append(rec.Extensions, Extension{Key: key, Value: value})
	}
	// RFC 8460 §3: at least one rua field is required.
	if !sawRUA {
		return nil, fmt.Errorf("%w: no rua field", ErrRecordSyntax)
	}
	return rec, nil
}

// parseRUAValue splits a rua value on raw commas (RPT-TXT-5: split first,
// decode later) and checks each URI's characters.
func parseRUAValue(v string) ([]string, error) {
	var out []string
	for _, part := range strings.Split(v, ",") {
		u := strings.Trim(part, " \t")
		if u == "" {
			return nil, fmt.Errorf("%w: empty rua URI", ErrRecordSyntax)
		}
		for i := 0; i < len(u); i++ {
			if c := u[i]; c <= ' ' || c == ';' {
				return nil, fmt.Errorf("%w: invalid character in rua URI %q", ErrRecordSyntax, clip(u))
			}
		}
		if _, err := url.Parse(u); err != nil {
			return nil, fmt.Errorf("%w: rua URI %q: %w", ErrRecordSyntax, clip(u), err)
		}
		if !strings.Contains(u, ":") {
			return nil, fmt.Errorf("%w: rua URI %q has no scheme", ErrRecordSyntax, clip(u))
		}
		out = append(out, u)
	}
	return out, nil
}

// String formats the record in canonical form: "v=TLSRPTv1; rua=a,b" then the
// extensions. ParseRecord(r.String()) equals r (all rua fields merged).
func (r *Record) String() string {
	var b strings.Builder
	b.WriteString("v=" + Version + "; rua=" + strings.Join(r.RUA, ","))
	for _, e := range r.Extensions {
		b.WriteString("; " + e.Key + "=" + e.Value)
	}
	return b.String()
}

// UsableRUA returns the destinations a reporter can use and the URIs it must
// ignore. RFC 8460 §3: only mailto and https are defined; other schemes are
// ignored, and with no usable URI no report is sent (RPT-TXT-4).
func (r *Record) UsableRUA() (usable []RUA, ignored []IgnoredRUA) {
	for _, raw := range r.RUA {
		d, err := parseRUA(raw)
		if err != nil {
			ignored = append(ignored, IgnoredRUA{Raw: raw, Reason: err.Error()})
			continue
		}
		usable = append(usable, d)
	}
	return usable, ignored
}

func parseRUA(raw string) (RUA, error) {
	// RFC 8460 §3: "!" (like "," and ";") MUST be percent-encoded inside a
	// URI. An unencoded "!" is most likely a DMARC-style size limit, which
	// TLSRPT does not define (RPT-TXT-5).
	if strings.Contains(raw, "!") {
		return RUA{}, errors.New(`unencoded "!" in URI`)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return RUA{}, err
	}
	switch strings.ToLower(u.Scheme) {
	case "mailto":
		// RFC 6068: the path is the percent-encoded address list; header
		// fields after "?" are ignored (RPT-MAIL-9).
		opaque := u.Opaque
		if opaque == "" {
			opaque = u.Path
		}
		addr, err := url.PathUnescape(opaque)
		if err != nil {
			return RUA{}, fmt.Errorf("mailto: %w", err)
		}
		if !plausibleAddress(addr) {
			return RUA{}, fmt.Errorf("mailto: invalid address %q", clip(addr))
		}
		return RUA{Raw: raw, Scheme: "mailto", Address: addr}, nil
	case "https":
		if u.Host == "" {
			return RUA{}, errors.New("https URI without host")
		}
		return RUA{Raw: raw, Scheme: "https", URL: u}, nil
	default:
		return RUA{}, fmt.Errorf("unsupported scheme %q", u.Scheme)
	}
}

// SelectRecord picks the TLSRPT record among all TXT records of a name.
// RFC 8460 §3: records not beginning with "v=TLSRPTv1;" are discarded; if
// the number left is not exactly one, the domain does not implement TLSRPT
// (ErrNoRecord or ErrMultipleRecords). Following STS-ERRATA-2 (RPT-TXT-6),
// "v=TLSRPTv1 ;" (WSP before the delimiter) is a candidate too.
func SelectRecord(txts []string) (*Record, error) {
	var cand []string
	for _, t := range txts {
		if isCandidate(t) {
			cand = append(cand, t)
		}
	}
	switch len(cand) {
	case 0:
		return nil, ErrNoRecord
	case 1:
		return ParseRecord(cand[0])
	default:
		return nil, fmt.Errorf("%w: %d records", ErrMultipleRecords, len(cand))
	}
}

func isCandidate(t string) bool {
	rest, ok := strings.CutPrefix(t, "v="+Version)
	if !ok {
		return false
	}
	rest = trimWSP(rest)
	return rest == "" || rest[0] == ';'
}

// LookupRecord fetches and selects the reporting policy of a Policy Domain
// (given as U-labels or A-labels, with or without a trailing dot). Errors wrap
// ErrNoRecord (with dnsresolve.ErrNotFound when the name has no TXT records),
// ErrMultipleRecords, ErrRecordSyntax or ErrDNS (with
// dnsresolve.ErrLookupFailed).
func LookupRecord(ctx context.Context, r dnsresolve.Resolver, domain string) (*Record, error) {
	name, err := idna.Lookup.ToASCII(strings.TrimSuffix(domain, "."))
	if err != nil || name == "" {
		return nil, fmt.Errorf("%w: invalid domain %q: %v", ErrNoRecord, clip(domain), err)
	}
	// RFC 8460 §3: the record lives at _smtp._tls.<Policy Domain>.
	txts, _, err := r.LookupTXT(ctx, RecordPrefix+name+".")
	switch {
	case errors.Is(err, dnsresolve.ErrNotFound):
		return nil, fmt.Errorf("%w: %w", ErrNoRecord, err)
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrDNS, err)
	}
	return SelectRecord(txts)
}

// plausibleAddress checks a decoded mailto address loosely: one local part
// and a domain, printable ASCII, no spaces. RFC 8460 §3's own example
// (tls%2Creports@…) decodes to a local part RFC 5322 would need to quote,
// so net/mail is too strict here.
func plausibleAddress(a string) bool {
	at := strings.LastIndexByte(a, '@')
	if at <= 0 || at == len(a)-1 {
		return false
	}
	for i := 0; i < len(a); i++ {
		if c := a[i]; c <= ' ' || c > '~' {
			return false
		}
	}
	return validFilenameDomain(a[at+1:])
}

func trimWSP(s string) string { return strings.TrimLeft(s, " \t") }

// validExtName: a letter or digit followed by up to 31 of letter, digit,
// "_", "-", "." (RFC 8461 §3.1 syntax, reused by RFC 8460 §3).
func validExtName(s string) bool {
	if len(s) == 0 || len(s) > 32 || !isAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '_' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// validExtValue: 1*(%x21-3A / %x3C / %x3E-7E).
func validExtValue(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == ';' || c == '=' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// clip shortens hostile input before it goes into an error message.
func clip(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}
