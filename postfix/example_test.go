package postfix_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/mailsts/mailsts/postfix"
)

// A socketmap TLS policy server: parent probes and IP literals get
// NOTFOUND, bracketed smart hosts are looked up by their domain (OPEN-5).
func ExampleSocketmapServer() {
	policies := map[string]postfix.TLSPolicy{
		"example.com": {Level: "secure", Match: []string{postfix.MatchFromSTS("*.example.net")}, ServerName: "hostname"},
	}
	srv := &postfix.SocketmapServer{Handler: postfix.HandlerFunc(func(ctx context.Context, name, key string) postfix.Reply {
		domain, ok := postfix.ParseNextHop(key).PolicyDomain()
		if !ok {
			return postfix.NotFound()
		}
		p, ok := policies[domain]
		if !ok {
			return postfix.NotFound()
		}
		return postfix.Found(p.String())
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0") // PFX-SOCKETMAP-10: loopback only
	if err != nil {
		panic(err)
	}
	go srv.Serve(l)
	defer srv.Shutdown(context.Background())

	ctx := context.Background()
	cl, err := postfix.DialSocketmap(ctx, "tcp", l.Addr().String())
	if err != nil {
		panic(err)
	}
	defer cl.Close()
	for _, key := range []string{"EXAMPLE.COM.", ".example.com", "[192.0.2.1]"} {
		r, err := cl.Lookup(ctx, "postfix", key)
		fmt.Println(r.Status, r.Data, err)
	}
	// Output:
	// OK secure match=.example.net servername=hostname <nil>
	// NOTFOUND  <nil>
	// NOTFOUND  <nil>
}

func ExampleTCPTableServer() {
	srv := &postfix.TCPTableServer{Name: "tls_policy", Handler: postfix.HandlerFunc(func(ctx context.Context, name, key string) postfix.Reply {
		return postfix.Found(name + ": " + key)
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(l)
	defer srv.Close()

	cl, err := postfix.DialTCPTable(context.Background(), "tcp", l.Addr().String())
	if err != nil {
		panic(err)
	}
	defer cl.Close()
	r, err := cl.Get(context.Background(), "100% example.com")
	fmt.Println(r.Status, r.Data, err)
	// Output: OK tls_policy: 100% example.com <nil>
}

func ExampleSocketmapClient_LookupMany() {
	srv := &postfix.SocketmapServer{Handler: postfix.HandlerFunc(func(ctx context.Context, name, key string) postfix.Reply {
		if key == "example.org" {
			return postfix.TempFail("dns")
		}
		return postfix.Found("dane-only")
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(l)
	defer srv.Close()

	cl, err := postfix.DialSocketmap(context.Background(), "tcp", l.Addr().String())
	if err != nil {
		panic(err)
	}
	defer cl.Close()
	replies, err := cl.LookupMany(context.Background(), "postfix", []string{"a.example", "example.org", "b.example"})
	fmt.Println(replies, err)
	// Output: [{OK dane-only} {TEMP dns} {OK dane-only}] <nil>
}

func ExampleTLSPolicy_String() {
	p := postfix.TLSPolicy{
		Level:          "secure",
		Match:          []string{postfix.MatchFromSTS("mail.example.com"), postfix.MatchFromSTS("*.example.net")},
		ServerName:     "hostname",
		PolicyType:     "sts",
		PolicyDomain:   "example.com",
		MXHostPatterns: []string{"mail.example.com", "*.example.net"},
		PolicyStrings:  []string{"version: STSv1", "mode: enforce"},
	}
	if err := p.Validate(); err != nil {
		panic(err)
	}
	fmt.Println(p)
	// Output: secure match=mail.example.com:.example.net servername=hostname policy_type=sts policy_domain=example.com mx_host_pattern=mail.example.com mx_host_pattern=*.example.net { policy_string = version: STSv1 } { policy_string = mode: enforce }
}

func ExampleParseNextHop() {
	for _, key := range []string{"Example.COM.", "[relay.example.net]:587", ".example.com", "[IPv6:2001:db8::1]", "inet:localhost:24"} {
		h := postfix.ParseNextHop(key)
		d, ok := h.PolicyDomain()
		fmt.Printf("%-24s %-12s %q %v\n", key, h.Kind, d, ok)
	}
	// Output:
	// Example.COM.             domain       "example.com" true
	// [relay.example.net]:587  domain       "relay.example.net" true
	// .example.com             parent-probe "" false
	// [IPv6:2001:db8::1]       ip-literal   "" false
	// inet:localhost:24        invalid      "" false
}

func ExampleMatchFromSTS() {
	fmt.Println(postfix.MatchFromSTS("*.Example.NET"))
	// Output: .example.net
}

func ExampleNetstringReader() {
	nr := postfix.NewNetstringReader(strings.NewReader("19:postfix example.com,20:postfix .example.com,1x:"), 0)
	for {
		p, err := nr.Next()
		if err != nil {
			fmt.Println(err, errors.Is(err, postfix.ErrNetstringSyntax))
			break
		}
		fmt.Printf("%q\n", p)
	}
	fmt.Printf("%s\n", postfix.AppendNetstring(nil, "NOTFOUND "))
	// Output:
	// "postfix example.com"
	// "postfix .example.com"
	// postfix: malformed netstring: unexpected byte 'x' in length true
	// 9:NOTFOUND ,
}

func ExampleQuoteTCP() {
	fmt.Println(postfix.QuoteTCP("100% sure\n"))
	s, err := postfix.UnquoteTCP("foo%20bar%2a")
	fmt.Println(s, err)
	// Output:
	// 100%25%20sure%0A
	// foo bar* <nil>
}

func ExampleParseTLSPolicy() {
	p, err := postfix.ParseTLSPolicy("secure match=.example.net, match=mx.example.com { servername = hostname }")
	fmt.Printf("%q %q %q %v\n", p.Level, p.Match, p.ServerName, err)
	_, err = postfix.ParseTLSPolicy("secure match=")
	fmt.Println(err)
	// Output:
	// "secure" [".example.net" "mx.example.com"] "hostname" <nil>
	// postfix: invalid TLS policy: empty match
}
