package checker

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"

	"github.com/mailsts/mailsts/internal/testnet"
)

// --clients with an account: RFC 6186 SRV discovery (TLS8314-4) and the
// mailclient verdict and latch. clients.example publishes SRV records and
// "." for pop3; badclients.example has none (well-known names), an
// expired certificate on imaps and submission without STARTTLS; an SRV
// target outside the domain in an unsigned zone needs confirmation.
func TestClientsAccount(t *testing.T) {
	t.Parallel()
	n := defaultNet(t)
	c := newChecker(t, n, false)
	c.ClientAccount = "user@clients.example"
	r := c.Check(context.Background(), "clients.example")
	record(r)
	s := r.ClientSummary
	if r.Verdict != VerdictPass || s == nil || len(r.Clients) != 5 || len(s.Protocols) != 3 ||
		strings.Join(s.NotOffered, ",") != "pop3" || s.Domain != "clients.example" {
		t.Fatalf("verdict %s, summary %+v\n%s", r.Verdict, s, dump(r))
	}
	for _, e := range r.Clients {
		if e.Source != "srv" || !e.Accept || e.Level != "validated" || e.Port != n.ClientPort(testnet.ClientService(e.Service)) {
			t.Errorf("endpoint %+v", e)
		}
	}
	imap := s.Protocols[1]
	if imap.Protocol != "imap" || imap.Level != "validated" || imap.Latch == nil || !imap.Latch.TLS || !imap.Latch.Validated ||
		imap.Latch.MinTLSVersion != tls.VersionTLS13 || !strings.HasSuffix(imap.Endpoint, "(imaps)") || len(imap.RefuseLater) != 3 {
		t.Errorf("imap %+v", imap)
	}
	for _, w := range []want{{"clients.discovery", SeverityOK, "clients.example"}, {"clients.latch", SeverityOK, "clients.example"}} {
		if !hasFinding(r, w) {
			t.Errorf("missing %s\n%s", w.id, dump(r))
		}
	}

	c.ClientAccount = "badclients.example"
	c.ClientPorts = map[string]int{}
	for _, s := range testnet.ClientServices() {
		c.ClientPorts[string(s)] = n.ClientPort(s)
	}
	r = c.Check(context.Background(), "badclients.example")
	record(r)
	s = r.ClientSummary
	if s == nil || len(r.Clients) != 6 || len(s.Protocols) != 3 {
		t.Fatalf("summary %+v\n%s", s, dump(r))
	}
	byService := map[string]EndpointResult{}
	for _, e := range r.Clients {
		byService[e.Service] = e
		if e.Source != "well-known" || e.Host != "mail.badclients.example" {
			t.Errorf("endpoint %+v", e)
		}
	}
	if e := byService["imaps"]; e.Accept || e.Level != "tls-unvalidated" || !strings.Contains(strings.Join(e.Reasons, ";"), "certificate expired") {
		t.Errorf("imaps %+v", e)
	}
	if e := byService["submission"]; e.Accept || e.Level != "cleartext" {
		t.Errorf("submission %+v", e)
	}
	if p := s.Protocols[1]; !strings.HasSuffix(p.Endpoint, "(imap)") || p.Level != "validated" {
		t.Errorf("imap falls back to STARTTLS: %+v", p)
	}
	if !hasFinding(r, want{"clients.discovery", SeverityInfo, "badclients.example"}) {
		t.Errorf("no discovery info\n%s", dump(r))
	}

	// An unsigned SRV target outside the domain; and a domain where
	// nothing is found; and every endpoint unusable.
	own, err := testnet.Start(context.Background(), &testnet.Scenario{Domains: []testnet.Domain{
		{Name: "confirm.test", Records: []string{"_imaps._tcp.confirm.test. 300 IN SRV 0 1 1 mail.provider.test."}},
		{Name: "provider.test", Clients: []testnet.ClientHost{{Name: "mail.provider.test"}}},
		{Name: "empty.test"},
		{Name: "allbad.test", Clients: []testnet.ClientHost{{Name: "mail.allbad.test", SRV: true, Cert: testnet.CertExpired}}},
	}}, testnet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(own.Close)
	c = newChecker(t, own, false)
	for _, tc := range []struct {
		account string
		w       want
	}{
		{"confirm.test", want{"clients.srv-confirm", SeverityWarn, "mail.provider.test"}},
		{"empty.test", want{"clients.discovery", SeverityWarn, "empty.test"}},
		{"allbad.test", want{"clients.latch", SeverityWarn, "allbad.test"}},
	} {
		c.ClientAccount = tc.account
		r := c.Check(context.Background(), tc.account)
		record(r)
		if !hasFinding(r, tc.w) {
			t.Errorf("%s: missing %s %s\n%s", tc.account, tc.w.sev, tc.w.id, dump(r))
		}
	}
	c.ClientAccount = "not an account"
	if r := c.Check(context.Background(), "empty.test"); !hasFinding(r, want{"clients.discovery", SeverityFail, "not an account"}) {
		t.Errorf("invalid account\n%s", dump(r))
	}
}
