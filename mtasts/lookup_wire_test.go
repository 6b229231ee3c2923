package mtasts

import (
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/watchdog"
)

// wireZone is a tiny authoritative DNS server on loopback UDP that records
// the names it is asked for. It lets the TXT tests run through the real
// dnsresolve client and the DNS wire format.
type wireZone struct {
	mu      sync.Mutex
	txt     map[string][][]string // name -> RRs -> character-strings
	cname   map[string]string
	drop    map[string]bool // never answer
	fail    map[string]bool // SERVFAIL
	queries []string
}

func (z *wireZone) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	if len(req.Question) != 1 {
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	z.mu.Lock()
	z.queries = append(z.queries, dns.TypeToString[q.Qtype]+" "+q.Name)
	drop, fail := z.drop[name], z.fail[name]
	rrs, cname := z.txt[name], z.cname[name]
	z.mu.Unlock()
	if drop {
		return
	}
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	switch {
	case fail:
		m.Rcode = dns.RcodeServerFailure
	case cname != "":
		m.Answer = append(m.Answer, &dns.CNAME{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 60}, Target: cname})
		for _, strs := range z.txt[cname] {
			m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: cname, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: strs})
		}
	case rrs == nil:
		m.Rcode = dns.RcodeNameError
	case q.Qtype == dns.TypeTXT:
		for _, strs := range rrs {
			m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: strs})
		}
	}
	_ = w.WriteMsg(m)
}

func (z *wireZone) asked() []string {
	z.mu.Lock()
	defer z.mu.Unlock()
	return append([]string(nil), z.queries...)
}

// startWireZone serves z on 127.0.0.1 and returns a Client using it.
func startWireZone(t *testing.T, z *wireZone) *Client {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: z, NotifyStartedFunc: func() { close(started) }}
	go func() { _ = srv.ActivateAndServe() }()
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("DNS server did not start")
	}
	t.Cleanup(func() { _ = srv.Shutdown() })
	r := &dnsresolve.Client{Servers: []string{pc.LocalAddr().String()}, Timeout: 2 * time.Second, Attempts: 1}
	return &Client{DNS: r}
}

// STS-TXT-9, STS-TXT-1, STS-TXT-10, STS-TXT-13, F-1, §10 item 8: through the
// real DNS client. The character-strings of one TXT RR are joined with no
// separator, several RRs stay separate records, the query name is built from
// the A-label domain with exactly one root dot, CNAMEs are followed, and a
// SERVFAIL or a silent server is ErrDNS (not "no record") within the
// configured timeout.
func TestLookupRecord_STS_TXT_9_Wire(t *testing.T) {
	t.Parallel()
	z := &wireZone{
		txt: map[string][][]string{
			// RFC 8461 §3.1 example split as the checklist's STS-TXT-9 test.
			"_mta-sts.example.com.": {{"v=STSv1; id=2016", "0831085700Z;"}, {"v=spf1 -all"}},
			// F-1 as one string.
			"_mta-sts.f1.example.": {{"v=STSv1; id=20160831085700Z;"}},
			// Two records, each valid alone: no policy (STS-TXT-7).
			"_mta-sts.two.example.": {{"v=STSv1; id=1"}, {"v=STSv1; ", "id=2"}},
			// Split right after the delimiter: joined with nothing,
			// still a valid record.
			"_mta-sts.split.example.": {{"v=STSv1;", "id=1"}},
			// A split inside the id behind a CNAME (STS-TXT-10).
			"_mta-sts.provider.example.":      {{"v=STSv1; id=prov", "ider1"}},
			"_mta-sts.xn--bcher-kva.example.": {{"v=STSv1; id=idn"}},
			"_mta-sts.case.example.":          {{"v=STSv1; id=AbC"}},
		},
		cname: map[string]string{"_mta-sts.user.example.": "_mta-sts.provider.example."},
		drop:  map[string]bool{"_mta-sts.silent.example.": true},
		fail:  map[string]bool{"_mta-sts.servfail.example.": true},
	}
	c := startWireZone(t, z)
	for _, tc := range []struct {
		domain string
		id     string
		err    error
	}{
		{"example.com.", "20160831085700Z", nil},
		{"f1.example", "20160831085700Z", nil},
		{"two.example", "", ErrMultipleRecords},
		{"split.example", "1", nil},
		{"user.example", "provider1", nil},
		{"Bücher.example", "idn", nil},
		{"case.example", "AbC", nil},
		{"missing.example", "", ErrNoRecord},
		{"servfail.example", "", ErrDNS},
		{"silent.example", "", ErrDNS},
	} {
		// The resolver's 2 s timeout must end the silent lookup: a
		// watchdog far above it (a broken lookup hangs), not a time bound.
		type result struct {
			rec *Record
			err error
		}
		r := watchdog.Within(t, 2*time.Minute, func() result {
			rec, _, err := c.LookupRecord(t.Context(), tc.domain)
			return result{rec, err}
		})
		rec, err := r.rec, r.err
		if tc.err != nil {
			if !errors.Is(err, tc.err) || rec != nil {
				t.Errorf("%s: %+v, %v; want %v", tc.domain, rec, err, tc.err)
			}
			if tc.err == ErrDNS && errors.Is(err, ErrNoRecord) {
				t.Errorf("%s: a lookup failure reported as no record: %v", tc.domain, err)
			}
			continue
		}
		if err != nil || rec.ID != tc.id {
			t.Errorf("%s: %+v, %v; want id %q", tc.domain, rec, err, tc.id)
		}
	}
	// STS-TXT-1: the names on the wire.
	asked := strings.Join(z.asked(), "\n")
	for _, want := range []string{"TXT _mta-sts.example.com.\n", "TXT _mta-sts.xn--bcher-kva.example.\n", "TXT _mta-sts.user.example.\n"} {
		if !strings.Contains(asked+"\n", want) {
			t.Errorf("no query %q in\n%s", strings.TrimSpace(want), asked)
		}
	}
	if strings.Contains(asked, "..") || strings.Contains(asked, "mta-sts.example.com\n") {
		t.Errorf("a query name with two dots or without the root dot:\n%s", asked)
	}
}
