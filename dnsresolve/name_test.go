package dnsresolve

import (
	"errors"
	"strings"
	"testing"
)

var normalizeGood = map[string]string{
	// STS-TXT-1: a trailing root dot must not produce a double dot.
	"example.com":           "example.com",
	"example.com.":          "example.com",
	"EXAMPLE.Com.":          "example.com",
	"_mta-sts.example.com":  "_mta-sts.example.com",
	"_25._tcp.MX.example.":  "_25._tcp.mx.example",
	"localhost":             "localhost",
	"a-b--c.example":        "a-b--c.example",
	"r3---sn-apo3.example":  "r3---sn-apo3.example",
	"123.example":           "123.example",
	strings.Repeat("a", 63): strings.Repeat("a", 63),
	// GO-10: U-labels become A-labels (IDNA Lookup profile).
	"bücher.example":          "xn--bcher-kva.example",
	"BÜCHER.Example.":         "xn--bcher-kva.example",
	"_mta-sts.bücher.example": "_mta-sts.xn--bcher-kva.example",
	"xn--bcher-kva.example":   "xn--bcher-kva.example",
	"XN--BCHER-KVA.example":   "xn--bcher-kva.example",
	"straße.de":               "xn--strae-oqa.de", // non-transitional
	"例え.テスト":                  "xn--r8jz45g.xn--zckzah",
	"例え。テスト":                  "xn--r8jz45g.xn--zckzah", // ideographic full stop
	"ｅｘａｍｐｌｅ.com":             "example.com",            // width mapping
	// 253 octets: the longest name.
	strings.Repeat(strings.Repeat("a", 62)+".", 5)[:253]: strings.Repeat(strings.Repeat("a", 62)+".", 5)[:253],
}

var normalizeBad = []string{
	"",
	".",
	"..",
	"a..b",
	".example.com",
	"example.com..",
	"exa mple.com",
	"exa*mple.com",
	"exa/mple.com",
	"exa\x00mple.com",
	"a@b.example",
	strings.Repeat("a", 64) + ".example",
	strings.Repeat(strings.Repeat("a", 62)+".", 5)[:254],
	"xn--zz-.example",  // invalid Punycode
	"xn--abc.example",  // Punycode of an ASCII string
	"bü\u200dcher.com", // ZWJ outside its context (CheckJoiners)
	"\xff.example",     // invalid UTF-8
	strings.Repeat("ü", 2000),
}

func TestNormalize(t *testing.T) {
	t.Parallel()
	for in, want := range normalizeGood {
		got, err := Normalize(in)
		if err != nil || got != want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range normalizeBad {
		got, err := Normalize(in)
		if !errors.Is(err, ErrInvalidName) {
			t.Errorf("Normalize(%q) = %q, %v; want ErrInvalidName", in, got, err)
		}
	}
}

func TestFQDN(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"a.example": "a.example.", "a.example.": "a.example.", "": "."} {
		if got := FQDN(in); got != want {
			t.Errorf("FQDN(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzNormalize: Normalize never panics, its output is a valid lowercase
// A-label name, and normalizing again changes nothing.
func FuzzNormalize(f *testing.F) {
	for in := range normalizeGood {
		f.Add(in)
	}
	for _, in := range normalizeBad {
		f.Add(in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := Normalize(in)
		if err != nil {
			if !errors.Is(err, ErrInvalidName) {
				t.Fatalf("error %v does not wrap ErrInvalidName", err)
			}
			return
		}
		if reason := checkName(out); reason != "" {
			t.Fatalf("Normalize(%q) = %q: %s", in, out, reason)
		}
		again, err := Normalize(out)
		if err != nil || again != out {
			t.Fatalf("Normalize(%q) = %q, then %q, %v", in, out, again, err)
		}
		if fq := FQDN(out); strings.HasSuffix(fq, "..") {
			t.Fatalf("FQDN(%q) = %q", out, fq)
		}
	})
}
