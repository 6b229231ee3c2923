package dnsresolve

import (
	"context"
	"errors"
	"testing"

	"github.com/miekg/dns"
)

// SRV lookups (RFC 2782, as RFC 6186 uses them): sorted by priority and
// weight, targets normalized, "." kept, NXDOMAIN as ErrNotFound, the same
// through the Client and the Fake.
func TestLookupSRV(t *testing.T) {
	t.Parallel()
	addr := startServer(t, dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		switch r.Question[0].Name {
		case "_imaps._tcp.example.org.":
			m.Answer = append(m.Answer,
				mustRR("_imaps._tcp.example.org. 60 IN SRV 20 0 993 B.example.org."),
				mustRR("_imaps._tcp.example.org. 60 IN SRV 10 1 993 light.example.org."),
				mustRR("_imaps._tcp.example.org. 60 IN SRV 10 9 993 heavy.example.org."))
		case "_pop3._tcp.example.org.":
			m.Answer = append(m.Answer, mustRR("_pop3._tcp.example.org. 60 IN SRV 0 0 0 ."))
		default:
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	}))
	c, err := NewClient(addr)
	if err != nil {
		t.Fatal(err)
	}
	f := &Fake{}
	f.SetSRV("_imaps._tcp.example.org", SRV{20, 0, 993, "B.example.org."}, SRV{10, 1, 993, "light.example.org"}, SRV{10, 9, 993, "heavy.example.org"})
	f.SetSRV("_pop3._tcp.example.org", SRV{Target: "."})
	for name, r := range map[string]SRVResolver{"client": c, "fake": f} {
		got, _, err := r.LookupSRV(context.Background(), "imaps", "tcp", "Example.ORG.")
		want := []SRV{{10, 9, 993, "heavy.example.org"}, {10, 1, 993, "light.example.org"}, {20, 0, 993, "b.example.org"}}
		if err != nil || len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
			t.Errorf("%s: imaps: %v, %v", name, got, err)
		}
		got, _, err = r.LookupSRV(context.Background(), "pop3", "tcp", "example.org")
		if err != nil || len(got) != 1 || got[0].Target != "." {
			t.Errorf("%s: pop3: %v, %v", name, got, err)
		}
		if _, _, err := r.LookupSRV(context.Background(), "submissions", "tcp", "example.org"); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: submissions: %v, want ErrNotFound", name, err)
		}
		if _, _, err := r.LookupSRV(context.Background(), "bad.label", "tcp", "example.org"); !errors.Is(err, ErrLookupFailed) {
			t.Errorf("%s: invalid service: %v", name, err)
		}
	}
}
