package postfix

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// The F-2 policy (RFC 8461 §3.2) as PFX-STS-5 turns it into Postfix answers.
var (
	f2MX    = []string{"mail.example.com", "*.example.net", "backupmx.example.com"}
	f2Lines = []string{"version: STSv1", "mode: enforce", "mx: mail.example.com", "mx: *.example.net", "mx: backupmx.example.com", "max_age: 604800"}
)

const (
	pfxSTS5Plain  = "secure match=mail.example.com:.example.net:backupmx.example.com servername=hostname"
	pfxSTS5TLSRPT = "secure match=mail.example.com:.example.net:backupmx.example.com servername=hostname policy_type=sts policy_domain=example.com mx_host_pattern=mail.example.com mx_host_pattern=*.example.net mx_host_pattern=backupmx.example.com { policy_string = version: STSv1 } { policy_string = mode: enforce } { policy_string = mx: mail.example.com } { policy_string = mx: *.example.net } { policy_string = mx: backupmx.example.com } { policy_string = max_age: 604800 }"
)

func f2Policy(tlsrpt bool) TLSPolicy {
	p := TLSPolicy{Level: "secure", ServerName: "hostname"}
	for _, mx := range f2MX {
		p.Match = append(p.Match, MatchFromSTS(mx))
	}
	if tlsrpt {
		p.PolicyType, p.PolicyDomain = "sts", "example.com"
		p.MXHostPatterns = f2MX
		p.PolicyStrings = f2Lines
	}
	return p
}

func TestTLSPolicyFixtures(t *testing.T) { // PFX-STS-5, PFX-STS-1, STS-APPLY-7
	t.Parallel()
	for _, tc := range []struct {
		p    TLSPolicy
		want string
		size int // the socketmap payload "OK " + policy
	}{
		{f2Policy(false), pfxSTS5Plain, 86},
		{f2Policy(true), pfxSTS5TLSRPT, 457},
	} {
		if err := tc.p.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v", tc.p, err)
		}
		got := tc.p.String()
		if got != tc.want {
			t.Errorf("String() =\n%s\nwant\n%s", got, tc.want)
		}
		if n := len("OK " + got); n != tc.size {
			t.Errorf("payload is %d bytes, want %d", n, tc.size)
		}
		back, err := ParseTLSPolicy(got)
		if err != nil || !reflect.DeepEqual(back, tc.p) {
			t.Errorf("ParseTLSPolicy(String()) = %+v, %v; want %+v", back, err, tc.p)
		}
	}
}

func TestMatchFromSTS(t *testing.T) { // PFX-STS-1, PFX-STS-2, PFX-POL-7
	t.Parallel()
	for in, want := range map[string]string{
		"*.example.net":         ".example.net",
		"*.Example.NET":         ".example.net",
		"Mail.Example.COM":      "mail.example.com",
		"backupmx.example.com.": "backupmx.example.com",
		"*.example.net.":        ".example.net",
		"mx*.example.net":       "mx*.example.net", // not a wildcard pattern; left for the caller to reject
	} {
		if got := MatchFromSTS(in); got != want {
			t.Errorf("MatchFromSTS(%q) = %q, want %q", in, got, want)
		}
	}
}

var policyBad = map[string]TLSPolicy{
	"no level":                {},
	"unknown level":           {Level: "Secure"},
	"empty match":             {Level: "secure", Match: []string{""}}, // PFX-POL-3
	"match at may":            {Level: "may", Match: []string{"example.com"}},
	"match at dane-only":      {Level: "dane-only", Match: []string{"example.com"}},
	"colon in match entry":    {Level: "secure", Match: []string{"a:b"}},
	"space in match entry":    {Level: "secure", Match: []string{"a b"}},
	"bad servername":          {Level: "secure", ServerName: "not a host"}, // PFX-POL-6
	"servername with dot end": {Level: "secure", ServerName: "mx.example."},
	"TLSRPT without type":     {Level: "secure", PolicyDomain: "example.com"}, // PFX-STS-3
	"mx pattern without type": {Level: "secure", MXHostPatterns: []string{"*.example.net"}},
	"unknown policy_type":     {Level: "secure", PolicyType: "dane"},
	"bad policy_domain":       {Level: "secure", PolicyType: "sts", PolicyDomain: "exa mple"},
	"unknown policy_failure":  {Level: "secure", PolicyType: "sts", PolicyFailure: "oops"},
	"newline in string":       {Level: "secure", PolicyType: "sts", PolicyStrings: []string{"mode: enforce\nmx: evil"}},
	"closing brace":           {Level: "secure", PolicyType: "sts", PolicyStrings: []string{"x: }"}},
	"opening brace":           {Level: "secure", PolicyType: "sts", PolicyStrings: []string{"x: {"}},
	"empty policy string":     {Level: "secure", PolicyType: "sts", PolicyStrings: []string{""}},
	"trailing space":          {Level: "secure", PolicyType: "sts", PolicyStrings: []string{"mode: enforce "}},
	"CR in pattern":           {Level: "secure", PolicyType: "sts", MXHostPatterns: []string{"a\r"}},
}

func TestTLSPolicyValidateBad(t *testing.T) { // PFX-POL-3..6, PFX-STS-3
	t.Parallel()
	for name, p := range policyBad {
		if err := p.Validate(); !errors.Is(err, ErrPolicySyntax) {
			t.Errorf("%s: Validate(%+v) = %v, want ErrPolicySyntax", name, p, err)
		}
	}
}

var policyGood = map[string]TLSPolicy{
	"dane-only": {Level: "dane-only"},
	"secure match=nexthop:dot-nexthop servername=nexthop": {Level: "secure", Match: []string{"nexthop", "dot-nexthop"}, ServerName: "nexthop"},
	"verify match=hostname":                               {Level: "verify", Match: []string{"hostname"}},
	"fingerprint match=3D:95:34:51|A0:B1:C2":              {Level: "fingerprint", Match: []string{"3D:95:34:51", "A0:B1:C2"}},
	"secure servername=mx.example.com":                    {Level: "secure", ServerName: "mx.example.com"},
	"may policy_type=no-policy-found":                     {Level: "may", PolicyType: "no-policy-found"},
	"secure match=.example.net policy_type=sts policy_domain=example.com policy_failure=sts-policy-fetch-error": {
		Level: "secure", Match: []string{".example.net"}, PolicyType: "sts", PolicyDomain: "example.com", PolicyFailure: "sts-policy-fetch-error",
	},
	"secure policy_type=sts { policy_string = a,b }": {Level: "secure", PolicyType: "sts", PolicyStrings: []string{"a,b"}},
}

func TestTLSPolicyGood(t *testing.T) { // PFX-POL-3..6
	t.Parallel()
	for want, p := range policyGood {
		if err := p.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v", p, err)
		}
		if got := p.String(); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
		if back, err := ParseTLSPolicy(want); err != nil || !reflect.DeepEqual(back, p) {
			t.Errorf("ParseTLSPolicy(%q) = %+v, %v; want %+v", want, back, err, p)
		}
	}
}

func TestParseTLSPolicy(t *testing.T) { // PFX-POL-3, PFX-POL-5
	t.Parallel()
	// Postfix's looser forms: commas, several match attributes adding up,
	// spacing inside braces, attribute names in any case.
	p, err := ParseTLSPolicy("secure, match=a.example , MATCH=.b.example\t{policy_string=mode: enforce}  { servername =  mx.example }")
	want := TLSPolicy{Level: "secure", Match: []string{"a.example", ".b.example"}, ServerName: "mx.example", PolicyStrings: []string{"mode: enforce"}}
	// policy_string without policy_type is invalid (PFX-STS-3).
	if !errors.Is(err, ErrPolicySyntax) {
		t.Errorf("got %+v, %v; want ErrPolicySyntax", p, err)
	}
	want.PolicyType = "sts"
	p, err = ParseTLSPolicy("secure, match=a.example , MATCH=.b.example\t{policy_string=mode: enforce}  { servername =  mx.example } policy_type=sts")
	if err != nil || !reflect.DeepEqual(p, want) {
		t.Errorf("got %+v, %v; want %+v", p, err, want)
	}
	for _, bad := range []string{
		"",
		"{ match = a }",
		"secure match=",                    // PFX-POL-3: empty match
		"secure servername=a servername=b", // PFX-POL-3: twice
		"secure policy_type=sts policy_type=sts",
		"secure ciphers=high",      // not modelled
		"secure tlsrpt_thing=1",    // unknown
		"secure { match = a",       // unclosed
		"secure { match = { a } }", // nested
		"secure {match=a}x",
		"secure match",
		"secure ma{tch=a",
		"may match=example.com", // PFX-POL-3: match at a level without it
	} {
		if p, err := ParseTLSPolicy(bad); !errors.Is(err, ErrPolicySyntax) {
			t.Errorf("ParseTLSPolicy(%q) = %+v, %v; want ErrPolicySyntax", bad, p, err)
		}
	}
}

// FuzzTLSPolicy: whatever ParseTLSPolicy accepts is valid and survives
// String and a second parse unchanged (round trip).
func FuzzTLSPolicy(f *testing.F) {
	f.Add(pfxSTS5Plain)
	f.Add(pfxSTS5TLSRPT)
	for s := range policyGood {
		f.Add(s)
	}
	for _, p := range policyBad {
		f.Add(p.String())
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseTLSPolicy(s)
		if err != nil {
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("parsed %q but Validate = %v", s, err)
		}
		out := p.String()
		if strings.ContainsAny(out, "\r\n") {
			t.Fatalf("String() has a line break: %q", out)
		}
		q, err := ParseTLSPolicy(out)
		if err != nil || !reflect.DeepEqual(p, q) {
			t.Fatalf("round trip of %q: %q → %+v, %v; want %+v", s, out, q, err, p)
		}
	})
}
