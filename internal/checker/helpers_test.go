package checker

import (
	"context"
	"testing"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/testnet"
	"github.com/mailsts/mailsts/mtasts"
)

// shared is the testnet of this package's tests: the default scenario plus
// the extra domains of extraDomains, read only.
var shared = testnet.Shared{Start: func() (*testnet.Net, error) {
	sc := testnet.DefaultScenario()
	sc.Domains = append(sc.Domains, extraDomains()...)
	return testnet.Start(context.Background(), sc, testnet.Options{CertValidity: 90 * 24 * time.Hour})
}}

// defaultNet returns the shared testnet (read only: tests must not Set
// domains on it).
func defaultNet(t *testing.T) *testnet.Net {
	t.Helper()
	return shared.Net(t)
}

// newChecker returns a Checker pointed at n with short timeouts.
func newChecker(t *testing.T, n *testnet.Net, strict bool) *Checker {
	t.Helper()
	dns, err := dnsresolve.NewClient(n.DNSAddr())
	if err != nil {
		t.Fatal(err)
	}
	dns.Timeout = time.Second
	return &Checker{
		DNS:          dns,
		STS:          &mtasts.Client{DNS: dns, RootCAs: n.RootCAs(), HTTPSPort: n.HTTPSPort(), Timeout: 2 * time.Second},
		RootCAs:      n.RootCAs(),
		SMTPPort:     n.SMTPPort(),
		ProbeTimeout: time.Second,
		Timeout:      10 * time.Second,
		Strict:       strict,
	}
}

// extraDomains are scenarios the default testnet lacks, one per finding.
func extraDomains() []testnet.Domain {
	good := func(name string, mut func(*testnet.Domain)) testnet.Domain {
		d := testnet.Domain{
			Name:      name,
			STSTXT:    [][]string{{"v=STSv1; id=" + "x1"}},
			Policy:    &testnet.PolicyHost{Body: "version: STSv1\nmode: enforce\nmx: mx1." + name + "\nmax_age: 604800\n"},
			MX:        []testnet.MXHost{{Name: "mx1." + name, Pref: 10}},
			TLSRPTTXT: [][]string{{"v=TLSRPTv1; rua=mailto:tlsrpt@" + name}},
		}
		if mut != nil {
			mut(&d)
		}
		return d
	}
	return []testnet.Domain{
		good("perfect.test", nil),
		good("txt-syntax.test", func(d *testnet.Domain) { d.STSTXT = [][]string{{"v=STSv1;; id=abc"}} }),
		good("txt-other.test", func(d *testnet.Domain) { d.STSTXT = [][]string{{"v=STSv1; id=abc"}, {"google-site-verification=x"}} }),
		good("txt-none.test", func(d *testnet.Domain) { d.STSTXT = [][]string{{"v=spf1 -all"}} }),
		good("pol-syntax.test", func(d *testnet.Domain) {
			d.Policy.Body = "version: STSv1\nmode: enforce\nmx : mx1.pol-syntax.test\nmax_age: 604800\n"
		}),
		good("pol-lenient.test", func(d *testnet.Domain) {
			d.Policy.Body = "version: STSv1\nmode: enforce\nmx: mx1.pol-lenient.test.\nmax_age: 604800\n\n"
		}),
		good("pol-short.test", func(d *testnet.Domain) {
			d.Policy.Body = "version: STSv1\nmode: enforce\nmx: mx1.pol-short.test\nmax_age: 3600\n"
		}),
		good("pol-long.test", func(d *testnet.Domain) {
			d.Policy.Body = "version: STSv1\nmode: enforce\nmx: mx1.pol-long.test\nmax_age: 99999999\n"
		}),
		good("pol-mixed.test", func(d *testnet.Domain) {
			d.Policy.Body = "version: STSv1\r\nmode: enforce\nmx: mx1.pol-mixed.test\r\nmax_age: 604800\n"
		}),
		good("pol-nohost.test", func(d *testnet.Domain) { d.Policy = nil }),
		good("wild.test", func(d *testnet.Domain) {
			d.Policy.Body = "version: STSv1\nmode: enforce\nmx: *.wild.test\nmx: old.wild.test\nmax_age: 604800\n"
			d.MX = []testnet.MXHost{{Name: "mx1.wild.test", Pref: 10}, {Name: "a.b.wild.test", Pref: 20}}
		}),
		good("implicit.test", func(d *testnet.Domain) {
			d.MX = nil
			d.Policy.Body = "version: STSv1\nmode: enforce\nmx: implicit.test\nmax_age: 604800\n"
		}),
		good("mxfault.test", func(d *testnet.Domain) { d.MXFault = testnet.FaultServFail }),
		good("mxaddr.test", func(d *testnet.Domain) { d.MX[0].Fault = testnet.FaultNXDomain }),
		good("mxtls10.test", func(d *testnet.Domain) { d.MX[0].MaxTLS = "1.1" }),
		good("mxselfsigned.test", func(d *testnet.Domain) { d.MX[0].Cert = testnet.CertSelfSigned }),
		good("mxcnonly.test", func(d *testnet.Domain) { d.MX[0].Cert = testnet.CertCNOnly }),
		good("many-mx.test", func(d *testnet.Domain) {
			d.Policy.Body = "version: STSv1\nmode: enforce\nmx: *.many-mx.test\nmax_age: 604800\n"
			d.MX = nil
			for i := range 12 {
				d.MX = append(d.MX, testnet.MXHost{Name: "mx" + string(rune('a'+i)) + ".many-mx.test", Pref: uint16(i)})
			}
		}),
		good("dane-insecure.test", func(d *testnet.Domain) { d.MX[0].TLSA = testnet.TLSADaneEE }),
		good("dane-unusable.test", func(d *testnet.Domain) {
			d.Secure = true
			d.Records = []string{"_25._tcp.mx1.dane-unusable.test. 300 IN TLSA 1 1 1 0000000000000000000000000000000000000000000000000000000000000000"}
		}),
		good("rpt-multi.test", func(d *testnet.Domain) {
			d.TLSRPTTXT = [][]string{{"v=TLSRPTv1; rua=mailto:a@rpt-multi.test"}, {"v=TLSRPTv1; rua=mailto:b@rpt-multi.test"}}
		}),
		good("rpt-syntax.test", func(d *testnet.Domain) { d.TLSRPTTXT = [][]string{{"v=TLSRPTv1; foo=bar"}} }),
		good("rpt-scheme.test", func(d *testnet.Domain) {
			d.TLSRPTTXT = [][]string{{"v=TLSRPTv1; rua=ftp://x.rpt-scheme.test/r,mailto:r@rpt-scheme.test"}}
		}),
		good("rpt-norua.test", func(d *testnet.Domain) { d.TLSRPTTXT = [][]string{{"v=TLSRPTv1; rua=ftp://x.rpt-norua.test/r"}} }),
		good("rpt-none.test", func(d *testnet.Domain) { d.TLSRPTTXT = [][]string{{"v=spf1 -all"}} }),
		// STS-CERT-3: both MX hosts match the wildcard; TestCertForOtherMX
		// makes mx1 present mx2's certificate.
		good("certname.test", func(d *testnet.Domain) {
			d.Policy.Body = "version: STSv1\nmode: enforce\nmx: *.certname.test\nmax_age: 604800\n"
			d.MX = []testnet.MXHost{{Name: "mx1.certname.test", Pref: 10}, {Name: "mx2.certname.test", Pref: 20}}
		}),
		good("bücher.test", func(d *testnet.Domain) {
			d.Policy.Body = "version: STSv1\nmode: enforce\nmx: mx1.xn--bcher-kva.test\nmax_age: 604800\n"
			d.MX = []testnet.MXHost{{Name: "mx1.xn--bcher-kva.test", Pref: 10}}
			d.TLSRPTTXT = [][]string{{"v=TLSRPTv1; rua=mailto:tlsrpt@xn--bcher-kva.test"}}
		}),
	}
}
