package dnsresolve

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
)

func newFakeZone() *Fake {
	return &Fake{
		TXT: map[string][]string{
			"_mta-sts.example.com": {"v=STSv1; id=1"},
			"policy.example.net":   {"v=STSv1; id=2"},
			"xn--bcher-kva.test":   {"idn"},
		},
		MX: map[string][]MX{
			"example.com":  {{20, "MX2.example.com."}, {10, "mx1.example.com"}, {10, "mx0.example.com"}},
			"nullmx.test":  {{0, "."}},
			"multi.secure": {{10, "mx.secure"}},
		},
		IP: map[string][]netip.Addr{
			"mx1.example.com": {netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")},
		},
		TLSA: map[string][]TLSA{
			"_25._tcp.mx.secure": {{3, 1, 1, []byte{1, 2}}},
		},
		CNAME: map[string]string{
			"_mta-sts.example.org": "policy.example.net.",
			"loop1.test":           "loop2.test",
			"loop2.test":           "loop3.test",
			"loop3.test":           "loop2.test",
			"down.test":            "broken.test",
		},
		Errors: map[string]error{
			"broken.test":     fmt.Errorf("injected: %w", ErrLookupFailed),
			"TXT partly.test": errors.New("no sentinel"),
			"nxdomain.test":   fmt.Errorf("injected: %w", ErrNotFound),
		},
		Authenticated: map[string]bool{
			"multi.secure":       true,
			"_25._tcp.mx.secure": true,
			"_25._tcp.nx.secure": true,
		},
	}
}

func TestFake(t *testing.T) {
	t.Parallel()
	f := newFakeZone()
	ctx := t.Context()

	txt, ans, err := f.LookupTXT(ctx, "_MTA-STS.Example.COM.")
	if err != nil || !slices.Equal(txt, []string{"v=STSv1; id=1"}) || ans.CanonicalName != "_mta-sts.example.com." {
		t.Errorf("TXT: %q %+v %v", txt, ans, err)
	}
	// STS-TXT-10: CNAMEs are followed and the canonical name reported.
	txt, ans, err = f.LookupTXT(ctx, "_mta-sts.example.org")
	if err != nil || txt[0] != "v=STSv1; id=2" || ans.CanonicalName != "policy.example.net." {
		t.Errorf("CNAME: %q %+v %v", txt, ans, err)
	}
	// STS-TXT-1: U-labels are looked up as A-labels.
	if txt, _, err := f.LookupTXT(ctx, "Bücher.test"); err != nil || txt[0] != "idn" {
		t.Errorf("IDN: %q %v", txt, err)
	}

	mx, _, err := f.LookupMX(ctx, "example.com")
	want := []MX{{10, "mx1.example.com"}, {10, "mx0.example.com"}, {20, "mx2.example.com"}}
	if err != nil || !slices.Equal(mx, want) {
		t.Errorf("MX: %v %v, want %v", mx, err, want)
	}
	if mx, _, err := f.LookupMX(ctx, "nullmx.test"); err != nil || mx[0].Host != "." {
		t.Errorf("null MX: %v %v", mx, err)
	}
	ips, _, err := f.LookupIP(ctx, "mx1.example.com")
	if err != nil || len(ips) != 2 {
		t.Errorf("IP: %v %v", ips, err)
	}
	tlsa, ans, err := f.LookupTLSA(ctx, 25, "tcp", "MX.secure.")
	if err != nil || len(tlsa) != 1 || !ans.Authenticated {
		t.Errorf("TLSA: %v %+v %v", tlsa, ans, err)
	}
	// Returned slices are copies.
	tlsa[0].Data[0] = 99
	if f.TLSA["_25._tcp.mx.secure"][0].Data[0] != 1 {
		t.Error("LookupTLSA returned the fake's own data")
	}

	// STS-TXT-13 and DANE-4 through the fake.
	tests := []struct {
		name     string
		lookup   func() (Answer, error)
		notFound bool
		rcode    int
		ad       bool
	}{
		{"NXDOMAIN", func() (Answer, error) { _, a, err := f.LookupTXT(ctx, "none.test"); return a, err }, true, 3, false},
		{"NODATA", func() (Answer, error) { _, a, err := f.LookupTXT(ctx, "example.com"); return a, err }, true, 0, false},
		{"secure denial", func() (Answer, error) { _, a, err := f.LookupTLSA(ctx, 25, "tcp", "nx.secure"); return a, err }, true, 3, true},
		{"injected failure", func() (Answer, error) { _, a, err := f.LookupMX(ctx, "broken.test"); return a, err }, false, RcodeNone, false},
		{"failure via CNAME", func() (Answer, error) { _, a, err := f.LookupTXT(ctx, "down.test"); return a, err }, false, RcodeNone, false},
		{"injected not found", func() (Answer, error) { _, a, err := f.LookupIP(ctx, "nxdomain.test"); return a, err }, true, RcodeNone, false},
		{"error without sentinel", func() (Answer, error) { _, a, err := f.LookupTXT(ctx, "partly.test"); return a, err }, false, RcodeNone, false},
		{"CNAME loop", func() (Answer, error) { _, a, err := f.LookupTXT(ctx, "loop1.test"); return a, err }, false, RcodeNone, false},
		{"invalid name", func() (Answer, error) { _, a, err := f.LookupTXT(ctx, "a..b"); return a, err }, false, RcodeNone, false},
	}
	for _, tt := range tests {
		ans, err := tt.lookup()
		var de *Error
		if !errors.As(err, &de) {
			t.Errorf("%s: %T %v is not *Error", tt.name, err, err)
			continue
		}
		if errors.Is(err, ErrNotFound) != tt.notFound || errors.Is(err, ErrLookupFailed) == tt.notFound {
			t.Errorf("%s: %v: wrong sentinel", tt.name, err)
		}
		if de.Rcode != tt.rcode || ans.Authenticated != tt.ad {
			t.Errorf("%s: rcode %d ad %v, want %d %v", tt.name, de.Rcode, ans.Authenticated, tt.rcode, tt.ad)
		}
	}
	// Only the partly.test TXT lookup fails; other types do not.
	if _, _, err := f.LookupMX(ctx, "partly.test"); !errors.Is(err, ErrNotFound) {
		t.Errorf("type-specific error applied to MX: %v", err)
	}

	// Cancelled context.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := f.LookupTXT(cctx, "_mta-sts.example.com"); !errors.Is(err, context.Canceled) || !errors.Is(err, ErrLookupFailed) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestFakeAuthenticatedDenial(t *testing.T) {
	t.Parallel()
	var f Fake
	f.SetAuthenticated("_25._tcp.mx.secure", true)
	// DANE-4: the denial at _25._tcp.mx.secure is secure.
	_, ans, err := f.LookupTLSA(t.Context(), 25, "tcp", "mx.secure")
	if !errors.Is(err, ErrNotFound) || !ans.Authenticated {
		t.Errorf("got %+v %v", ans, err)
	}
	// A CNAME through an insecure name makes the answer insecure.
	f.SetCNAME("alias.test", "_25._tcp.mx.secure")
	f.SetTXT("_25._tcp.mx.secure", "x")
	if _, ans, err := f.LookupTXT(t.Context(), "alias.test"); err != nil || ans.Authenticated {
		t.Errorf("got %+v %v", ans, err)
	}
}

func TestFakeQueriesAndSetters(t *testing.T) {
	t.Parallel()
	var f Fake // zero value usable
	ctx := t.Context()
	if _, _, err := f.LookupTXT(ctx, "x.test"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("zero Fake: %v", err)
	}
	if q := f.Queries(); !slices.Equal(q, []string{"TXT x.test"}) {
		t.Errorf("Queries %q", q)
	}
	f.ResetQueries()

	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			f.SetTXT(fmt.Sprintf("N%d.Test.", i), "v")
			f.SetIP("mx.test", netip.MustParseAddr("127.0.0.1"))
			f.SetMX("mx.test", MX{10, "mx.test"})
			f.SetTLSA("_25._tcp.mx.test", TLSA{3, 1, 1, []byte{1}})
			if _, _, err := f.LookupTXT(ctx, fmt.Sprintf("n%d.test", i)); err != nil {
				t.Error(err)
			}
			_, _, _ = f.LookupMX(ctx, "mx.test")
		})
	}
	wg.Wait()
	if n := len(f.Queries()); n != 100 {
		t.Errorf("%d queries logged, want 100", n)
	}

	f.SetError("TXT Fail.Test.", fmt.Errorf("boom: %w", ErrLookupFailed))
	if _, _, err := f.LookupTXT(ctx, "fail.test"); !errors.Is(err, ErrLookupFailed) {
		t.Errorf("SetError: %v", err)
	}
	f.SetError("TXT fail.test", nil)
	if _, _, err := f.LookupTXT(ctx, "fail.test"); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetError(nil): %v", err)
	}
	f.SetCNAME("a.test", "mx.test")
	if mx, ans, err := f.LookupMX(ctx, "a.test"); err != nil || len(mx) != 1 || ans.CanonicalName != "mx.test." {
		t.Errorf("SetCNAME: %v %+v %v", mx, ans, err)
	}
	f.SetCNAME("a.test", "")
	if _, _, err := f.LookupMX(ctx, "a.test"); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetCNAME removal: %v", err)
	}
	// Invalid names are not logged.
	f.ResetQueries()
	_, _, _ = f.LookupTXT(ctx, "bad name")
	if q := f.Queries(); len(q) != 0 {
		t.Errorf("invalid name logged: %q", q)
	}
}

// The Fake's A-only lookup returns the IPv4 addresses of IP, is logged as
// "IP4 host", and fails like LookupIP where an "IP host" error is set.
func TestFakeLookupIPv4(t *testing.T) {
	t.Parallel()
	f := &Fake{}
	f.SetIP("both.example", netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1"))
	f.SetIP("v6.example", netip.MustParseAddr("2001:db8::2"))
	f.SetError("IP broken.example", ErrLookupFailed)
	ctx := t.Context()
	if a, _, err := f.LookupIPv4(ctx, "both.example"); err != nil || len(a) != 1 || a[0].String() != "192.0.2.1" {
		t.Errorf("both: %v, %v", a, err)
	}
	if a, _, err := f.LookupIPv4(ctx, "v6.example"); !errors.Is(err, ErrNotFound) {
		t.Errorf("v6 only: %v, %v; want ErrNotFound", a, err)
	}
	if _, _, err := f.LookupIPv4(ctx, "broken.example"); !errors.Is(err, ErrLookupFailed) {
		t.Errorf("broken: %v, want ErrLookupFailed", err)
	}
	if q := f.Queries(); len(q) != 3 || q[0] != "IP4 both.example" {
		t.Errorf("queries %v", q)
	}
}
