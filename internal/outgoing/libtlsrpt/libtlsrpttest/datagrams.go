// Package libtlsrpttest holds test data for the libtlsrpt collector: the
// synthetic datagram mix that its benchmarks and bench/sender send.
package libtlsrpttest

import (
	"fmt"
	"strconv"
)

// Mix returns n datagrams in libtlsrpt's byte form over the given number
// of domains: one in five an MTA-STS failure (certificate expired, seven
// receiving IPs), two in five MTA-STS successes, two in five
// no-policy-found.
func Mix(n, domains int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		d := fmt.Sprintf("d%05d.example", i%domains)
		var pol string
		switch i % 5 {
		case 0:
			pol = `{"policy-type":2,"policy-domain": "` + d + `","policy-string":["version: STSv1","mode: enforce","mx: mx.` + d + `","max_age: 86400"],"mx-host":["mx.` + d + `"],` +
				`"failure-details":[{"c":204,"s": "192.0.2.1","n": "mx.` + d + `","r": "198.51.100.` + strconv.Itoa(i%7) + `","a": "certificate has expired"}],"t":1,"f":1}`
		case 1, 2:
			pol = `{"policy-type":2,"policy-domain": "` + d + `","policy-string":["version: STSv1","mode: enforce","mx: mx.` + d + `","max_age: 86400"],"mx-host":["mx.` + d + `"],"t":0,"f":0}`
		default:
			pol = `{"policy-type":9,"policy-domain": "` + d + `","t":0,"f":0}`
		}
		out[i] = []byte(`{"dpv": "1","d": "` + d + `","pr": "v=TLSRPTv1; rua=mailto:tlsrpt@` + d + `","policies":[` + pol + `]}`)
	}
	return out
}
