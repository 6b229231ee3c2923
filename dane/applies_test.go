package dane

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"github.com/mailsts/mailsts/dnsresolve"
)

// A synthetic DNS situation for one destination, compact enough to be a
// fuzz input: spec[0] is the MX state, then one (address, TLSA) pair of
// states per MX host mx<i>.example.com (at most maxSpecHosts).
const (
	mxSecure = iota
	mxInsecure
	mxDeniedSecure // no MX: example.com is its own MX host
	mxDeniedInsecure
	mxFailed
	mxNull
	mxStates
)

const (
	addrSecure = iota
	addrInsecure
	addrNone
	addrFailed
	addrStates
)

const (
	tlsaUsable = iota
	tlsaUnusable
	tlsaUsableInsecure
	tlsaNone
	tlsaNoneInsecure
	tlsaFailed
	tlsaStates
)

const maxSpecHosts = 4

var errServFail = &dnsresolve.Error{Name: "x", Qtype: "X", Rcode: 2, Server: "fake", Err: dnsresolve.ErrLookupFailed}

// fakeFor builds the resolver of a spec; the destination is example.com.
func fakeFor(spec []byte) *dnsresolve.Fake {
	f := &dnsresolve.Fake{}
	if len(spec) == 0 {
		return f
	}
	const domain = "example.com"
	mx := int(spec[0]) % mxStates
	var hosts []string
	pairs := spec[1:]
	n := min(len(pairs)/2, maxSpecHosts)
	switch mx {
	case mxSecure, mxInsecure:
		var recs []dnsresolve.MX
		for i := range n {
			h := fmt.Sprintf("mx%d.example.com", i+1)
			hosts = append(hosts, h)
			recs = append(recs, dnsresolve.MX{Pref: uint16(10 * (i + 1)), Host: h})
		}
		if len(recs) > 0 {
			f.SetMX(domain, recs...)
		} else {
			f.SetTXT(domain, "v=spf1 -all") // the name exists: NODATA
		}
		f.SetAuthenticated(domain, mx == mxSecure)
	case mxDeniedSecure, mxDeniedInsecure:
		// The domain is its own MX host; its address records share the
		// denial's AD bit (one name in the fake).
		hosts = []string{domain}
		f.SetAuthenticated(domain, mx == mxDeniedSecure)
		n = min(n, 1)
	case mxFailed:
		f.SetError("MX "+domain, errServFail)
	case mxNull:
		f.SetMX(domain, dnsresolve.MX{Host: "."})
		f.SetAuthenticated(domain, true)
	}
	for i, h := range hosts[:min(n, len(hosts))] {
		addr, tlsa := int(pairs[2*i])%addrStates, int(pairs[2*i+1])%tlsaStates
		switch addr {
		case addrSecure, addrInsecure:
			f.SetIP(h, netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}))
			if h != domain {
				f.SetAuthenticated(h, addr == addrSecure)
			}
		case addrFailed:
			f.SetError("IP "+h, errServFail)
		}
		owner := "_25._tcp." + h
		switch tlsa {
		case tlsaUsable, tlsaUsableInsecure:
			f.SetTLSA(owner, dnsresolve.TLSA{Usage: UsageDANEEE, Selector: SelectorSPKI, MatchingType: MatchSHA256, Data: make([]byte, 32)})
		case tlsaUnusable:
			f.SetTLSA(owner, dnsresolve.TLSA{Usage: UsagePKIXEE, Selector: SelectorSPKI, MatchingType: MatchSHA256, Data: make([]byte, 32)})
		case tlsaFailed:
			f.SetError("TLSA "+owner, errServFail)
		}
		f.SetAuthenticated(owner, tlsa != tlsaUsableInsecure && tlsa != tlsaNoneInsecure)
	}
	return f
}

type appliesCase struct {
	name  string
	id    string // checklist IDs
	spec  []byte
	want  Summary
	hosts []HostStatus
}

func s(b ...byte) []byte { return b }

// RFC 7672 §2.2 as a table. Every case is also a seed of FuzzApplies.
var appliesCases = []appliesCase{
	{"every host usable", "DANE-1 DANE-2", s(mxSecure, addrSecure, tlsaUsable, addrSecure, tlsaUsable), All, []HostStatus{HostUsable, HostUsable}},
	{"one host usable, one without TLSA", "DANE-2 DANE-4", s(mxSecure, addrSecure, tlsaUsable, addrSecure, tlsaNone), Some, []HostStatus{HostUsable, HostNoTLSA}},
	{"unusable records only", "DANE-3 DANE-6", s(mxSecure, addrSecure, tlsaUnusable, addrSecure, tlsaUnusable), Some, []HostStatus{HostUnusable, HostUnusable}},
	{"usable and unusable", "DANE-3", s(mxSecure, addrSecure, tlsaUsable, addrSecure, tlsaUnusable), Some, []HostStatus{HostUsable, HostUnusable}},
	{"secure denial of TLSA everywhere", "DANE-4", s(mxSecure, addrSecure, tlsaNone, addrSecure, tlsaNone), None, []HostStatus{HostNoTLSA, HostNoTLSA}},
	{"insecure denial of TLSA", "DANE-4", s(mxSecure, addrSecure, tlsaNoneInsecure), None, []HostStatus{HostNoTLSA}},
	{"insecure MX RRset", "DANE-1", s(mxInsecure, addrSecure, tlsaUsable, addrSecure, tlsaUsable), None, []HostStatus{HostInsecure, HostInsecure}},
	{"insecure MX RRset, TLSA lookup failing", "DANE-1", s(mxInsecure, addrSecure, tlsaFailed), None, []HostStatus{HostInsecure}},
	// Issue #10 item 3: usable TLSA records under a secure MX RRset do
	// not count when the host's address records are insecure.
	{"insecure addresses, usable TLSA", "DANE-1", s(mxSecure, addrInsecure, tlsaUsable, addrInsecure, tlsaUsable), None, []HostStatus{HostInsecure, HostInsecure}},
	{"one host with insecure addresses", "DANE-1", s(mxSecure, addrSecure, tlsaUsable, addrInsecure, tlsaUsable), Some, []HostStatus{HostUsable, HostInsecure}},
	{"insecure addresses, TLSA lookup failing", "DANE-1", s(mxSecure, addrInsecure, tlsaFailed, addrSecure, tlsaUsable), Some, []HostStatus{HostInsecure, HostUsable}},
	{"TLSA not validated", "DANE-1", s(mxSecure, addrSecure, tlsaUsableInsecure, addrSecure, tlsaUsable), Some, []HostStatus{HostInsecure, HostUsable}},
	{"TLSA lookup failed", "DANE-5 STS-DANE-3", s(mxSecure, addrSecure, tlsaUsable, addrSecure, tlsaFailed), TemporaryFailure, []HostStatus{HostUsable, HostFailed}},
	{"address lookup failed", "DANE-5", s(mxSecure, addrFailed, tlsaUsable, addrSecure, tlsaUsable), TemporaryFailure, []HostStatus{HostFailed, HostUsable}},
	{"MX lookup failed", "DANE-5", s(mxFailed, addrSecure, tlsaUsable), TemporaryFailure, nil},
	{"a host without addresses does not count", "DANE-2", s(mxSecure, addrSecure, tlsaUsable, addrNone, tlsaNone), All, []HostStatus{HostUsable, HostNoAddress}},
	{"no host with addresses", "", s(mxSecure, addrNone, tlsaUsable), None, []HostStatus{HostNoAddress}},
	{"NODATA for MX: the domain is its own MX host, without addresses", "", s(mxSecure), None, []HostStatus{HostNoAddress}},
	{"null MX", "RFC 7505", s(mxNull), None, nil},
	{"implicit MX, secure", "DANE-1", s(mxDeniedSecure, addrSecure, tlsaUsable), All, []HostStatus{HostUsable}},
	{"implicit MX, insecure denial", "DANE-1", s(mxDeniedInsecure, addrSecure, tlsaUsable), None, []HostStatus{HostInsecure}},
}

func TestApplies(t *testing.T) {
	t.Parallel()
	for _, c := range appliesCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			res := Applies(context.Background(), fakeFor(c.spec), "example.com")
			if res.Summary != c.want {
				t.Errorf("%s: summary %v, want %v (%+v)", c.id, res.Summary, c.want, res)
			}
			if c.hosts != nil && len(res.Hosts) != len(c.hosts) {
				t.Fatalf("%s: %d hosts, want %d (%+v)", c.id, len(res.Hosts), len(c.hosts), res.Hosts)
			}
			for i, want := range c.hosts {
				if got := res.Hosts[i].Status; got != want {
					t.Errorf("%s: host %s: %v, want %v", c.id, res.Hosts[i].Name, got, want)
				}
			}
			if (res.Summary == TemporaryFailure) != (res.Err != nil) {
				t.Errorf("%s: summary %v with Err %v", c.id, res.Summary, res.Err)
			}
			checkInvariants(t, fakeFor(c.spec), res)
		})
	}
}

// With an insecure MX RRset no host is looked up (DANE-1; the decision
// costs one query), and hosts beyond MaxHosts are never looked up.
func TestAppliesLookups(t *testing.T) {
	t.Parallel()
	f := fakeFor(s(mxInsecure, addrSecure, tlsaUsable, addrSecure, tlsaUsable))
	Applies(context.Background(), f, "example.com")
	if q := f.Queries(); len(q) != 1 || q[0] != "MX example.com" {
		t.Errorf("insecure MX: queries %v, want only the MX lookup", q)
	}
	f = fakeFor(s(mxSecure, addrSecure, tlsaUsable, addrSecure, tlsaUsable, addrSecure, tlsaNone))
	res := (&Decider{Resolver: f, MaxHosts: 2}).Applies(context.Background(), "example.com")
	if res.Summary != All || len(res.Hosts) != 2 {
		t.Errorf("MaxHosts 2: %v with %d hosts, want all with 2", res.Summary, len(res.Hosts))
	}
	for _, q := range f.Queries() {
		if q == "IP mx3.example.com" || q == "TLSA _25._tcp.mx3.example.com" {
			t.Errorf("looked up a host beyond MaxHosts: %s", q)
		}
	}
}

// ForMX decides from an MX lookup made elsewhere, without repeating it.
func TestForMX(t *testing.T) {
	t.Parallel()
	f := fakeFor(s(mxSecure, addrSecure, tlsaUsable))
	var mx MXLookup
	mx.Records, mx.Answer, mx.Err = f.LookupMX(context.Background(), "example.com")
	f.ResetQueries()
	res := (&Decider{Resolver: f}).ForMX(context.Background(), "example.com", mx)
	if res.Summary != All {
		t.Errorf("summary %v, want all", res.Summary)
	}
	for _, q := range f.Queries() {
		if q == "MX example.com" {
			t.Error("ForMX looked up the MX RRset again")
		}
	}
	// An MX error that is no sentinel is a failure, not a denial.
	res = Decide("example.com", MXLookup{Err: errors.New("broken")}, nil)
	if res.Summary != TemporaryFailure {
		t.Errorf("unclassified MX error: %v, want temporary-failure", res.Summary)
	}
}

// checkInvariants asserts what must hold whatever DNS says, asking the
// resolver itself: a usable host has validated MX, address and TLSA
// answers with a usable record (DANE-1, DANE-6); All means every host
// with addresses is usable; an insecure MX RRset is None; a failure is
// TemporaryFailure and nothing else.
func checkInvariants(t *testing.T, r dnsresolve.Resolver, res Result) {
	t.Helper()
	ctx := context.Background()
	_, mxAns, mxErr := r.LookupMX(ctx, res.Domain)
	if mxErr != nil && !errors.Is(mxErr, dnsresolve.ErrNotFound) {
		if res.Summary != TemporaryFailure {
			t.Errorf("failed MX lookup gave %v", res.Summary)
		}
		return
	}
	if !mxAns.Authenticated && res.Summary != None {
		t.Errorf("insecure MX RRset gave %v, want none", res.Summary)
	}
	usable, counted, failed := 0, 0, false
	for _, h := range res.Hosts {
		switch h.Status {
		case HostUsable:
			_, ipAns, ipErr := r.LookupIP(ctx, h.Name)
			recs, tAns, tErr := r.LookupTLSA(ctx, 25, "tcp", h.Name)
			if !mxAns.Authenticated || ipErr != nil || !ipAns.Authenticated || tErr != nil || !tAns.Authenticated || !AnyUsable(recs) {
				t.Errorf("%s usable without validated MX, addresses and usable TLSA (MX AD %v, IP %v AD %v, TLSA %v AD %v)",
					h.Name, mxAns.Authenticated, ipErr, ipAns.Authenticated, tErr, tAns.Authenticated)
			}
			usable++
		case HostFailed:
			failed = true
			if h.Err == nil {
				t.Errorf("%s failed without an error", h.Name)
			}
		}
		if h.Status != HostNoAddress {
			counted++
		}
	}
	switch {
	case failed && res.Summary != TemporaryFailure:
		t.Errorf("a host failed, summary %v", res.Summary)
	case res.Summary == All && (usable != counted || counted == 0):
		t.Errorf("all with %d usable of %d hosts", usable, counted)
	case res.Summary == TemporaryFailure && res.Err == nil:
		t.Error("temporary-failure without Err")
	}
}

func FuzzApplies(f *testing.F) {
	for _, c := range appliesCases {
		f.Add(c.spec)
	}
	f.Fuzz(func(t *testing.T, spec []byte) {
		if len(spec) > 1+2*maxSpecHosts {
			spec = spec[:1+2*maxSpecHosts]
		}
		r := fakeFor(spec)
		res := Applies(context.Background(), r, "example.com")
		checkInvariants(t, r, res)
		// Decide is a function of the answers: the same DNS gives the
		// same decision.
		if again := Applies(context.Background(), r, "example.com"); again.Summary != res.Summary || len(again.Hosts) != len(res.Hosts) {
			t.Errorf("second decision %v, first %v", again.Summary, res.Summary)
		}
	})
}

// The names of summaries and host statuses are what the checker's JSON and
// policyd's logs print: pinned, and distinct.
func TestStatusNames(t *testing.T) {
	t.Parallel()
	summaries := map[Summary]string{None: "none", Some: "some", All: "all", TemporaryFailure: "temporary-failure", Summary(99): "invalid"}
	for s, want := range summaries {
		if got := s.String(); got != want {
			t.Errorf("Summary(%d).String() = %q, want %q", s, got, want)
		}
	}
	hosts := map[HostStatus]string{HostInsecure: "insecure", HostNoTLSA: "no-tlsa", HostUnusable: "unusable",
		HostUsable: "usable", HostNoAddress: "no-address", HostFailed: "failed", HostStatus(99): "invalid"}
	for s, want := range hosts {
		if got := s.String(); got != want {
			t.Errorf("HostStatus(%d).String() = %q, want %q", s, got, want)
		}
	}
}
