package testnet

import (
	"context"
	"errors"
	"net"
	"slices"
	"testing"

	"github.com/miekg/dns"
)

// goResolver is Go's own stub resolver pointed at the testnet DNS server:
// what most clients in this module will use. proto "" lets Go choose.
func goResolver(n *Net, proto string) *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			if proto != "" {
				network = proto
			}
			var d net.Dialer
			return d.DialContext(ctx, network, n.DNSAddr())
		},
	}
}

func TestGoResolver(t *testing.T) {
	t.Parallel()
	n := startNet(t, DefaultScenario())
	ctx := t.Context()
	for _, proto := range []string{"udp", "tcp"} {
		r := goResolver(n, proto)
		txt, err := r.LookupTXT(ctx, "_mta-sts.multistring.example")
		// Go joins the character-strings of one RR (STS-TXT-9).
		if err != nil || !slices.Equal(txt, []string{"v=STSv1; id=20160831085700Z;"}) {
			t.Errorf("%s LookupTXT = %q, %v", proto, txt, err)
		}
		txt, err = r.LookupTXT(ctx, "_mta-sts.cname.example")
		if err != nil || !slices.Equal(txt, []string{"v=STSv1; id=provider1"}) {
			t.Errorf("%s LookupTXT via CNAME = %q, %v", proto, txt, err)
		}
		mx, err := r.LookupMX(ctx, "enforce.example")
		if err != nil || len(mx) != 2 || mx[0].Host != "mx1.enforce.example." {
			t.Errorf("%s LookupMX = %v, %v", proto, mx, err)
		}
		ips, err := r.LookupNetIP(ctx, "ip4", "mx2.enforce.example")
		want, _ := n.MXAddr("mx2.enforce.example")
		if err != nil || len(ips) != 1 || ips[0] != want {
			t.Errorf("%s LookupNetIP = %v, %v; want %v", proto, ips, err, want)
		}
		_, err = r.LookupTXT(ctx, "_mta-sts.nosts.example")
		var de *net.DNSError
		if !errors.As(err, &de) || !de.IsNotFound {
			t.Errorf("%s NXDOMAIN: %v, want IsNotFound", proto, err)
		}
		_, err = r.LookupTXT(ctx, "_mta-sts.servfail.example")
		if !errors.As(err, &de) || de.IsNotFound {
			t.Errorf("%s SERVFAIL: %v, want a failure that is not IsNotFound", proto, err)
		}
	}
	// Over UDP the truncated answer makes Go retry over TCP.
	txt, err := goResolver(n, "").LookupTXT(ctx, "_mta-sts.truncate.example")
	if err != nil || !slices.Equal(txt, []string{"v=STSv1; id=truncate1"}) {
		t.Errorf("truncated: %q, %v", txt, err)
	}
}

// fakeWriter captures what ServeDNS writes.
type fakeWriter struct {
	dns.ResponseWriter
	net string
	out *dns.Msg
}

func (w *fakeWriter) LocalAddr() net.Addr {
	if w.net == "tcp" {
		return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
	}
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
}

func (w *fakeWriter) WriteMsg(m *dns.Msg) error { w.out = m; return nil }

// FuzzServeDNS feeds arbitrary queries to the handler: it must never panic,
// and every reply must pack and fit a UDP buffer.
func FuzzServeDNS(f *testing.F) {
	n, err := Start(context.Background(), DefaultScenario(), Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(n.Close)
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"_mta-sts.enforce.example.", dns.TypeTXT},
		{"_mta-sts.cname.example.", dns.TypeANY},
		{"_25._tcp.mx1.dane.example.", dns.TypeTLSA},
		{"nullmx.example.", dns.TypeMX},
		{"_mta-sts.truncate.example.", dns.TypeTXT},
		{"x.", dns.TypeA},
	} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		wire, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(wire, false)
		f.Add(wire, true)
	}
	f.Fuzz(func(t *testing.T, wire []byte, tcp bool) {
		req := new(dns.Msg)
		if req.Unpack(wire) != nil {
			return
		}
		w := &fakeWriter{net: "udp"}
		if tcp {
			w.net = "tcp"
		}
		n.ServeDNS(w, req)
		if w.out == nil {
			return // the timeout fault
		}
		out, err := w.out.Pack()
		if err != nil {
			t.Fatalf("reply does not pack: %v\n%v", err, w.out)
		}
		if !tcp && len(out) > 65535 {
			t.Fatalf("UDP reply of %d bytes", len(out))
		}
	})
}
