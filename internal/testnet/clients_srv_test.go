package testnet

import (
	"testing"

	"github.com/miekg/dns"
)

// RFC 6186 SRV records of client hosts: one per service pointing at the
// host on the testnet's port, "." for a service declared not offered, an
// omitted service, priorities and weights, the _tcp empty non-terminal,
// and nothing for a domain without SRV.
func TestClientSRV(t *testing.T) {
	t.Parallel()
	n := startNet(t, &Scenario{Domains: []Domain{
		{Name: "srv.test", Clients: []ClientHost{
			{Name: "a.srv.test", SRV: true, SRVPriority: 10, SRVWeight: 5, POP3: ClientEndpoint{SRV: SRVNone}, IMAP: ClientEndpoint{SRV: SRVOmit}},
			{Name: "b.srv.test", SRV: true, SRVPriority: 20},
		}},
		{Name: "nosrv.test", Clients: []ClientHost{{Name: "mail.nosrv.test"}}},
	}})
	srvs := func(name string) []*dns.SRV {
		t.Helper()
		r := mustQuery(t, n, "udp", name, dns.TypeSRV)
		var out []*dns.SRV
		for _, rr := range r.Answer {
			if s, ok := rr.(*dns.SRV); ok {
				out = append(out, s)
			}
		}
		return out
	}
	got := srvs("_imaps._tcp.srv.test")
	if len(got) != 2 || got[0].Target != "a.srv.test." || got[0].Port != uint16(n.ClientPort(ServiceIMAPS)) ||
		got[0].Priority != 10 || got[0].Weight != 5 || got[1].Target != "b.srv.test." || got[1].Priority != 20 {
		t.Errorf("_imaps._tcp: %v", got)
	}
	if got := srvs("_imap._tcp.srv.test"); len(got) != 1 || got[0].Target != "b.srv.test." {
		t.Errorf("_imap._tcp (omitted for a): %v", got)
	}
	if got := srvs("_pop3._tcp.srv.test"); len(got) != 1 || got[0].Target != "." || got[0].Port != 0 {
		t.Errorf(`_pop3._tcp: want only ".", got %v`, got)
	}
	if r := mustQuery(t, n, "udp", "_tcp.srv.test", dns.TypeSRV); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 {
		t.Errorf("_tcp.srv.test: want NODATA (empty non-terminal), got %v", r)
	}
	if r := mustQuery(t, n, "udp", "_imaps._tcp.nosrv.test", dns.TypeSRV); r.Rcode != dns.RcodeNameError {
		t.Errorf("_imaps._tcp.nosrv.test: want NXDOMAIN, got %v", r)
	}
	if _, err := LoadScenario([]byte("domains:\n- name: x.test\n  clients:\n  - name: m.x.test\n    imaps: {srv: bogus}\n")); err == nil {
		t.Error("srv: bogus accepted")
	}
}
