package dnsresolve

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

// testZoneText is the data served by testZone. Names containing "secure"
// are answered with the AD bit (when the whole chain is secure); names
// containing "split" get only their CNAME, never the target's data, as an
// authoritative server outside the target's zone would answer.
const testZoneText = `
txt.test.            IN TXT "v=STSv1; " "id=20240101T000000"
txt.test.            IN TXT "other"
escape.test.         IN TXT "a\"b\\c\255d" "\000"
xn--bcher-kva.test.  IN TXT "idn"
chain.test.          IN CNAME chain1.test.
chain1.test.         IN CNAME txt.test.
split.test.          IN CNAME txt.test.
split-nodata.test.   IN CNAME ip.test.
loop1.test.          IN CNAME loop2.test.
loop2.test.          IN CNAME loop1.test.
split-loop1.test.    IN CNAME split-loop2.test.
split-loop2.test.    IN CNAME split-loop1.test.
self.test.           IN CNAME self.test.
dangling.test.       IN CNAME missing.test.
nodata.test.         IN MX 10 mx.test.
mx.test.             IN MX 20 b.test.
mx.test.             IN MX 10 A.Test.
mx.test.             IN MX 10 c.test.
nullmx.test.         IN MX 0 .
ip.test.             IN A 127.0.0.1
ip.test.             IN A 127.0.0.2
ip.test.             IN AAAA ::1
v4only.test.         IN A 127.0.0.3
v6fail.test.         IN A 127.0.0.4
halffail.test.       IN TXT "no addresses"
_25._tcp.mx.test.    IN TLSA 3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
_25._tcp.mx.test.    IN TLSA 2 0 1 ff
ad.secure.test.      IN TXT "signed"
_25._tcp.mx.secure.test. IN TLSA 3 1 1 aabb
mx.secure.test.      IN A 127.0.0.5
mx.secure.test.      IN AAAA ::1
alias.secure.test.   IN CNAME ad.secure.test.
split-alias.test.    IN CNAME ad.secure.test.
`

// testZone is a dns.Handler answering like a recursive resolver from
// testZoneText, plus names with scripted faults (see ServeDNS).
type testZone struct {
	rrs     map[string][]dns.RR
	queries atomic.Int64
	hung    chan struct{} // receives a value when "hang.test." is asked
}

func newTestZone(t testing.TB) *testZone {
	t.Helper()
	z := &testZone{rrs: map[string][]dns.RR{}, hung: make(chan struct{}, 16)}
	add := func(text string) {
		rr, err := dns.NewRR(text)
		if err != nil {
			t.Fatalf("zone line %q: %v", text, err)
		}
		name := strings.ToLower(rr.Header().Name)
		z.rrs[name] = append(z.rrs[name], rr)
	}
	for line := range strings.SplitSeq(testZoneText, "\n") {
		if strings.TrimSpace(line) != "" {
			add(line)
		}
	}
	// CNAME chains of exactly 8 hops (allowed) and 9 hops (too long).
	for _, n := range []int{8, 9} {
		for i := range n - 1 {
			add(fmt.Sprintf("hops%d-%d.test. IN CNAME hops%d-%d.test.", n, i, n, i+1))
		}
		add(fmt.Sprintf("hops%d-%d.test. IN CNAME txt.test.", n, n-1))
	}
	return z
}

func (z *testZone) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	z.queries.Add(1)
	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = true
	// Every query must carry EDNS0 with our payload size and the DO bit.
	opt := r.IsEdns0()
	if len(r.Question) != 1 || opt == nil || opt.UDPSize() != ednsUDPSize || !opt.Do() || !r.RecursionDesired {
		m.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(m)
		return
	}
	m.SetEdns0(ednsUDPSize, true)
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	tcp := w.RemoteAddr().Network() == "tcp"
	switch {
	case strings.HasPrefix(name, "servfail."):
		m.Rcode = dns.RcodeServerFailure
		m.AuthenticatedData = true // must still not count as authenticated
	case name == "bogus.test.":
		// A validating resolver's answer to a DNSSEC failure (RFC 8914).
		m.Rcode = dns.RcodeServerFailure
		m.IsEdns0().Option = append(m.IsEdns0().Option,
			&dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeDNSBogus, ExtraText: "RRSIG \"expired\""})
	case name == "refused.test.":
		// Some servers send error replies without the question.
		m.Rcode = dns.RcodeRefused
		m.Question = nil
	case name == "timeout.test.":
		return
	case name == "hang.test.":
		z.hung <- struct{}{}
		return
	case name == "badid.test.":
		m.Id++
	case name == "badq.test.":
		m.Question[0].Name = "other.test."
	case name == "notreply.test.":
		m.Response = false
	case name == "spoof.test." && !tcp:
		// A forged reply and garbage arrive first; the real one follows.
		bad := m.Copy()
		bad.Id++
		bad.Answer = []dns.RR{mustRR("spoof.test. IN TXT \"forged\"")}
		_ = w.WriteMsg(bad)
		_, _ = w.Write([]byte("garbage"))
		m.Answer = []dns.RR{mustRR("spoof.test. IN TXT \"real\"")}
	case name == "tc.test.":
		if !tcp {
			m.Truncated = true
			break
		}
		for i := range 40 {
			m.Answer = append(m.Answer, mustRR(fmt.Sprintf("tc.test. IN TXT \"%03d %s\"", i, strings.Repeat("x", 100))))
		}
	case (name == "v6fail.test." || name == "halffail.test.") && q.Qtype == dns.TypeAAAA:
		m.Rcode = dns.RcodeServerFailure
	default:
		z.answer(m, name, q.Qtype)
	}
	_ = w.WriteMsg(m)
}

// answer fills m like a recursive resolver: the CNAME chain then the data,
// NXDOMAIN or NODATA (with an SOA) for the last name of the chain.
func (z *testZone) answer(m *dns.Msg, name string, qtype uint16) {
	secure := true
	cur := name
	for range 20 {
		secure = secure && strings.Contains(cur, "secure")
		rrs, ok := z.rrs[cur]
		if !ok {
			m.Rcode = dns.RcodeNameError
			m.Ns = append(m.Ns, mustRR("test. IN SOA ns.test. host.test. 1 3600 600 86400 300"))
			break
		}
		var cname *dns.CNAME
		var data []dns.RR
		for _, rr := range rrs {
			if rr.Header().Rrtype == qtype {
				data = append(data, rr)
			} else if c, ok := rr.(*dns.CNAME); ok {
				cname = c
			}
		}
		if len(data) > 0 {
			m.Answer = append(m.Answer, data...)
			break
		}
		if cname == nil {
			m.Ns = append(m.Ns, mustRR("test. IN SOA ns.test. host.test. 1 3600 600 86400 300"))
			break
		}
		m.Answer = append(m.Answer, cname)
		if strings.Contains(cur, "split") {
			break
		}
		cur = strings.ToLower(cname.Target)
	}
	m.AuthenticatedData = secure
}

func mustRR(s string) dns.RR {
	rr, err := dns.NewRR(s)
	if err != nil {
		panic(err)
	}
	return rr
}

// startServer serves h on 127.0.0.1 over UDP and TCP on the same port and
// returns "127.0.0.1:port". The servers stop at the end of the test.
func startServer(t testing.TB, h dns.Handler) string {
	t.Helper()
	return startServerAt(t, "127.0.0.1", h)
}

// startServerAt is startServer on a loopback IP of the caller's choice.
func startServerAt(t testing.TB, ip string, h dns.Handler) string {
	t.Helper()
	var pc net.PacketConn
	var l net.Listener
	// The TCP port matching a fresh UDP port is almost always free; retry
	// a bounded number of times when it is not.
	for try := 0; ; try++ {
		var err error
		pc, err = net.ListenPacket("udp", net.JoinHostPort(ip, "0"))
		if err != nil {
			t.Fatal(err)
		}
		l, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
		if try == 20 {
			t.Fatalf("no free UDP+TCP port pair: %v", err)
		}
	}
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: l, Handler: h}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = srv.ActivateAndServe()
		}()
		select {
		case <-started:
		case <-done:
			t.Fatal("DNS test server did not start")
		}
		t.Cleanup(func() {
			_ = srv.Shutdown()
			<-done
		})
	}
	return pc.LocalAddr().String()
}

// handlerFunc answers every query with the given rcode.
func rcodeHandler(rcode int, count *atomic.Int64) dns.HandlerFunc {
	return func(w dns.ResponseWriter, r *dns.Msg) {
		count.Add(1)
		m := new(dns.Msg)
		m.SetRcode(r, rcode)
		_ = w.WriteMsg(m)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
