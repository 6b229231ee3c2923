package policyd

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/testnet"
	"github.com/mailsts/mailsts/mtasts"
	"github.com/mailsts/mailsts/postfix"
)

const (
	f2Secure = "OK secure match=mail.example.com:.example.net:backupmx.example.com servername=hostname"
	f2TLSRPT = "OK secure match=mail.example.com:.example.net:backupmx.example.com servername=hostname policy_type=sts policy_domain=example.com mx_host_pattern=mail.example.com mx_host_pattern=*.example.net mx_host_pattern=backupmx.example.com { policy_string = version: STSv1 } { policy_string = mode: enforce } { policy_string = mx: mail.example.com } { policy_string = mx: *.example.net } { policy_string = mx: backupmx.example.com } { policy_string = max_age: 604800 }"
)

// STS-SEL-3, STS-SEL-4, GO-12, PFX-POL-2: keys without a policy domain are
// NOTFOUND without any DNS traffic.
func TestAnswerKeysWithoutPolicyDomain(t *testing.T) {
	t.Parallel()
	fake := &dnsresolve.Fake{}
	c := &mtasts.Cache{Client: &mtasts.Client{DNS: fake}}
	r := &Responder{Cache: c, DNS: fake}
	for _, key := range []string{".example.com", ".com", "[192.0.2.1]", "[IPv6:2001:db8::1]", "192.0.2.1", "2001:db8::1", "", "exa mple.com", "inet:example.com", "[192.0.2.1]:25"} {
		rep, d := r.Answer(context.Background(), "postfix", key)
		if rep.Status != postfix.StatusNotFound || d.Answer != AnswerNotFound || d.Source != "key" {
			t.Errorf("%q: %v %q (%+v), want NOTFOUND from the key", key, rep.Status, rep.Data, d)
		}
	}
	if q := fake.Queries(); len(q) != 0 {
		t.Errorf("DNS queries for keys without a policy domain: %v", q)
	}
}

// PFX-STS-1/2/5, F-13, OPEN-5, GO-12: the F-2 policy answered byte for byte
// over a real socketmap connection, plain and with the TLSRPT attributes.
func TestSocketmapTranscriptF13(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, f2Domain(), stsDomain("relay.example.net", "r1", "enforce", "*.example.net"))
	srv := &postfix.SocketmapServer{Handler: e.r}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(conn)
	for _, step := range []struct{ send, want string }{
		{"19:postfix example.com,", "86:" + f2Secure + ","},
		{"20:postfix .example.com,", "9:NOTFOUND ,"},
		// OPEN-5: the relay host's own policy.
		{"31:postfix [relay.example.net]:587,", "48:OK secure match=.example.net servername=hostname,"},
		{"27:QUERYwithTLSRPT example.com,", "457:" + f2TLSRPT + ","},
		// GO-12: case and trailing dot folded.
		{"23:postfix EXAMPLE.com.:25,", "86:" + f2Secure + ","},
	} {
		if _, err := io.WriteString(conn, step.send); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(step.want))
		if _, err := io.ReadFull(br, got); err != nil {
			t.Fatalf("after %q: %v (got %q)", step.send, err, got)
		}
		if string(got) != step.want {
			t.Errorf("C: %s\n got S: %s\nwant S: %s", step.send, got, step.want)
		}
	}
	if len(f2Secure) != 86 || len(f2TLSRPT) != 457 {
		t.Fatalf("fixture lengths changed: %d %d", len(f2Secure), len(f2TLSRPT))
	}
}

// F-14: the tcp_table transcript, with example.org failing DNS (TEMP → 400).
func TestTCPTableTranscriptF14(t *testing.T) {
	t.Parallel()
	org := stsDomain("example.org", "o1", "enforce", "mx.example.org")
	org.STSFault = testnet.FaultServFail
	e := newEnv(t, nil, f2Domain(), org)
	srv := &postfix.TCPTableServer{Handler: e.r, Name: "postfix"}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(conn)
	for _, step := range []struct{ send, wantPrefix string }{
		{"get example.com\n", "200 secure match=mail.example.com:.example.net:backupmx.example.com servername=hostname\n"},
		{"get .example.com\n", "500 not found\n"},
		{"get example.org\n", "400 "},
	} {
		io.WriteString(conn, step.send)
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(line, step.wantPrefix) {
			t.Errorf("C: %q\n got S: %q\nwant S: %q…", step.send, line, step.wantPrefix)
		}
	}
}

// STS-APPLY-2/3/7, PFX-STS-1: testing and none are NOTFOUND; strict_testing
// enforces testing.
func TestAnswerModes(t *testing.T) {
	t.Parallel()
	rules := &Rules{Zones: map[string]Zone{"strict": {StrictTesting: true}}}
	e := newEnv(t, rules,
		stsDomain("testing.example", "t1", "testing", "mx1.testing.example"),
		stsDomain("none.example", "n1", "none"),
		testnet.Domain{Name: "nosts.example", MX: []testnet.MXHost{{Name: "mx.nosts.example"}}},
	)
	for _, c := range []struct{ zone, key, want, reason string }{
		{"postfix", "testing.example", "NOTFOUND ", "testing"},
		{"strict", "testing.example", "OK secure match=mx1.testing.example servername=hostname", "strict_testing"},
		{"postfix", "none.example", "NOTFOUND ", "mode none"},
		{"strict", "none.example", "NOTFOUND ", "mode none"},
		{"postfix", "nosts.example", "NOTFOUND ", "no MTA-STS policy"},
	} {
		got, d := e.answer(t, c.zone, c.key)
		if got != c.want || !strings.Contains(d.Reason, c.reason) {
			t.Errorf("%s %s = %q (%s), want %q (%s)", c.zone, c.key, got, d.Reason, c.want, c.reason)
		}
	}
}

// OPEN-1: a DNS failure with nothing cached is TEMP within temp_window,
// then NOTFOUND; a success ends the window.
func TestAnswerTempWindow(t *testing.T) {
	t.Parallel()
	d := stsDomain("flaky.example", "f1", "enforce", "mx.flaky.example")
	d.STSFault = testnet.FaultServFail
	rules := &Rules{Default: Zone{TempWindow: 10 * time.Minute}, Zones: map[string]Zone{"now": {TempWindow: -1}}}
	e := newEnv(t, rules, d)
	e.cache.RetryInterval = time.Minute
	e.cache.NegativeTTL = time.Minute
	if got, dec := e.answer(t, "postfix", "flaky.example"); got != "TEMP MTA-STS policy discovery failed temporarily" || dec.Err != "dns-error" {
		t.Fatalf("first failure: %q %+v", got, dec)
	}
	if got, _ := e.answer(t, "now", "flaky.example"); got != "NOTFOUND " {
		t.Errorf("zone with a negative window: %q, want NOTFOUND at once", got)
	}
	e.clock.Advance(9 * time.Minute)
	if got, _ := e.answer(t, "postfix", "flaky.example"); !strings.HasPrefix(got, "TEMP") {
		t.Errorf("within the window: %q, want TEMP", got)
	}
	e.clock.Advance(2 * time.Minute)
	if got, dec := e.answer(t, "postfix", "flaky.example"); got != "NOTFOUND " || !strings.Contains(dec.Reason, "OPEN-1") {
		t.Errorf("after the window: %q (%s), want NOTFOUND", got, dec.Reason)
	}
	// The domain recovers: enforce, and a later failure opens a new window.
	d.STSFault = ""
	if err := e.n.Set(d); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(2 * time.Minute)
	if got, _ := e.answer(t, "postfix", "flaky.example"); !strings.HasPrefix(got, "OK secure") {
		t.Fatalf("after recovery: %q", got)
	}
}

// STS-FETCH-9: invalid policies and certificate failures with nothing
// cached are NOTFOUND, not TEMP; an unreachable policy host is TEMP
// (transient).
func TestAnswerFetchFailures(t *testing.T) {
	t.Parallel()
	bad := stsDomain("badcert.example", "b1", "enforce", "mx.badcert.example")
	bad.Policy.Cert = testnet.CertWrongName
	inv := stsDomain("invalid.example", "i1", "enforce", "mx.invalid.example")
	inv.Policy.Body = "version: STSv1\nmode: sometimes\n"
	nf := stsDomain("404.example", "x1", "enforce", "mx.404.example")
	nf.Policy.Status = 404
	down := stsDomain("down.example", "d1", "enforce", "mx.down.example")
	down.Policy.Fault = testnet.FaultServFail
	e := newEnv(t, nil, bad, inv, nf, down)
	for key, want := range map[string]string{
		"badcert.example": "NOTFOUND ",
		"invalid.example": "NOTFOUND ",
		"404.example":     "NOTFOUND ",
		"down.example":    "TEMP MTA-STS policy discovery failed temporarily",
	} {
		if got, d := e.answer(t, "postfix", key); got != want {
			t.Errorf("%s: %q (%s), want %q", key, got, d.Reason, want)
		}
	}
}

// A DNS failure while a policy is cached still answers the cached policy
// (F-13 note, STS-CACHE-5).
func TestAnswerStaleOnDNSFailure(t *testing.T) {
	t.Parallel()
	d := f2Domain()
	e := newEnv(t, nil, d)
	if got, _ := e.answer(t, "postfix", "example.com"); got != f2Secure {
		t.Fatalf("first: %q", got)
	}
	d.STSFault = testnet.FaultServFail
	d.Policy.Fault = testnet.FaultServFail
	e.n.Set(d)
	e.clock.Advance(20 * time.Minute) // past the TXT check interval
	got, dec := e.answer(t, "postfix", "example.com")
	if got != f2Secure || dec.Source != "stale" {
		t.Errorf("DNS failure with a cached policy: %q (%+v), want the cached answer", got, dec)
	}
}

// daneFake returns a resolver where example.com's MX RRset is signed (or
// not) and the MX hosts, whose address records are signed too, have the
// given TLSA situation.
func daneFake(tlsa map[string][]dnsresolve.TLSA, secure bool) *dnsresolve.Fake {
	return daneFakeFor("example.com", tlsa, secure, secure)
}

// daneFakeFor is daneFake for domain (MX hosts mx1.<domain> and
// mx2.<domain>, keys of tlsa) with the AD bit of the address records set
// apart: addrSecure.
func daneFakeFor(domain string, tlsa map[string][]dnsresolve.TLSA, secure, addrSecure bool) *dnsresolve.Fake {
	f := &dnsresolve.Fake{}
	mx1, mx2 := "mx1."+domain, "mx2."+domain
	f.SetMX(domain, dnsresolve.MX{Pref: 10, Host: mx1}, dnsresolve.MX{Pref: 20, Host: mx2})
	f.SetAuthenticated(domain, secure)
	for i, h := range []string{mx1, mx2} {
		f.SetIP(h, netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}))
		f.SetAuthenticated(h, addrSecure)
		name := "_25._tcp." + h
		f.SetAuthenticated(name, secure)
		if rs, ok := tlsa[h]; ok {
			f.SetTLSA(name, rs...)
		}
	}
	return f
}

var (
	usableTLSA   = dnsresolve.TLSA{Usage: 3, Selector: 1, MatchingType: 1, Data: make([]byte, 32)}
	unusableTLSA = dnsresolve.TLSA{Usage: 1, Selector: 1, MatchingType: 1, Data: make([]byte, 32)}
)

// STS-DANE-1..4, DANE-1..6, OPEN-6: DANE first, authoritative over MTA-STS
// where it covers every MX host; never weaker than an enforced MTA-STS
// policy where it covers some; a failed DNSSEC lookup is TEMP, never a
// downgrade. example.com has the enforce policy F-2, testing.example a
// testing policy, nosts.example none.
func TestAnswerDANE(t *testing.T) {
	t.Parallel()
	n := startNet(t, f2Domain(), stsDomain("testing.example", "t1", "testing", "mx1.testing.example", "mx2.testing.example"))
	servfail := &dnsresolve.Error{Name: "x", Qtype: "TLSA", Rcode: 2, Err: dnsresolve.ErrLookupFailed}
	both := func(d string) map[string][]dnsresolve.TLSA {
		return map[string][]dnsresolve.TLSA{"mx1." + d: {usableTLSA}, "mx2." + d: {usableTLSA}}
	}
	one := func(d string) map[string][]dnsresolve.TLSA {
		return map[string][]dnsresolve.TLSA{"mx1." + d: {usableTLSA}}
	}
	for _, c := range []struct {
		name   string
		domain string
		fake   func() *dnsresolve.Fake
		zone   Zone
		want   string
		dane   string
		noSTS  bool
	}{
		{"all usable → dane-only (STS-DANE-4, OPEN-6)", "example.com", func() *dnsresolve.Fake {
			return daneFake(both("example.com"), true)
		}, Zone{}, "OK dane-only", DANEAll, true},
		// Issue #10 item 2: Postfix applies one level to every MX host;
		// "dane" would leave mx2 to unauthenticated TLS although the
		// enforce policy requires it to be authenticated.
		{"some usable, enforce policy → secure (STS-DANE-1, DANE-2)", "example.com", func() *dnsresolve.Fake {
			return daneFake(one("example.com"), true)
		}, Zone{}, f2Secure, DANESome, false},
		{"unusable records only, enforce policy → secure (DANE-3)", "example.com", func() *dnsresolve.Fake {
			return daneFake(map[string][]dnsresolve.TLSA{"mx1.example.com": {unusableTLSA}, "mx2.example.com": {unusableTLSA}}, true)
		}, Zone{}, f2Secure, DANESome, false},
		{"some usable, testing policy → dane (DANE-2, DANE-4)", "testing.example", func() *dnsresolve.Fake {
			return daneFakeFor("testing.example", one("testing.example"), true, true)
		}, Zone{}, "OK dane", DANESome, false},
		{"some usable, testing policy enforced by strict_testing → secure", "testing.example", func() *dnsresolve.Fake {
			return daneFakeFor("testing.example", one("testing.example"), true, true)
		}, Zone{StrictTesting: true}, "OK secure match=mx1.testing.example:mx2.testing.example servername=hostname", DANESome, false},
		{"some usable, no MTA-STS policy → dane (DANE-2, DANE-4)", "nosts.example", func() *dnsresolve.Fake {
			return daneFakeFor("nosts.example", one("nosts.example"), true, true)
		}, Zone{}, "OK dane", DANESome, false},
		{"unusable records only, no policy → dane (DANE-3)", "nosts.example", func() *dnsresolve.Fake {
			return daneFakeFor("nosts.example", map[string][]dnsresolve.TLSA{"mx1.nosts.example": {unusableTLSA}}, true, true)
		}, Zone{}, "OK dane", DANESome, false},
		// Issue #10 item 3: usable TLSA records under a secure MX RRset,
		// but the MX hosts' address records are not DNSSEC-validated:
		// RFC 7672 §2.2 says DANE does not apply (Postfix would not even
		// look the TLSA records up), so no dane-only.
		{"insecure address records, enforce policy → MTA-STS (DANE-1)", "example.com", func() *dnsresolve.Fake {
			return daneFakeFor("example.com", both("example.com"), true, false)
		}, Zone{}, f2Secure, DANENone, false},
		{"insecure address records, no policy → NOTFOUND (DANE-1)", "nosts.example", func() *dnsresolve.Fake {
			return daneFakeFor("nosts.example", both("nosts.example"), true, false)
		}, Zone{}, "NOTFOUND ", DANENone, false},
		{"insecure MX → MTA-STS (DANE-1)", "example.com", func() *dnsresolve.Fake {
			return daneFake(both("example.com"), false)
		}, Zone{}, f2Secure, DANEInsecure, false},
		{"secure denial → MTA-STS (DANE-4)", "example.com", func() *dnsresolve.Fake {
			return daneFake(nil, true)
		}, Zone{}, f2Secure, DANENone, false},
		{"TLSA SERVFAIL under a signed MX → TEMP (STS-DANE-3)", "example.com", func() *dnsresolve.Fake {
			f := daneFake(one("example.com"), true)
			f.SetError("TLSA _25._tcp.mx2.example.com", servfail)
			return f
		}, Zone{}, "TEMP DANE lookup failed", DANETemp, true},
		{"address SERVFAIL under a signed MX → TEMP (DANE-5)", "example.com", func() *dnsresolve.Fake {
			f := daneFake(both("example.com"), true)
			f.SetError("IP mx2.example.com", servfail)
			return f
		}, Zone{}, "TEMP DANE lookup failed", DANETemp, true},
		{"MX SERVFAIL with dane on → TEMP", "example.com", func() *dnsresolve.Fake {
			f := daneFake(nil, true)
			f.SetError("MX example.com", servfail)
			return f
		}, Zone{DANE: DANEOn}, "TEMP DANE lookup failed", DANETemp, true},
		{"MX SERVFAIL, auto, resolver never validated → MTA-STS", "example.com", func() *dnsresolve.Fake {
			f := daneFake(nil, false)
			f.SetError("MX example.com", servfail)
			return f
		}, Zone{}, f2Secure, DANEInsecure, false},
		{"dane off → MTA-STS", "example.com", func() *dnsresolve.Fake {
			return daneFake(both("example.com"), true)
		}, Zone{DANE: DANEOff}, f2Secure, DANESkipped, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newEnvOn(t, n, mtasts.NewMemoryStore(), &Rules{Default: c.zone})
			fake := c.fake()
			e.r.DNS = fake
			got, d := e.answer(t, "postfix", c.domain)
			if got != c.want || d.DANE != c.dane {
				t.Errorf("got %q dane=%q (%s), want %q dane=%q", got, d.DANE, d.Reason, c.want, c.dane)
			}
			if c.noSTS && d.Mode != "" {
				t.Errorf("DANE answer consulted MTA-STS: %+v", d)
			}
			// The decision is cached: the next answer costs no DNS.
			if c.dane != DANETemp && c.dane != DANESkipped {
				fake.ResetQueries()
				again, _ := e.answer(t, "postfix", c.domain)
				if again != got {
					t.Errorf("second answer %q, want %q", again, got)
				}
				if q := fake.Queries(); len(q) != 0 {
					t.Errorf("second answer made DNS queries: %v", q)
				}
			}
		})
	}
}

// OPEN-1, STS-DANE-3: with DANE on some MX hosts and the policy discovery
// failing with nothing cached, the domain may have an enforce policy:
// TEMP for the window, as without DANE, then opportunistic DANE ("OK
// dane"), never an answer weaker than a policy not yet ruled out.
func TestAnswerPartialDANEDiscoveryFailing(t *testing.T) {
	t.Parallel()
	failing := stsDomain("failing.example", "f1", "enforce", "mx1.failing.example", "mx2.failing.example")
	failing.STSFault = testnet.FaultServFail
	e := newEnv(t, nil, failing)
	e.r.DNS = daneFakeFor("failing.example", map[string][]dnsresolve.TLSA{"mx1.failing.example": {usableTLSA}}, true, true)
	got, d := e.answer(t, "postfix", "failing.example")
	if got != "TEMP MTA-STS policy discovery failed temporarily" || d.DANE != DANESome {
		t.Errorf("within the window: %q dane=%q (%s), want TEMP", got, d.DANE, d.Reason)
	}
	e.clock.Advance(DefaultTempWindow + time.Minute)
	got, d = e.answer(t, "postfix", "failing.example")
	if got != "OK dane" || d.DANE != DANESome || d.Answer != AnswerDANE {
		t.Errorf("after the window: %q dane=%q (%s), want OK dane", got, d.DANE, d.Reason)
	}
}

// Overrides decide before DANE and MTA-STS; an expired one is ignored.
func TestAnswerOverrides(t *testing.T) {
	t.Parallel()
	rules := &Rules{Overrides: []Override{
		{Domain: "Example.COM.", Action: ActionNone, Reason: "broken certificate, ticket 42"},
		{Domain: "forced.example", Action: ActionEnforce, MX: []string{"*.forced.example", "mx.Other.example"}, Reason: "pinned"},
		{Domain: "dane.example", Action: ActionDANEOnly},
		{Domain: "d.example", Action: ActionDANE},
		{Domain: "nf.example", Action: ActionNotFound},
		{Domain: "old.example", Action: ActionNone, Expires: time.Now().Add(time.Hour)},
	}}
	e := newEnv(t, rules, f2Domain(), stsDomain("old.example", "o1", "enforce", "mx.old.example"))
	for key, want := range map[string]string{
		"example.com":       "OK may",
		"forced.example":    "OK secure match=.forced.example:mx.other.example servername=hostname",
		"[dane.example]:25": "OK dane-only",
		"d.example":         "OK dane",
		"nf.example":        "NOTFOUND ",
		"old.example":       "OK may",
	} {
		got, d := e.answer(t, "postfix", key)
		if got != want || d.Source != "override" {
			t.Errorf("%s: %q (%+v), want %q from the override", key, got, d, want)
		}
	}
	if _, d := e.answer(t, "postfix", "example.com"); d.Override != "broken certificate, ticket 42" {
		t.Errorf("override reason not in the decision: %+v", d)
	}
	e.clock.Advance(2 * time.Hour)
	if got, d := e.answer(t, "postfix", "old.example"); got != "OK secure match=mx.old.example servername=hostname" || d.Source == "override" {
		t.Errorf("expired override still applied: %q %+v", got, d)
	}
	for _, bad := range []Override{
		{Domain: "x.example", Action: "maybe"},
		{Domain: "x.example", Action: ActionEnforce},
		{Domain: "x.example", Action: ActionNone, MX: []string{"mx.example"}},
		{Domain: "x..example", Action: ActionNone},
		{Domain: "x.example", Action: ActionEnforce, MX: []string{"*.*.example"}},
	} {
		if err := e.r.SetRules(&Rules{Overrides: []Override{bad}}); err == nil {
			t.Errorf("SetRules accepted %+v", bad)
		}
	}
}

// Issue #3 item 5: the MX set moved to a host outside the cached policy's
// patterns while the id stayed the same; policyd re-fetches before
// answering and answers the new policy. The re-fetch is rate-limited.
func TestAnswerMXChangeRecovery(t *testing.T) {
	t.Parallel()
	d := stsDomain("moved.example", "same1", "enforce", "mx1.moved.example")
	e := newEnv(t, nil, d)
	if got, dec := e.answer(t, "postfix", "moved.example"); got != "OK secure match=mx1.moved.example servername=hostname" || dec.MXCheck != "match" {
		t.Fatalf("before the move: %q %+v", got, dec)
	}
	if n := e.n.Requests("moved.example"); n != 1 {
		t.Fatalf("%d policy requests, want 1", n)
	}
	// The domain moves its MX to a new provider and updates the policy
	// body, but forgets to change the id.
	moved := stsDomain("moved.example", "same1", "enforce", "mx.newprovider.example")
	e.n.Set(moved)
	// Cached answers stay DNS-free until the MX set is looked up again.
	if got, _ := e.answer(t, "postfix", "moved.example"); got != "OK secure match=mx1.moved.example servername=hostname" {
		t.Fatalf("within the MX check interval: %q", got)
	}
	e.clock.Advance(DefaultMXCheckInterval + time.Second)
	got, dec := e.answer(t, "postfix", "moved.example")
	if got != "OK secure match=mx.newprovider.example servername=hostname" || dec.MXCheck != "recovered" {
		t.Fatalf("after the move: %q %+v, want the re-fetched policy", got, dec)
	}
	if n := e.n.Requests("moved.example"); n != 2 {
		t.Errorf("%d policy requests, want 2", n)
	}

	// Rate limit: the MX set moves again and the policy does not follow.
	// One forced re-fetch per MX snapshot; answers in between cost none.
	moved2 := moved
	moved2.MX = []testnet.MXHost{{Name: "rogue.example", Pref: 10}}
	e.n.Set(moved2)
	e.clock.Advance(DefaultMXCheckInterval + time.Second)
	for range 20 {
		got, dec = e.answer(t, "postfix", "moved.example")
	}
	if got != "OK secure match=mx.newprovider.example servername=hostname" || dec.MXCheck != "mismatch" {
		t.Errorf("unrecoverable mismatch: %q %+v, want the current policy", got, dec)
	}
	if n := e.n.Requests("moved.example"); n != 3 {
		t.Errorf("%d policy requests after 20 answers with a persistent mismatch, want 3", n)
	}
}

// Examples and the no-network hot path: a cached answer makes no DNS query
// and no store write.
func TestAnswerCacheHitNoNetwork(t *testing.T) {
	t.Parallel()
	cs := &countingStore{Store: mtasts.NewMemoryStore()}
	e := newEnvOn(t, startNet(t, f2Domain()), cs, nil)
	if got, _ := e.answer(t, "postfix", "example.com"); got != f2Secure {
		t.Fatal(got)
	}
	puts := cs.puts.Load()
	fake := &dnsresolve.Fake{}
	e.r.DNS = fake
	before := e.n.Requests("example.com")
	for range 100 {
		if got, _ := e.answer(t, "postfix", "example.com"); got != f2Secure {
			t.Fatal(got)
		}
	}
	if q := fake.Queries(); len(q) != 0 {
		t.Errorf("DNS queries on the hot path: %v", q)
	}
	if e.n.Requests("example.com") != before {
		t.Error("policy fetched on the hot path")
	}
	if p := cs.puts.Load(); p != puts {
		t.Errorf("%d store writes on the hot path", p-puts)
	}
}

// countingStore counts reads and writes of the policy store.
type countingStore struct {
	mtasts.Store
	puts, gets atomic.Int64
}

func (c *countingStore) Put(ctx context.Context, e *mtasts.Entry) error {
	c.puts.Add(1)
	return c.Store.Put(ctx, e)
}

// A failing store leaves no answer: TEMP.
func TestAnswerStoreFailure(t *testing.T) {
	t.Parallel()
	c := &mtasts.Cache{Store: failingStore{}, Client: &mtasts.Client{DNS: &dnsresolve.Fake{}}}
	r := &Responder{Cache: c}
	rep, d := r.Answer(context.Background(), "postfix", "example.com")
	if rep.Status != postfix.StatusTemp || d.Err != "cache-error" {
		t.Errorf("%v %+v, want TEMP cache-error", rep, d)
	}
}

type failingStore struct{}

var errDisk = errors.New("disk on fire")

func (failingStore) Get(context.Context, string) (*mtasts.Entry, error) { return nil, errDisk }
func (failingStore) Put(context.Context, *mtasts.Entry) error           { return errDisk }
func (failingStore) Delete(context.Context, string) error               { return errDisk }
func (failingStore) Range(context.Context, func(*mtasts.Entry) bool) error {
	return errDisk
}

// FuzzAnswerKey: no key makes the Responder panic or answer something
// Postfix cannot parse.
func FuzzAnswerKey(f *testing.F) {
	for _, k := range []string{"example.com", ".example.com", "[relay.example.net]:587", "[192.0.2.1]", "bücher.example", "EXAMPLE.COM.", "", " ", "a..b", "[", "]:", "x:y:z"} {
		f.Add("postfix", k)
	}
	fake := &dnsresolve.Fake{}
	c := &mtasts.Cache{Client: &mtasts.Client{DNS: fake}}
	r := &Responder{Cache: c, DNS: fake}
	f.Fuzz(func(t *testing.T, zone, key string) {
		rep, d := r.Answer(context.Background(), zone, key)
		if !rep.Status.Valid() || (rep.Status == postfix.StatusOK && rep.Data == "") {
			t.Fatalf("invalid reply %+v for %q", rep, key)
		}
		if d.Answer == "" {
			t.Fatalf("no answer kind for %q", key)
		}
	})
}
