package result_test

import (
	"testing"

	"github.com/mailsts/mailsts/tlsrpt/result"
)

// RPT-RES-1..12: the registry has 11 values, all known; local classes and
// future values are not known; only RPT-RES-4 and RPT-RES-5 want a reason.
func TestTypes(t *testing.T) {
	t.Parallel()
	types := result.Types()
	if len(types) != 11 {
		t.Fatalf("%d registry values, want 11", len(types))
	}
	seen := map[result.Type]bool{}
	for _, rt := range types {
		if !rt.Known() || rt.Local() || seen[rt] {
			t.Errorf("%q: Known %v, Local %v, duplicate %v", rt, rt.Known(), rt.Local(), seen[rt])
		}
		seen[rt] = true
		want := rt == result.CertificateNotTrusted || rt == result.ValidationFailure
		if rt.WantsReasonCode() != want {
			t.Errorf("%q: WantsReasonCode = %v", rt, rt.WantsReasonCode())
		}
	}
	for _, rt := range result.Locals() {
		if rt.Known() || !rt.Local() || seen[rt] || rt.WantsReasonCode() {
			t.Errorf("local %q: Known %v, Local %v, collides %v", rt, rt.Known(), rt.Local(), seen[rt])
		}
		seen[rt] = true
	}
	for _, rt := range []result.Type{"", "some-future-type", "STARTTLS-NOT-SUPPORTED"} {
		if rt.Known() || rt.Local() {
			t.Errorf("%q: Known %v, Local %v", rt, rt.Known(), rt.Local())
		}
	}
}
