package testnet

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func txtOf(r *dns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		if t, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(t.Txt, ""))
		}
	}
	return out
}

func TestDNSRecords(t *testing.T) {
	t.Parallel()
	n := startNet(t, DefaultScenario())
	for _, proto := range []string{"udp", "tcp"} {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			r := mustQuery(t, n, proto, "_mta-sts.enforce.example", dns.TypeTXT)
			if got := txtOf(r); len(got) != 1 || got[0] != "v=STSv1; id=enforce20240101" {
				t.Errorf("TXT = %q", got)
			}
			if !r.Authoritative || r.AuthenticatedData {
				t.Errorf("AA=%v AD=%v, want AA and no AD for an unsigned zone", r.Authoritative, r.AuthenticatedData)
			}
			r = mustQuery(t, n, proto, "mta-sts.enforce.example", dns.TypeA)
			if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "127.0.0.1" {
				t.Errorf("A mta-sts = %v", r.Answer)
			}
			r = mustQuery(t, n, proto, "enforce.example", dns.TypeMX)
			if len(r.Answer) != 2 {
				t.Fatalf("MX = %v", r.Answer)
			}
			mx := r.Answer[0].(*dns.MX)
			if mx.Mx != "mx1.enforce.example." || mx.Preference != 10 {
				t.Errorf("MX[0] = %v", mx)
			}
			r = mustQuery(t, n, proto, "mx1.enforce.example", dns.TypeA)
			if len(r.Answer) != 1 {
				t.Fatalf("A mx1 = %v", r.Answer)
			}
			ip, _ := netip.AddrFromSlice(r.Answer[0].(*dns.A).A.To4())
			if !n.MXPrefix().Contains(ip) || !ip.IsLoopback() {
				t.Errorf("MX address %v not a loopback address in %v", ip, n.MXPrefix())
			}
			if a, _ := n.MXAddr("mx1.enforce.example"); a != ip {
				t.Errorf("MXAddr = %v, DNS says %v", a, ip)
			}
			r = mustQuery(t, n, proto, "_smtp._tls.enforce.example", dns.TypeTXT)
			if got := txtOf(r); len(got) != 1 || !strings.HasPrefix(got[0], "v=TLSRPTv1;") {
				t.Errorf("TLSRPT TXT = %q", got)
			}
			// Case-insensitive names; the question is echoed as asked.
			r = mustQuery(t, n, proto, "_MTA-STS.Enforce.EXAMPLE", dns.TypeTXT)
			if got := txtOf(r); len(got) != 1 || r.Question[0].Name != "_MTA-STS.Enforce.EXAMPLE." {
				t.Errorf("mixed case: %v", r)
			}
		})
	}
}

// STS-TXT-9: a record split in two character-strings is served as such.
func TestDNSMultiString(t *testing.T) {
	t.Parallel()
	n := startNet(t, DefaultScenario())
	r := mustQuery(t, n, "udp", "_mta-sts.multistring.example", dns.TypeTXT)
	if len(r.Answer) != 1 {
		t.Fatalf("answer = %v", r.Answer)
	}
	got := r.Answer[0].(*dns.TXT).Txt
	if len(got) != 2 || got[0] != "v=STSv1; id=2016" || got[1] != "0831085700Z;" {
		t.Errorf("strings = %q", got)
	}
	r = mustQuery(t, n, "udp", "_mta-sts.two-records.example", dns.TypeTXT)
	if len(r.Answer) != 2 {
		t.Errorf("two-records: %d RRs, want 2 (STS-TXT-7)", len(r.Answer))
	}
}

// A backslash in a TXT string must reach the client unchanged.
func TestDNSTXTBackslash(t *testing.T) {
	t.Parallel()
	n := startNet(t, &Scenario{Domains: []Domain{{Name: "bs.example", STSTXT: [][]string{{`v=STSv1; id=\065`}}}}})
	r := mustQuery(t, n, "udp", "_mta-sts.bs.example", dns.TypeTXT)
	var buf [512]byte
	wire, err := r.PackBuffer(buf[:])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(wire), `id=\065`) {
		t.Errorf("wire form lost the backslash: %q", wire)
	}
}

// STS-TXT-10: CNAME chains are served with the target's records.
func TestDNSCNAME(t *testing.T) {
	t.Parallel()
	n := startNet(t, DefaultScenario())
	for _, proto := range []string{"udp", "tcp"} {
		r := mustQuery(t, n, proto, "_mta-sts.cname.example", dns.TypeTXT)
		if len(r.Answer) != 2 {
			t.Fatalf("%s: answer = %v", proto, r.Answer)
		}
		cn, ok := r.Answer[0].(*dns.CNAME)
		if !ok || cn.Target != "_mta-sts.provider.example." || cn.Hdr.Name != "_mta-sts.cname.example." {
			t.Errorf("%s: first RR = %v", proto, r.Answer[0])
		}
		if got := txtOf(r); len(got) != 1 || got[0] != "v=STSv1; id=provider1" || r.Answer[1].Header().Name != "_mta-sts.provider.example." {
			t.Errorf("%s: TXT = %v", proto, r.Answer[1])
		}
	}
	r := mustQuery(t, n, "udp", "_mta-sts.cname.example", dns.TypeCNAME)
	if len(r.Answer) != 1 || r.Answer[0].Header().Rrtype != dns.TypeCNAME {
		t.Errorf("CNAME query: %v", r.Answer)
	}
	// RFC 6604: a CNAME to a missing name gives NXDOMAIN with the CNAME.
	if err := n.Set(Domain{Name: "dangling.example", STSCNAME: "_mta-sts.gone.example"}); err != nil {
		t.Fatal(err)
	}
	r = mustQuery(t, n, "udp", "_mta-sts.dangling.example", dns.TypeTXT)
	if r.Rcode != dns.RcodeNameError || len(r.Answer) != 1 {
		t.Errorf("dangling CNAME: rcode %s, answer %v", dns.RcodeToString[r.Rcode], r.Answer)
	}
	// A CNAME loop ends in SERVFAIL, not in an endless chase.
	if err := n.Set(Domain{Name: "loop.example", Records: []string{"a.loop.example. CNAME b.loop.example.", "b.loop.example. CNAME a.loop.example."}}); err != nil {
		t.Fatal(err)
	}
	r = mustQuery(t, n, "tcp", "a.loop.example", dns.TypeTXT)
	if r.Rcode != dns.RcodeServerFailure {
		t.Errorf("CNAME loop: rcode %s", dns.RcodeToString[r.Rcode])
	}
}

// STS-TXT-13: NXDOMAIN and NODATA are distinct, both with an SOA.
func TestDNSNXDomainVsNoData(t *testing.T) {
	t.Parallel()
	n := startNet(t, DefaultScenario())
	for _, tc := range []struct {
		name  string
		qtype uint16
		rcode int
	}{
		{"_mta-sts.nosts.example", dns.TypeTXT, dns.RcodeNameError},
		{"mta-sts.nosts.example", dns.TypeA, dns.RcodeNameError},
		{"nothing.example", dns.TypeMX, dns.RcodeNameError},
		{"_smtp._tls.nosts.example", dns.TypeTXT, dns.RcodeNameError},
		{"_25._tcp.mx1.enforce.example", dns.TypeTLSA, dns.RcodeNameError},
		{"_mta-sts.enforce.example", dns.TypeA, dns.RcodeSuccess},
		{"enforce.example", dns.TypeTXT, dns.RcodeSuccess},
		{"mta-sts.enforce.example", dns.TypeAAAA, dns.RcodeSuccess},
		{"mx1.enforce.example", dns.TypeAAAA, dns.RcodeSuccess},
		{"nullmx.example", dns.TypeA, dns.RcodeSuccess},
		{"_tls.enforce.example", dns.TypeTXT, dns.RcodeSuccess},  // empty non-terminal
		{"_tcp.mx1.dane.example", dns.TypeTXT, dns.RcodeSuccess}, // empty non-terminal
		{"example", dns.TypeSOA, dns.RcodeSuccess},               // ancestor of every domain
		{"dane-ta.example", dns.TypeTXT, dns.RcodeSuccess},       // domain apex
		{"_mta-sts.dane-ta.example", dns.TypeTXT, dns.RcodeNameError},
	} {
		for _, proto := range []string{"udp", "tcp"} {
			r := mustQuery(t, n, proto, tc.name, tc.qtype)
			if r.Rcode != tc.rcode || len(r.Answer) != 0 {
				t.Errorf("%s %s %s: rcode %s, %d answers; want %s and none",
					proto, tc.name, dns.TypeToString[tc.qtype], dns.RcodeToString[r.Rcode], len(r.Answer), dns.RcodeToString[tc.rcode])
			}
			if len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA {
				t.Errorf("%s %s: authority %v, want one SOA", proto, tc.name, r.Ns)
			}
		}
	}
	r := mustQuery(t, n, "udp", "nullmx.example", dns.TypeMX)
	if len(r.Answer) != 1 || r.Answer[0].(*dns.MX).Mx != "." || r.Answer[0].(*dns.MX).Preference != 0 {
		t.Errorf("null MX = %v (RFC 7505)", r.Answer)
	}
}

// Every fault over UDP and TCP.
func TestDNSFaults(t *testing.T) {
	t.Parallel()
	sc := &Scenario{Domains: []Domain{
		{Name: "servfail.example", STSFault: FaultServFail, STSTXT: [][]string{{"v=STSv1; id=1"}}},
		{Name: "refused.example", STSFault: FaultRefused},
		{Name: "nxdomain.example", STSFault: FaultNXDomain, STSTXT: [][]string{{"v=STSv1; id=1"}}},
		{Name: "nodata.example", STSFault: FaultNoData, STSTXT: [][]string{{"v=STSv1; id=1"}}},
		{Name: "timeout.example", STSFault: FaultTimeout},
		{Name: "truncate.example", STSFault: FaultTruncate, STSTXT: [][]string{{"v=STSv1; id=1"}}},
		{Name: "mxfault.example", MXFault: FaultServFail, MX: []MXHost{{Name: "mx.mxfault.example", Fault: FaultRefused}},
			Policy: &PolicyHost{Body: "x", Fault: FaultNXDomain}},
	}}
	n := startNet(t, sc)
	for _, proto := range []string{"udp", "tcp"} {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			for _, tc := range []struct {
				name   string
				qtype  uint16
				rcode  int
				answer int
			}{
				{"_mta-sts.servfail.example", dns.TypeTXT, dns.RcodeServerFailure, 0},
				{"_mta-sts.refused.example", dns.TypeTXT, dns.RcodeRefused, 0},
				{"_mta-sts.nxdomain.example", dns.TypeTXT, dns.RcodeNameError, 0},
				{"_mta-sts.nodata.example", dns.TypeTXT, dns.RcodeSuccess, 0},
				{"mxfault.example", dns.TypeMX, dns.RcodeServerFailure, 0},
				{"mx.mxfault.example", dns.TypeA, dns.RcodeRefused, 0},
				{"mta-sts.mxfault.example", dns.TypeA, dns.RcodeNameError, 0},
			} {
				r := mustQuery(t, n, proto, tc.name, tc.qtype)
				if r.Rcode != tc.rcode || len(r.Answer) != tc.answer {
					t.Errorf("%s: rcode %s with %d answers, want %s with %d",
						tc.name, dns.RcodeToString[r.Rcode], len(r.Answer), dns.RcodeToString[tc.rcode], tc.answer)
				}
			}
			_, err := query(t, n, proto, "_mta-sts.timeout.example", dns.TypeTXT, 300*time.Millisecond)
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Errorf("timeout fault: err = %v, want a timeout", err)
			}
		})
	}
	// Truncation: UDP gets TC and no answer; TCP gets the records.
	c := &dns.Client{Net: "udp", Timeout: 5 * time.Second}
	m := new(dns.Msg)
	m.SetQuestion("_mta-sts.truncate.example.", dns.TypeTXT)
	r, _, err := c.Exchange(m, n.DNSAddr())
	if err != nil {
		t.Fatal(err)
	}
	if r == nil || !r.Truncated || len(r.Answer) != 0 {
		t.Errorf("UDP truncate: %v", r)
	}
	r = mustQuery(t, n, "tcp", "_mta-sts.truncate.example", dns.TypeTXT)
	if r.Truncated || len(txtOf(r)) != 1 {
		t.Errorf("TCP after truncation: %v", r)
	}
}

// Answers larger than 512 bytes are truncated over UDP without EDNS0 and
// served whole with EDNS0 or TCP.
func TestDNSLargeAnswer(t *testing.T) {
	t.Parallel()
	var txt [][]string
	for range 10 {
		txt = append(txt, []string{strings.Repeat("x", 200)})
	}
	n := startNet(t, &Scenario{Domains: []Domain{{Name: "big.example", STSTXT: txt}}})
	c := &dns.Client{Net: "udp", Timeout: 5 * time.Second}
	m := new(dns.Msg)
	m.SetQuestion("_mta-sts.big.example.", dns.TypeTXT)
	r, _, _ := c.Exchange(m, n.DNSAddr())
	if r == nil || !r.Truncated {
		t.Errorf("no TC on a 2 KB answer over plain UDP: %v", r)
	}
	m.SetEdns0(4096, false)
	r, _, err := c.Exchange(m, n.DNSAddr())
	if err != nil || r.Truncated || len(r.Answer) != 10 || r.IsEdns0() == nil {
		t.Errorf("EDNS0 4096: err %v, %v", err, r)
	}
	if r := mustQuery(t, n, "tcp", "_mta-sts.big.example", dns.TypeTXT); len(r.Answer) != 10 {
		t.Errorf("TCP: %d answers", len(r.Answer))
	}
}

// The AD bit marks Secure domains and their MX hosts, including secure
// denials (DANE-4), never other domains.
func TestDNSAuthenticatedData(t *testing.T) {
	t.Parallel()
	n := startNet(t, DefaultScenario())
	for _, tc := range []struct {
		name  string
		qtype uint16
		ad    bool
	}{
		{"dane.example", dns.TypeMX, true},
		{"_mta-sts.dane.example", dns.TypeTXT, true},
		{"mx1.dane.example", dns.TypeA, true},
		{"_25._tcp.mx1.dane.example", dns.TypeTLSA, true},
		{"_25._tcp.mx1.dane.example", dns.TypeA, true}, // NODATA
		{"nothing.dane.example", dns.TypeA, true},      // NXDOMAIN
		{"_25._tcp.mx1.dane-ta.example", dns.TypeTLSA, true},
		{"enforce.example", dns.TypeMX, false},
		{"mx1.enforce.example", dns.TypeA, false},
		{"_25._tcp.mx1.enforce.example", dns.TypeTLSA, false},
		{"_mta-sts.cname.example", dns.TypeTXT, false},
	} {
		for _, proto := range []string{"udp", "tcp"} {
			if r := mustQuery(t, n, proto, tc.name, tc.qtype); r.AuthenticatedData != tc.ad {
				t.Errorf("%s %s %s: AD = %v, want %v", proto, tc.name, dns.TypeToString[tc.qtype], r.AuthenticatedData, tc.ad)
			}
		}
	}
}

// DANE-6/7: TLSA records match what the MX host presents.
func TestDNSTLSA(t *testing.T) {
	t.Parallel()
	n := startNet(t, DefaultScenario())
	tlsa := func(mx string) *dns.TLSA {
		r := mustQuery(t, n, "tcp", "_25._tcp."+mx, dns.TypeTLSA)
		if len(r.Answer) != 1 {
			t.Fatalf("TLSA %s: %v", mx, r)
		}
		return r.Answer[0].(*dns.TLSA)
	}
	ee := tlsa("mx1.dane.example")
	if ee.Usage != 3 || ee.Selector != 1 || ee.MatchingType != 1 {
		t.Errorf("dane-ee = %v, want 3 1 1", ee)
	}
	state := starttlsState(t, n, "mx1.dane.example", &tls.Config{InsecureSkipVerify: true, ServerName: "mx1.dane.example"})
	sum := sha256.Sum256(state.PeerCertificates[0].RawSubjectPublicKeyInfo)
	if ee.Certificate != hex.EncodeToString(sum[:]) {
		t.Errorf("3 1 1 %s does not match the served key %x", ee.Certificate, sum)
	}
	ta := tlsa("mx1.dane-ta.example")
	if ta.Usage != 2 || ta.Selector != 0 || ta.MatchingType != 1 {
		t.Errorf("dane-ta = %v, want 2 0 1", ta)
	}
	state = starttlsState(t, n, "mx1.dane-ta.example", &tls.Config{InsecureSkipVerify: true, ServerName: "mx1.dane-ta.example"})
	chain := state.PeerCertificates
	last := sha256.Sum256(chain[len(chain)-1].Raw)
	if len(chain) < 2 || ta.Certificate != hex.EncodeToString(last[:]) {
		t.Errorf("2 0 1 %s does not match the trust anchor in the served chain (%d certs)", ta.Certificate, len(chain))
	}
	wrong := tlsa("mx1.dane-wrong.example")
	state = starttlsState(t, n, "mx1.dane-wrong.example", &tls.Config{InsecureSkipVerify: true, ServerName: "mx1.dane-wrong.example"})
	sum = sha256.Sum256(state.PeerCertificates[0].RawSubjectPublicKeyInfo)
	if wrong.Usage != 3 || wrong.Certificate == hex.EncodeToString(sum[:]) {
		t.Errorf("wrong TLSA %v matches the served key", wrong)
	}
}

// Set replaces a domain while serving; Remove deletes it.
func TestDNSSetLive(t *testing.T) {
	t.Parallel()
	n := startNet(t, DefaultScenario())
	d, ok := n.Domain("enforce.example")
	if !ok {
		t.Fatal("Domain(enforce.example) missing")
	}
	d.STSTXT = [][]string{{"v=STSv1; id=changed2"}}
	d.MX = append(d.MX, MXHost{Name: "mx3.enforce.example", Pref: 30})
	if err := n.Set(d); err != nil {
		t.Fatal(err)
	}
	if got := txtOf(mustQuery(t, n, "udp", "_mta-sts.enforce.example", dns.TypeTXT)); len(got) != 1 || got[0] != "v=STSv1; id=changed2" {
		t.Errorf("after Set: TXT %q", got)
	}
	if r := mustQuery(t, n, "udp", "enforce.example", dns.TypeMX); len(r.Answer) != 3 {
		t.Errorf("after Set: MX %v", r.Answer)
	}
	if r := mustQuery(t, n, "udp", "mx3.enforce.example", dns.TypeA); len(r.Answer) != 1 {
		t.Errorf("new MX host has no A record: %v", r)
	}
	c, err := dialMX(t, n, "mx3.enforce.example")
	if err != nil {
		t.Fatalf("new MX host not listening: %v", err)
	}
	c.Close()
	// Set with a new domain, and IDN normalization.
	if err := n.Set(Domain{Name: "Bücher.example", STSTXT: [][]string{{"v=STSv1; id=1"}}}); err != nil {
		t.Fatal(err)
	}
	if got := txtOf(mustQuery(t, n, "udp", "_mta-sts.xn--bcher-kva.example", dns.TypeTXT)); len(got) != 1 {
		t.Errorf("IDN domain: TXT %q", got)
	}
	n.Remove("enforce.example")
	for _, name := range []string{"_mta-sts.enforce.example", "enforce.example", "mx1.enforce.example", "mx3.enforce.example"} {
		if r := mustQuery(t, n, "udp", name, dns.TypeANY); r.Rcode != dns.RcodeNameError {
			t.Errorf("after Remove: %s rcode %s", name, dns.RcodeToString[r.Rcode])
		}
	}
	if err := n.Set(Domain{Name: "bad..example"}); !errors.Is(err, ErrScenario) {
		t.Errorf("Set(bad name) = %v, want ErrScenario", err)
	}
}

// Set races with queries: run under -race.
func TestDNSSetConcurrent(t *testing.T) {
	t.Parallel()
	n := startNet(t, DefaultScenario())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			d := Domain{Name: "live.example", STSTXT: [][]string{{"v=STSv1; id=" + strings.Repeat("a", i%30+1)}},
				MX: []MXHost{{Name: "mx.live.example", Pref: 10}}}
			if err := n.Set(d); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	c := &dns.Client{Net: "udp", Timeout: 5 * time.Second}
	for range 200 {
		m := new(dns.Msg)
		m.SetQuestion("_mta-sts.live.example.", dns.TypeTXT)
		r, _, err := c.Exchange(m, n.DNSAddr())
		if err != nil {
			t.Fatal(err)
		}
		if r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
			t.Fatalf("rcode %s", dns.RcodeToString[r.Rcode])
		}
	}
	<-done
}

func BenchmarkDNSQuery(b *testing.B) {
	n := startNet(b, Generate(10_000, 1))
	b.RunParallel(func(pb *testing.PB) {
		c := &dns.Client{Net: "udp", Timeout: 5 * time.Second}
		m := new(dns.Msg)
		i := 0
		for pb.Next() {
			m.SetQuestion(fmt.Sprintf("_mta-sts.d%06d%s.", i%10_000, genSuffix), dns.TypeTXT)
			if _, _, err := c.Exchange(m, n.DNSAddr()); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// The root zone's answers carry the AD bit when the Net stands for a
// validating resolver (a Secure domain, or Options.Validating), as RFC
// 6840 §5.7 has a validating resolver do for the signed root; DANE-1 needs
// such a resolver. DNSQueries counts what was asked.
func TestDNSRootValidating(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	plain := startNet(t, &Scenario{Domains: []Domain{{Name: "plain.example", MX: []MXHost{{Name: "mx.plain.example"}}}}})
	signed := startNet(t, DefaultScenario())
	forced, err := Start(ctx, &Scenario{}, Options{Validating: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(forced.Close)
	for _, tc := range []struct {
		what string
		n    *Net
		ad   bool
	}{
		{"no Secure domain", plain, false},
		{"a Secure domain", signed, true},
		{"Options.Validating", forced, true},
	} {
		r := mustQuery(t, tc.n, "udp", ".", dns.TypeSOA)
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.Answer[0].Header().Rrtype != dns.TypeSOA || r.AuthenticatedData != tc.ad {
			t.Errorf("%s: . SOA = rcode %d, AD %v, answer %v; want NOERROR, AD %v, the root SOA", tc.what, r.Rcode, r.AuthenticatedData, r.Answer, tc.ad)
		}
		if got := tc.n.DNSQueries("SOA", "."); got != 1 {
			t.Errorf("%s: DNSQueries(SOA, .) = %d, want 1", tc.what, got)
		}
	}
	// Adding a Secure domain makes the resolver a validating one.
	if err := plain.Set(Domain{Name: "signed.example", Secure: true, MX: []MXHost{{Name: "mx.signed.example"}}}); err != nil {
		t.Fatal(err)
	}
	if r := mustQuery(t, plain, "tcp", ".", dns.TypeSOA); !r.AuthenticatedData {
		t.Errorf("after Set of a Secure domain: root answer without AD")
	}
	mustQuery(t, plain, "udp", "plain.example", dns.TypeMX)
	if got := plain.DNSQueries("mx", "Plain.Example."); got != 1 {
		t.Errorf("DNSQueries(mx, Plain.Example.) = %d, want 1", got)
	}
}
