package dnsresolve

import (
	"context"
	"errors"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/mailsts/mailsts/internal/watchdog"
)

// newTestClient starts a test zone server and returns a Client using it.
func newTestClient(t *testing.T) (*Client, *testZone, string) {
	t.Helper()
	z := newTestZone(t)
	addr := startServer(t, z)
	c, err := NewClient(addr)
	if err != nil {
		t.Fatal(err)
	}
	return c, z, addr
}

func TestClientTXT(t *testing.T) {
	t.Parallel()
	c, _, _ := newTestClient(t)
	ctx := t.Context()
	tests := []struct {
		name      string
		want      []string
		canonical string
	}{
		// STS-TXT-9: strings of one RR joined with no separator; one
		// string per RR.
		{"txt.test", []string{"v=STSv1; id=20240101T000000", "other"}, "txt.test."},
		{"TXT.Test.", []string{"v=STSv1; id=20240101T000000", "other"}, "txt.test."},
		// Escaped bytes come back raw.
		{"escape.test", []string{"a\"b\\c\xffd\x00"}, "escape.test."},
		// STS-TXT-1 / GO-10: U-labels are queried as A-labels.
		{"Bücher.test", []string{"idn"}, "xn--bcher-kva.test."},
		{"xn--bcher-kva.test.", []string{"idn"}, "xn--bcher-kva.test."},
		// STS-TXT-10: CNAME chains, in one reply or over several.
		{"chain.test", []string{"v=STSv1; id=20240101T000000", "other"}, "txt.test."},
		{"split.test", []string{"v=STSv1; id=20240101T000000", "other"}, "txt.test."},
		{"hops8-0.test", []string{"v=STSv1; id=20240101T000000", "other"}, "txt.test."},
		// Truncated UDP reply retried over TCP.
		{"tc.test", nil, "tc.test."},
		// A forged datagram and garbage before the real reply are ignored.
		{"spoof.test", []string{"real"}, "spoof.test."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ans, err := c.LookupTXT(ctx, tt.name)
			if err != nil {
				t.Fatal(err)
			}
			if tt.name == "tc.test" {
				if len(got) != 40 || !strings.HasPrefix(got[39], "039 xxx") {
					t.Fatalf("got %d records over TCP, want 40", len(got))
				}
			} else if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if ans.CanonicalName != tt.canonical {
				t.Errorf("CanonicalName %q, want %q", ans.CanonicalName, tt.canonical)
			}
			if ans.Authenticated {
				t.Errorf("Authenticated without AD bit")
			}
		})
	}
}

// STS-TXT-13: NXDOMAIN and NODATA are ErrNotFound; every failure is
// ErrLookupFailed, never ErrNotFound.
func TestClientErrors(t *testing.T) {
	t.Parallel()
	z := newTestZone(t)
	addr := startServer(t, z)
	// Cases that end in a timeout wait this long; generous so that the
	// mismatched replies surely arrive before it on a loaded machine.
	c := &Client{Servers: []string{addr}, Timeout: time.Second, Attempts: 1}
	ctx := t.Context()
	tests := []struct {
		name     string
		notFound bool
		rcode    int
		contains string
	}{
		{"nx.test", true, dns.RcodeNameError, "NXDOMAIN from " + addr},
		{"nodata.test", true, dns.RcodeSuccess, "NODATA from " + addr},
		{"dangling.test", true, dns.RcodeNameError, "NXDOMAIN at missing.test. from"},
		{"split-nodata.test", true, dns.RcodeSuccess, "NODATA at ip.test."},
		{"servfail.test", false, dns.RcodeServerFailure, "SERVFAIL from " + addr},
		{"refused.test", false, dns.RcodeRefused, "REFUSED from " + addr},
		// DANE-5: a bogus answer is a failure, with the reason kept.
		{"bogus.test", false, dns.RcodeServerFailure, `SERVFAIL (EDE 6 DNSSEC Bogus: "RRSIG \"expired\"") from ` + addr},
		{"timeout.test", false, RcodeNone, "no reply within"},
		{"badid.test", false, RcodeNone, "ID"},
		{"badq.test", false, RcodeNone, "question other.test."},
		{"notreply.test", false, RcodeNone, "not a query response"},
		{"loop1.test", false, RcodeNone, "CNAME loop"},
		{"split-loop1.test", false, RcodeNone, "CNAME loop"},
		{"self.test", false, RcodeNone, "CNAME loop"},
		{"hops9-0.test", false, RcodeNone, "CNAME chain longer than 8"},
		{"a..test", false, RcodeNone, "invalid domain name"},
		{"", false, RcodeNone, "invalid domain name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// The client's 1 s timeout must end every lookup: a watchdog
			// far above it (a broken client hangs), not a time bound.
			type result struct {
				txts []string
				err  error
			}
			r := watchdog.Within(t, 2*time.Minute, func() result {
				txts, _, err := c.LookupTXT(ctx, tt.name)
				return result{txts, err}
			})
			err := r.err
			if err == nil {
				t.Fatalf("got %q, want an error", r.txts)
			}
			if got := errors.Is(err, ErrNotFound); got != tt.notFound {
				t.Errorf("errors.Is(%v, ErrNotFound) = %v", err, got)
			}
			if got := errors.Is(err, ErrLookupFailed); got == tt.notFound {
				t.Errorf("errors.Is(%v, ErrLookupFailed) = %v", err, got)
			}
			var de *Error
			if !errors.As(err, &de) {
				t.Fatalf("%T is not *Error", err)
			}
			if de.Rcode != tt.rcode || de.Qtype != "TXT" {
				t.Errorf("Rcode %d Qtype %q, want %d TXT", de.Rcode, de.Qtype, tt.rcode)
			}
			if !strings.Contains(err.Error(), tt.contains) || !strings.HasPrefix(err.Error(), "dns: ") {
				t.Errorf("error %q does not contain %q", err, tt.contains)
			}
		})
	}
}

func TestClientErrorMessage(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	addr := startServer(t, rcodeHandler(dns.RcodeServerFailure, &n))
	c := &Client{Servers: []string{addr}}
	_, _, err := c.LookupTXT(t.Context(), "_MTA-STS.Example.com.")
	want := "dns: _mta-sts.example.com TXT: SERVFAIL from " + addr + ": dns: lookup failed"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	// Attempts defaults to 2 walks of the server list.
	if n.Load() != DefaultAttempts {
		t.Errorf("%d queries, want %d", n.Load(), DefaultAttempts)
	}
}

func TestClientTimeoutCause(t *testing.T) {
	t.Parallel()
	_, _, addr := newTestClient(t)
	c := &Client{Servers: []string{addr}, Timeout: 50 * time.Millisecond, Attempts: 1}
	_, _, err := c.LookupTXT(t.Context(), "timeout.test")
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.Is(err, ErrLookupFailed) {
		t.Fatalf("got %v, want a deadline error and ErrLookupFailed", err)
	}
	// A mismatched reply is ignored on UDP; the error still says why.
	c.Timeout = time.Second // the bad reply must arrive before the timeout
	_, _, err = c.LookupTXT(t.Context(), "badid.test")
	if !errors.Is(err, errMismatch) {
		t.Fatalf("got %v, want it to mention the mismatched reply", err)
	}
}

func TestClientServerRotation(t *testing.T) {
	t.Parallel()
	var bad atomic.Int64
	badAddr := startServer(t, rcodeHandler(dns.RcodeServerFailure, &bad))
	z := newTestZone(t)
	good := startServer(t, z)

	c := &Client{Servers: []string{badAddr, good}}
	txts, _, err := c.LookupTXT(t.Context(), "txt.test")
	if err != nil || len(txts) != 2 {
		t.Fatalf("got %q, %v", txts, err)
	}
	if bad.Load() != 1 || z.queries.Load() != 1 {
		t.Errorf("queries: bad %d, good %d; want 1 and 1", bad.Load(), z.queries.Load())
	}

	// NXDOMAIN from the first server is final: no other server is asked.
	c = &Client{Servers: []string{good, badAddr}}
	if _, _, err := c.LookupTXT(t.Context(), "nx.test"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
	if bad.Load() != 1 {
		t.Errorf("second server asked after NXDOMAIN")
	}

	// Attempts walks the list that many times.
	var n atomic.Int64
	only := startServer(t, rcodeHandler(dns.RcodeRefused, &n))
	c = &Client{Servers: []string{only}, Attempts: 3}
	if _, _, err := c.LookupMX(t.Context(), "example.test"); !errors.Is(err, ErrLookupFailed) {
		t.Fatalf("got %v, want ErrLookupFailed", err)
	}
	if n.Load() != 3 {
		t.Errorf("%d queries, want 3", n.Load())
	}
}

func TestClientContext(t *testing.T) {
	t.Parallel()
	c, z, _ := newTestClient(t)
	// Only the context may end these lookups: the client's own timeout is
	// an hour, so a watchdog of two minutes tells a context honoured
	// (100 ms) from one ignored, whatever the machine load.
	c.Timeout = time.Hour

	// Deadline.
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	err := watchdog.Within(t, 2*time.Minute, func() error {
		_, _, err := c.LookupTXT(ctx, "timeout.test")
		return err
	})
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrLookupFailed) {
		t.Fatalf("got %v, want DeadlineExceeded and ErrLookupFailed", err)
	}

	// Cancellation while the query is in flight.
	ctx, cancel = context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, _, err := c.LookupTXT(ctx, "hang.test")
		errc <- err
	}()
	select {
	case <-z.hung:
	case <-time.After(2 * time.Minute):
		t.Fatal("query never arrived")
	}
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrLookupFailed) {
			t.Fatalf("got %v, want Canceled and ErrLookupFailed", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("cancellation not honoured")
	}

	// Already cancelled: no query is sent.
	before := z.queries.Load()
	if _, _, err := c.LookupTXT(ctx, "txt.test"); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want Canceled", err)
	}
	if z.queries.Load() != before {
		t.Error("query sent with a cancelled context")
	}
}

// DANE-1, DANE-4, DANE-5: the AD bit is exposed, for data and for denials,
// and an insecure CNAME hop makes the answer insecure.
func TestClientAuthenticated(t *testing.T) {
	t.Parallel()
	c, _, _ := newTestClient(t)
	ctx := t.Context()
	tests := []struct {
		name     string
		ad       bool
		notFound bool
	}{
		{"ad.secure.test", true, false},
		{"alias.secure.test", true, false},      // chain in one secure reply
		{"split-alias.test", false, false},      // insecure hop, secure target
		{"txt.test", false, false},              // unsigned
		{"nx.secure.test", true, true},          // secure denial (DANE-4)
		{"nx.test", false, true},                // insecure denial
		{"_25._tcp.mx.secure.test", true, true}, // NODATA for TXT, secure
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, ans, err := c.LookupTXT(ctx, tt.name)
			if (err != nil) != tt.notFound || (err != nil && !errors.Is(err, ErrNotFound)) {
				t.Fatalf("err = %v, want not found: %v", err, tt.notFound)
			}
			if ans.Authenticated != tt.ad {
				t.Errorf("Authenticated = %v, want %v", ans.Authenticated, tt.ad)
			}
		})
	}
	// A failed lookup is never authenticated (DANE-5).
	_, ans, err := c.LookupTXT(ctx, "servfail.secure.test")
	if err == nil || ans.Authenticated {
		t.Errorf("servfail: ans %+v err %v", ans, err)
	}
}

func TestClientMX(t *testing.T) {
	t.Parallel()
	c, _, _ := newTestClient(t)
	got, ans, err := c.LookupMX(t.Context(), "mx.test")
	if err != nil {
		t.Fatal(err)
	}
	// Sorted by preference, stable for equal preferences, lowercased,
	// without trailing dot.
	want := []MX{{10, "a.test"}, {10, "c.test"}, {20, "b.test"}}
	if !slices.Equal(got, want) || ans.CanonicalName != "mx.test." {
		t.Errorf("got %v %+v, want %v", got, ans, want)
	}
	got, _, err = c.LookupMX(t.Context(), "nullmx.test")
	if err != nil || !slices.Equal(got, []MX{{0, "."}}) {
		t.Errorf("null MX: got %v, %v", got, err)
	}
	if _, _, err := c.LookupMX(t.Context(), "txt.test"); !errors.Is(err, ErrNotFound) {
		t.Errorf("NODATA MX: got %v", err)
	}
}

func TestClientLookupIP(t *testing.T) {
	t.Parallel()
	c, _, _ := newTestClient(t)
	ctx := t.Context()
	tests := []struct {
		name string
		want []string
		ad   bool
		err  error
	}{
		{"ip.test", []string{"127.0.0.1", "127.0.0.2", "::1"}, false, nil},
		{"v4only.test", []string{"127.0.0.3"}, false, nil},
		{"mx.secure.test", []string{"127.0.0.5", "::1"}, true, nil},
		// AAAA failed but A answered: the addresses are returned.
		{"v6fail.test", []string{"127.0.0.4"}, false, nil},
		// Both NODATA / NXDOMAIN: not found.
		{"txt.test", nil, false, ErrNotFound},
		{"nx.test", nil, false, ErrNotFound},
		// A NODATA, AAAA SERVFAIL: failed, not "not found".
		{"halffail.test", nil, false, ErrLookupFailed},
		{"servfail.test", nil, false, ErrLookupFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addrs, ans, err := c.LookupIP(ctx, tt.name)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("got %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, a := range addrs {
				got = append(got, a.String())
			}
			if !slices.Equal(got, tt.want) || ans.Authenticated != tt.ad {
				t.Errorf("got %v ad=%v, want %v ad=%v", got, ans.Authenticated, tt.want, tt.ad)
			}
		})
	}
}

func TestClientTLSA(t *testing.T) {
	t.Parallel()
	c, _, _ := newTestClient(t)
	got, ans, err := c.LookupTLSA(t.Context(), 25, "tcp", "MX.test.")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Usage != 3 || got[0].Selector != 1 || got[0].MatchingType != 1 ||
		len(got[0].Data) != 32 || got[0].Data[0] != 0x01 || got[1].Usage != 2 || string(got[1].Data) != "\xff" {
		t.Errorf("got %+v", got)
	}
	if ans.CanonicalName != "_25._tcp.mx.test." || ans.Authenticated {
		t.Errorf("answer %+v", ans)
	}
	// DANE-1: TLSA in a secure zone is authenticated.
	if _, ans, err := c.LookupTLSA(t.Context(), 25, "tcp", "mx.secure.test"); err != nil || !ans.Authenticated {
		t.Errorf("secure TLSA: %+v %v", ans, err)
	}
	// DANE-4: a provable absence is an authenticated ErrNotFound.
	_, ans, err = c.LookupTLSA(t.Context(), 25, "tcp", "none.secure.test")
	if !errors.Is(err, ErrNotFound) || !ans.Authenticated {
		t.Errorf("secure denial: %+v %v", ans, err)
	}
	for _, bad := range []struct {
		port  int
		proto string
	}{{0, "tcp"}, {65536, "tcp"}, {25, ""}, {25, "t.cp"}} {
		if _, _, err := c.LookupTLSA(t.Context(), bad.port, bad.proto, "mx.test"); !errors.Is(err, ErrInvalidName) || !errors.Is(err, ErrLookupFailed) {
			t.Errorf("%d %q: got %v", bad.port, bad.proto, err)
		}
	}
}

func TestNewClient(t *testing.T) {
	t.Parallel()
	c, err := NewClient("127.0.0.1", "::1", "[::1]:5353")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"127.0.0.1:53", "[::1]:53", "[::1]:5353"}
	if !slices.Equal(c.Servers, want) {
		t.Errorf("Servers %q, want %q", c.Servers, want)
	}
	if _, err := NewClient("ns.example.test"); err == nil {
		t.Error("hostname accepted as server")
	}
	// A zero Client with bad Servers fails every lookup as ErrLookupFailed.
	zc := &Client{Servers: []string{"not an address"}}
	if _, _, err := zc.LookupTXT(t.Context(), "txt.test"); !errors.Is(err, ErrLookupFailed) {
		t.Errorf("got %v", err)
	}
}

// The Client is used for thousands of concurrent lookups: no data races,
// every answer right.
func TestClientConcurrent(t *testing.T) {
	t.Parallel()
	c, _, _ := newTestClient(t)
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Go(func() {
			name := []string{"txt.test", "chain.test", "ip.test"}[i%3]
			if i%3 == 2 {
				if _, _, err := c.LookupIP(t.Context(), name); err != nil {
					errs <- err
				}
				return
			}
			if txts, _, err := c.LookupTXT(t.Context(), name); err != nil || len(txts) != 2 {
				errs <- errors.Join(err, errors.New("wrong answer"))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestParseReply(t *testing.T) {
	t.Parallel()
	q := newQuery("a.test.", dns.TypeTXT, true)
	ok := new(dns.Msg)
	ok.SetReply(q)
	b, _ := ok.Pack()
	if _, err := parseReply(b, q); err != nil {
		t.Fatalf("matching reply rejected: %v", err)
	}
	for _, bad := range [][]byte{nil, {0}, b[:5], append(slices.Clone(b), 0xff)[:len(b)-1]} {
		if _, err := parseReply(bad, q); err == nil {
			t.Errorf("%x accepted", bad)
		}
	}
	other := ok.Copy()
	other.Question[0].Qtype = dns.TypeMX
	ob, _ := other.Pack()
	if _, err := parseReply(ob, q); !errors.Is(err, errMismatch) {
		t.Errorf("wrong qtype: %v", err)
	}
}

func BenchmarkLookupTXT(b *testing.B) {
	z := newTestZone(b)
	addr := startServer(b, z)
	c, err := NewClient(addr)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(8) // many lookups in flight, as in a busy daemon
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := c.LookupTXT(ctx, "txt.test"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// txtWire builds the wire form of a TXT RR "a." holding the given raw
// character-strings.
func txtWire(strs [][]byte) []byte {
	var rdata []byte
	for _, s := range strs {
		rdata = append(rdata, byte(len(s)))
		rdata = append(rdata, s...)
	}
	b := []byte{1, 'a', 0, 0, byte(dns.TypeTXT), 0, 1, 0, 0, 0, 0, byte(len(rdata) >> 8), byte(len(rdata))}
	return append(b, rdata...)
}

// FuzzUnescapeTXT: for any raw bytes on the wire, miekg/dns's presentation
// form run through unescapeTXT gives the same bytes back (STS-TXT-9 relies
// on the exact record text).
func FuzzUnescapeTXT(f *testing.F) {
	f.Add([]byte("v=STSv1; id=1"), []byte(""))
	f.Add([]byte("a\"b\\c\xffd"), []byte("\x00\\123"))
	f.Add([]byte(`\\\`), []byte(`\999`))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		if len(a) > 255 || len(b) > 255 {
			return
		}
		rr, _, err := dns.UnpackRR(txtWire([][]byte{a, b}), 0)
		if err != nil {
			t.Fatalf("unpack: %v", err)
		}
		txt := rr.(*dns.TXT).Txt
		if len(txt) != 2 {
			t.Fatalf("%d strings", len(txt))
		}
		if got := unescapeTXT(txt[0]) + unescapeTXT(txt[1]); got != string(a)+string(b) {
			t.Fatalf("got %q, want %q", got, string(a)+string(b))
		}
	})
}

func TestClientIPv6Server(t *testing.T) {
	t.Parallel()
	if pc, err := net.ListenPacket("udp", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		pc.Close()
	}
	addr := startServerAt(t, "::1", newTestZone(t))
	_, port, _ := net.SplitHostPort(addr)
	// IPv6 server addresses are written in brackets.
	c, err := NewClient("[::1]:" + port)
	if err != nil {
		t.Fatal(err)
	}
	if c.Servers[0] != addr {
		t.Errorf("server %q, want %q", c.Servers[0], addr)
	}
	txts, _, err := c.LookupTXT(t.Context(), "txt.test")
	if err != nil || len(txts) != 2 {
		t.Fatalf("got %q, %v", txts, err)
	}
	// And over TCP after truncation.
	if txts, _, err := c.LookupTXT(t.Context(), "tc.test"); err != nil || len(txts) != 40 {
		t.Fatalf("TCP: got %d records, %v", len(txts), err)
	}
}

// A server that does not know EDNS0 answers FORMERR without OPT; the query
// is repeated without EDNS0 (RFC 6891 §7).
func TestClientNoEDNSServer(t *testing.T) {
	t.Parallel()
	var withEDNS, without atomic.Int64
	addr := startServer(t, dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if r.IsEdns0() != nil {
			withEDNS.Add(1)
			m.Rcode = dns.RcodeFormatError
		} else {
			without.Add(1)
			m.Answer = append(m.Answer, &dns.TXT{
				Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET},
				Txt: []string{"old"},
			})
		}
		_ = w.WriteMsg(m)
	}))
	c := &Client{Servers: []string{addr}}
	txts, _, err := c.LookupTXT(t.Context(), "old.test")
	if err != nil || !slices.Equal(txts, []string{"old"}) {
		t.Fatalf("got %q, %v", txts, err)
	}
	if withEDNS.Load() != 1 || without.Load() != 1 {
		t.Errorf("queries with EDNS %d, without %d; want 1 and 1", withEDNS.Load(), without.Load())
	}
}

// LookupIPv4 asks the A query alone: IPv6 addresses are never returned,
// and a name with AAAA records only is "not found" (the caller then asks
// for both).
func TestClientLookupIPv4(t *testing.T) {
	t.Parallel()
	c, _, _ := newTestClient(t)
	ctx := t.Context()
	tests := []struct {
		name string
		want []string
		err  error
	}{
		{"ip.test", []string{"127.0.0.1", "127.0.0.2"}, nil},
		{"v4only.test", []string{"127.0.0.3"}, nil},
		{"v6fail.test", []string{"127.0.0.4"}, nil},
		{"txt.test", nil, ErrNotFound},
		{"nx.test", nil, ErrNotFound},
		{"halffail.test", nil, ErrNotFound}, // A NODATA; its AAAA fails
		{"servfail.test", nil, ErrLookupFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addrs, _, err := c.LookupIPv4(ctx, tt.name)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("got %v, %v; want %v", addrs, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, a := range addrs {
				got = append(got, a.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
