package checker

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/testnet"
	"github.com/mailsts/mailsts/mtasts"
)

// Issue 11 item 12: a resolver that does not answer is a local fault
// ("could not run"), never the domain's.
func TestCheckResolverDown(t *testing.T) { // STS-TXT-13
	t.Parallel()
	dns, err := dnsresolve.NewClient(fmt.Sprintf("127.0.0.1:%d", testnet.RefusedPortFor(t)))
	if err != nil {
		t.Fatal(err)
	}
	dns.Timeout = time.Second
	c := &Checker{DNS: dns, STS: &mtasts.Client{DNS: dns, Timeout: 2 * time.Second}, ProbeTimeout: time.Second, Timeout: 5 * time.Second}
	r := c.Check(context.Background(), "enforce.example")
	if r.Verdict != VerdictError || r.Error != ErrResolver.Error() || len(r.Findings) != 0 {
		t.Errorf("verdict %s error %q findings %v, want %s %q and none", r.Verdict, r.Error, r.Findings, VerdictError, ErrResolver)
	}
}

// The resolver answers (the top-level domain resolves) but every lookup
// of the domain fails: that is the domain's fault, reported as before.
func TestCheckDomainDNSBroken(t *testing.T) { // STS-TXT-13
	t.Parallel()
	f := &dnsresolve.Fake{}
	for _, n := range []string{"_mta-sts.broken.example", "broken.example", "_smtp._tls.broken.example"} {
		f.SetError(n, fmt.Errorf("SERVFAIL: %w", dnsresolve.ErrLookupFailed))
	}
	c := &Checker{DNS: f, STS: &mtasts.Client{DNS: f, Timeout: time.Second}, ProbeTimeout: time.Second, Timeout: 5 * time.Second}
	r := c.Check(context.Background(), "broken.example")
	if r.Verdict != VerdictFail || r.Error != "" || !hasID(r, "sts.record.dns-error") || !hasID(r, "sts.mx.lookup-error") {
		t.Errorf("verdict %s error %q findings %v", r.Verdict, r.Error, r.Findings)
	}
}

// A name that does not exist gets one finding saying so, not advice to
// publish records in it.
func TestCheckNXDOMAIN(t *testing.T) { // RFC 5321 §5.1
	t.Parallel()
	n := defaultNet(t)
	r := newChecker(t, n, false).Check(context.Background(), "no-such-domain.example")
	if r.Verdict != VerdictFail || len(r.Findings) != 1 || r.Findings[0].ID != "sts.mx.nxdomain" {
		t.Fatalf("verdict %s findings %+v", r.Verdict, r.Findings)
	}
	if f := r.Findings[0]; !strings.Contains(f.Message, "does not exist") || strings.Contains(f.Fix, "publish") {
		t.Errorf("finding %+v", f)
	}
	// NODATA (the domain exists, no MX) still gets the implicit-MX advice.
	if r := newChecker(t, n, false).Check(context.Background(), "nosts.example"); hasID(r, "sts.mx.nxdomain") {
		t.Errorf("nosts.example: %+v", r.Findings)
	}
}

// An IP address is not checked as a domain (STS-SEL-4), whatever its form.
func TestCheckIPLiteral(t *testing.T) { // STS-SEL-4
	t.Parallel()
	f := &dnsresolve.Fake{}
	c := &Checker{DNS: f, STS: &mtasts.Client{DNS: f}}
	for _, in := range []string{"192.0.2.1", "2001:db8::1", "[192.0.2.1]", "[IPv6:2001:db8::1]"} {
		if r := c.Check(context.Background(), in); r.Verdict != VerdictError || r.Error != ErrIPLiteral.Error() {
			t.Errorf("%s: verdict %s error %q", in, r.Verdict, r.Error)
		}
	}
	if q := f.Queries(); len(q) != 0 {
		t.Errorf("DNS traffic for IP literals: %v", q)
	}
	for _, in := range []string{"example.com", "1.example", "[example.com]", "192.0.2.1.example"} {
		if IsIPLiteral(in) {
			t.Errorf("IsIPLiteral(%q)", in)
		}
	}
}

func hasID(r *Report, id string) bool {
	for _, f := range r.Findings {
		if f.ID == id {
			return true
		}
	}
	return false
}
