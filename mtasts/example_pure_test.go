package mtasts_test

import (
	"errors"
	"fmt"

	"github.com/mailsts/mailsts/mtasts"
)

func ExampleParsePolicy() {
	body := "version: STSv1\r\n" +
		"mode: enforce\r\n" +
		"mx: mail.example.com\r\n" +
		"mx: *.example.net\r\n" +
		"max_age: 604800\r\n"
	p, err := mtasts.ParsePolicy([]byte(body))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(p.Mode, p.MX, p.MaxAge)
	fmt.Print(p) // canonical form, LF line endings
	// Output:
	// enforce [mail.example.com *.example.net] 604800
	// version: STSv1
	// mode: enforce
	// mx: mail.example.com
	// mx: *.example.net
	// max_age: 604800
}

func ExampleParsePolicyDetail() {
	// A BOM, a trailing dot and an overlong max_age: tolerated, with notices.
	body := "\xef\xbb\xbfversion: STSv1\nmode: testing\nmx: mx.example.com.\nmax_age: 99999999\n"
	p, notices, err := mtasts.ParsePolicyDetail([]byte(body), false)
	fmt.Println(p.MX, p.MaxAge, err)
	for _, n := range notices {
		fmt.Println(n)
	}
	_, err = mtasts.ParsePolicyStrict([]byte(body))
	fmt.Println(err)
	// Output:
	// [mx.example.com] 31557600 <nil>
	// line 1: UTF-8 byte-order mark before the first key
	// line 3: mx "mx.example.com." ends with a dot; read as "mx.example.com"
	// line 4: max_age 99999999 is above the maximum 31557600; clamped
	// mtasts: invalid policy: line 1: UTF-8 byte-order mark before the first key
}

func ExampleSelectRecord() {
	// All TXT records at _mta-sts.example.com, character-strings joined.
	r, err := mtasts.SelectRecord([]string{"v=spf1 -all", "v=STSv1; id=20160831085700Z;"})
	fmt.Println(r.ID, err)

	_, err = mtasts.SelectRecord([]string{"v=STSv1; id=1", "v=STSv1; id=2"})
	fmt.Println(errors.Is(err, mtasts.ErrMultipleRecords), mtasts.ResultType(err))
	// Output:
	// 20160831085700Z <nil>
	// true no-policy
}

func ExamplePolicy_Match() {
	p := &mtasts.Policy{
		Mode:   mtasts.ModeEnforce,
		MX:     []string{"mail.example.com", "*.example.net"},
		MaxAge: 604800,
	}
	for _, host := range []string{"MAIL.example.com.", "a.example.net", "a.b.example.net"} {
		pattern, ok := p.Match(host)
		fmt.Printf("%s: %v %q\n", host, ok, pattern)
	}
	// Output:
	// MAIL.example.com.: true "mail.example.com"
	// a.example.net: true "*.example.net"
	// a.b.example.net: false ""
}

func ExamplePolicy_CheckMX() {
	p := &mtasts.Policy{Mode: mtasts.ModeEnforce, MX: []string{"*.example.net"}, MaxAge: 86400}
	for _, v := range p.CheckMX([]string{"a.example.net", "a.b.example.net"}) {
		fmt.Printf("%s allowed=%v: %s\n", v.Host, v.Allowed, v.Reason)
	}
	// Output:
	// a.example.net allowed=true: matches *.example.net (one label)
	// a.b.example.net allowed=false: no pattern matches; *.example.net covers exactly one label, a.b.example.net has two
}

func ExampleRecord_String() {
	r, _ := mtasts.ParseRecord("v=STSv1 ;id=20160831085700Z ; ext=1")
	fmt.Println(r)
	// Output: v=STSv1; id=20160831085700Z; ext=1;
}

func ExampleMatchPattern() {
	fmt.Println(mtasts.MatchPattern("xn--bcher-kva.example", "bücher.example"))
	fmt.Println(mtasts.MatchPattern("*.example.com", "example.com"))
	// Output:
	// true
	// false
}

func ExamplePolicyURL() {
	fmt.Println(mtasts.PolicyURL("example.com."))
	// Output: https://mta-sts.example.com/.well-known/mta-sts.txt
}

func ExampleUnusedPatterns() {
	p := &mtasts.Policy{Mode: mtasts.ModeTesting, MX: []string{"mx1.example.com", "mx2.example.com"}, MaxAge: 86400}
	fmt.Println(mtasts.UnusedPatterns(p, []string{"mx1.example.com"}))
	// Output: [mx2.example.com]
}
