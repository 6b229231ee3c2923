package dane

import (
	"crypto/ecdsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/testca"
)

var now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

type pki struct {
	ca, leaf, other *x509.Certificate
}

func issue(t *testing.T, tmpl *x509.Certificate, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	c, key, err := testca.Sign(tmpl, parent, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

func newPKI(t *testing.T, leafNames []string, notAfter time.Time) pki {
	t.Helper()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	ca, caKey := issue(t, caTmpl, nil, nil)
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "leaf"},
		NotBefore: now.Add(-time.Hour), NotAfter: notAfter, DNSNames: leafNames,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leaf, _ := issue(t, leafTmpl, ca, caKey)
	other, _ := issue(t, &x509.Certificate{SerialNumber: big.NewInt(3), NotBefore: now, NotAfter: now.Add(time.Hour)}, nil, nil)
	return pki{ca: ca, leaf: leaf, other: other}
}

// DANE-6: usages 0 and 1 are unusable for SMTP; unknown selectors and
// matching types, and digests of the wrong length, are unusable (DANE-3).
func TestUsable(t *testing.T) {
	t.Parallel()
	d32 := make([]byte, 32)
	d64 := make([]byte, 64)
	cases := []struct {
		r    dnsresolve.TLSA
		want bool
	}{
		{dnsresolve.TLSA{Usage: 3, Selector: 1, MatchingType: 1, Data: d32}, true},
		{dnsresolve.TLSA{Usage: 2, Selector: 0, MatchingType: 2, Data: d64}, true},
		{dnsresolve.TLSA{Usage: 3, Selector: 0, MatchingType: 0, Data: []byte{1}}, true},
		{dnsresolve.TLSA{Usage: 0, Selector: 1, MatchingType: 1, Data: d32}, false},
		{dnsresolve.TLSA{Usage: 1, Selector: 1, MatchingType: 1, Data: d32}, false},
		{dnsresolve.TLSA{Usage: 4, Selector: 1, MatchingType: 1, Data: d32}, false},
		{dnsresolve.TLSA{Usage: 3, Selector: 2, MatchingType: 1, Data: d32}, false},
		{dnsresolve.TLSA{Usage: 3, Selector: 1, MatchingType: 3, Data: d32}, false},
		{dnsresolve.TLSA{Usage: 3, Selector: 1, MatchingType: 1, Data: d64}, false},
		{dnsresolve.TLSA{Usage: 3, Selector: 1, MatchingType: 0}, false},
	}
	for _, c := range cases {
		if got := Usable(c.r); got != c.want {
			t.Errorf("Usable(%d %d %d, %d bytes) = %v, want %v", c.r.Usage, c.r.Selector, c.r.MatchingType, len(c.r.Data), got, c.want)
		}
	}
	if AnyUsable([]dnsresolve.TLSA{cases[3].r, cases[4].r}) {
		t.Error("AnyUsable of PKIX-only records = true")
	}
}

// DANE-7: DANE-EE matches the key or certificate, ignoring names and expiry.
func TestVerifyDANEEE(t *testing.T) {
	t.Parallel()
	p := newPKI(t, []string{"other.example"}, now.Add(-time.Minute)) // wrong name, expired
	chain := []*x509.Certificate{p.leaf, p.ca}
	for _, sel := range []uint8{SelectorCert, SelectorSPKI} {
		for _, mt := range []uint8{MatchFull, MatchSHA256, MatchSHA512} {
			rec := Record(UsageDANEEE, sel, mt, p.leaf)
			if _, err := Verify([]dnsresolve.TLSA{rec}, chain, []string{"mx.example"}, now); err != nil {
				t.Errorf("3 %d %d: %v", sel, mt, err)
			}
		}
	}
	wrong := Record(UsageDANEEE, SelectorSPKI, MatchSHA256, p.other)
	if _, err := Verify([]dnsresolve.TLSA{wrong}, chain, []string{"mx.example"}, now); !errors.Is(err, ErrNoMatch) {
		t.Errorf("non-matching 3 1 1: err = %v, want ErrNoMatch", err)
	}
}

// DANE-8: DANE-TA needs a chain to the matching certificate and a name match.
func TestVerifyDANETA(t *testing.T) {
	t.Parallel()
	p := newPKI(t, []string{"*.example.net", "mx.example.com"}, now.Add(time.Hour))
	ta := Record(UsageDANETA, SelectorCert, MatchSHA256, p.ca)
	chain := []*x509.Certificate{p.leaf, p.ca}
	for _, name := range []string{"mx.example.com", "a.example.net"} {
		if _, err := Verify([]dnsresolve.TLSA{ta}, chain, []string{name}, now); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, name := range []string{"a.b.example.net", "example.net", "mx2.example.com"} {
		if _, err := Verify([]dnsresolve.TLSA{ta}, chain, []string{name}, now); !errors.Is(err, ErrNoMatch) {
			t.Errorf("%s: err = %v, want ErrNoMatch", name, err)
		}
	}
	// The anchor must be presented in the chain (RFC 7672 §3.1.2).
	if _, err := Verify([]dnsresolve.TLSA{ta}, []*x509.Certificate{p.leaf}, []string{"mx.example.com"}, now); !errors.Is(err, ErrNoMatch) {
		t.Errorf("chain without anchor: err = %v", err)
	}
	// Expiry counts for DANE-TA.
	exp := newPKI(t, []string{"mx.example.com"}, now.Add(-time.Minute))
	ta2 := Record(UsageDANETA, SelectorSPKI, MatchSHA256, exp.ca)
	if _, err := Verify([]dnsresolve.TLSA{ta2}, []*x509.Certificate{exp.leaf, exp.ca}, []string{"mx.example.com"}, now); !errors.Is(err, ErrNoMatch) {
		t.Errorf("expired leaf under DANE-TA: err = %v", err)
	}
}

// DANE-3, DANE-6: a PKIX-only RRset is "no usable records", not a mismatch.
func TestVerifyNoUsable(t *testing.T) {
	t.Parallel()
	p := newPKI(t, []string{"mx.example.com"}, now.Add(time.Hour))
	rec := Record(UsagePKIXEE, SelectorSPKI, MatchSHA256, p.leaf)
	if _, err := Verify([]dnsresolve.TLSA{rec}, []*x509.Certificate{p.leaf}, []string{"mx.example.com"}, now); !errors.Is(err, ErrNoUsableRecords) {
		t.Errorf("err = %v, want ErrNoUsableRecords", err)
	}
	good := Record(UsageDANEEE, SelectorSPKI, MatchSHA256, p.leaf)
	if _, err := Verify([]dnsresolve.TLSA{good}, nil, nil, now); !errors.Is(err, ErrNoMatch) {
		t.Errorf("empty chain: err = %v", err)
	}
}
