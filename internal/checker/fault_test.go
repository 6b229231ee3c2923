package checker

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/testnet"
)

// faultyDNS wraps a Resolver and fails chosen lookups, for faults the
// testnet scenario cannot express (a TLSA or _smtp._tls SERVFAIL).
type faultyDNS struct {
	dnsresolve.Resolver
	failTXT, failTLSA, failIP string
}

var errServFail = fmt.Errorf("%w: SERVFAIL (injected)", dnsresolve.ErrLookupFailed)

func (f faultyDNS) LookupTXT(ctx context.Context, name string) ([]string, dnsresolve.Answer, error) {
	if name == f.failTXT {
		return nil, dnsresolve.Answer{}, errServFail
	}
	return f.Resolver.LookupTXT(ctx, name)
}

func (f faultyDNS) LookupTLSA(ctx context.Context, port int, proto, host string) ([]dnsresolve.TLSA, dnsresolve.Answer, error) {
	if host == f.failTLSA {
		return nil, dnsresolve.Answer{}, errServFail
	}
	return f.Resolver.LookupTLSA(ctx, port, proto, host)
}

func (f faultyDNS) LookupIP(ctx context.Context, host string) ([]netip.Addr, dnsresolve.Answer, error) {
	if host == f.failIP {
		return nil, dnsresolve.Answer{}, errServFail
	}
	return f.Resolver.LookupIP(ctx, host)
}

// DANE-5, DANE-1: under a signed MX RRset, a failed address lookup leaves
// open whether DANE applies (the dane library's decision, as in policyd):
// a lookup error, not "insecure".
func TestDNSFaultAddressUnderSignedMX(t *testing.T) {
	t.Parallel()
	n := defaultNet(t)
	c := newChecker(t, n, false)
	c.DNS = faultyDNS{Resolver: c.DNS, failIP: "mx1.dane.example"}
	r := c.Check(context.Background(), "dane.example")
	record(r)
	if !hasFinding(r, want{"dane.lookup-error", SeverityWarn, "mx1.dane.example"}) || r.MX[0].DANE != "lookup-error" {
		t.Errorf("DANE %q, want lookup-error\n%s", r.MX[0].DANE, dump(r))
	}
}

// A failed TLSA lookup (DANE-5) and a failed TLSRPT lookup are reported,
// not taken as "no record".
func TestDNSFaults(t *testing.T) {
	t.Parallel()
	n := defaultNet(t)
	c := newChecker(t, n, false)
	c.DNS = faultyDNS{Resolver: c.DNS, failTXT: "_smtp._tls.perfect.test", failTLSA: "mx1.perfect.test"}
	r := c.Check(context.Background(), "perfect.test")
	record(r)
	for _, w := range []want{{"dane.lookup-error", SeverityWarn, "mx1.perfect.test"}, {"tlsrpt.dns-error", SeverityWarn, ""}} {
		if !hasFinding(r, w) {
			t.Errorf("missing %s\n%s", w.id, dump(r))
		}
	}
	if r.MX[0].DANE != "lookup-error" {
		t.Errorf("DANE %q", r.MX[0].DANE)
	}
}

// smtpStub serves scripted SMTP replies on loopback: greeting, then one
// reply per command; a STARTTLS without a reply, and any other command,
// get "221 bye".
func smtpStub(t *testing.T, greeting, ehlo, starttls string) int {
	t.Helper()
	if starttls == "" {
		starttls = "221 bye\r\n"
	}
	return testnet.ScriptedServer(t, greeting, map[string]string{"EHLO": ehlo, "STARTTLS": starttls, "QUIT": "221 bye\r\n"})
}

// Servers that greet wrongly, refuse EHLO or inject data after STARTTLS
// are reported at the step where they failed.
func TestProbeStubs(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, greeting, ehlo, starttls, id, stage string
	}{
		{"ehlo-refused", "220 stub\r\n", "502 5.5.1 no\r\n", "", "mx.ehlo", stageEHLO},
		{"busy", "421 4.3.2 busy\r\n", "", "", "mx.banner", stageBanner},
		{"http", "HTTP/1.0 400 Bad Request\r\n", "", "", "mx.banner", stageBanner},
		// RFC 3207 §4.2: plaintext sent with the 220 must not reach TLS.
		{"injection", "220 stub\r\n", "250-stub\r\n250 STARTTLS\r\n", "220 go\r\n250 injected\r\n", "mx.starttls", stageSTARTTLS},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			port := smtpStub(t, tc.greeting, tc.ehlo, tc.starttls)
			dns := &dnsresolve.Fake{}
			dns.SetMX("stub.test", dnsresolve.MX{Pref: 10, Host: "mx.stub.test"})
			dns.SetIP("mx.stub.test", netip.MustParseAddr("127.0.0.1"))
			c := &Checker{DNS: dns, SMTPPort: port, ProbeTimeout: 2 * time.Second, Timeout: 5 * time.Second}
			r := c.Check(context.Background(), "stub.test")
			record(r)
			if !hasFinding(r, want{tc.id, SeverityWarn, "mx.stub.test"}) || r.MX[0].Probe.Stage != tc.stage {
				t.Errorf("stage %q error %q\n%s", r.MX[0].Probe.Stage, r.MX[0].Probe.Error, dump(r))
			}
		})
	}
}

// The stub answers "221 bye" to STARTTLS, which the probe must reject
// rather than start TLS (RFC 3207 §4: only 220 starts TLS).
func TestSTARTTLSRefused(t *testing.T) {
	t.Parallel()
	port := smtpStub(t, "220 stub\r\n", "250-stub\r\n250 STARTTLS\r\n", "")
	dns := &dnsresolve.Fake{}
	dns.SetIP("mx.stub.test", netip.MustParseAddr("127.0.0.1"))
	c := &Checker{DNS: dns, ProbeTimeout: 2 * time.Second}
	out := c.probe(context.Background(), "mx.stub.test", netip.MustParseAddr("127.0.0.1"), port, false)
	if out.res.Stage != stageSTARTTLS || !strings.Contains(out.res.Error, "221") || !out.res.STARTTLS {
		t.Errorf("%+v", out.res)
	}
}
