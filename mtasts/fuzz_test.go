package mtasts

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// FuzzParseRecord checks that ParseRecord never panics, that every error
// wraps ErrRecordSyntax, and that an accepted record round-trips through its
// canonical form and is what SelectRecord picks from a set of one.
func FuzzParseRecord(f *testing.F) {
	for _, tc := range recordCases() {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, txt string) {
		r, err := ParseRecord(txt)
		if err != nil {
			if !errors.Is(err, ErrRecordSyntax) || r != nil {
				t.Fatalf("ParseRecord(%q) = %v, %v", txt, r, err)
			}
			return
		}
		if r.ID == "" || len(r.ID) > 32 {
			t.Fatalf("ParseRecord(%q) accepted id %q", txt, r.ID)
		}
		again, err := ParseRecord(r.String())
		if err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("round trip of %q via %q = %+v, %v; want %+v", txt, r.String(), again, err, r)
		}
		sel, err := SelectRecord([]string{txt, "v=spf1 -all"})
		if err != nil || !reflect.DeepEqual(sel, r) {
			t.Fatalf("SelectRecord(%q) = %+v, %v; want %+v", txt, sel, err, r)
		}
	})
}

// FuzzParsePolicy checks that the parsers never panic, that strict-accepted
// bodies are lenient-accepted with the same result, that every accepted
// policy passes Validate and round-trips through String in both modes, and
// that errors are *SyntaxError.
func FuzzParsePolicy(f *testing.F) {
	for _, tc := range policyCases() {
		f.Add([]byte(tc.body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		lp, lnotes, lerr := ParsePolicyDetail(body, false)
		sp, snotes, serr := ParsePolicyDetail(body, true)
		for _, err := range []error{lerr, serr} {
			var se *SyntaxError
			if err != nil && (!errors.As(err, &se) || !errors.Is(err, ErrPolicySyntax)) {
				t.Fatalf("error %v is not a *SyntaxError", err)
			}
		}
		if (lerr == nil) != (lp != nil) || (serr == nil) != (sp != nil) {
			t.Fatalf("policy and error disagree: %v %v / %v %v", lp, lerr, sp, serr)
		}
		if serr == nil {
			if lerr != nil || !reflect.DeepEqual(sp, lp) {
				t.Fatalf("strict accepted %q as %#v, lenient gave %#v, %v", body, sp, lp, lerr)
			}
			// Strict mode only notes repeated keys, and so does lenient
			// mode for a body the strict grammar accepts.
			if !reflect.DeepEqual(snotes, lnotes) {
				t.Fatalf("notices differ on a strict body: %v / %v", snotes, lnotes)
			}
		}
		if lerr != nil {
			return
		}
		if err := lp.Validate(); err != nil {
			t.Fatalf("ParsePolicy(%q) = %#v, which fails Validate: %v", body, lp, err)
		}
		canon := lp.String()
		for name, parse := range map[string]func([]byte) (*Policy, error){"lenient": ParsePolicy, "strict": ParsePolicyStrict} {
			again, err := parse([]byte(canon))
			if err != nil || !reflect.DeepEqual(again, lp) {
				t.Fatalf("%s round trip of %q via %q = %#v, %v; want %#v", name, body, canon, again, err, lp)
			}
		}
		if got := strings.Join(lp.Lines(), "\n") + "\n"; got != canon {
			t.Fatalf("Lines and String disagree: %q / %q", got, canon)
		}
	})
}

// FuzzMatchPattern checks that matching never panics, that Policy.Match,
// CheckMX and MatchPattern agree, that matching ignores ASCII case, and that
// only valid patterns match.
func FuzzMatchPattern(f *testing.F) {
	for _, tc := range matchCases() {
		f.Add(tc.pattern, tc.host)
	}
	f.Fuzz(func(t *testing.T, pattern, host string) {
		got := MatchPattern(pattern, host)
		p := &Policy{Mode: ModeEnforce, MaxAge: 1, MX: []string{pattern}}
		if pat, ok := p.Match(host); ok != got || (ok && pat != pattern) {
			t.Fatalf("Match(%q) on [%q] = %q, %v; MatchPattern = %v", host, pattern, pat, ok, got)
		}
		if v := p.CheckMX([]string{host})[0]; v.Allowed != got || v.Reason == "" || strings.Contains(v.Reason, "\n") {
			t.Fatalf("CheckMX(%q) on [%q] = %+v; MatchPattern = %v", host, pattern, v, got)
		}
		if unused := UnusedPatterns(p, []string{host}); (len(unused) == 0) != got {
			t.Fatalf("UnusedPatterns = %q; MatchPattern = %v", unused, got)
		}
		if !got {
			return
		}
		if err := ValidPattern(strings.TrimSuffix(pattern, ".")); err != nil {
			t.Fatalf("invalid pattern %q matched %q: %v", pattern, host, err)
		}
		if !MatchPattern(strings.ToUpper(pattern), host) && isASCII(pattern) {
			t.Fatalf("upper-case %q does not match %q", pattern, host)
		}
		if isASCII(host) && !MatchPattern(pattern, strings.ToUpper(host)) {
			t.Fatalf("%q does not match upper-case %q", pattern, host)
		}
	})
}
