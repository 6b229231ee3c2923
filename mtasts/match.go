package mtasts

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/net/idna"
)

// ValidPattern checks an mx pattern against RFC 8461 §3.2 (STS-POL-8):
// sts-policy-mx-value = ["*."] Domain, where Domain is an RFC 5321 domain of
// LDH labels (letters, digits, hyphens; no hyphen at either end of a label;
// no underscore), at most 63 bytes a label and 253 in all (RFC 1035), with no
// trailing dot. A "*" is allowed only as the whole left-most label, and IDNs
// must be written as A-labels. Errors wrap ErrPolicySyntax.
func ValidPattern(p string) error {
	if problem := patternProblem(p); problem != "" {
		return fmt.Errorf("%w: mx %q: %s", ErrPolicySyntax, policyClip(p), problem)
	}
	return nil
}

// patternProblem returns why p is not a valid mx pattern, or "".
func patternProblem(p string) string {
	return domainProblem(strings.TrimPrefix(p, "*."))
}

// domainProblem returns why d is not an RFC 5321 Domain within the DNS
// length limits, or "" when it is one. It does not allocate.
func domainProblem(d string) string {
	switch {
	case d == "":
		return "empty domain"
	case len(d) > 253:
		return "longer than 253 characters"
	case d[len(d)-1] == '.':
		return "ends with a dot"
	case d[0] == '.':
		return "begins with a dot"
	}
	start := 0
	for i := 0; i <= len(d); i++ {
		if i < len(d) && d[i] != '.' {
			continue
		}
		label := d[start:i]
		start = i + 1
		switch {
		case label == "":
			return "empty label"
		case len(label) > 63:
			return "label longer than 63 characters"
		}
		for j := 0; j < len(label); j++ {
			c := label[j]
			switch {
			case isAlnum(c):
			case c == '-':
				if j == 0 || j == len(label)-1 {
					return "label begins or ends with a hyphen"
				}
			case c == '*':
				return `"*" is allowed only as the whole first label, written "*."`
			case c == '_':
				return "underscore is not allowed in a host name"
			case c >= 0x80:
				return "not ASCII; write internationalized names as A-labels (xn--)"
			default:
				return "character other than a letter, digit, hyphen or dot"
			}
		}
	}
	return ""
}

// asciiEqualFold compares ASCII case-insensitively. Unlike strings.EqualFold
// it does no Unicode folding: the Kelvin sign U+212A is not "k"
// (RFC 9525 §6.3, TLS-NAME-1).
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// asciiLower lowercases the ASCII letters of s and leaves other bytes.
func asciiLower(s string) string {
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, s)
}

// matchHost turns an MX host name into the form patterns are compared with:
// one trailing root dot removed (STS-MX-4, TLS-NAME-5) and U-labels
// converted to A-labels (RFC 8461 §4.1, STS-MX-5). It returns why the host is
// unusable when it is; an unusable host matches no pattern. For ASCII input
// it does not allocate, and problem is a bare domainProblem text;
// converted reports whether the name was not ASCII.
//
// A non-ASCII name is converted with the IDNA Lookup profile and must come
// back unchanged (up to ASCII case) from the reverse conversion: the UTS 46
// mapping may not rewrite it, so the Kelvin sign is not quietly folded to
// "k" and full-width dots are not turned into dots (TLS-NAME-1).
func matchHost(host string) (h string, converted bool, problem string) {
	h = strings.TrimSuffix(host, ".")
	if isASCII(h) {
		// A constant string: an invalid ASCII name does not allocate.
		return h, false, domainProblem(h)
	}
	a, err := idna.Lookup.ToASCII(h)
	if err != nil {
		return "", true, "cannot convert to an A-label: " + err.Error()
	}
	if u, err := idna.Lookup.ToUnicode(a); err != nil || u != asciiLower(h) {
		return "", true, "not a valid U-label name (IDNA mapping would change it to " + strconv.Quote(u) + ")"
	}
	if p := domainProblem(a); p != "" {
		return "", true, "not a valid host name after conversion to A-labels: " + p
	}
	return a, true, ""
}

// matchNormalized matches a host already passed through matchHost. An
// invalid pattern never matches, without a separate check: the host is a
// valid LDH name, and ASCII case folding keeps every other byte, so a pattern
// (or the suffix after "*.") equal to it or to its tail is valid too.
func matchNormalized(pattern, h string) bool {
	pattern = strings.TrimSuffix(pattern, ".")
	if suffix, ok := strings.CutPrefix(pattern, "*."); ok {
		// RFC 8461 §4.1: "*" matches exactly one left-most label
		// (STS-MX-3, TLS-NAME-3); matchHost guarantees it is not empty.
		dot := strings.IndexByte(h, '.')
		return dot > 0 && asciiEqualFold(h[dot+1:], suffix)
	}
	// RFC 8461 §4.1: names compare case-insensitively, in ASCII only
	// (STS-MX-2, TLS-NAME-1).
	return asciiEqualFold(h, pattern)
}

// MatchPattern reports whether MX host name host matches mx pattern pattern
// (RFC 8461 §4.1). Comparison is ASCII case-insensitive; "*." matches exactly
// one left-most label; one trailing dot is ignored on both sides; a host
// with U-labels is converted to A-labels first. An invalid pattern or host
// never matches. ASCII input does not allocate.
func MatchPattern(pattern, host string) bool {
	h, _, problem := matchHost(host)
	if problem != "" {
		return false
	}
	return matchNormalized(pattern, h)
}

// Match returns the first mx pattern of p, in policy order, that host
// matches (see MatchPattern), and whether there is one. RFC 8461 §4.1: the
// pattern is matched against the MX host name; the certificate is then
// checked against that host name, not the pattern (STS-MX-9).
func (p *Policy) Match(host string) (pattern string, ok bool) {
	if p == nil {
		return "", false
	}
	h, _, problem := matchHost(host)
	if problem != "" {
		return "", false
	}
	for _, pat := range p.MX {
		if matchNormalized(pat, h) {
			return pat, true
		}
	}
	return "", false
}

// MXVerdict is the result of checking one MX host against a policy.
type MXVerdict struct {
	// Host is the host name as given.
	Host string
	// Allowed reports whether some mx pattern matches Host.
	Allowed bool
	// Pattern is the first matching pattern, or "".
	Pattern string
	// Reason explains the verdict in one line for people, for example
	// "matches *.example.net (one label)" or "no pattern matches;
	// *.example.net covers exactly one label, a.b.example.net has two".
	Reason string
}

// CheckMX checks each host against the mx patterns of p, in order, and
// explains every verdict. It looks only at the patterns: whether a policy in
// mode none or testing is enforced is up to the caller (RFC 8461 §5).
func (p *Policy) CheckMX(hosts []string) []MXVerdict {
	out := make([]MXVerdict, 0, len(hosts))
	for _, host := range hosts {
		out = append(out, p.checkOne(host))
	}
	return out
}

func (p *Policy) checkOne(host string) MXVerdict {
	v := MXVerdict{Host: host}
	h, converted, problem := matchHost(host)
	if problem != "" {
		v.Reason = problem
		if !converted {
			v.Reason = "not a valid host name: " + problem
		}
		return v
	}
	if p == nil || len(p.MX) == 0 {
		v.Reason = "the policy has no mx patterns"
		return v
	}
	as := ""
	if converted {
		as = ", as A-label " + h
	}
	for _, pat := range p.MX {
		if !matchNormalized(pat, h) {
			continue
		}
		v.Allowed, v.Pattern = true, pat
		if strings.HasPrefix(pat, "*.") {
			v.Reason = "matches " + pat + " (one label" + as + ")"
		} else {
			v.Reason = "matches " + pat + " (exact" + as + ")"
		}
		return v
	}
	hints := []string{"no pattern matches"}
	for _, pat := range p.MX {
		suffix, ok := strings.CutPrefix(strings.TrimSuffix(pat, "."), "*.")
		if !ok || domainProblem(suffix) != "" {
			continue
		}
		if asciiEqualFold(h, suffix) {
			hints = append(hints, pat+" does not cover "+suffix+" itself")
			continue
		}
		if len(h) > len(suffix)+1 && h[len(h)-len(suffix)-1] == '.' && asciiEqualFold(h[len(h)-len(suffix):], suffix) {
			extra := strings.Count(h[:len(h)-len(suffix)-1], ".") + 1
			hints = append(hints, fmt.Sprintf("%s covers exactly one label, %s has %s", pat, h, labelCount(extra)))
		}
	}
	for _, pat := range p.MX {
		if ValidPattern(strings.TrimSuffix(pat, ".")) != nil {
			hints = append(hints, "pattern "+strconv.Quote(pat)+" is invalid and matches nothing")
		}
	}
	if converted {
		hints = append(hints, "compared as A-label "+h)
	}
	v.Reason = strings.Join(hints, "; ")
	return v
}

func labelCount(n int) string {
	words := []string{"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"}
	if n >= 0 && n < len(words) {
		return words[n]
	}
	return strconv.Itoa(n)
}

// UnusedPatterns returns the mx patterns of p, in policy order, that match
// none of hosts: candidates for removal, or a sign that an MX is missing.
// It returns nil when every pattern is used.
func UnusedPatterns(p *Policy, hosts []string) []string {
	if p == nil {
		return nil
	}
	norm := make([]string, 0, len(hosts))
	for _, host := range hosts {
		if h, _, problem := matchHost(host); problem == "" {
			norm = append(norm, h)
		}
	}
	var unused []string
	for _, pat := range p.MX {
		used := false
		for _, h := range norm {
			if matchNormalized(pat, h) {
				used = true
				break
			}
		}
		if !used {
			unused = append(unused, pat)
		}
	}
	return unused
}
