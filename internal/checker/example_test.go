package checker_test

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/checker"
)

// A domain with a null MX and no MTA-STS or TLSRPT records, checked
// against an in-memory DNS zone.
func ExampleChecker_Check() {
	dns := &dnsresolve.Fake{}
	dns.SetMX("nomail.example", dnsresolve.MX{Pref: 0, Host: "."})
	c := &checker.Checker{DNS: dns}
	r := c.Check(context.Background(), "nomail.example")
	fmt.Println("verdict:", r.Verdict)
	for _, f := range r.Findings {
		fmt.Println(f.Severity, f.ID, f.Ref)
	}
	// Output:
	// verdict: warn
	// warn sts.record.missing RFC 8461 §3.1
	// info sts.mx.null STS-MX-7
	// warn tlsrpt.missing RPT-TXT-1
}

// Bulk checks a list with bounded concurrency, writing JSON Lines.
func ExampleBulk() {
	dns := &dnsresolve.Fake{}
	dns.SetMX("a.example", dnsresolve.MX{Host: "."})
	dns.SetMX("b.example", dnsresolve.MX{Host: "."})
	dns.SetTXT("_mta-sts.b.example", "v=STSv1; id=1", "v=STSv1; id=2")
	b := &checker.Bulk{Checker: &checker.Checker{DNS: dns}, Concurrency: 2, Out: io.Discard}
	sum, err := b.Run(context.Background(), checker.NewDomainReader(strings.NewReader("a.example\nb.example\nnot..valid\n"), ""))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(sum.Checked, sum.Verdicts["warn"], sum.Verdicts["fail"], sum.Verdicts["error"], sum.ExitVerdict())
	// Output: 3 1 1 1 fail
}

// NewDomainReader reads one column of a CSV file by its header name.
func ExampleNewDomainReader() {
	dr := checker.NewDomainReader(strings.NewReader("rank,domain\n1,example.com\n2,example.org\n"), "domain")
	for {
		d, err := dr.Next()
		if err != nil {
			break
		}
		fmt.Println(d)
	}
	// Output:
	// example.com
	// example.org
}
