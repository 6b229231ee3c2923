package mtasts_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/mtasts"
)

// examplePolicyHost starts an HTTPS policy host on loopback (httptest's
// certificate is valid for *.example.com) and returns a fake DNS that
// publishes example.com's MTA-STS record and points mta-sts.example.com at
// it, the trust pool, the port and a stop function.
func examplePolicyHost(body string) (*dnsresolve.Fake, *x509.CertPool, int, func()) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, body)
	}))
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	dns := &dnsresolve.Fake{}
	dns.SetTXT("_mta-sts.example.com", "v=STSv1; id=20160831085700Z;")
	dns.SetIP("mta-sts.example.com", netip.MustParseAddr("127.0.0.1"))
	port := netip.MustParseAddrPort(srv.Listener.Addr().String()).Port()
	return dns, pool, int(port), srv.Close
}

const examplePolicy = `version: STSv1
mode: enforce
mx: mail.example.com
mx: *.example.net
mx: backupmx.example.com
max_age: 604800
`

func ExampleClient_Get() {
	dns, pool, port, stop := examplePolicyHost(examplePolicy)
	defer stop()

	// In production the zero Client is enough: system DNS servers, system
	// roots, port 443.
	c := &mtasts.Client{DNS: dns, RootCAs: pool, HTTPSPort: port}
	rec, policy, err := c.Get(context.Background(), "example.com")
	if err != nil {
		fmt.Println("no policy:", mtasts.ResultType(err), err)
		return
	}
	fmt.Println("id:", rec.ID)
	fmt.Println("mode:", policy.Mode)
	fmt.Println("mx:", policy.MX)
	fmt.Println("max_age:", policy.MaxAge)
	// Output:
	// id: 20160831085700Z
	// mode: enforce
	// mx: [mail.example.com *.example.net backupmx.example.com]
	// max_age: 604800
}

func ExampleCache_Get() {
	dns, pool, port, stop := examplePolicyHost(examplePolicy)
	defer stop()

	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cache := &mtasts.Cache{
		Client: &mtasts.Client{DNS: dns, RootCAs: pool, HTTPSPort: port},
		Store:  mtasts.NewMemoryStore(), // use a persistent Store in daemons
		Now:    func() time.Time { return now },
	}
	ctx := context.Background()
	for range 2 {
		r, err := cache.Get(ctx, "example.com")
		if err != nil {
			fmt.Println("defer delivery:", err)
			return
		}
		fmt.Println(r.Source, r.Policy.Mode, r.ID, "expires", r.Expires.Format(time.DateOnly))
	}

	// The policy host breaks and the TXT id changes: the cached policy
	// still applies (RFC 8461 §3.3), and the error says why it is stale.
	stop()
	dns.SetTXT("_mta-sts.example.com", "v=STSv1; id=2;")
	now = now.Add(time.Hour)
	r, _ := cache.Get(ctx, "example.com")
	fmt.Println(r.Source, r.Policy.Mode, r.ID, mtasts.ResultType(r.Err))
	// Output:
	// fetched enforce 20160831085700Z expires 2026-01-08
	// cache enforce 20160831085700Z expires 2026-01-08
	// stale enforce 20160831085700Z sts-policy-fetch-error
}
