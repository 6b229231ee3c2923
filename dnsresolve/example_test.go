package dnsresolve_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/netip"

	"github.com/miekg/dns"

	"github.com/mailsts/mailsts/dnsresolve"
)

// A Client queries the servers it is given; here a small miekg/dns server on
// loopback plays the recursive resolver.
func ExampleClient() {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, NotifyStartedFunc: func() { close(started) },
		Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
			m := new(dns.Msg)
			m.SetReply(r)
			if q := r.Question[0]; q.Name == "_mta-sts.example.com." && q.Qtype == dns.TypeTXT {
				m.Answer = append(m.Answer, &dns.TXT{
					Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 300},
					Txt: []string{"v=STSv1; ", "id=20240101T000000"}, // two character-strings
				})
			} else {
				m.Rcode = dns.RcodeNameError
			}
			_ = w.WriteMsg(m)
		})}
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	defer srv.Shutdown()

	c, err := dnsresolve.NewClient(pc.LocalAddr().String())
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	txts, ans, err := c.LookupTXT(ctx, "_mta-sts.EXAMPLE.com.")
	fmt.Printf("%q %v %s %v\n", txts, ans.Authenticated, ans.CanonicalName, err)

	_, _, err = c.LookupTXT(ctx, "_mta-sts.example.net")
	fmt.Println(errors.Is(err, dnsresolve.ErrNotFound), errors.Is(err, dnsresolve.ErrLookupFailed))
	// Output:
	// ["v=STSv1; id=20240101T000000"] false _mta-sts.example.com. <nil>
	// true false
}

// A Fake serves tests from maps and records what was asked.
func ExampleFake() {
	f := &dnsresolve.Fake{
		TXT:   map[string][]string{"_mta-sts.example.net": {"v=STSv1; id=1"}},
		CNAME: map[string]string{"_mta-sts.example.com": "_mta-sts.example.net"},
		IP:    map[string][]netip.Addr{"mx.example.com": {netip.MustParseAddr("127.0.0.1")}},
		Errors: map[string]error{
			"TXT _mta-sts.broken.example": fmt.Errorf("simulated SERVFAIL: %w", dnsresolve.ErrLookupFailed),
		},
	}
	f.SetMX("Example.COM.", dnsresolve.MX{Pref: 10, Host: "mx.example.com"})
	ctx := context.Background()

	txts, ans, _ := f.LookupTXT(ctx, "_mta-sts.example.com")
	fmt.Println(txts, ans.CanonicalName)

	mx, _, _ := f.LookupMX(ctx, "example.com")
	fmt.Println(mx)

	_, _, err := f.LookupTXT(ctx, "_mta-sts.broken.example")
	fmt.Println(err)

	_, _, err = f.LookupIP(ctx, "mx2.example.com")
	fmt.Println(errors.Is(err, dnsresolve.ErrNotFound))

	fmt.Printf("%q\n", f.Queries())
	// Output:
	// [v=STSv1; id=1] _mta-sts.example.net.
	// [{10 mx.example.com}]
	// dns: _mta-sts.broken.example TXT: simulated SERVFAIL: dns: lookup failed
	// true
	// ["TXT _mta-sts.example.com" "MX example.com" "TXT _mta-sts.broken.example" "IP mx2.example.com"]
}

func ExampleNormalize() {
	for _, name := range []string{"Bücher.Example.", "_MTA-STS.example.com", "bad..example"} {
		n, err := dnsresolve.Normalize(name)
		fmt.Printf("%q %v\n", n, err)
	}
	fmt.Println(dnsresolve.FQDN("example.com"))
	// Output:
	// "xn--bcher-kva.example" <nil>
	// "_mta-sts.example.com" <nil>
	// "" dns: invalid domain name "bad..example": empty label
	// example.com.
}

// An Error carries the question and the reply's rcode.
func ExampleError() {
	var f dnsresolve.Fake
	_, _, err := f.LookupTXT(context.Background(), "_mta-sts.example.org")
	var de *dnsresolve.Error
	if errors.As(err, &de) {
		fmt.Println(de.Name, de.Qtype, de.Rcode == dns.RcodeNameError)
	}
	fmt.Println(err)
	// Output:
	// _mta-sts.example.org TXT true
	// dns: _mta-sts.example.org TXT: NXDOMAIN from fake: dns: no such record
}
