package postfix

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/mailsts/mailsts/tlsrpt/result"
)

// ErrPolicySyntax is returned by [TLSPolicy.Validate] and [ParseTLSPolicy]
// for a policy Postfix would reject (and then defer the mail, PFX-POL-3) or
// that this type cannot represent exactly. Fix the policy; do not send it.
var ErrPolicySyntax = errors.New("postfix: invalid TLS policy")

// Security levels of smtp_tls_policy_maps (PFX-POL-4).
var tlsLevels = []string{"none", "may", "encrypt", "dane", "dane-only", "fingerprint", "verify", "secure"}

// TLSPolicy is a result for Postfix's smtp_tls_policy_maps: a security level
// followed by attributes (PFX-POL-3). Empty fields are omitted.
type TLSPolicy struct {
	// Level is the security level: none, may, encrypt, dane, dane-only,
	// fingerprint, verify or secure (PFX-POL-4).
	Level string
	// Match lists certificate name patterns for verify and secure
	// (PFX-POL-5: "example.com", ".example.com" for any subdomain, or the
	// strategies nexthop, dot-nexthop, hostname), joined with ':'; or
	// certificate fingerprints for fingerprint, joined with '|'.
	Match []string
	// ServerName is the SNI name: a host name, "hostname" or "nexthop"
	// (PFX-POL-6, Postfix 3.4 and later).
	ServerName string
	// The TLSRPT attributes of Postfix 3.10 and later (PFX-STS-3). They
	// require PolicyType, and Postfix 3.9 and older reject them, so only
	// send them when the operator opted in.
	PolicyType     string   // "sts" or "no-policy-found"
	PolicyDomain   string   // the policy domain, an ASCII host name
	PolicyFailure  string   // forces failure: sts-policy-fetch-error, sts-policy-invalid, sts-webpki-invalid, validation-failure
	MXHostPatterns []string // one per policy "mx" line, "*." kept (PFX-STS-4)
	PolicyStrings  []string // one per policy line (RFC 8460 §4.4 policy-string)
}

// String returns the policy in Postfix's table syntax: the level, then
// match, servername, policy_type, policy_domain, policy_failure,
// mx_host_pattern and policy_string attributes, in that order (PFX-STS-5).
// A value holding whitespace or a comma is written "{ name = value }". The
// output is only meaningful if Validate returns nil.
func (p TLSPolicy) String() string {
	var b strings.Builder
	b.WriteString(p.Level)
	if len(p.Match) > 0 {
		writeAttr(&b, "match", strings.Join(p.Match, p.matchSep()))
	}
	for _, a := range [...]struct{ name, value string }{
		{"servername", p.ServerName},
		{"policy_type", p.PolicyType},
		{"policy_domain", p.PolicyDomain},
		{"policy_failure", p.PolicyFailure},
	} {
		if a.value != "" {
			writeAttr(&b, a.name, a.value)
		}
	}
	for _, v := range p.MXHostPatterns {
		writeAttr(&b, "mx_host_pattern", v)
	}
	for _, v := range p.PolicyStrings {
		writeAttr(&b, "policy_string", v)
	}
	return b.String()
}

func (p TLSPolicy) matchSep() string {
	if p.Level == "fingerprint" {
		return "|" // fingerprints contain ':'
	}
	return ":"
}

// PFX-POL-3: attributes are separated by whitespace or commas, so a value
// containing either must be braced.
func needsBraces(v string) bool { return strings.ContainsAny(v, " \t,") }

func writeAttr(b *strings.Builder, name, value string) {
	if needsBraces(value) {
		fmt.Fprintf(b, " { %s = %s }", name, value)
		return
	}
	fmt.Fprintf(b, " %s=%s", name, value)
}

// Validate reports whether Postfix would accept the policy and String
// would represent it exactly. It checks the level; that match is only used
// with fingerprint, verify or secure and has no empty entry (PFX-POL-3);
// servername (PFX-POL-6); that the TLSRPT attributes come with a known
// policy_type (PFX-STS-3); and that no value holds a control character (a
// newline would end the table entry), a brace (Postfix's tokenizer counts
// them), or leading or trailing whitespace (Postfix strips it inside
// braces; trim policy lines before use). Errors wrap ErrPolicySyntax.
func (p TLSPolicy) Validate() error {
	if !slices.Contains(tlsLevels, p.Level) {
		return fmt.Errorf("%w: unknown security level %q", ErrPolicySyntax, p.Level)
	}
	if len(p.Match) > 0 {
		switch p.Level {
		case "fingerprint", "verify", "secure":
		default:
			return fmt.Errorf("%w: match is not allowed at level %s", ErrPolicySyntax, p.Level)
		}
		for _, m := range p.Match {
			if m == "" {
				return fmt.Errorf("%w: empty match entry", ErrPolicySyntax)
			}
			if strings.Contains(m, p.matchSep()) || needsBraces(m) {
				return fmt.Errorf("%w: match entry %q contains a separator (%q, whitespace or comma)", ErrPolicySyntax, m, p.matchSep())
			}
			if err := checkValue("match", m); err != nil {
				return err
			}
		}
	}
	if p.ServerName != "" && p.ServerName != "hostname" && p.ServerName != "nexthop" && !validHostname(p.ServerName, false) {
		return fmt.Errorf("%w: servername %q is not a host name", ErrPolicySyntax, p.ServerName)
	}
	switch p.PolicyType {
	case "sts", "no-policy-found":
	case "":
		if p.PolicyDomain != "" || p.PolicyFailure != "" || len(p.MXHostPatterns) > 0 || len(p.PolicyStrings) > 0 {
			return fmt.Errorf("%w: TLSRPT attributes without policy_type", ErrPolicySyntax)
		}
	default:
		return fmt.Errorf("%w: unknown policy_type %q", ErrPolicySyntax, p.PolicyType)
	}
	if p.PolicyDomain != "" && !validHostname(p.PolicyDomain, false) {
		return fmt.Errorf("%w: policy_domain %q is not a host name", ErrPolicySyntax, p.PolicyDomain)
	}
	switch p.PolicyFailure {
	case "", string(result.STSPolicyFetchError), string(result.STSPolicyInvalid), string(result.STSWebPKIInvalid),
		string(result.ValidationFailure):
	default:
		return fmt.Errorf("%w: unknown policy_failure %q", ErrPolicySyntax, p.PolicyFailure)
	}
	for _, v := range p.MXHostPatterns {
		if err := checkValue("mx_host_pattern", v); err != nil {
			return err
		}
	}
	for _, v := range p.PolicyStrings {
		if err := checkValue("policy_string", v); err != nil {
			return err
		}
	}
	return nil
}

func checkValue(name, v string) error {
	if v == "" {
		return fmt.Errorf("%w: empty %s", ErrPolicySyntax, name)
	}
	if strings.TrimSpace(v) != v {
		return fmt.Errorf("%w: %s %q has leading or trailing whitespace", ErrPolicySyntax, name, v)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c < ' ' && c != '\t', c == 0x7f:
			return fmt.Errorf("%w: %s contains control character %q", ErrPolicySyntax, name, c)
		case c == '{' || c == '}':
			return fmt.Errorf("%w: %s contains a brace", ErrPolicySyntax, name)
		}
	}
	return nil
}

// ParseTLSPolicy parses a policy table result, splitting tokens at
// whitespace and commas and reading "{ name = value }" groups as Postfix
// does (PFX-POL-3); several match attributes add up (PFX-POL-5). Attribute
// names are case-insensitive. Attributes this type does not model (ciphers,
// protocols, exclude, tafile, …) are rejected, as are duplicates of the
// single-valued ones. The result is validated. Errors wrap ErrPolicySyntax.
func ParseTLSPolicy(s string) (TLSPolicy, error) {
	var p TLSPolicy
	seen := map[string]bool{}
	rest := s
	for first := true; ; first = false {
		tok, braced, r, err := nextPolicyToken(rest)
		if err != nil {
			return TLSPolicy{}, err
		}
		rest = r
		if tok == "" && !braced {
			break
		}
		if first {
			if braced {
				return TLSPolicy{}, fmt.Errorf("%w: no security level", ErrPolicySyntax)
			}
			p.Level = tok
			continue
		}
		name, value, ok := strings.Cut(tok, "=")
		if !ok {
			return TLSPolicy{}, fmt.Errorf("%w: %q is not name=value", ErrPolicySyntax, tok)
		}
		name = strings.ToLower(strings.TrimSpace(name))
		value = strings.TrimSpace(value)
		if name != "match" && name != "mx_host_pattern" && name != "policy_string" {
			if seen[name] {
				return TLSPolicy{}, fmt.Errorf("%w: %s given twice", ErrPolicySyntax, name)
			}
			seen[name] = true
		}
		switch name {
		case "match":
			// The level comes first, so the separator is known here.
			p.Match = append(p.Match, strings.Split(value, p.matchSep())...)
		case "servername":
			p.ServerName = value
		case "policy_type":
			p.PolicyType = value
		case "policy_domain":
			p.PolicyDomain = value
		case "policy_failure":
			p.PolicyFailure = value
		case "mx_host_pattern":
			p.MXHostPatterns = append(p.MXHostPatterns, value)
		case "policy_string":
			p.PolicyStrings = append(p.PolicyStrings, value)
		default:
			return TLSPolicy{}, fmt.Errorf("%w: unsupported attribute %q", ErrPolicySyntax, name)
		}
		// An empty single-valued attribute would vanish from String.
		if value == "" {
			return TLSPolicy{}, fmt.Errorf("%w: empty %s", ErrPolicySyntax, name)
		}
	}
	if err := p.Validate(); err != nil {
		return TLSPolicy{}, err
	}
	return p, nil
}

// nextPolicyToken returns the next token of s: a plain run of non-separator
// bytes, or the inside of a brace group (braced). tok == "" && !braced
// means the end.
func nextPolicyToken(s string) (tok string, braced bool, rest string, err error) {
	s = strings.TrimLeft(s, " \t\r\n,")
	if s == "" {
		return "", false, "", nil
	}
	if s[0] == '{' {
		end := strings.IndexByte(s, '}')
		if end < 0 {
			return "", false, "", fmt.Errorf("%w: missing '}'", ErrPolicySyntax)
		}
		if strings.IndexByte(s[1:end], '{') >= 0 {
			return "", false, "", fmt.Errorf("%w: nested brace", ErrPolicySyntax)
		}
		if end+1 < len(s) && !strings.ContainsRune(" \t\r\n,", rune(s[end+1])) {
			return "", false, "", fmt.Errorf("%w: text after '}'", ErrPolicySyntax)
		}
		return strings.TrimSpace(s[1:end]), true, s[end+1:], nil
	}
	end := strings.IndexAny(s, " \t\r\n,")
	if end < 0 {
		end = len(s)
	}
	tok = s[:end]
	if strings.ContainsAny(tok, "{}") {
		return "", false, "", fmt.Errorf("%w: brace inside %q", ErrPolicySyntax, tok)
	}
	return tok, false, s[end:], nil
}

// MatchFromSTS turns an MTA-STS mx pattern into a Postfix match entry, as
// both deployed plugins do (PFX-STS-1, PFX-STS-2): lowercased, one trailing
// dot removed, and a leading "*." becomes ".".
//
// PFX-POL-7: this widens the pattern. RFC 8461 §4.1: "*.example.net"
// matches exactly one label ("a.example.net"), while Postfix's
// ".example.net" matches subdomains at any depth ("a.b.example.net"), and
// at level secure Postfix checks only the certificate, not the MX name,
// against the list. To get RFC 8461 behaviour from Postfix 3.10.5 and
// later, also send policy_type=sts and the patterns unchanged in
// MXHostPatterns (PFX-STS-4).
func MatchFromSTS(pattern string) string {
	p := strings.ToLower(strings.TrimSuffix(pattern, "."))
	if strings.HasPrefix(p, "*.") {
		return p[1:]
	}
	return p
}
