package tlsrpt

import "testing"

// TestValidAddrSpecQuoted: RFC 8460 §3's example rua
// mailto:tls%2Creports@example.com decodes to a local part that RFC 5322
// quotes; the quoted form is an addr-spec, the bare one is not.
func TestValidAddrSpecQuoted(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"tlsrpt@example.com":         true,
		`"tls,reports"@example.com`:  true,
		"tls,reports@example.com":    false,
		"Name <tlsrpt@example.com>":  false,
		`"tls reports"@example.com`:  true,
		`"unterminated@example.com`:  false,
		"tlsrpt@example.com, x@y.zz": false,
	} {
		if got := validAddrSpec(s); got != want {
			t.Errorf("validAddrSpec(%q) = %v, want %v", s, got, want)
		}
	}
}
