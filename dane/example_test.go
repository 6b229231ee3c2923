package dane_test

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/mailsts/mailsts/dane"
	"github.com/mailsts/mailsts/dnsresolve"
)

// Applies decides whether DANE applies to a destination (RFC 7672 §2.2):
// here the MX RRset is signed, mx1 has signed addresses and a usable TLSA
// record, and mx2's addresses are not signed, so its TLSA record does not
// count and DANE applies to some hosts only.
func ExampleApplies() {
	f := &dnsresolve.Fake{}
	f.SetMX("example.com", dnsresolve.MX{Pref: 10, Host: "mx1.example.com"}, dnsresolve.MX{Pref: 20, Host: "mx2.example.com"})
	f.SetAuthenticated("example.com", true)
	tlsa := dnsresolve.TLSA{Usage: dane.UsageDANEEE, Selector: dane.SelectorSPKI, MatchingType: dane.MatchSHA256, Data: make([]byte, 32)}
	for i, h := range []string{"mx1.example.com", "mx2.example.com"} {
		f.SetIP(h, netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}))
		f.SetAuthenticated(h, h == "mx1.example.com")
		f.SetTLSA("_25._tcp."+h, tlsa)
		f.SetAuthenticated("_25._tcp."+h, true)
	}

	res := dane.Applies(context.Background(), f, "example.com")
	fmt.Println("summary:", res.Summary)
	for _, h := range res.Hosts {
		fmt.Println(h.Name, h.Status)
	}
	// Output:
	// summary: some
	// mx1.example.com usable
	// mx2.example.com insecure
}
