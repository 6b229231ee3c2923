package dnsupdate

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/testnet"
	"github.com/mailsts/mailsts/mtasts"
)

const servedPolicy = "version: STSv1\r\nmode: testing\r\nmx: mx.served.test\r\nmax_age: 86400\r\n"

var shared = testnet.Shared{Start: func() (*testnet.Net, error) {
	host := func(d string, cert testnet.CertKind) testnet.Domain {
		return testnet.Domain{Name: d, Policy: &testnet.PolicyHost{Body: servedPolicy, Cert: cert}}
	}
	redirect := host("redirect.test", testnet.CertGood)
	redirect.Policy.Status, redirect.Policy.Location = 301, "https://mta-sts.served.test/.well-known/mta-sts.txt"
	return testnet.Start(context.Background(), &testnet.Scenario{Domains: []testnet.Domain{
		host("served.test", testnet.CertGood),
		host("expired.test", testnet.CertExpired),
		host("wrongname.test", testnet.CertWrongName),
		redirect,
	}}, testnet.Options{})
}}

// STS-PUB-2, STS-PUB-3, STS-PUB-4: the id is announced only once the
// policy host serves exactly the new policy over a valid certificate.
func TestPolicyServed(t *testing.T) {
	t.Parallel()
	n := shared.Net(t)
	res, err := dnsresolve.NewClient(n.DNSAddr())
	if err != nil {
		t.Fatal(err)
	}
	c := &mtasts.Client{DNS: res, RootCAs: n.RootCAs(), HTTPSPort: n.HTTPSPort(), Timeout: 10 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := PolicyServed(c, "served.test", []byte(servedPolicy))(ctx); err != nil {
		t.Errorf("served policy: %v", err)
	}
	if err := PolicyServed(c, "served.test", []byte(servedPolicy+"extra: 1\r\n"))(ctx); err == nil {
		t.Error("an older policy on the host passed")
	}
	for _, d := range []string{"expired.test", "wrongname.test", "redirect.test", "nothing.test"} {
		if err := PolicyServed(c, d, []byte(servedPolicy))(ctx); err == nil {
			t.Errorf("%s passed", d)
		}
	}
	// Through the Publisher: nothing is published when the host is wrong.
	rec := &recorder{}
	pub := &Publisher{Records: rec}
	err = pub.Publish(ctx, Change{Domain: "expired.test", ID: "a1", Mode: "testing", PolicyServed: PolicyServed(c, "expired.test", []byte(servedPolicy))})
	if !errors.Is(err, ErrNotReady) || len(rec.calls) > 0 {
		t.Errorf("expired certificate: %v, records written %v", err, rec.calls)
	}
	if err := pub.Publish(ctx, Change{Domain: "served.test", ID: "a1", Mode: "testing", PolicyServed: PolicyServed(c, "served.test", []byte(servedPolicy))}); err != nil || len(rec.calls) != 1 {
		t.Errorf("served policy: %v, records written %v", err, rec.calls)
	}
}

// recorder is a Records that remembers its calls.
type recorder struct{ calls []string }

func (r *recorder) SetSTS(_ context.Context, domain, id string) error {
	r.calls = append(r.calls, "sts "+domain+" "+id)
	return nil
}

func (r *recorder) SetTLSRPT(_ context.Context, domain string, rua ...string) error {
	r.calls = append(r.calls, "tlsrpt "+domain)
	return nil
}
