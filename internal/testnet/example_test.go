package testnet_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/mailsts/mailsts/internal/testnet"
)

// Start the default scenario, look up an MTA-STS record and fetch the
// policy as a sender would.
func ExampleStart() {
	ctx := context.Background()
	n, err := testnet.Start(ctx, testnet.DefaultScenario(), testnet.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer n.Close()

	// DNS: any client pointed at n.DNSAddr().
	c := &dns.Client{Timeout: 5 * time.Second}
	m := new(dns.Msg)
	m.SetQuestion("_mta-sts.enforce.example.", dns.TypeTXT)
	r, _, err := c.Exchange(m, n.DNSAddr())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(strings.Join(r.Answer[0].(*dns.TXT).Txt, ""))

	// HTTPS: trust n.RootCAs() and dial n.HTTPSAddr() for every policy host.
	var d net.Dialer
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: n.RootCAs(), MinVersion: tls.VersionTLS12},
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", n.HTTPSAddr())
		},
	}}
	resp, err := client.Get("https://mta-sts.enforce.example/.well-known/mta-sts.txt")
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Print(string(body))
	fmt.Println("requests:", n.Requests("enforce.example"))
	// Output:
	// v=STSv1; id=enforce20240101
	// version: STSv1
	// mode: enforce
	// mx: *.enforce.example
	// max_age: 86400
	// requests: 1
}

// Scenarios are YAML; unknown keys are errors with line numbers.
func ExampleLoadScenario() {
	sc, err := testnet.LoadScenario([]byte(`
domains:
  - name: example.example
    sts_txt: [["v=STSv1; id=2016", "0831085700Z;"]]
    policy:
      body: "version: STSv1\nmode: testing\nmx: mx.example.example\nmax_age: 86400\n"
      cert: expired
    mx:
      - {name: mx.example.example, pref: 10, tlsa: dane-ee}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	d := sc.Domains[0]
	fmt.Println(d.Name, d.STSTXT, d.Policy.Cert, d.MX[0].TLSA)

	_, err = testnet.LoadScenario([]byte("domains:\n  - name: a.example\n    polcy: {}\n"))
	fmt.Println(err)
	// Output:
	// example.example [[v=STSv1; id=2016 0831085700Z;]] expired dane-ee
	// testnet: invalid scenario: yaml: unmarshal errors:
	//   line 3: field polcy not found in type testnet.Domain
}

// Change a domain while the network serves, as a test of policy updates
// would between two lookups.
func ExampleNet_Set() {
	n, err := testnet.Start(context.Background(), testnet.DefaultScenario(), testnet.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer n.Close()
	d, _ := n.Domain("testing.example")
	d.STSTXT = [][]string{{"v=STSv1; id=testing2"}}
	d.Policy.Body = "version: STSv1\nmode: enforce\nmx: mx1.testing.example\nmax_age: 86400\n"
	if err := n.Set(d); err != nil {
		fmt.Println(err)
		return
	}
	c := &dns.Client{Net: "tcp", Timeout: 5 * time.Second}
	m := new(dns.Msg)
	m.SetQuestion("_mta-sts.testing.example.", dns.TypeTXT)
	r, _, err := c.Exchange(m, n.DNSAddr())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(r.Answer[0].(*dns.TXT).Txt[0])
	// Output: v=STSv1; id=testing2
}

// Generate builds large, varied scenarios for benchmarks.
func ExampleGenerate() {
	sc := testnet.Generate(10_000, 1)
	fmt.Println(len(sc.Domains), sc.Domains[0].Name)
	// Output: 10000 d000000.gen.example
}
