package mtaststest_test

import (
	"context"
	"fmt"

	"github.com/mailsts/mailsts/mtasts"
	"github.com/mailsts/mailsts/mtasts/mtaststest"
)

// requireTLS is the code under test, written by a library user: must mail
// for domain, delivered to the MX host mx, use verified TLS?
func requireTLS(ctx context.Context, c *mtasts.Client, domain, mx string) (bool, error) {
	_, p, err := c.Get(ctx, domain)
	if err != nil {
		return false, err
	}
	_, listed := p.Match(mx)
	return p.Mode == mtasts.ModeEnforce && listed, nil
}

// A library user tests their own code against fake policy hosts on
// loopback: in a test, start the server with t.Cleanup(srv.Close).
func ExampleNewPolicyServer() {
	srv := mtaststest.NewPolicyServer()
	defer srv.Close()
	srv.SetPolicy("example.com", "20240101", "version: STSv1\nmode: enforce\nmx: mail.example.com\nmax_age: 86400\n")
	srv.SetPolicy("example.net", "1", "version: STSv1\nmode: testing\nmx: *.example.net\nmax_age: 86400\n")

	ctx := context.Background()
	c := srv.Client()
	for _, q := range [][2]string{
		{"example.com", "mail.example.com"},
		{"example.com", "other.example.org"},
		{"example.net", "mx1.example.net"},
	} {
		tls, err := requireTLS(ctx, c, q[0], q[1])
		fmt.Println(q[0], q[1], tls, err)
	}
	// Output:
	// example.com mail.example.com true <nil>
	// example.com other.example.org false <nil>
	// example.net mx1.example.net false <nil>
}
