package testnet

import (
	"math/rand/v2"
	"strconv"
)

// Generated scenarios share a pool of MX hosts, the way most domains share a
// few mail providers, so that any n fits in one /24 of MX addresses.
const (
	genProviders = 30 // providers p0…p29, each with mx1 and mx2
	genSuffix    = ".gen.example"
)

// Special MX hosts of generated scenarios.
const (
	genMXNoSTARTTLS = "mx.nostarttls" + genSuffix
	genMXBadCert    = "mx.badcert" + genSuffix
	genMXExpired    = "mx.expired" + genSuffix
	genMXDown       = "mx.down" + genSuffix
	genMXDane       = "mx.dane" + genSuffix
)

// Generate returns n varied domains named d000000.gen.example, … for
// benchmarks and load tests. The same (n, seed) always gives the same
// scenario. About 60% have a good enforce policy and 15% a good testing
// policy; the rest cover mode none, no MTA-STS, DNS failures, HTTP errors,
// bad policy-host certificates, odd TXT records, MX hosts without STARTTLS or
// with bad certificates, a refusing MX and DANE. It costs a few hundred
// nanoseconds per domain.
func Generate(n int, seed int64) *Scenario {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x6d61696c737473))
	sc := &Scenario{Domains: make([]Domain, 0, max(n, 0))}
	for i := range max(n, 0) {
		sc.Domains = append(sc.Domains, genDomain(i, rng))
	}
	return sc
}

func genDomain(i int, rng *rand.Rand) Domain {
	num := strconv.Itoa(i)
	for len(num) < 6 {
		num = "0" + num
	}
	name := "d" + num + genSuffix
	p := "p" + strconv.Itoa(rng.IntN(genProviders)) + genSuffix
	d := Domain{
		Name:   name,
		STSTXT: [][]string{{"v=STSv1; id=gen" + strconv.Itoa(rng.IntN(1_000_000))}},
		MX:     []MXHost{{Name: "mx1." + p, Pref: 10}, {Name: "mx2." + p, Pref: 20}},
	}
	mode, pattern := "enforce", "*."+p
	if rng.IntN(2) == 0 {
		d.TLSRPTTXT = [][]string{{"v=TLSRPTv1; rua=mailto:tlsrpt@" + name}}
	}
	policy := func() *PolicyHost {
		return &PolicyHost{Body: "version: STSv1\nmode: " + mode + "\nmx: " + pattern + "\nmax_age: 604800\n"}
	}
	only := func(mx string) {
		d.MX = []MXHost{{Name: mx, Pref: 10}}
		pattern = mx
	}
	switch r := rng.IntN(100); {
	case r < 60: // good enforce
	case r < 75:
		mode = "testing"
	case r < 78:
		mode = "none"
	case r < 83: // no MTA-STS at all
		d.STSTXT = nil
		return d
	case r == 83:
		d.STSFault = FaultServFail
	case r == 84:
		d.Policy = policy()
		d.Policy.Status = 404
		return d
	case r == 85:
		d.Policy = policy()
		d.Policy.Cert = CertExpired
		return d
	case r == 86:
		d.Policy = policy()
		d.Policy.Cert = CertWrongName
		return d
	case r == 87: // STS-TXT-9
		d.STSTXT = [][]string{{"v=STSv1; ", "id=gen" + num}}
	case r == 88: // STS-TXT-7
		d.STSTXT = append(d.STSTXT, []string{"v=STSv1; id=other" + num})
	case r == 89:
		d.Policy = policy()
		d.Policy.ContentType = "text/html"
		return d
	case r < 92:
		only(genMXNoSTARTTLS)
	case r < 94:
		only(genMXBadCert)
	case r == 94:
		mode = "testing"
		only(genMXExpired)
	case r == 95:
		only(genMXDown)
	case r == 96: // STS-POL-4
		d.Policy = policy()
		d.Policy.Body = "version: STSv1\r\nmode: enforce\r\nmx: " + pattern + "\r\nmax_age: 604800\r\n"
		return d
	case r == 97: // TXT record but no policy host
		return d
	case r == 98:
		d.Secure = true
		only(genMXDane)
	default: // STS-FETCH-5
		d.Policy = policy()
		d.Policy.Status = 301
		d.Policy.Location = "https://mta-sts.d000000" + genSuffix + PolicyPath
		return d
	}
	d.Policy = policy()
	for j := range d.MX {
		switch d.MX[j].Name {
		case genMXNoSTARTTLS:
			d.MX[j].NoSTARTTLS = true
		case genMXBadCert:
			d.MX[j].Cert = CertWrongName
		case genMXExpired:
			d.MX[j].Cert = CertExpired
		case genMXDown:
			d.MX[j].Down = true
		case genMXDane:
			d.MX[j].TLSA = TLSADaneEE
		}
	}
	return d
}
