package mailclient

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"
)

// Decide: policy minimums (TLS8314-4, TLS8314-5) and latches, each alone.
func TestDecide(t *testing.T) {
	t.Parallel()
	validated := Observation{TLS: true, TLSVersion: tls.VersionTLS13, Validation: PKIX}
	unvalidated := Observation{TLS: true, TLSVersion: tls.VersionTLS13, ValidationError: "certificate expired on 2020-01-01"}
	clear := Observation{STARTTLSMissing: true}
	old := Observation{TLS: true, TLSVersion: tls.VersionTLS11, Validation: PKIX}
	full := Latch{}.Raise(validated, time.Unix(0, 0))
	tlsOnly := Latch{}.Raise(unvalidated, time.Unix(0, 0))
	for _, c := range []struct {
		name    string
		o       Observation
		p       Policy
		l       Latch
		latched bool
		accept  bool
		reason  string
	}{
		{"validated, default policy", validated, Policy{}, Latch{}, false, true, ""},
		{"unvalidated, default policy", unvalidated, Policy{}, Latch{}, false, false, "tls-unvalidated is below the account's minimum, validated (certificate expired"},
		{"cleartext, default policy", clear, Policy{}, Latch{}, false, false, "STARTTLS was not offered"},
		{"TLS 1.1", old, Policy{MinLevel: LevelCleartext}, Latch{}, false, false, "TLS 1.1 is older"},
		{"TLS 1.1 allowed", old, Policy{MinTLSVersion: tls.VersionTLS11}, Latch{}, false, true, ""},
		{"unvalidated, lax policy", unvalidated, Policy{MinLevel: LevelTLS}, Latch{}, false, true, ""},
		{"unvalidated, latched", unvalidated, Policy{MinLevel: LevelTLS}, full, true, false, "was validated (pkix) since 1970-01-01"},
		{"cleartext, TLS latched", clear, Policy{MinLevel: LevelCleartext}, tlsOnly, true, false, "TLS was used since"},
		{"cleartext, no latch", clear, Policy{MinLevel: LevelCleartext}, Latch{}, false, true, ""},
	} {
		v := Decide(c.o, c.p, c.l, c.l != (Latch{}))
		if v.Accept != c.accept || v.Latched != c.latched || !strings.Contains(strings.Join(v.Reasons, ";"), c.reason) {
			t.Errorf("%s: %+v", c.name, v)
		}
	}
	if full.Level() != LevelValidated || tlsOnly.Level() != LevelTLS || (Latch{}).Level() != LevelUnknown {
		t.Errorf("levels %s %s", full.Level(), tlsOnly.Level())
	}
	// Raise never lowers.
	if l := full.Raise(unvalidated, time.Unix(9, 0)); !l.Validated || l.Since != time.Unix(0, 0) {
		t.Errorf("raise lowered: %+v", l)
	}
	var lv Level
	if err := lv.UnmarshalText([]byte("tls-unvalidated")); err != nil || lv != LevelTLS {
		t.Errorf("UnmarshalText: %v %v", lv, err)
	}
}
