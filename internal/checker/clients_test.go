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

// testnetEndpoints returns ClientEndpoints(host) on the ports of n.
func testnetEndpoints(n *testnet.Net, host string) []Endpoint {
	eps := ClientEndpoints(host)
	for i := range eps {
		eps[i].Port = n.ClientPort(testnet.ClientService(eps[i].Service))
	}
	return eps
}

// The testnet's client hosts: every endpoint of mail.clients.example
// passes (TLS8314-1, TLS8314-2, TLS8314-3), including IMAP STARTTLS and
// POP3 STLS; mail.badclients.example has an expired certificate on imaps
// (TLS8314-4) and submission without STARTTLS (TLS8314-2), and a host
// with stripped IMAP and POP3 STARTTLS, a refused port and a TLS 1.1 cap.
func TestClientsTestnet(t *testing.T) {
	t.Parallel()
	n := defaultNet(t)
	c := newChecker(t, n, false)
	c.Clients = testnetEndpoints(n, "mail.clients.example")
	r := c.Check(context.Background(), "clients.example")
	record(r)
	if r.Verdict != VerdictPass || len(r.Clients) != 6 {
		t.Errorf("verdict %s, %d endpoints\n%s", r.Verdict, len(r.Clients), dump(r))
	}
	for _, e := range r.Clients {
		w := want{"clients.ok", SeverityOK, fmt.Sprintf("mail.clients.example:%d", e.Port)}
		if !hasFinding(r, w) || e.Probe.Stage != stageDone || e.Probe.STARTTLS != e.STARTTLS {
			t.Errorf("%s: %+v\n%s", e.Service, e.Probe, dump(r))
		}
	}

	c.Clients = testnetEndpoints(n, "mail.badclients.example")
	r = c.Check(context.Background(), "badclients.example")
	record(r)
	port := func(s testnet.ClientService) string {
		return fmt.Sprintf("mail.badclients.example:%d", n.ClientPort(s))
	}
	for _, w := range []want{
		{"clients.cert", SeverityFail, port(testnet.ServiceIMAPS)},          // TLS8314-4
		{"clients.starttls", SeverityFail, port(testnet.ServiceSubmission)}, // TLS8314-2
		{"clients.ok", SeverityOK, port(testnet.ServiceSubmissions)},
		{"clients.ok", SeverityOK, port(testnet.ServiceIMAP)},
		{"clients.ok", SeverityOK, port(testnet.ServicePOP3S)},
		{"clients.ok", SeverityOK, port(testnet.ServicePOP3)},
	} {
		if !hasFinding(r, w) {
			t.Errorf("missing %s %s %s\n%s", w.sev, w.id, w.host, dump(r))
		}
	}
	if r.Verdict != VerdictFail || r.Clients[2].Probe.Cert == nil || r.Clients[2].Probe.Cert.Problem != certExpired {
		t.Errorf("verdict %s, imaps %+v", r.Verdict, r.Clients[2].Probe)
	}

	// Stripped STARTTLS on IMAP and POP3, a refused port, TLS 1.1 only,
	// on a network of its own (the shared one is read-only).
	n, err := testnet.Start(context.Background(), &testnet.Scenario{Domains: []testnet.Domain{{
		Name: "clientfaults.test", Clients: []testnet.ClientHost{{
			Name: "mail.clientfaults.test",
			IMAP: testnet.ClientEndpoint{NoSTARTTLS: true}, POP3: testnet.ClientEndpoint{NoSTARTTLS: true},
			Submission: testnet.ClientEndpoint{Down: true}, IMAPS: testnet.ClientEndpoint{MaxTLS: "1.1"},
		}},
	}}}, testnet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	c = newChecker(t, n, false)
	c.Clients = testnetEndpoints(n, "mail.clientfaults.test")
	r = c.Check(context.Background(), "clientfaults.test")
	record(r)
	port = func(s testnet.ClientService) string {
		return fmt.Sprintf("mail.clientfaults.test:%d", n.ClientPort(s))
	}
	for _, w := range []want{
		{"clients.starttls", SeverityFail, port(testnet.ServiceIMAP)},
		{"clients.starttls", SeverityFail, port(testnet.ServicePOP3)},
		{"clients.connect", SeverityInfo, port(testnet.ServiceSubmission)}, // not served: a choice
		{"clients.tls", SeverityFail, port(testnet.ServiceIMAPS)},          // TLS8314-5
		{"clients.ok", SeverityOK, port(testnet.ServicePOP3S)},
	} {
		if !hasFinding(r, w) {
			t.Errorf("missing %s %s %s\n%s", w.sev, w.id, w.host, dump(r))
		}
	}
	if e := r.Clients[3].Probe; e.STARTTLS || !strings.Contains(e.Error, "not offered in the CAPABILITY response") {
		t.Errorf("stripped imap: %+v", e)
	}
	if e := r.Clients[5].Probe; e.STARTTLS || !strings.Contains(e.Error, "STLS is not offered") {
		t.Errorf("stripped pop3: %+v", e)
	}
}

// Hostile or broken IMAP and POP3 servers are reported at the step where
// they failed, and never hang the probe.
func TestMUAProbeStubs(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 3*maxReplyLine)
	endless := strings.Repeat("* CAPABILITY IMAP4rev1\r\n", 2*maxReplyLines)
	cases := []struct {
		name, service, greeting string
		replies                 map[string]string
		stage, errPart          string
	}{
		{"imap-preauth", ServiceIMAP, "* PREAUTH hello\r\n", nil, stageSTARTTLS, "PREAUTH"},
		{"imap-bye", ServiceIMAP, "* BYE busy\r\n", nil, stageBanner, "expected * OK"},
		{"imap-long", ServiceIMAP, long + "\r\n", nil, stageBanner, "longer than"},
		{"imap-endless", ServiceIMAP, "* OK hi\r\n", map[string]string{"CAPABILITY": endless}, stageEHLO, "no tagged response"},
		{"imap-refused", ServiceIMAP, "* OK hi\r\n", map[string]string{
			"CAPABILITY": "* CAPABILITY IMAP4rev1 starttls\r\na1 OK done\r\n", "STARTTLS": "a2 NO not now\r\n"}, stageSTARTTLS, "STARTTLS answered NO"},
		// RFC 2595 §3.1: nothing may follow the go-ahead in cleartext.
		{"imap-injection", ServiceIMAP, "* OK hi\r\n", map[string]string{
			"CAPABILITY": "* CAPABILITY IMAP4rev1 STARTTLS\r\na1 OK done\r\n", "STARTTLS": "a2 OK go\r\n* OK injected\r\n"}, stageSTARTTLS, "injection"},
		{"pop3-err", ServicePOP3, "-ERR busy\r\n", nil, stageBanner, "expected +OK"},
		{"pop3-no-capa", ServicePOP3, "+OK hi\r\n", map[string]string{"CAPA": "-ERR what\r\n"}, stageSTARTTLS, "STLS is not offered"},
		{"pop3-endless", ServicePOP3, "+OK hi\r\n", map[string]string{"CAPA": "+OK\r\n" + strings.Repeat("USER\r\n", 2*maxReplyLines)}, stageEHLO, "more than"},
		{"pop3-refused", ServicePOP3, "+OK hi\r\n", map[string]string{"CAPA": "+OK\r\nSTLS\r\n.\r\n", "STLS": "-ERR no\r\n"}, stageSTARTTLS, "STLS answered -ERR"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			port := testnet.ScriptedServer(t, tc.greeting, tc.replies)
			dns := &dnsresolve.Fake{}
			dns.SetIP("mail.stub.test", netip.MustParseAddr("127.0.0.1"))
			c := &Checker{DNS: dns, ProbeTimeout: 2 * time.Second}
			c.init()
			p := c.probeEndpoint(context.Background(), Endpoint{Host: "mail.stub.test", Port: port, Service: tc.service, STARTTLS: true})
			if p.Stage != tc.stage || !strings.Contains(p.Error, tc.errPart) {
				t.Errorf("stage %q error %q, want %q %q", p.Stage, p.Error, tc.stage, tc.errPart)
			}
		})
	}
}
