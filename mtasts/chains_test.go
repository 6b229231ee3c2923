package mtasts

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/testca"
)

// A small PKI for the chain cache tests: roots, intermediates and leaves
// made with crypto/x509 directly (testca issues leaves from a root only).

type pkiCert struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// makeCert signs tmpl by parent (nil: self-signed); a zero validity is
// an hour ago to a day ahead.
func makeCert(t *testing.T, tmpl *x509.Certificate, parent *pkiCert) *pkiCert {
	t.Helper()
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = time.Now().Add(-time.Hour)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	}
	var pc *x509.Certificate
	var pk *ecdsa.PrivateKey
	if parent != nil {
		pc, pk = parent.cert, parent.key
	}
	c, key, err := testca.Sign(tmpl, pc, pk)
	if err != nil {
		t.Fatal(err)
	}
	return &pkiCert{cert: c, key: key}
}

func caTemplate(name string) *x509.Certificate {
	return &x509.Certificate{
		Subject: pkix.Name{CommonName: name}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
}

func leafTemplate(names ...string) *x509.Certificate {
	return &x509.Certificate{
		Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
}

func poolOf(cs ...*pkiCert) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range cs {
		p.AddCert(c.cert)
	}
	return p
}

func chainOf(cs ...*pkiCert) []*x509.Certificate {
	out := make([]*x509.Certificate, len(cs))
	for i, c := range cs {
		out[i] = c.cert
	}
	return out
}

// verifyBoth verifies certs through the (warm) cache and as crypto/tls
// would, and fails the test when they disagree; it returns the cache's
// error.
func verifyBoth(t *testing.T, c *chainCache, certs []*x509.Certificate, host string, roots *x509.CertPool, now time.Time) error {
	t.Helper()
	chains, err := c.verify(certs, host, roots, func() time.Time { return now })
	opts := x509.VerifyOptions{Roots: roots, DNSName: host, CurrentTime: now, Intermediates: x509.NewCertPool()}
	for _, ct := range certs[1:] {
		opts.Intermediates.AddCert(ct)
	}
	want, werr := certs[0].Verify(opts)
	if (err == nil) != (werr == nil) {
		t.Fatalf("%s: cache says %v, crypto/x509 says %v", host, err, werr)
	}
	if err != nil {
		var verr *tls.CertificateVerificationError
		if !errors.As(err, &verr) || len(verr.UnverifiedCertificates) != len(certs) {
			t.Errorf("%s: error %T %v, want a *tls.CertificateVerificationError with the chain presented", host, err, err)
		}
		if errors.Unwrap(err).Error() != werr.Error() {
			t.Errorf("%s: error %q, want crypto/x509's %q", host, errors.Unwrap(err), werr)
		}
		return err
	}
	if len(chains) == 0 || len(chains[0]) != len(want[0]) {
		t.Fatalf("%s: chains %v, want like %v", host, chains, want)
	}
	for i := range want[0] {
		if !chains[0][i].Equal(want[0][i]) {
			t.Errorf("%s: chain[%d] is %s, want %s", host, i, chains[0][i].Subject, want[0][i].Subject)
		}
	}
	return nil
}

// TestChainCacheSharesIssuer: STS-FETCH-2. A second host under the same
// intermediate is verified through the cache, with the full chain as the
// answer; every leaf the cache sees after that is judged exactly as
// crypto/x509 judges it.
func TestChainCacheSharesIssuer(t *testing.T) {
	if !chainCacheUsable {
		t.Skip("no shared chain verification on this platform")
	}
	root := makeCert(t, caTemplate("root"), nil)
	inter := makeCert(t, caTemplate("intermediate"), root)
	other := makeCert(t, caTemplate("intermediate"), root) // same name, other key
	roots := poolOf(root)
	now := time.Now()
	c := newChainCache()

	a := makeCert(t, leafTemplate("mta-sts.a.example"), inter)
	if err := verifyBoth(t, c, chainOf(a, inter), "mta-sts.a.example", roots, now); err != nil {
		t.Fatal(err)
	}
	b := makeCert(t, leafTemplate("mta-sts.b.example"), inter)
	if err := verifyBoth(t, c, chainOf(b, inter), "mta-sts.b.example", roots, now); err != nil {
		t.Fatal(err)
	}
	if h, m := c.stats(); h != 1 || m != 1 {
		t.Fatalf("hits %d misses %d, want the second host verified through the cache", h, m)
	}

	expiredTmpl := leafTemplate("mta-sts.c.example")
	expiredTmpl.NotBefore, expiredTmpl.NotAfter = now.Add(-48*time.Hour), now.Add(-time.Hour)
	notServer := leafTemplate("mta-sts.d.example")
	notServer.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	forged := makeCert(t, leafTemplate("mta-sts.e.example"), other) // issuer name and chain as inter's
	rejected := []struct {
		name  string
		certs []*x509.Certificate
		host  string
		roots *x509.CertPool
		at    time.Time
	}{
		{"another host's name", chainOf(b, inter), "mta-sts.evil.example", roots, now},
		{"expired leaf", chainOf(makeCert(t, expiredTmpl, inter), inter), "mta-sts.c.example", roots, now},
		{"no serverAuth", chainOf(makeCert(t, notServer, inter), inter), "mta-sts.d.example", roots, now},
		{"signed by another key of the same name", chainOf(forged, inter), "mta-sts.e.example", roots, now},
		{"other root pool", chainOf(b, inter), "mta-sts.b.example", poolOf(makeCert(t, caTemplate("root"), nil)), now},
		{"intermediate expired", chainOf(b, inter), "mta-sts.b.example", roots, now.Add(48 * time.Hour)},
	}
	for _, r := range rejected {
		if err := verifyBoth(t, c, r.certs, r.host, r.roots, r.at); err == nil {
			t.Errorf("%s: accepted", r.name)
		}
	}
	// A root that expires before its intermediate: the entry made while
	// both were valid is not used after the root's end.
	shortTmpl := caTemplate("short-lived root")
	shortTmpl.NotAfter = now.Add(2 * time.Hour)
	short := makeCert(t, shortTmpl, nil)
	longInter := makeCert(t, caTemplate("long-lived intermediate"), short)
	shortRoots := poolOf(short)
	h0, _ := c.stats()
	for i, at := range []time.Time{now, now, now.Add(3 * time.Hour)} {
		host := "mta-sts.f" + string(rune('0'+i)) + ".example"
		leafTmpl := leafTemplate(host)
		leafTmpl.NotAfter = now.Add(12 * time.Hour)
		err := verifyBoth(t, c, chainOf(makeCert(t, leafTmpl, longInter), longInter), host, shortRoots, at)
		if (err == nil) != (i < 2) {
			t.Errorf("leaf %d under the short-lived root: %v", i, err)
		}
	}
	if h, _ := c.stats(); h != h0+1 {
		t.Errorf("%d verifications through the cache under the short-lived root, want 1", h-h0)
	}

	// The forged leaf presented the cached chain: the shortcut rejected it,
	// the full verification had the last word.
	if err := verifyBoth(t, c, chainOf(forged, other), "mta-sts.e.example", roots, now); err != nil {
		t.Errorf("the forged leaf with its own intermediate: %v", err)
	}
}

// TestChainCacheSkipsConstrainedChains: a chain whose root constrains
// names (or a leaf with policy constraints) is never cached, because the
// shortcut would not read those constraints. Without that rule the leaf
// outside the root's names would be accepted through the cache.
func TestChainCacheSkipsConstrainedChains(t *testing.T) {
	if !chainCacheUsable {
		t.Skip("no shared chain verification on this platform")
	}
	now := time.Now()
	rootTmpl := caTemplate("constrained root")
	rootTmpl.PermittedDNSDomains = []string{"good.example"}
	root := makeCert(t, rootTmpl, nil)
	inter := makeCert(t, caTemplate("intermediate"), root)
	roots := poolOf(root)
	c := newChainCache()
	in := makeCert(t, leafTemplate("mta-sts.good.example"), inter)
	out := makeCert(t, leafTemplate("mta-sts.evil.example"), inter)
	for range 2 {
		if err := verifyBoth(t, c, chainOf(in, inter), "mta-sts.good.example", roots, now); err != nil {
			t.Fatal(err)
		}
	}
	if err := verifyBoth(t, c, chainOf(out, inter), "mta-sts.evil.example", roots, now); err == nil {
		t.Fatal("a name outside the root's constraints accepted")
	}
	if h, _ := c.stats(); h != 0 {
		t.Errorf("%d verifications through the cache of a name-constrained chain", h)
	}

	// An intermediate restricted to client authentication above the
	// leaf's issuer: crypto/x509 rejects the chain anyway; it is not kept.
	root2 := makeCert(t, caTemplate("root 2"), nil)
	clientOnly := caTemplate("client-only")
	clientOnly.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	mid := makeCert(t, clientOnly, root2)
	issuer := makeCert(t, caTemplate("issuer"), mid)
	leaf := makeCert(t, leafTemplate("mta-sts.x.example"), issuer)
	if err := verifyBoth(t, c, chainOf(leaf, issuer, mid), "mta-sts.x.example", poolOf(root2), now); err == nil {
		t.Error("a chain restricted to client authentication accepted")
	}

	// A leaf with policy constraints is verified in full every time.
	root3 := makeCert(t, caTemplate("root 3"), nil)
	inter3 := makeCert(t, caTemplate("intermediate 3"), root3)
	pl := leafTemplate("mta-sts.p.example")
	pl.RequireExplicitPolicyZero = true
	// Before the leaf: a plain one fills the cache for this chain.
	plain := makeCert(t, leafTemplate("mta-sts.q.example"), inter3)
	if err := verifyBoth(t, c, chainOf(plain, inter3), "mta-sts.q.example", poolOf(root3), now); err != nil {
		t.Fatal(err)
	}
	h0, _ := c.stats()
	_ = verifyBoth(t, c, chainOf(makeCert(t, pl, inter3), inter3), "mta-sts.p.example", poolOf(root3), now)
	if h, _ := c.stats(); h != h0 {
		t.Error("a leaf with policy constraints was verified through the cache")
	}
}

// TestFetchSharesChainVerification: STS-FETCH-2 through a Client. The
// second policy host's certificate is verified through the cache, the
// FetchResult still carries the verified chain, and a host with a
// certificate for another name is still refused after that.
func TestFetchSharesChainVerification(t *testing.T) {
	if !chainCacheUsable {
		t.Skip("no shared chain verification on this platform")
	}
	ca := newTestCA(t)
	serve := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("version: STSv1\nmode: enforce\nmx: mx.example\nmax_age: 86400\n"))
	}
	good := startHost(t, ca.issue(certOpts{dnsNames: []string{"mta-sts.a.example", "mta-sts.b.example"}}), serve, nil)
	bad := startHost(t, ca.issue(certOpts{dnsNames: []string{"mta-sts.other.example"}}), serve, nil)
	fake := &dnsresolve.Fake{}
	for _, h := range []string{"mta-sts.a.example", "mta-sts.b.example", "mta-sts.c.example"} {
		fake.SetIP(h, loopback)
	}
	c := &Client{DNS: fake, RootCAs: ca.pool, HTTPSPort: good.port(), Timeout: 10 * time.Second}
	ctx := context.Background()
	for _, d := range []string{"a.example", "b.example"} {
		res, err := c.FetchRaw(ctx, d)
		if err != nil {
			t.Fatalf("%s: %v", d, err)
		}
		if res.TLS == nil || len(res.TLS.VerifiedChains) == 0 || !res.TLS.VerifiedChains[0][len(res.TLS.VerifiedChains[0])-1].Equal(ca.cert) {
			t.Errorf("%s: verified chains %v, want one ending at the test root", d, res.TLS)
		}
	}
	if h, m := c.chains.stats(); h != 1 || m != 1 {
		t.Errorf("hits %d misses %d, want the second host through the cache", h, m)
	}
	c.HTTPSPort = bad.port()
	_, err := c.FetchRaw(ctx, "c.example")
	var herr x509.HostnameError
	if !errors.Is(err, ErrPolicyCertificate) || !errors.As(err, &herr) {
		t.Errorf("a certificate for another name: %v, want ErrPolicyCertificate with the host name error", err)
	}
	if n := len(bad.requests()); n != 0 {
		t.Errorf("the request was sent over an unverified connection (%d)", n)
	}
}
