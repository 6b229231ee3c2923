package outgoing

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mailsts/mailsts/tlsrpt/result"
)

// The memo gives what normalize gives, on the first call and on every
// repeat, for results it passes and results it refuses; a verdict is
// never carried to another day or to a result that differs in anything
// normalize looks at.
func TestNormCacheMatchesNormalize(t *testing.T) {
	t.Parallel()
	exp := Failure{ResultType: result.CertificateExpired, SendingMTAIP: "192.0.2.1", ReceivingMXHostname: "MX.Example.COM.",
		ReceivingIP: "198.51.100.1", AdditionalInfo: strings.Repeat("é", 700), FailureReasonCode: "x"}
	upper := ok("Example.COM.", day1)
	upper.Policy.MXHosts = []string{"*.MX.example.com"}
	tlsa := ok("example.com", day1)
	tlsa.Policy = Policy{Type: "tlsa", Strings: []string{"3 1 1 AB"}}
	badTLSA := tlsa
	badTLSA.Policy = Policy{Type: "tlsa", Strings: []string{"3 1 1 XY"}}
	badIP := fail("example.com", day1, Failure{ResultType: result.CertificateExpired, ReceivingIP: "198.51.100.01"})
	unknown := fail("example.com", day1, Failure{ResultType: "no-such-type"})
	noPolicy := ok("example.com", day1)
	noPolicy.Policy = Policy{Type: "no-policy-found"}
	noPolicyMX := noPolicy
	noPolicyMX.Policy.MXHosts = []string{"mx.example.com"}
	year1 := ok("example.com", time.Date(1, 1, 1, 5, 0, 0, 0, time.UTC))
	zone := ok("example.com", day1.In(time.FixedZone("x", -11*3600)))
	cases := []Result{
		ok("example.com", day1), upper, fail("example.com", day1, exp), fail("example.com", day1, exp, exp), tlsa, noPolicy,
		zone, ok("example.com", time.Time{}),
		// Refused:
		ok("", day1), badTLSA, badIP, unknown, noPolicyMX, year1,
		// The same content on the refused day 0001-01-01 after the
		// accepted one above (and the other way round):
		ok("example.com", year1.Time), ok("example.com", day1),
	}
	now := day1.Add(time.Hour)
	var c normCache
	for round := range 3 {
		for i, r := range cases {
			want, werr := normalize(r, now)
			got, gerr := c.normalize(r, now)
			if fmt.Sprint(werr) != fmt.Sprint(gerr) {
				t.Errorf("round %d case %d: error %v, want %v", round, i, gerr, werr)
				continue
			}
			if werr != nil {
				continue
			}
			if !reflect.DeepEqual(got.Result, want) || got.key != policyKey(want.Policy) {
				t.Errorf("round %d case %d:\ngot  %+v %s\nwant %+v %s", round, i, got.Result, got.key, want, policyKey(want.Policy))
			}
		}
	}
	// The zoned, the zero-time (now) and the last result are the first
	// one's: same UTC day, same content.
	if len(c.entries) != 6 {
		t.Errorf("%d entries, want one per distinct accepted result (6)", len(c.entries))
	}
}

// Hostile input that never repeats grows the memo to its cap and no
// further; results whose key is over normCacheKeyMax are not kept.
func TestNormCacheBounded(t *testing.T) {
	t.Parallel()
	var c normCache
	for i := range normCacheEntries + 10 {
		if _, err := c.normalize(ok(fmt.Sprintf("d%d.example", i), day1), day1); err != nil {
			t.Fatal(err)
		}
		if len(c.entries) > normCacheEntries || c.bytes > normCacheBytes {
			t.Fatalf("after %d results: %d entries, %d bytes", i+1, len(c.entries), c.bytes)
		}
	}
	if len(c.entries) != 10 {
		t.Errorf("%d entries after the cap was reached, want 10 (started again)", len(c.entries))
	}
	long := ok("example.com", day1)
	long.Policy.Strings = append([]string{}, long.Policy.Strings...)
	for range 8 {
		long.Policy.Strings = append(long.Policy.Strings, "x: "+strings.Repeat("y", 1000))
	}
	before := len(c.entries)
	for range 2 {
		if _, err := c.normalize(long, day1); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.entries) != before {
		t.Errorf("a result with an %d-byte policy was kept", 8*1003)
	}
}
