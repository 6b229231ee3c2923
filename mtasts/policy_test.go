package mtasts

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

// f2 is fixture F-2 (RFC 8461 §3.2) with LF endings.
const f2 = "version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmx: backupmx.example.com\nmax_age: 604800\n"

func f2Policy() *Policy {
	return &Policy{Mode: ModeEnforce, MX: []string{"mail.example.com", "*.example.net", "backupmx.example.com"}, MaxAge: 604800}
}

// policyCase is one row of the policy table. want is the policy both modes
// return, or nil when the mode rejects the body. lenient defaults to strict
// when nil and lenientErr is false.
type policyCase struct {
	id         string
	body       string
	strict     *Policy // nil: strict rejects
	lenient    *Policy // nil: same as strict, unless lenientErr
	lenientErr bool    // lenient rejects too (set when strict is nil and lenient rejects)
	// errLine is the line a strict *SyntaxError must name (0: not checked).
	errLine int
}

// pol builds a policy; mx may be empty.
func pol(mode Mode, maxAge int64, mx ...string) *Policy {
	p := &Policy{Mode: mode, MaxAge: maxAge}
	if len(mx) > 0 {
		p.MX = mx
	}
	return p
}

func withExt(p *Policy, ext ...Extension) *Policy {
	p.Extensions = ext
	return p
}

func policyCases() []policyCase {
	good := func(id, body string, want *Policy) policyCase {
		return policyCase{id: id, body: body, strict: want}
	}
	// lenientOnly: the strict grammar rejects it, ParsePolicy tolerates it.
	lenientOnly := func(id, body string, want *Policy, errLine int) policyCase {
		return policyCase{id: id, body: body, lenient: want, errLine: errLine}
	}
	bad := func(id, body string, errLine int) policyCase {
		return policyCase{id: id, body: body, lenientErr: true, errLine: errLine}
	}
	crlf := strings.ReplaceAll(f2, "\n", "\r\n")
	one := func(lines ...string) string { return strings.Join(lines, "\n") + "\n" }
	const (
		v  = "version: STSv1"
		me = "mode: enforce"
		mx = "mx: mx.example.com"
		ma = "max_age: 86400"
	)
	enf := func() *Policy { return pol(ModeEnforce, 86400, "mx.example.com") }
	age := func(n int64) *Policy { return pol(ModeEnforce, n, "mx.example.com") }
	padTo := func(size int) string {
		head := one(v, me, mx, ma) + "pad: "
		return head + strings.Repeat("x", size-len(head)-1) + "\n"
	}
	name32 := "e" + strings.Repeat("x", 31)
	return []policyCase{
		good("F-2/LF", f2, f2Policy()),
		good("F-3", "version: STSv1\nmode: testing\nmx: mx1.example.com\nmx: mx2.example.com\nmx: mx.backup-example.com\nmax_age: 1296000\n",
			pol(ModeTesting, 1296000, "mx1.example.com", "mx2.example.com", "mx.backup-example.com")),

		good("STS-POL-3/F-2", f2, f2Policy()),
		bad("STS-POL-3/no-version", strings.Replace(f2, "version: STSv1\n", "", 1), 0),
		bad("STS-POL-3/STSv2", strings.Replace(f2, "STSv1", "STSv2", 1), 1),
		bad("STS-POL-3/mode-report", strings.Replace(f2, "enforce", "report", 1), 2),
		bad("STS-POL-3/no-mode", one(v, mx, ma), 0),
		bad("STS-POL-3/no-max_age", one(v, me, mx), 0),
		bad("STS-POL-3/enforce-no-mx", one(v, me, ma), 0),
		bad("STS-POL-3/testing-no-mx", one(v, "mode: testing", ma), 0),
		good("STS-POL-3/none-no-mx", one(v, "mode: none", ma), pol(ModeNone, 86400)),
		good("STS-POL-3/none-with-mx", one(v, "mode: none", mx, ma), pol(ModeNone, 86400, "mx.example.com")),
		bad("STS-POL-3/empty", "", 0),
		bad("STS-POL-3/only-newline", "\n", 1),

		good("STS-POL-4/LF", f2, f2Policy()),
		good("STS-POL-4/CRLF", crlf, f2Policy()),
		good("STS-POL-4/mixed", strings.Replace(f2, "\n", "\r\n", 3), f2Policy()),
		good("STS-POL-4/no-final-newline", strings.TrimSuffix(f2, "\n"), f2Policy()),
		good("STS-POL-4/CRLF-no-final-newline", strings.TrimSuffix(crlf, "\r\n"), f2Policy()),
		bad("STS-POL-4/CR-only", strings.ReplaceAll(f2, "\n", "\r"), 1),
		bad("STS-POL-4/CR-CR-LF", strings.Replace(f2, "\n", "\r\r\n", 1), 1),
		bad("STS-POL-4/final-bare-CR", strings.TrimSuffix(f2, "\n")+"\r", 6),
		good("STS-ERRATA-1/LF", f2, f2Policy()),
		good("STS-ERRATA-1/CRLF", crlf, f2Policy()),

		good("STS-POL-5/no-space", one(v, "mode:enforce", mx, ma), enf()),
		good("STS-POL-5/trailing-wsp", one(v, "mode:   enforce\t", "mx: mx.example.com  ", ma+" \t"), enf()),
		good("STS-POL-5/tab-after-colon", one(v, "mode:\tenforce", mx, ma), enf()),
		bad("STS-POL-5/space-before-colon", one(v, "mode : enforce", mx, ma), 2),
		bad("STS-POL-5/tab-before-colon", one(v, "mode\t: enforce", mx, ma), 2),
		lenientOnly("STS-POL-5/leading-space", one(v, "  mode: enforce", mx, ma), enf(), 2),
		lenientOnly("STS-POL-5/leading-tab", one("\tversion: STSv1", me, mx, ma), enf(), 1),
		bad("STS-POL-5/comment", one("# comment", v, me, mx, ma), 1),
		bad("STS-POL-5/no-colon", one(v, me, "mx mx.example.com", ma), 3),
		bad("STS-POL-5/blank-line-inside", one(v, me, "", mx, ma), 3),
		bad("STS-POL-5/whitespace-line-inside", one(v, me, " \t", mx, ma), 3),
		bad("STS-POL-5/leading-blank-line", "\n"+one(v, me, mx, ma), 1),
		lenientOnly("STS-POL-5/trailing-blank-line", f2+"\n", f2Policy(), 7),
		lenientOnly("STS-POL-5/trailing-blank-lines-CRLF", crlf+"\r\n\r\n", f2Policy(), 7),
		lenientOnly("STS-POL-5/trailing-whitespace-lines", f2+"  \n\t\n", f2Policy(), 7),
		lenientOnly("OPEN-3/trailing-blank-line", f2+"\n", f2Policy(), 7),

		bad("STS-POL-6/Mode-is-extension", one(v, "Mode: enforce", mx, ma), 0),
		good("STS-POL-6/Mode-extension-kept", one(v, "Mode: x", me, mx, ma), withExt(enf(), Extension{"Mode", "x"})),
		bad("STS-POL-6/Enforce", one(v, "mode: Enforce", mx, ma), 2),
		bad("STS-POL-6/stsv1", one("version: stsv1", me, mx, ma), 1),
		bad("STS-POL-6/Version-key", one("Version: STSv1", me, mx, ma), 0),

		good("STS-POL-7/zero", one(v, me, mx, "max_age: 0"), age(0)),
		good("STS-POL-7/week", one(v, me, mx, "max_age: 604800"), age(604800)),
		good("STS-POL-7/maximum", one(v, me, mx, "max_age: 31557600"), age(MaxMaxAge)),
		lenientOnly("STS-POL-7/above-maximum", one(v, me, mx, "max_age: 31557601"), age(MaxMaxAge), 4),
		lenientOnly("STS-POL-7/ten-nines", one(v, me, mx, "max_age: 9999999999"), age(MaxMaxAge), 4),
		lenientOnly("OPEN-2/clamp", one(v, me, mx, "max_age: 4294967296"), age(MaxMaxAge), 4),
		lenientOnly("STS-ERRATA-3/ten-digits", one(v, me, mx, "max_age: 2147483648"), age(MaxMaxAge), 4),
		good("STS-ERRATA-3/ten-digits-with-zeros", one(v, me, mx, "max_age: 0000086400"), age(86400)),
		bad("STS-POL-7/eleven-digits", one(v, me, mx, "max_age: 12345678901"), 4),
		bad("STS-POL-7/eleven-zeros", one(v, me, mx, "max_age: 00000000000"), 4),
		bad("STS-POL-7/negative", one(v, me, mx, "max_age: -1"), 4),
		bad("STS-POL-7/plus", one(v, me, mx, "max_age: +5"), 4),
		bad("STS-POL-7/exponent", one(v, me, mx, "max_age: 1e5"), 4),
		bad("STS-POL-7/unit", one(v, me, mx, "max_age: 86400s"), 4),
		bad("STS-POL-7/empty", one(v, me, mx, "max_age:"), 4),
		bad("STS-POL-7/inner-space", one(v, me, mx, "max_age: 86 400"), 4),
		bad("STS-POL-7/arabic-digits", one(v, me, mx, "max_age: ١٢"), 4),
		good("STS-POL-7/leading-zeros", one(v, me, mx, "max_age: 0086400"), age(86400)),

		good("STS-POL-8/exact", one(v, me, "mx: mail.example.com", ma), pol(ModeEnforce, 86400, "mail.example.com")),
		good("STS-POL-8/wildcard", one(v, me, "mx: *.example.net", ma), pol(ModeEnforce, 86400, "*.example.net")),
		good("STS-POL-8/case-kept", one(v, me, "mx: MAIL.Example.COM", ma), pol(ModeEnforce, 86400, "MAIL.Example.COM")),
		good("STS-POL-8/A-label", one(v, me, "mx: xn--bcher-kva.example", ma), pol(ModeEnforce, 86400, "xn--bcher-kva.example")),
		bad("STS-POL-8/leading-dot", one(v, me, "mx: .example.net", ma), 3),
		bad("STS-POL-8/star-glued", one(v, me, "mx: *example.net", ma), 3),
		bad("STS-POL-8/star-inside", one(v, me, "mx: mail.*.example.net", ma), 3),
		bad("STS-POL-8/two-stars", one(v, me, "mx: *.*.example.net", ma), 3),
		bad("STS-POL-8/star-alone", one(v, me, "mx: *", ma), 3),
		bad("STS-POL-8/U-label", one(v, me, "mx: bücher.example", ma), 3),
		bad("STS-POL-8/underscore", one(v, me, "mx: mx_1.example.com", ma), 3),
		bad("STS-POL-8/leading-hyphen", one(v, me, "mx: -mx.example.com", ma), 3),
		bad("STS-POL-8/empty", one(v, me, "mx:", ma), 3),
		bad("STS-POL-8/two-dots", one(v, me, "mx: mail.example.com..", ma), 3),
		bad("STS-POL-8/dot-only", one(v, me, "mx: .", ma), 3),
		lenientOnly("STS-POL-8/trailing-dot", one(v, me, "mx: mail.example.com.", ma), pol(ModeEnforce, 86400, "mail.example.com"), 3),
		lenientOnly("OPEN-3/trailing-dot-wildcard", one(v, me, "mx: *.example.net.", ma), pol(ModeEnforce, 86400, "*.example.net"), 3),

		bad("STS-POL-9/comma", one(v, me, "mx: a.example, b.example", ma), 3),
		bad("STS-POL-9/space-separated", one(v, me, "mx: a.example b.example", ma), 3),
		good("STS-POL-9/three-lines", one(v, me, "mx: c.example", "mx: a.example", ma, "mx: b.example"), pol(ModeEnforce, 86400, "c.example", "a.example", "b.example")),
		good("STS-POL-9/repeated-mx-kept", one(v, me, "mx: a.example", "mx: a.example", ma), pol(ModeEnforce, 86400, "a.example", "a.example")),

		good("STS-POL-10/inner-space", one(v, me, mx, ma, "foo: bar baz"), withExt(enf(), Extension{"foo", "bar baz"})),
		good("STS-POL-10/UTF-8", one(v, me, mx, ma, "foo: ünïcödé"), withExt(enf(), Extension{"foo", "ünïcödé"})),
		good("STS-POL-10/name-chars", one(v, me, mx, ma, "foo_bar.v2: x"), withExt(enf(), Extension{"foo_bar.v2", "x"})),
		good("STS-POL-10/32-char-name", one(v, me, mx, ma, name32+": x"), withExt(enf(), Extension{name32, "x"})),
		good("STS-POL-10/colon-in-value", one(v, me, mx, ma, "url: https://x.example/a:b"), withExt(enf(), Extension{"url", "https://x.example/a:b"})),
		good("STS-POL-10/trailing-space-absorbed", one(v, me, mx, ma, "foo: bar  "), withExt(enf(), Extension{"foo", "bar"})),
		lenientOnly("STS-POL-10/empty-value", one(v, me, mx, ma, "foo:"), enf(), 5),
		lenientOnly("STS-POL-10/blank-value", one(v, me, mx, ma, "foo:  "), enf(), 5),
		bad("STS-POL-10/control", one(v, me, mx, ma, "foo: a\x01b"), 5),
		bad("STS-POL-10/inner-tab", one(v, me, mx, ma, "foo: a\tb"), 5),
		bad("STS-POL-10/DEL", one(v, me, mx, ma, "foo: a\x7fb"), 5),
		bad("STS-POL-10/underscore-first", one(v, me, mx, ma, "_foo: x"), 5),
		bad("STS-POL-10/33-char-name", one(v, me, mx, ma, name32+"x: x"), 5),
		bad("STS-POL-10/space-in-name", one(v, me, mx, ma, "foo bar: x"), 5),
		bad("STS-POL-10/empty-name", one(v, me, mx, ma, ": x"), 5),

		good("STS-POL-11/mode-first-wins", one(v, "mode: testing", me, mx, ma), pol(ModeTesting, 86400, "mx.example.com")),
		good("STS-POL-11/max_age-first-wins", one(v, me, mx, "max_age: 100", "max_age: 999"), age(100)),
		good("STS-POL-11/later-values-not-checked", one(v, me, mx, ma, "version: STSv2", "mode: bogus", "max_age: -1"), enf()),
		good("STS-POL-11/extension-first-wins", one(v, me, mx, ma, "foo: 1", "foo: 2"), withExt(enf(), Extension{"foo", "1"})),
		bad("STS-POL-11/later-line-still-a-field", one(v, me, mx, ma, "mode : x"), 5),

		good("STS-POL-12/order-free", one(ma, mx, me, v), enf()),

		good("STS-POL-13/64KiB", padTo(policyParseMaxBytes), withExt(enf(), Extension{"pad", strings.Repeat("x", policyParseMaxBytes-len(one(v, me, mx, ma))-len("pad: ")-1)})),
		bad("STS-POL-13/64KiB+1", padTo(policyParseMaxBytes+1), 0),

		lenientOnly("STS-POL-14/BOM", "\xef\xbb\xbf"+f2, f2Policy(), 1),
		lenientOnly("OPEN-3/BOM-CRLF", "\xef\xbb\xbf"+crlf, f2Policy(), 1),
		bad("STS-POL-14/two-BOMs", "\xef\xbb\xbf\xef\xbb\xbf"+f2, 1),
		bad("STS-POL-14/invalid-UTF-8-value", one(v, me, mx, ma, "foo: a\xffb"), 5),
		bad("STS-POL-14/invalid-UTF-8-key", one(v, me, mx, ma, "f\xc3: x"), 5),
		bad("STS-POL-14/overlong-UTF-8", one(v, me, mx, ma, "foo: \xc0\xaf"), 5),
		bad("STS-POL-14/surrogate", one(v, me, mx, ma, "foo: \xed\xa0\x80"), 5),
		bad("STS-POL-14/NUL", one(v, me, mx, ma, "foo: a\x00"), 5),
		bad("STS-POL-14/Latin-1-body", one(v, me, mx, ma, "foo: caf\xe9"), 5),
	}
}

func TestPolicy(t *testing.T) {
	t.Parallel()
	for _, tc := range policyCases() {
		t.Run(tc.id, func(t *testing.T) {
			t.Parallel()
			body := []byte(tc.body)
			lenientWant := tc.lenient
			if lenientWant == nil && !tc.lenientErr {
				lenientWant = tc.strict
			}
			if lenientWant == nil && !tc.lenientErr {
				t.Fatal("bad table row: no expectation")
			}
			checkPolicyResult(t, "ParsePolicyStrict", body, tc.strict, tc.errLine, ParsePolicyStrict)
			checkPolicyResult(t, "ParsePolicy", body, lenientWant, tc.errLine, ParsePolicy)
			if tc.strict != nil && tc.lenient != nil {
				t.Fatal("bad table row: lenientOnly rows must have a nil strict policy")
			}
		})
	}
}

func checkPolicyResult(t *testing.T, name string, body []byte, want *Policy, errLine int, parse func([]byte) (*Policy, error)) {
	t.Helper()
	got, err := parse(body)
	if want == nil {
		if err == nil {
			t.Fatalf("%s(%q) = %+v, want error", name, body, got)
		}
		if got != nil {
			t.Fatalf("%s(%q) returned a policy with an error", name, body)
		}
		var se *SyntaxError
		if !errors.As(err, &se) || !errors.Is(err, ErrPolicySyntax) {
			t.Fatalf("%s(%q) error %v is not a *SyntaxError wrapping ErrPolicySyntax", name, body, err)
		}
		if ResultType(err) != ResultPolicyInvalid {
			t.Fatalf("ResultType(%v) = %q", err, ResultType(err))
		}
		// errLine is the line of the strict error; a lenient error for
		// the same body is on the same line.
		if se.Line != errLine {
			t.Fatalf("%s(%q) error %v names line %d, want %d", name, body, err, se.Line, errLine)
		}
		return
	}
	if err != nil {
		t.Fatalf("%s(%q): %v", name, body, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s(%q) = %#v, want %#v", name, body, got, want)
	}
	// Round trip: the canonical form parses back to the same policy, in
	// both modes when the policy is valid.
	again, err := parse([]byte(got.String()))
	if err != nil || !reflect.DeepEqual(again, got) {
		t.Fatalf("%s round trip via %q = %#v, %v", name, got.String(), again, err)
	}
}

func TestPolicyNotices(t *testing.T) {
	t.Parallel()
	body := "\xef\xbb\xbfversion: STSv1\n mode: enforce\nmx: mail.example.com.\nmax_age: 99999999\nmode: testing\nfoo:\n\n"
	p, notices, err := ParsePolicyDetail([]byte(body), false)
	if err != nil {
		t.Fatal(err)
	}
	want := &Policy{Mode: ModeEnforce, MX: []string{"mail.example.com"}, MaxAge: MaxMaxAge}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("policy = %#v, want %#v", p, want)
	}
	wantLines := []int{1, 7, 2, 3, 4, 5, 6} // BOM, trailing blank line, then in line order
	var gotLines []int
	for _, n := range notices {
		gotLines = append(gotLines, n.Line)
		if n.Msg == "" || !strings.HasPrefix(n.String(), "line ") {
			t.Errorf("notice %+v has no message or String() %q lacks the line", n, n.String())
		}
	}
	if !reflect.DeepEqual(gotLines, wantLines) {
		t.Fatalf("notice lines = %v, want %v (%v)", gotLines, wantLines, notices)
	}
	for i, sub := range []string{"byte-order mark", "blank line", "whitespace before the key", "ends with a dot", "clamped", "repeated \"mode\"", "empty value"} {
		if !strings.Contains(notices[i].Msg, sub) {
			t.Errorf("notice %d = %q, want it to mention %q", i, notices[i].Msg, sub)
		}
	}
	// Strict mode stops at the first tolerance and returns it as the error.
	_, notices, err = ParsePolicyDetail([]byte(body), true)
	var se *SyntaxError
	if !errors.As(err, &se) || se.Line != 1 || !strings.Contains(se.Msg, "byte-order mark") || len(notices) != 0 {
		t.Fatalf("strict: err = %v, notices = %v", err, notices)
	}
	// STS-POL-11: a repeated key is a notice in strict mode too.
	_, notices, err = ParsePolicyDetail([]byte(f2+"max_age: 1\n"), true)
	if err != nil || len(notices) != 1 || notices[0].Line != 7 {
		t.Fatalf("strict duplicate: err = %v, notices = %v", err, notices)
	}
	// A clean policy has no notices.
	if _, notices, err := ParsePolicyDetail([]byte(f2), false); err != nil || notices != nil {
		t.Fatalf("F-2: notices = %v, err = %v", notices, err)
	}
}

func TestPolicyErrorMessages(t *testing.T) {
	t.Parallel()
	for body, want := range map[string]string{
		"version: STSv1\nmode : enforce\n":                "line 2: whitespace between key \"mode\" and \":\"",
		"version: STSv1\nmode: Enforce\n":                 "line 2: mode \"Enforce\" is not enforce, testing or none",
		"version: STSv1\nmode: enforce\nmx: a, b\n":       "line 3: mx \"a, b\"",
		"version: STSv1\nmode: enforce\nmax_age: 1e5\n":   "line 3: max_age \"1e5\" is not a number",
		"version: STSv1\nmode: enforce\nmax_age: 1\n":     "mode enforce needs at least one mx",
		"version: STSv1\r\nmode: enforce\rmax_age: 1\r\n": "line 2: value of \"mode\": control character 0x0d",
	} {
		_, err := ParsePolicy([]byte(body))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParsePolicy(%q) error = %v, want it to contain %q", body, err, want)
		}
	}
}

func TestPolicyFixtures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		file string
		want *Policy
	}{
		{"testdata/f2-lf.txt", f2Policy()},   // F-2
		{"testdata/f2-crlf.txt", f2Policy()}, // F-2, STS-POL-4
		{"testdata/f3.txt", pol(ModeTesting, 1296000, "mx1.example.com", "mx2.example.com", "mx.backup-example.com")}, // F-3
	} {
		b, err := os.ReadFile(tc.file)
		if err != nil {
			t.Fatal(err)
		}
		for name, parse := range map[string]func([]byte) (*Policy, error){"lenient": ParsePolicy, "strict": ParsePolicyStrict} {
			p, err := parse(b)
			if err != nil || !reflect.DeepEqual(p, tc.want) {
				t.Errorf("%s %s = %#v, %v; want %#v", name, tc.file, p, err, tc.want)
			}
		}
	}
	lf, _ := os.ReadFile("testdata/f2-lf.txt")
	if string(lf) != f2 {
		t.Fatalf("testdata/f2-lf.txt differs from the F-2 constant")
	}
	crlf, _ := os.ReadFile("testdata/f2-crlf.txt")
	if string(crlf) != strings.ReplaceAll(f2, "\n", "\r\n") {
		t.Fatalf("testdata/f2-crlf.txt is not F-2 with CRLF endings")
	}
}

func TestPolicyStringAndLines(t *testing.T) {
	t.Parallel()
	// F-7: the RFC 8460 policy-string of the Appendix A policy with max_age 604800.
	p := pol(ModeTesting, 604800, "mx1.example.com", "mx2.example.com", "mx.backup-example.com")
	wantLines := []string{"version: STSv1", "mode: testing", "mx: mx1.example.com", "mx: mx2.example.com", "mx: mx.backup-example.com", "max_age: 604800"}
	if got := p.Lines(); !reflect.DeepEqual(got, wantLines) {
		t.Fatalf("Lines() = %q, want %q", got, wantLines)
	}
	if got := p.String(); got != strings.Join(wantLines, "\n")+"\n" {
		t.Fatalf("String() = %q", got)
	}
	// F-2 canonical form is the RFC text itself.
	if got := f2Policy().String(); got != f2 {
		t.Fatalf("F-2 String() = %q, want %q", got, f2)
	}
	// Extensions come last, in order.
	p = withExt(pol(ModeNone, 0), Extension{"b", "2"}, Extension{"a", "1 2"})
	if got, want := p.String(), "version: STSv1\nmode: none\nmax_age: 0\nb: 2\na: 1 2\n"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
	if (*Policy)(nil).Lines() != nil || (*Policy)(nil).String() != "" {
		t.Fatal("nil policy must have no lines")
	}
}

func TestPolicyValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		id   string
		p    *Policy
		okay bool
	}{
		{"F-2", f2Policy(), true},
		{"STS-POL-3/none-no-mx", pol(ModeNone, 0), true},
		{"STS-POL-3/enforce-no-mx", pol(ModeEnforce, 1), false},
		{"STS-POL-3/testing-no-mx", pol(ModeTesting, 1), false},
		{"STS-POL-3/bad-mode", pol("report", 1, "a.example"), false},
		{"STS-POL-6/mode-case", pol("Enforce", 1, "a.example"), false},
		{"STS-POL-3/empty-mode", pol("", 1, "a.example"), false},
		{"STS-POL-7/negative", pol(ModeEnforce, -1, "a.example"), false},
		{"STS-POL-7/maximum", pol(ModeEnforce, MaxMaxAge, "a.example"), true},
		{"STS-POL-7/above-maximum", pol(ModeEnforce, MaxMaxAge+1, "a.example"), false},
		{"STS-POL-8/trailing-dot", pol(ModeEnforce, 1, "a.example."), false},
		{"STS-POL-8/U-label", pol(ModeEnforce, 1, "bücher.example"), false},
		{"STS-POL-9/comma", pol(ModeEnforce, 1, "a.example,b.example"), false},
		{"STS-POL-10/ok", withExt(pol(ModeEnforce, 1, "a.example"), Extension{"x", "y z"}), true},
		{"STS-POL-10/bad-name", withExt(pol(ModeEnforce, 1, "a.example"), Extension{"-x", "y"}), false},
		{"STS-POL-10/known-key", withExt(pol(ModeEnforce, 1, "a.example"), Extension{"mx", "b.example"}), false},
		{"STS-POL-10/empty-value", withExt(pol(ModeEnforce, 1, "a.example"), Extension{"x", ""}), false},
		{"STS-POL-10/leading-space", withExt(pol(ModeEnforce, 1, "a.example"), Extension{"x", " y"}), false},
		{"STS-POL-10/newline", withExt(pol(ModeEnforce, 1, "a.example"), Extension{"x", "y\nmode: none"}), false},
		{"STS-POL-10/invalid-UTF-8", withExt(pol(ModeEnforce, 1, "a.example"), Extension{"x", "\xff"}), false},
		{"STS-POL-11/duplicate-extension", withExt(pol(ModeEnforce, 1, "a.example"), Extension{"x", "1"}, Extension{"x", "2"}), false},
	} {
		err := tc.p.Validate()
		if tc.okay != (err == nil) {
			t.Errorf("%s: Validate() = %v, want ok=%v", tc.id, err, tc.okay)
			continue
		}
		if err != nil && !errors.Is(err, ErrPolicySyntax) {
			t.Errorf("%s: error %v does not wrap ErrPolicySyntax", tc.id, err)
		}
		if err == nil {
			// A valid policy round-trips through the strict parser.
			got, err := ParsePolicyStrict([]byte(tc.p.String()))
			if err != nil || !reflect.DeepEqual(got, tc.p) {
				t.Errorf("%s: strict round trip = %#v, %v", tc.id, got, err)
			}
		}
	}
	if err := (*Policy)(nil).Validate(); !errors.Is(err, ErrPolicySyntax) {
		t.Errorf("nil Validate() = %v", err)
	}
}

func TestPolicyLogValue(t *testing.T) {
	t.Parallel()
	if got := f2Policy().LogValue().String(); !strings.Contains(got, "*.example.net") {
		t.Fatalf("LogValue = %s", got)
	}
}
