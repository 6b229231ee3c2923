package dnsresolve

import (
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// portLog records the source ports queries came from.
type portLog struct {
	mu    sync.Mutex
	ports map[int]int
}

func (p *portLog) add(a net.Addr) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ports == nil {
		p.ports = map[int]int{}
	}
	if u, ok := a.(*net.UDPAddr); ok {
		p.ports[u.Port]++
	}
}

func (p *portLog) distinct() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.ports)
}

// echoTXT answers every TXT query with one record holding the query name,
// so that a client can tell whose answer it got.
func echoTXT(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	q := r.Question[0]
	m.Answer = append(m.Answer, &dns.TXT{
		Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
		Txt: []string{strings.ToLower(q.Name)},
	})
	_ = w.WriteMsg(m)
}

// Sequential lookups share one connected UDP socket: the server sees one
// source port for all of them.
func TestClientReusesUDPSocket(t *testing.T) {
	t.Parallel()
	var log portLog
	addr := startServer(t, dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		log.add(w.RemoteAddr())
		echoTXT(w, r)
	}))
	c, err := NewClient(addr)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		name := "n" + string(rune('a'+i%26)) + ".seq.test"
		txts, _, err := c.LookupTXT(t.Context(), name)
		if err != nil || len(txts) != 1 || txts[0] != name+"." {
			t.Fatalf("lookup %d of %s = %q, %v", i, name, txts, err)
		}
	}
	// One socket, unless the machine was so slow that it aged out
	// (udpMaxAge) in the middle.
	if n := log.distinct(); n > 2 {
		t.Errorf("50 sequential lookups came from %d source ports, want 1 (a reused socket)", n)
	}
	if n := c.udp.idleCount(addr); n != 1 {
		t.Errorf("idle sockets = %d, want 1", n)
	}
}

// Under concurrency every lookup gets its own answer (a socket serves one
// query at a time), sockets are reused, and the pool stays bounded.
func TestClientUDPReuseConcurrent(t *testing.T) {
	t.Parallel()
	var log portLog
	addr := startServer(t, dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		log.add(w.RemoteAddr())
		echoTXT(w, r)
	}))
	c, err := NewClient(addr)
	if err != nil {
		t.Fatal(err)
	}
	const workers, each = 32, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				name := "w" + itoa(w) + "-" + itoa(i) + ".conc.test"
				txts, _, err := c.LookupTXT(t.Context(), name)
				if err != nil {
					errs <- err
					continue
				}
				if len(txts) != 1 || txts[0] != name+"." {
					errs <- errors.New(name + ": got the answer " + strings.Join(txts, ",") + " of another query")
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := log.distinct(); n >= workers*each/2 {
		t.Errorf("%d lookups from %d source ports: sockets were not reused", workers*each, n)
	}
	if n := c.udp.idleCount(addr); n > udpMaxIdle {
		t.Errorf("idle sockets = %d, want at most %d", n, udpMaxIdle)
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

// A query that times out closes its socket: the server's late reply cannot
// wait in a pooled socket for the next query, which gets its own answer.
func TestClientUDPTimeoutNotReused(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	late := make(chan struct{})
	var mu sync.Mutex
	first := true
	addr := startServer(t, dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		mu.Lock()
		stall := first
		first = false
		mu.Unlock()
		if stall {
			// The failing server: no answer until the client gave up,
			// then a stale one.
			<-release
			m := new(dns.Msg)
			m.SetReply(r)
			m.Answer = append(m.Answer, &dns.TXT{
				Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
				Txt: []string{"stale"},
			})
			_ = w.WriteMsg(m)
			close(late)
			return
		}
		echoTXT(w, r)
	}))
	c := &Client{Servers: []string{addr}, Timeout: 100 * time.Millisecond, Attempts: 1}
	_, _, err := c.LookupTXT(t.Context(), "late.test")
	if !errors.Is(err, ErrLookupFailed) {
		t.Fatalf("stalled lookup: %v, want ErrLookupFailed", err)
	}
	if n := c.udp.idleCount(addr); n != 0 {
		t.Errorf("after a timeout, %d idle sockets; want the socket closed", n)
	}
	close(release)
	<-late
	c.Timeout = time.Minute
	txts, _, err := c.LookupTXT(t.Context(), "late.test")
	if err != nil || len(txts) != 1 || txts[0] != "late.test." {
		t.Errorf("lookup after the timeout = %q, %v; want its own answer", txts, err)
	}
	if n := c.udp.idleCount(addr); n != 1 {
		t.Errorf("after a clean exchange, %d idle sockets; want 1", n)
	}
}

// On a reused socket, datagrams that do not answer the current query are
// still ignored: a wrong ID, a wrong question, and a duplicate of an
// earlier reply left waiting in the socket.
func TestClientUDPPooledRejectsForgeries(t *testing.T) {
	t.Parallel()
	var log portLog
	reply := func(r *dns.Msg, name, text string, id uint16) *dns.Msg {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Id = id
		m.Question[0].Name = name
		m.Answer = append(m.Answer, &dns.TXT{
			Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
			Txt: []string{text},
		})
		return m
	}
	addr := startServer(t, dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		log.add(w.RemoteAddr())
		q := r.Question[0].Name
		_ = w.WriteMsg(reply(r, q, "forged-id", r.Id^0x5a5a))
		_ = w.WriteMsg(reply(r, "other.test.", "forged-question", r.Id))
		_ = w.WriteMsg(reply(r, q, "good "+q, r.Id))
		// A duplicate after the good reply stays in the socket, to be
		// read by the next query on it.
		_ = w.WriteMsg(reply(r, q, "duplicate "+q, r.Id))
	}))
	c, err := NewClient(addr)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"one.test", "two.test", "three.test"} {
		txts, _, err := c.LookupTXT(t.Context(), name)
		if err != nil || len(txts) != 1 || txts[0] != "good "+name+"." {
			t.Errorf("LookupTXT(%s) = %q, %v; want only the good reply", name, txts, err)
		}
	}
	if n := log.distinct(); n != 1 {
		t.Errorf("three lookups from %d source ports; the test wants the socket reused", n)
	}
}
