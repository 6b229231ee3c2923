package policyd

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/testnet"
	"github.com/mailsts/mailsts/mtasts"
)

// validationLog is an Observer that records ResolverValidates.
type validationLog struct {
	nopObserver
	mu     sync.Mutex
	states []string
	ch     chan string
}

func (o *validationLog) ResolverValidates(state string) {
	o.mu.Lock()
	o.states = append(o.states, state)
	o.mu.Unlock()
	if o.ch != nil {
		o.ch <- state
	}
}

func (o *validationLog) got() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.states)
}

func hasQuery(f *dnsresolve.Fake, q string) bool { return slices.Contains(f.Queries(), q) }

// DANE-1, DANE-12: DANE needs DNSSEC-validated MX, address and TLSA
// answers, which a resolver that does not validate never gives. Once its
// answer for the signed root proves that, dane: auto answers send no MX
// query for DANE; an answer with the AD bit turns the lookups back on at
// once; an unknown resolver (no usable answer) and dane: on keep them.
// example.com has every MX host with usable TLSA records under a signed
// MX RRset in the fake, so DANE decides "dane-only" whenever it is looked
// at.
func TestAnswerDANEResolverValidation(t *testing.T) {
	t.Parallel()
	n := startNet(t, f2Domain())
	both := map[string][]dnsresolve.TLSA{"mx1.example.com": {usableTLSA}, "mx2.example.com": {usableTLSA}}
	servfail := &dnsresolve.Error{Name: ".", Qtype: "SOA", Rcode: 2, Err: dnsresolve.ErrLookupFailed}
	for _, c := range []struct {
		name  string
		root  func(*dnsresolve.Fake) // the root's answer
		zone  Zone
		state string
		mx    bool // MX looked up, DANE decided
	}{
		{"validating: DANE looked up", func(f *dnsresolve.Fake) { f.SetAuthenticated(".", true) }, Zone{}, ValidatesYes, true},
		{"not validating: no MX query", func(f *dnsresolve.Fake) {}, Zone{}, ValidatesNo, false},
		{"unknown: MX looked up", func(f *dnsresolve.Fake) { f.SetError("SOA .", servfail) }, Zone{}, ValidatesUnknown, true},
		{"dane on ignores the probe", func(f *dnsresolve.Fake) {}, Zone{DANE: DANEOn}, ValidatesNo, true},
		{"dane off never looks", func(f *dnsresolve.Fake) { f.SetAuthenticated(".", true) }, Zone{DANE: DANEOff}, ValidatesYes, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newEnvOn(t, n, mtasts.NewMemoryStore(), &Rules{Default: c.zone})
			fake := daneFake(both, true)
			c.root(fake)
			obs := &validationLog{}
			e.r.DNS, e.r.Observer = fake, obs
			e.r.DeferFetchedMXCheck = true // as the daemon: no MX query for the MX check of a policy just fetched
			if got := e.r.ResolverValidates(); got != ValidatesUnknown {
				t.Fatalf("before the probe: %q, want unknown", got)
			}
			if got := e.r.ProbeValidation(context.Background()); got != c.state || e.r.ResolverValidates() != c.state {
				t.Fatalf("probe: %q, want %q", got, c.state)
			}
			e.r.ProbeValidation(context.Background()) // unchanged: not reported again
			if got := obs.got(); !slices.Equal(got, []string{c.state}) {
				t.Errorf("observer heard %q, want [%s] once", got, c.state)
			}
			got, d := e.answer(t, "postfix", "example.com")
			if c.mx {
				if got != "OK dane-only" || d.DANE != DANEAll || !hasQuery(fake, "MX example.com") {
					t.Errorf("%q dane=%q, queries %q; want OK dane-only after an MX query", got, d.DANE, fake.Queries())
				}
				return
			}
			want := DANEInsecure
			if c.zone.DANE == DANEOff {
				want = DANESkipped
			}
			if got != f2Secure || d.DANE != want || hasQuery(fake, "MX example.com") {
				t.Errorf("%q dane=%q, queries %q; want the MTA-STS answer, dane=%q, no MX query", got, d.DANE, fake.Queries(), want)
			}
		})
	}

	// An answer with the AD bit, here a TXT answer through the daemon's
	// wrapper, proves the resolver validates: the next answer looks for
	// DANE again, without waiting for the next probe.
	t.Run("an AD answer turns DANE back on", func(t *testing.T) {
		t.Parallel()
		e := newEnvOn(t, n, mtasts.NewMemoryStore(), nil)
		fake := daneFake(both, true)
		obs := &validationLog{}
		e.r.Observer, e.r.DeferFetchedMXCheck = obs, true
		e.r.DNS = e.r.WatchAD(fake)
		if _, ok := e.r.DNS.(dnsresolve.IPv4Resolver); !ok {
			t.Error("the wrapper hides the Fake's LookupIPv4")
		}
		if got := e.r.ProbeValidation(context.Background()); got != ValidatesNo {
			t.Fatalf("probe through the wrapper: %q, want no", got)
		}
		if _, d := e.answer(t, "postfix", "example.com"); d.DANE != DANEInsecure || hasQuery(fake, "MX example.com") {
			t.Fatalf("not validating: dane=%q, queries %q", d.DANE, fake.Queries())
		}
		fake.SetTXT("_mta-sts.signed.example", "v=STSv1; id=1")
		fake.SetAuthenticated("_mta-sts.signed.example", true)
		if _, ans, err := e.r.DNS.LookupTXT(context.Background(), "_mta-sts.signed.example"); err != nil || !ans.Authenticated {
			t.Fatalf("TXT: %v %v", ans, err)
		}
		if got := e.r.ResolverValidates(); got != ValidatesYes {
			t.Fatalf("after an AD answer: %q, want yes", got)
		}
		e.clock.Advance(2 * time.Second) // past the answer memo
		if got, d := e.answer(t, "postfix", "example.com"); got != "OK dane-only" || !hasQuery(fake, "MX example.com") {
			t.Errorf("after an AD answer: %q dane=%q, queries %q; want dane-only after an MX query", got, d.DANE, fake.Queries())
		}
		if got := obs.got(); !slices.Equal(got, []string{ValidatesNo, ValidatesYes}) {
			t.Errorf("observer heard %q, want [no yes]", got)
		}
		// A probe that proves "no" again (the resolver was replaced)
		// turns them off again.
		fake.ResetQueries()
		if got := e.r.ProbeValidation(context.Background()); got != ValidatesNo {
			t.Fatalf("second probe: %q", got)
		}
		e.clock.Advance(DefaultDANETTL + time.Second)
		if _, d := e.answer(t, "postfix", "example.com"); d.DANE != DANEInsecure || hasQuery(fake, "MX example.com") {
			t.Errorf("not validating again: dane=%q, queries %q", d.DANE, fake.Queries())
		}
	})
}

// STS-APPLY-4: with DeferFetchedMXCheck (the daemon's setting), a policy
// fetched by the lookup itself is not checked against the live MX set in
// that lookup (it is the newest the domain has; a re-fetch could find
// nothing newer), so a cold answer with DANE skipped sends no MX query;
// the check runs once MXCheckInterval has passed. Without it (mailsts
// resolve --explain), or with an MX set already known (DANE looked it
// up), the first answer is checked.
func TestMXCheckDeferredForFetchedPolicy(t *testing.T) {
	t.Parallel()
	moved := f2Domain()
	moved.Name = "moved.example"
	moved.MX = []testnet.MXHost{{Name: "mx.elsewhere.example", Pref: 10}}
	n := startNet(t, f2Domain(), moved)
	answer := func(t *testing.T, e *env, domain string) Decision {
		t.Helper()
		got, d := e.answer(t, "postfix", domain)
		if d.Answer != AnswerSecure {
			t.Fatalf("%s: %q (%s), want an enforce answer", domain, got, d.Reason)
		}
		return d
	}
	t.Run("deferred", func(t *testing.T) {
		t.Parallel()
		e := newEnvOn(t, n, mtasts.NewMemoryStore(), &Rules{Default: Zone{DANE: DANEOff}})
		e.r.DeferFetchedMXCheck = true
		for _, domain := range []string{"example.com", "moved.example"} {
			if d := answer(t, e, domain); d.MXCheck != "" || n.DNSQueries("MX", domain) != 0 {
				t.Errorf("%s fetched: mx_check %q, %d MX queries; want no check, no query", domain, d.MXCheck, n.DNSQueries("MX", domain))
			}
			e.clock.Advance(2 * time.Second) // past the answer memo
			if d := answer(t, e, domain); d.MXCheck != "" || n.DNSQueries("MX", domain) != 0 {
				t.Errorf("%s cached, within mx_check_interval: mx_check %q, %d MX queries", domain, d.MXCheck, n.DNSQueries("MX", domain))
			}
		}
		e.clock.Advance(DefaultMXCheckInterval)
		if d := answer(t, e, "example.com"); d.MXCheck != "match" || n.DNSQueries("MX", "example.com") != 1 {
			t.Errorf("after mx_check_interval: mx_check %q, %d MX queries; want match after one", d.MXCheck, n.DNSQueries("MX", "example.com"))
		}
		if d := answer(t, e, "moved.example"); d.MXCheck == "" || d.MXCheck == "match" || len(d.Unmatched) != 1 {
			t.Errorf("moved.example after mx_check_interval: mx_check %q, unmatched %q; want the mismatch found", d.MXCheck, d.Unmatched)
		}
	})
	t.Run("not deferred", func(t *testing.T) {
		t.Parallel()
		n := startNet(t, f2Domain())
		e := newEnvOn(t, n, mtasts.NewMemoryStore(), &Rules{Default: Zone{DANE: DANEOff}})
		if d := answer(t, e, "example.com"); d.MXCheck != "match" || n.DNSQueries("MX", "example.com") != 1 {
			t.Errorf("mx_check %q, %d MX queries; want match after one", d.MXCheck, n.DNSQueries("MX", "example.com"))
		}
	})
	t.Run("MX set known from DANE", func(t *testing.T) {
		t.Parallel()
		n := startNet(t, f2Domain())
		e := newEnvOn(t, n, mtasts.NewMemoryStore(), nil)
		e.r.DeferFetchedMXCheck = true
		if d := answer(t, e, "example.com"); d.MXCheck != "match" || n.DNSQueries("MX", "example.com") != 1 {
			t.Errorf("mx_check %q, %d MX queries; want match after DANE's one", d.MXCheck, n.DNSQueries("MX", "example.com"))
		}
	})
}

// The daemon asks its resolver at start whether it validates (the
// testnet answers the root without the AD bit while no domain is Secure):
// a cold enforce answer then sends TXT and address queries but no MX query
// (DANE-1: DANE cannot apply; the MX check of the policy just fetched
// waits). A domain whose answers carry the AD bit turns DANE on at once:
// the next new domain's MX RRset is looked up. With a validating resolver
// the MX query is sent from the first lookup.
func TestDaemonResolverValidation(t *testing.T) {
	t.Parallel()
	start := func(t *testing.T, opts testnet.Options, domains ...testnet.Domain) (*testnet.Net, *running, *validationLog) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		n, err := testnet.Start(ctx, &testnet.Scenario{Domains: domains}, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(n.Close)
		obs := &validationLog{ch: make(chan string, 10)}
		d := &Daemon{Config: testConfig(t, n, "memory", t.TempDir()), Observer: obs, ProbeIPv6: func() bool { return false }}
		return n, startDaemon(t, d, nil), obs
	}
	wait := func(t *testing.T, obs *validationLog, want string) {
		t.Helper()
		for {
			select {
			case got := <-obs.ch:
				if got == want {
					return
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("resolver validation never became %q (heard %q)", want, obs.got())
			}
		}
	}
	plain := func(name string) testnet.Domain {
		return stsDomain(name, "p1", "enforce", "mx1."+name)
	}
	t.Run("not validating", func(t *testing.T) {
		t.Parallel()
		signed := plain("signed.example")
		signed.Secure = true
		n, r, obs := start(t, testnet.Options{}, plain("a.example"), plain("b.example"))
		wait(t, obs, ValidatesNo)
		if got := r.d.Responder().ResolverValidates(); got != ValidatesNo {
			t.Fatalf("ResolverValidates %q", got)
		}
		// `mailsts cache status` reads it from the status file.
		if st, err := ReadStatus(StatusPath(r.d.Config, nil)); err != nil || st.ResolverValidates != ValidatesNo {
			t.Errorf("status file: %+v, %v; want resolver_validates_dnssec no", st, err)
		}
		if got := lookup(t, r.addr, "postfix", "a.example"); got != "OK secure match=mx1.a.example servername=hostname" {
			t.Fatalf("a.example: %q", got)
		}
		if q := n.DNSQueries("MX", "a.example"); q != 0 || n.DNSQueries("TXT", "_mta-sts.a.example") != 1 {
			t.Errorf("a.example: %d MX queries, %d TXT; want none and one", q, n.DNSQueries("TXT", "_mta-sts.a.example"))
		}
		// A signed domain appears: its TXT answer carries the AD bit.
		if err := n.Set(signed); err != nil {
			t.Fatal(err)
		}
		lookup(t, r.addr, "postfix", "signed.example")
		wait(t, obs, ValidatesYes)
		if got := lookup(t, r.addr, "postfix", "b.example"); got != "OK secure match=mx1.b.example servername=hostname" {
			t.Fatalf("b.example: %q", got)
		}
		if q := n.DNSQueries("MX", "b.example"); q != 1 {
			t.Errorf("b.example after an AD answer: %d MX queries, want 1", q)
		}
	})
	t.Run("validating", func(t *testing.T) {
		t.Parallel()
		n, r, obs := start(t, testnet.Options{Validating: true}, plain("a.example"))
		wait(t, obs, ValidatesYes)
		lookup(t, r.addr, "postfix", "a.example")
		if q := n.DNSQueries("MX", "a.example"); q != 1 {
			t.Errorf("%d MX queries, want 1 (DANE, reused by the MX check)", q)
		}
	})
}
