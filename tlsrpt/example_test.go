package tlsrpt_test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"time"

	"github.com/mailsts/mailsts/tlsrpt"
)

func ExampleParseRecord() {
	rec, err := tlsrpt.ParseRecord("v=TLSRPTv1; rua=mailto:tls%2Creports@example.com,https://reporting.example.com/v1/tlsrpt,http://old.example/")
	if err != nil {
		fmt.Println(err)
		return
	}
	usable, ignored := rec.UsableRUA()
	for _, u := range usable {
		fmt.Println(u.Scheme, u.Address, u.URL)
	}
	for _, i := range ignored {
		fmt.Println("ignored:", i.Raw, "-", i.Reason)
	}
	// Output:
	// mailto tls,reports@example.com <nil>
	// https  https://reporting.example.com/v1/tlsrpt
	// ignored: http://old.example/ - unsupported scheme "http"
}

func ExampleParse() {
	data, err := os.ReadFile("testdata/f10b.json")
	if err != nil {
		fmt.Println(err)
		return
	}
	r, repairs, err := tlsrpt.Parse(data)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, rp := range repairs {
		fmt.Println("repair:", rp.Code)
	}
	p := r.Policies[0]
	fmt.Println(p.Policy.Type, p.Policy.Domain, p.Policy.MXHost)
	fmt.Println(p.Summary.TotalSuccessfulSessionCount, p.Summary.TotalFailureSessionCount)
	fmt.Println(p.FailureDetails[0].SendingMTAIP)
	// Output:
	// repair: mx-host-string
	// repair: ipv6-noncanonical
	// repair: ipv6-noncanonical
	// sts company-y.example [*.mail.company-y.example]
	// 5326 303
	// 2001:db8:abcd:12::1
}

func ExampleDecode() {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(`{"policies":[]}`))
	zw.Close()
	// An HTTPS receiver (RFC 8460 §5.4): the body with its Content-Type.
	js, _, err := tlsrpt.Decode(&gz, "application/tlsrpt+gzip", tlsrpt.Limits{MaxInput: 1 << 20, MaxOutput: 4 << 20})
	fmt.Println(string(js), err)
	// Output: {"policies":[]} <nil>
}

func ExampleParseMessage() {
	f, err := os.Open("testdata/f9-with-f10c.eml")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer f.Close()
	m, err := tlsrpt.ParseMessage(f, tlsrpt.Limits{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m.ReportDomain, m.Submitter, m.SubjectInfo.ReportID)
	a := m.Attachments[0]
	r, _, err := a.Parse()
	if err != nil {
		fmt.Println(err)
		return
	}
	// RFC 8460 §5.6: the body wins over the headers and the file name.
	fmt.Println(a.FilenameInfo.PolicyDomain, "vs", r.Policies[0].Policy.Domain)
	// Output:
	// example.net mail.sender.example.com 735ff.e317+bf22029@example.net
	// example.com vs company-y.example
}

func ExampleParseFilename() {
	f, err := tlsrpt.ParseFilename("mail.sndr.example.com!example.net!1470013207!1470186007!001.json.gz")
	fmt.Println(f.Sender, f.PolicyDomain, f.Begin.Format(time.RFC3339), f.UniqueID, f.Gzip, err)
	// Output: mail.sndr.example.com example.net 2016-08-01T01:00:07Z 001 true <nil>
}

func ExampleParseSubject() {
	s, _, err := tlsrpt.ParseSubject("Report Domain: example.net\r\n Submitter: mail.sender.example.com\r\n Report-ID: <735ff.e317+bf22029@mailexample.net>")
	fmt.Println(s.Domain, s.Submitter, s.ReportID, err)
	// Output: example.net mail.sender.example.com 735ff.e317+bf22029@mailexample.net <nil>
}

func ExampleAggregator() {
	policy := tlsrpt.Policy{
		Type:   tlsrpt.PolicyTypeSTS,
		Domain: "example.net",
		String: []string{"version: STSv1", "mode: enforce", "mx: mx.example.net", "max_age: 86400"},
		MXHost: []string{"mx.example.net"},
	}
	var agg tlsrpt.Aggregator
	agg.AddSuccess(policy, 41)
	agg.AddFailure(policy, tlsrpt.FailureDetails{
		ResultType:          tlsrpt.ResultCertificateExpired,
		ReceivingMXHostname: "mx.example.net",
		ReceivingIP:         "192.0.2.25",
	})
	r := agg.Report(tlsrpt.ReportParams{
		OrganizationName: "Sender Inc.",
		ContactInfo:      "tlsrpt@mail.sender.example",
		PolicyDomain:     "example.net",
		Day:              time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC),
	})
	fmt.Println(r.Validate(), r.ReportID, tlsrpt.FormatTime(r.DateRange.End))
	name := tlsrpt.Filename{Sender: "mail.sender.example", PolicyDomain: "example.net", Begin: r.DateRange.Start, End: r.DateRange.End, Gzip: true}
	fmt.Println(name)
	// Output:
	// <nil> 20240501.example.net@mail.sender.example 2024-05-01T23:59:59Z
	// mail.sender.example!example.net!1714521600!1714607999.json.gz
}
