package mtasts

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestValidPattern(t *testing.T) {
	t.Parallel()
	label63 := strings.Repeat("a", 63)
	// 253 characters: four 62/63-character labels.
	name253 := label63 + "." + label63 + "." + label63 + "." + strings.Repeat("b", 61)
	for _, tc := range []struct {
		id, pattern string
		ok          bool
	}{
		{"STS-POL-8/exact", "mail.example.com", true},
		{"STS-POL-8/wildcard", "*.example.net", true},
		{"STS-POL-8/upper-case", "MAIL.Example.COM", true},
		{"STS-POL-8/single-label", "localhost", true},
		{"STS-POL-8/digits", "123.example", true},
		{"STS-POL-8/inner-hyphens", "a--b.ex-ample.com", true},
		{"STS-POL-8/A-label", "xn--bcher-kva.example", true},
		{"STS-POL-8/wildcard-A-label", "*.xn--bcher-kva.example", true},
		{"STS-POL-8/leading-dot", ".example.net", false},
		{"STS-POL-8/star-glued", "*example.net", false},
		{"STS-POL-8/star-inside", "mail.*.example.net", false},
		{"STS-POL-8/two-stars", "*.*.example.net", false},
		{"STS-POL-8/star-alone", "*", false},
		{"STS-POL-8/star-dot", "*.", false},
		{"STS-POL-8/U-label", "bücher.example", false},
		{"STS-POL-8/underscore", "mx_1.example.com", false},
		{"STS-POL-8/leading-hyphen", "-mx.example.com", false},
		{"STS-POL-8/trailing-hyphen", "mx-.example.com", false},
		{"STS-POL-8/trailing-dot", "mail.example.com.", false},
		{"STS-POL-8/empty-label", "mail..example.com", false},
		{"STS-POL-8/empty", "", false},
		{"STS-POL-8/space", "mail example.com", false},
		{"STS-POL-8/IP-literal", "[192.0.2.1]", false},
		{"STS-POL-8/label-63", label63 + ".example", true},
		{"STS-POL-8/label-64", label63 + "a.example", false},
		{"STS-POL-8/name-253", name253, true},
		{"STS-POL-8/name-254", name253 + "b", false},
		{"TLS-NAME-3/partial-wildcard", "w*.example.com", false},
		{"TLS-NAME-3/suffix-wildcard", "*w.example.com", false},
		{"TLS-NAME-3/inner-wildcard", "a.*.example.com", false},
		{"TLS-NAME-6/A-label-wildcard", "xn--*.example", false},
		{"TLS-NAME-1/Kelvin-sign", "\u212a.example.com", false},
	} {
		err := ValidPattern(tc.pattern)
		if (err == nil) != tc.ok {
			t.Errorf("%s: ValidPattern(%q) = %v, want ok=%v", tc.id, tc.pattern, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrPolicySyntax) {
			t.Errorf("%s: ValidPattern(%q) error %v does not wrap ErrPolicySyntax", tc.id, tc.pattern, err)
		}
	}
}

type matchCase struct {
	id, pattern, host string
	want              bool
}

func matchCases() []matchCase {
	return []matchCase{
		{"STS-MX-2/case", "mx1.example.com", "MX1.EXAMPLE.COM", true},
		{"STS-MX-2/pattern-case", "MX1.Example.COM", "mx1.example.com", true},
		{"STS-MX-2/different", "mx1.example.com", "mx2.example.com", false},
		{"STS-MX-2/suffix-only", "example.com", "mx.example.com", false},
		{"STS-MX-2/longer-pattern", "mx.example.com", "example.com", false},
		{"STS-MX-3/one-label", "*.example.com", "mail.example.com", true},
		{"STS-MX-3/one-label-case", "*.EXAMPLE.com", "Mail.Example.COM", true},
		{"STS-MX-3/apex", "*.example.com", "example.com", false},
		{"STS-MX-3/two-labels", "*.example.com", "foo.bar.example.com", false},
		{"STS-MX-3/empty-label", "*.example.com", ".example.com", false},
		{"STS-MX-3/suffix-appended", "*.example.com", "mail.example.com.evil", false},
		{"STS-MX-3/glued", "*.example.com", "mailexample.com", false},
		{"STS-MX-3/star-host", "*.example.com", "*.example.com", false},
		{"STS-MX-4/host-dot", "mail.example.com", "mail.example.com.", true},
		{"STS-MX-4/pattern-dot", "mail.example.com.", "mail.example.com", true},
		{"STS-MX-4/both-dots", "mail.example.com.", "mail.example.com.", true},
		{"STS-MX-4/wildcard-host-dot", "*.example.com", "mail.example.com.", true},
		{"STS-MX-4/two-dots", "mail.example.com", "mail.example.com..", false},
		{"STS-MX-4/root", "mail.example.com", ".", false},
		{"STS-MX-5/A-label", "xn--bcher-kva.example", "xn--bcher-kva.example", true},
		{"STS-MX-5/U-label-host", "xn--bcher-kva.example", "bücher.example", true},
		{"STS-MX-5/U-label-host-dot", "xn--bcher-kva.example", "bücher.example.", true},
		{"STS-MX-5/U-label-ASCII-case", "xn--bcher-kva.example", "bücher.EXAMPLE", true},
		{"STS-MX-5/U-label-wildcard", "*.example", "bücher.example", true},
		{"STS-MX-5/U-label-pattern", "bücher.example", "xn--bcher-kva.example", false},
		{"STS-MX-5/non-ASCII-upper", "xn--bcher-kva.example", "BÜCHER.example", false},
		{"STS-MX-5/invalid-punycode-host", "xn--bcher-kva.example", "b\u00fccher\u0000.example", false},
		{"TLS-NAME-1/ASCII-case", "www.example.com", "WWW.Example.Com", true},
		{"TLS-NAME-1/Kelvin-host", "k.example.com", "\u212a.example.com", false},
		{"TLS-NAME-1/Kelvin-wildcard", "*.example.com", "\u212a.example.com", false},
		{"TLS-NAME-1/Kelvin-pattern", "\u212a.example.com", "k.example.com", false},
		{"TLS-NAME-1/fullwidth-dot", "mail.example.com", "mail\uff0eexample.com", false},
		{"TLS-NAME-3/partial", "w*.example.com", "www.example.com", false},
		{"TLS-NAME-3/two-stars", "*.*.example.com", "a.b.example.com", false},
		{"TLS-NAME-3/inner-star", "a.*.example.com", "a.b.example.com", false},
		{"TLS-NAME-3/star-alone", "*", "com", false},
		{"TLS-NAME-3/exact-one", "*.example.com", "a.example.com", true},
		{"TLS-NAME-5/reference-dot", "*.example.com", "a.example.com.", true},
		{"TLS-NAME-6/A-label-prefix", "xn--*.example", "xn--bcher-kva.example", false},
		{"TLS-NAME-6/whole-A-label", "*.example", "xn--bcher-kva.example", true},
		{"STS-POL-8/invalid-pattern", "mx_1.example.com", "mx_1.example.com", false},
		{"STS-POL-8/empty-pattern", "", "", false},
		{"STS-MX-2/invalid-host", "*.example.com", "mx_1.example.com", false},
		{"STS-MX-2/host-with-space", "*.example.com", "a b.example.com", false},
		{"STS-MX-2/empty-host", "example.com", "", false},
	}
}

func TestMatchPattern(t *testing.T) {
	t.Parallel()
	for _, tc := range matchCases() {
		if got := MatchPattern(tc.pattern, tc.host); got != tc.want {
			t.Errorf("%s: MatchPattern(%q, %q) = %v, want %v", tc.id, tc.pattern, tc.host, got, tc.want)
		}
		p := &Policy{Mode: ModeEnforce, MaxAge: 1, MX: []string{tc.pattern}}
		pat, ok := p.Match(tc.host)
		if ok != tc.want || (ok && pat != tc.pattern) {
			t.Errorf("%s: Policy.Match(%q) = %q, %v; want %v", tc.id, tc.host, pat, ok, tc.want)
		}
		if v := p.CheckMX([]string{tc.host})[0]; v.Allowed != tc.want || v.Reason == "" {
			t.Errorf("%s: CheckMX(%q) = %+v, want Allowed=%v", tc.id, tc.host, v, tc.want)
		}
	}
}

// TestMatchF2 runs the MX checks listed under fixture F-2.
func TestMatchF2(t *testing.T) {
	t.Parallel()
	p, err := ParsePolicy([]byte(strings.ReplaceAll(f2, "\n", "\r\n")))
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]string{
		"mail.example.com":      "mail.example.com",
		"a.example.net":         "*.example.net",
		"example.net":           "",
		"a.b.example.net":       "",
		"backupmx.example.com.": "backupmx.example.com",
		"BACKUPMX.EXAMPLE.COM":  "backupmx.example.com",
		"mail2.example.com":     "",
	} {
		pat, ok := p.Match(host)
		if pat != want || ok != (want != "") {
			t.Errorf("F-2: Match(%q) = %q, %v; want %q", host, pat, ok, want)
		}
	}
}

func TestMatchFirstPatternWins(t *testing.T) {
	t.Parallel()
	// STS-MX-1: any one pattern suffices; Match reports the first in order.
	p := pol(ModeEnforce, 1, "*.example.com", "mail.example.com")
	if pat, ok := p.Match("mail.example.com"); !ok || pat != "*.example.com" {
		t.Fatalf("Match = %q, %v", pat, ok)
	}
	// STS-MX-6: an implicit MX is the domain itself and must be listed.
	if _, ok := pol(ModeEnforce, 1, "example.com").Match("example.com"); !ok {
		t.Fatal("implicit MX example.com should match mx: example.com")
	}
	if _, ok := pol(ModeEnforce, 1, "mail.example.com").Match("example.com"); ok {
		t.Fatal("implicit MX example.com must not match mx: mail.example.com")
	}
	// STS-MX-7: a null MX target "." is never a match.
	if _, ok := pol(ModeEnforce, 1, "*.example.com", "example.com").Match("."); ok {
		t.Fatal("null MX matched")
	}
	// A nil or pattern-less policy matches nothing.
	if _, ok := (*Policy)(nil).Match("example.com"); ok {
		t.Fatal("nil policy matched")
	}
	if _, ok := pol(ModeNone, 1).Match("example.com"); ok {
		t.Fatal("policy without mx matched")
	}
}

func TestCheckMX(t *testing.T) {
	t.Parallel()
	p := f2Policy()
	got := p.CheckMX([]string{"a.example.net", "MAIL.example.com.", "a.b.example.net", "example.net", "mx_1.example.com", "mail2.example.com", "x.y.z.example.net"})
	want := []MXVerdict{
		{"a.example.net", true, "*.example.net", "matches *.example.net (one label)"},
		{"MAIL.example.com.", true, "mail.example.com", "matches mail.example.com (exact)"},
		{"a.b.example.net", false, "", "no pattern matches; *.example.net covers exactly one label, a.b.example.net has two"},
		{"example.net", false, "", "no pattern matches; *.example.net does not cover example.net itself"},
		{"mx_1.example.com", false, "", "not a valid host name: underscore is not allowed in a host name"},
		{"mail2.example.com", false, "", "no pattern matches"},
		{"x.y.z.example.net", false, "", "no pattern matches; *.example.net covers exactly one label, x.y.z.example.net has three"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("CheckMX:\n got %+v\nwant %+v", got, want)
	}

	u := pol(ModeEnforce, 1, "xn--bcher-kva.example", "*.xn--bcher-kva.example", "bad_pattern.example")
	got = u.CheckMX([]string{"bücher.example", "a.b.bücher.example", "\u212a.example"})
	want = []MXVerdict{
		{"bücher.example", true, "xn--bcher-kva.example", "matches xn--bcher-kva.example (exact, as A-label xn--bcher-kva.example)"},
		{"a.b.bücher.example", false, "", "no pattern matches; *.xn--bcher-kva.example covers exactly one label, a.b.xn--bcher-kva.example has two; pattern \"bad_pattern.example\" is invalid and matches nothing; compared as A-label a.b.xn--bcher-kva.example"},
		{"\u212a.example", false, "", "not a valid U-label name (IDNA mapping would change it to \"k.example\")"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("CheckMX:\n got %+v\nwant %+v", got, want)
	}

	if v := pol(ModeNone, 1).CheckMX([]string{"mx.example"}); v[0].Allowed || v[0].Reason != "the policy has no mx patterns" {
		t.Fatalf("CheckMX without patterns = %+v", v)
	}
	if v := (*Policy)(nil).CheckMX(nil); len(v) != 0 {
		t.Fatalf("CheckMX(nil) = %+v", v)
	}
}

func TestUnusedPatterns(t *testing.T) {
	t.Parallel()
	p := f2Policy()
	for _, tc := range []struct {
		hosts []string
		want  []string
	}{
		{[]string{"mail.example.com", "a.example.net", "backupmx.example.com"}, nil},
		{[]string{"MAIL.example.com."}, []string{"*.example.net", "backupmx.example.com"}},
		{[]string{"a.b.example.net", "example.net", "mx_1.example.net"}, []string{"mail.example.com", "*.example.net", "backupmx.example.com"}},
		{nil, []string{"mail.example.com", "*.example.net", "backupmx.example.com"}},
	} {
		if got := UnusedPatterns(p, tc.hosts); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("UnusedPatterns(F-2, %q) = %q, want %q", tc.hosts, got, tc.want)
		}
	}
	if got := UnusedPatterns(nil, []string{"a.example"}); got != nil {
		t.Errorf("UnusedPatterns(nil) = %q", got)
	}
}

// TestMatchAllocs checks that matching ASCII names does not allocate. It
// does not call t.Parallel: testing.AllocsPerRun counts every allocation in
// the process, so it runs while no parallel test does.
func TestMatchAllocs(t *testing.T) {
	p := f2Policy()
	for _, host := range []string{"mail.example.com", "a.example.net", "BACKUPMX.EXAMPLE.COM.", "a.b.example.net", "mx_1.example.com"} {
		if n := testing.AllocsPerRun(100, func() { p.Match(host) }); n != 0 {
			t.Errorf("Policy.Match(%q) allocates %v times per run", host, n)
		}
		if n := testing.AllocsPerRun(100, func() { MatchPattern("*.example.net", host) }); n != 0 {
			t.Errorf("MatchPattern(%q) allocates %v times per run", host, n)
		}
	}
}

// STS-MX-8, STS-MX-1: CheckMX keeps the caller's MX order and gives one
// verdict per host, failing hosts included, so the caller can walk the
// candidates in MX preference order and skip the ones that do not match
// instead of filtering first.
func TestCheckMX_STS_MX_8_Order(t *testing.T) {
	t.Parallel()
	p := pol(ModeEnforce, 1, "mx2.example.com", "*.backup.example")
	hosts := []string{"mx1.example.com", "mx2.example.com", "a.backup.example", "evil.example", "mx2.example.com"}
	got := p.CheckMX(hosts)
	if len(got) != len(hosts) {
		t.Fatalf("%d verdicts for %d hosts", len(got), len(hosts))
	}
	want := []bool{false, true, true, false, true}
	for i, v := range got {
		if v.Host != hosts[i] || v.Allowed != want[i] {
			t.Errorf("verdict %d = %+v, want host %q allowed %v", i, v, hosts[i], want[i])
		}
	}
}
