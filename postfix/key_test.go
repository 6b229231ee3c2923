package postfix

import (
	"strings"
	"testing"
	"unicode/utf8"
)

var nextHopCases = map[string]NextHop{
	// PFX-POL-1: the recipient domain.
	"example.com":      {Domain: "example.com", Kind: KeyDomain},
	"mail.example.com": {Domain: "mail.example.com", Kind: KeyDomain},
	// PFX-SOCKETMAP-9, GO-12: not case-folded by Postfix; one trailing dot.
	"EXAMPLE.COM.":          {Domain: "example.com", Kind: KeyDomain},
	"Example.Com":           {Domain: "example.com", Kind: KeyDomain},
	"example.com..":         {},
	"xn--bcher-kva.example": {Domain: "xn--bcher-kva.example", Kind: KeyDomain},
	"BÜCHER.example":        {Domain: "bücher.example", Kind: KeyDomain},
	"_srv.example.com":      {Domain: "_srv.example.com", Kind: KeyDomain},
	// PFX-POL-1, STS-SEL-2, OPEN-5: brackets and ports.
	"[relay.example.net]:587": {Domain: "relay.example.net", Bracketed: true, Port: "587", Kind: KeyDomain},
	"[relay.example.net]":     {Domain: "relay.example.net", Bracketed: true, Kind: KeyDomain},
	"[Relay.Example.NET.]":    {Domain: "relay.example.net", Bracketed: true, Kind: KeyDomain},
	"example.com:2525":        {Domain: "example.com", Port: "2525", Kind: KeyDomain},
	"example.com:smtp":        {Domain: "example.com", Port: "smtp", Kind: KeyDomain},
	"example.com:25":          {Domain: "example.com", Port: "25", Kind: KeyDomain},
	"[relay.example.net]:":    {},
	"[relay.example.net]587":  {},
	"[relay.example.net":      {},
	"example.com:":            {},
	"example.com:0":           {},
	"example.com:65536":       {},
	"example.com:02525":       {},
	"example.com:sm tp":       {},
	// PFX-POL-2, STS-SEL-3: parent-domain probes.
	".example.com":    {Domain: "example.com", Kind: KeyParentProbe},
	".b.example.com":  {Domain: "b.example.com", Kind: KeyParentProbe},
	".COM":            {Domain: "com", Kind: KeyParentProbe},
	".":               {},
	"..example.com":   {},
	".example.com:25": {},
	// STS-SEL-4, GO-12: address literals.
	"[192.0.2.1]":          {Domain: "192.0.2.1", Bracketed: true, Kind: KeyIPLiteral},
	"[192.0.2.1]:587":      {Domain: "192.0.2.1", Bracketed: true, Port: "587", Kind: KeyIPLiteral},
	"[IPv6:2001:db8::1]":   {Domain: "2001:db8::1", Bracketed: true, Kind: KeyIPLiteral},
	"[ipv6:2001:DB8:0::1]": {Domain: "2001:db8::1", Bracketed: true, Kind: KeyIPLiteral},
	"[IPv6:192.0.2.1]":     {},
	"[IPv6:fe80::1%eth0]":  {},
	"[2001:db8::1]":        {Domain: "2001:db8::1", Bracketed: true, Kind: KeyIPLiteral},
	"192.0.2.1":            {Domain: "192.0.2.1", Kind: KeyIPLiteral},
	"192.0.2.1:25":         {Domain: "192.0.2.1", Port: "25", Kind: KeyIPLiteral},
	"2001:db8::1":          {Domain: "2001:db8::1", Kind: KeyIPLiteral},
	"192.000.2.1":          {}, // not an address (leading zeros), not a domain (numeric TLD)
	"1.2.3":                {},
	// Invalid.
	"":                                {},
	"\xff.example.com":                {},
	"inet:127.0.0.1:24":               {}, // LMTP prefixes (PFX-POL-1)
	"unix:/var/run/lmtp":              {},
	"exa mple.com":                    {},
	"user@example.com":                {},
	"-example.com":                    {},
	"example-.com":                    {},
	"[tag:content]":                   {},
	"[]":                              {},
	"example.com/x":                   {},
	strings.Repeat("a", 64) + ".com":  {},
	strings.Repeat("a.", 127) + "com": {},
}

func TestParseNextHop(t *testing.T) { // PFX-POL-1, PFX-POL-2, GO-12, OPEN-5, STS-SEL-2..4, PFX-SOCKETMAP-9
	t.Parallel()
	for key, want := range nextHopCases {
		want.Key = key
		if got := ParseNextHop(key); got != want {
			t.Errorf("ParseNextHop(%q) = %+v, want %+v", key, got, want)
		}
	}
}

func TestPolicyDomain(t *testing.T) { // STS-SEL-2..4, OPEN-5
	t.Parallel()
	for key, want := range map[string]string{
		"example.com":             "example.com",
		"[relay.example.net]:587": "relay.example.net",
		"example.com:2525":        "example.com",
		".example.com":            "",
		"[192.0.2.1]":             "",
		"[IPv6:2001:db8::1]":      "",
		"":                        "",
	} {
		got, ok := ParseNextHop(key).PolicyDomain()
		if got != want || ok != (want != "") {
			t.Errorf("PolicyDomain(%q) = %q, %v; want %q", key, got, ok, want)
		}
	}
}

func FuzzParseNextHop(f *testing.F) {
	for key := range nextHopCases {
		f.Add(key)
	}
	f.Fuzz(func(t *testing.T, key string) {
		h := ParseNextHop(key)
		if h.Key != key {
			t.Fatalf("Key = %q, want %q", h.Key, key)
		}
		if h.Kind == KeyInvalid {
			if h.Domain != "" || h.Port != "" || h.Bracketed {
				t.Fatalf("invalid key %q has fields set: %+v", key, h)
			}
			return
		}
		if !utf8.ValidString(h.Domain) || h.Domain == "" || strings.HasSuffix(h.Domain, ".") {
			t.Fatalf("bad domain in %+v", h)
		}
		if h.Domain != strings.ToLower(h.Domain) {
			t.Fatalf("domain not lowercase in %+v", h)
		}
		// Idempotence: re-parsing the normalized form gives the same host.
		again := h.Domain
		if h.Kind == KeyParentProbe {
			again = "." + again
		}
		if h.Kind != KeyIPLiteral {
			if g := ParseNextHop(again); g.Domain != h.Domain || g.Kind != h.Kind {
				t.Fatalf("re-parse of %q = %+v, from %+v", again, g, h)
			}
		}
		if _, ok := h.PolicyDomain(); ok != (h.Kind == KeyDomain) {
			t.Fatalf("PolicyDomain ok = %v for kind %v", ok, h.Kind)
		}
	})
}
