package mtasts

import (
	"crypto/fips140"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Shared chain verification (STS-FETCH-2).
//
// Most policy hosts present a leaf certificate issued by one of a handful
// of intermediates (a few per large CA), so verifying each chain from
// scratch checks the same intermediate's signature by the same root for
// every cold lookup: one of the three public-key operations of a policy
// fetch's handshake (the leaf's signature, the intermediate's, the
// server's handshake signature). A chainCache remembers, per root pool and
// per certificates presented after the leaf, the certificate that issued
// the leaf in a chain crypto/x509 verified; the next host presenting the
// same certificates is verified by crypto/x509 against that issuer alone,
// taken as the trust anchor: the leaf's signature, validity, host name,
// key usage and the issuer's own validity, name constraints and path
// length are all checked again, on every handshake.
//
// The shortcut accepts exactly the chains a full verification would, for
// these reasons, each enforced when an entry is made or used:
//   - what lies above the issuer was verified by crypto/x509 with the same
//     root pool, and is used only while every certificate there is within
//     its validity period;
//   - no certificate above the issuer, and not the issuer itself, carries
//     name constraints or policy constraints or mappings, and none above
//     restricts the extended key usage away from server authentication:
//     those are the checks that read the chain above the leaf's issuer
//     (crypto/x509's checkChainConstraints, policiesValid and
//     checkChainForKeyUsage); a chain with any of them is not cached;
//   - a leaf with policy constraints is always verified in full;
//   - a leaf the shortcut rejects is verified in full, and that answer is
//     the one given: a rejection never comes from the cache;
//   - a root pool is keyed by its pointer: a reload that builds new pools
//     starts with no entries for them;
//   - where crypto/x509 hands system roots to the platform's verifier
//     (macOS, Windows, iOS) or in FIPS 140 mode (which restricts the chains
//     crypto/tls accepts), nothing is cached and crypto/tls verifies as
//     usual.
type chainCache struct {
	mu      sync.Mutex
	entries map[chainKey]*chainEntry
	hits    atomic.Uint64
	misses  atomic.Uint64
}

// maxChainEntries bounds a chainCache; when full it starts over (the
// intermediates in use are few, so this happens only with many root pools
// or hostile hosts sending ever new chains).
const maxChainEntries = 256

// chainKey names the certificates a host presented after its leaf, with
// the leaf's issuer name and authority key id, under one root pool.
type chainKey struct {
	roots *x509.CertPool
	sum   [sha256.Size]byte
}

// chainEntry is a verified issuer of leaves.
type chainEntry struct {
	anchor *x509.CertPool      // holds only above[0]
	above  []*x509.Certificate // the leaf's issuer and the certificates above it, to the root
	from   time.Time           // validity of above[1:]: the latest NotBefore
	until  time.Time           // and the earliest NotAfter
}

// chainCacheUsable tells whether shortcut verification may be used here
// (see the chainCache doc).
var chainCacheUsable = !fips140.Enabled() && runtime.GOOS != "darwin" && runtime.GOOS != "ios" && runtime.GOOS != "windows"

func newChainCache() *chainCache {
	return &chainCache{entries: map[chainKey]*chainEntry{}}
}

// tlsConfig makes cfg verify the server's chain through c (cfg.ServerName
// and cfg.RootCAs set as for crypto/tls's own verification). The returned
// function gives the chains verified, for the ConnectionState, after the
// handshake.
func (c *chainCache) tlsConfig(cfg *tls.Config) func() [][]*x509.Certificate {
	if c == nil || !chainCacheUsable {
		return func() [][]*x509.Certificate { return nil }
	}
	var chains [][]*x509.Certificate
	host, roots := cfg.ServerName, cfg.RootCAs
	// Verification moves from crypto/tls to VerifyConnection, which
	// crypto/tls calls before the handshake can complete, with the
	// certificates it parsed; a rejection aborts the handshake with the
	// same error type (tls.CertificateVerificationError) and alert.
	cfg.InsecureSkipVerify = true
	cfg.VerifyConnection = func(st tls.ConnectionState) error {
		var err error
		chains, err = c.verify(st.PeerCertificates, host, roots, cfg.Time)
		return err
	}
	return func() [][]*x509.Certificate { return chains }
}

// verify verifies the server's certificates for host as crypto/tls would,
// through the cache where it can. now, when set, gives the time.
func (c *chainCache) verify(certs []*x509.Certificate, host string, roots *x509.CertPool, now func() time.Time) ([][]*x509.Certificate, error) {
	if len(certs) == 0 {
		return nil, &tls.CertificateVerificationError{Err: errors.New("the server sent no certificate")}
	}
	at := time.Now()
	if now != nil {
		at = now()
	}
	leaf := certs[0]
	key := chainKey{roots: roots, sum: tailSum(certs)}
	shortcut := !hasPolicyConstraints(leaf)
	if shortcut {
		c.mu.Lock()
		e := c.entries[key]
		c.mu.Unlock()
		if e != nil && !at.Before(e.from) && !at.After(e.until) {
			short, err := leaf.Verify(x509.VerifyOptions{Roots: e.anchor, DNSName: host, CurrentTime: at})
			if err == nil {
				c.hits.Add(1)
				for i, ch := range short {
					short[i] = append(ch[:len(ch):len(ch)], e.above[1:]...)
				}
				return short, nil
			}
		}
	}
	c.misses.Add(1)
	opts := x509.VerifyOptions{Roots: roots, DNSName: host, CurrentTime: at, Intermediates: x509.NewCertPool()}
	for _, ct := range certs[1:] {
		opts.Intermediates.AddCert(ct)
	}
	chains, err := leaf.Verify(opts)
	if err != nil {
		return nil, &tls.CertificateVerificationError{UnverifiedCertificates: certs, Err: err}
	}
	if e := newChainEntry(chains); e != nil && shortcut {
		c.mu.Lock()
		if len(c.entries) >= maxChainEntries {
			clear(c.entries)
		}
		c.entries[key] = e
		c.mu.Unlock()
	}
	return chains, nil
}

// stats returns the verifications answered through the cache and those
// verified in full.
func (c *chainCache) stats() (hits, misses uint64) {
	return c.hits.Load(), c.misses.Load()
}

// tailSum hashes what keys a chain: the leaf's issuer name and authority
// key id, and the certificates presented after the leaf, each length
// prefixed.
func tailSum(certs []*x509.Certificate) [sha256.Size]byte {
	h := sha256.New()
	var n [4]byte
	put := func(b []byte) {
		binary.BigEndian.PutUint32(n[:], uint32(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	put(certs[0].RawIssuer)
	put(certs[0].AuthorityKeyId)
	for _, ct := range certs[1:] {
		put(ct.Raw)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// newChainEntry makes an entry of the first verified chain whose part
// above the leaf qualifies (see the chainCache doc), or nil.
func newChainEntry(chains [][]*x509.Certificate) *chainEntry {
	for _, ch := range chains {
		if len(ch) < 2 || !cacheableAbove(ch[1:]) {
			continue
		}
		// The issuer's own validity is checked by every verification
		// (it is the anchor); what is above bounds the entry's use.
		e := &chainEntry{anchor: x509.NewCertPool(), above: slices.Clone(ch[1:]), until: ch[1].NotAfter}
		e.anchor.AddCert(ch[1])
		for _, ct := range e.above[1:] {
			if ct.NotBefore.After(e.from) {
				e.from = ct.NotBefore
			}
			if ct.NotAfter.Before(e.until) {
				e.until = ct.NotAfter
			}
		}
		return e
	}
	return nil
}

// cacheableAbove tells whether the leaf's issuer and what is above it
// (above[0] is the issuer) may be left out of later verifications.
func cacheableAbove(above []*x509.Certificate) bool {
	for i, ct := range above {
		if hasNameConstraints(ct) || hasPolicyConstraints(ct) {
			return false
		}
		if i > 0 && !serverAuthAllowed(ct) {
			return false
		}
	}
	return true
}

func hasNameConstraints(c *x509.Certificate) bool {
	return len(c.PermittedDNSDomains) > 0 || len(c.ExcludedDNSDomains) > 0 ||
		len(c.PermittedIPRanges) > 0 || len(c.ExcludedIPRanges) > 0 ||
		len(c.PermittedEmailAddresses) > 0 || len(c.ExcludedEmailAddresses) > 0 ||
		len(c.PermittedURIDomains) > 0 || len(c.ExcludedURIDomains) > 0 ||
		c.PermittedDNSDomainsCritical
}

func hasPolicyConstraints(c *x509.Certificate) bool {
	return c.RequireExplicitPolicy != 0 || c.RequireExplicitPolicyZero ||
		c.InhibitPolicyMapping != 0 || c.InhibitPolicyMappingZero ||
		c.InhibitAnyPolicy != 0 || c.InhibitAnyPolicyZero ||
		len(c.PolicyMappings) > 0
}

// serverAuthAllowed tells whether c leaves server authentication among
// the extended key usages of the certificates below it.
func serverAuthAllowed(c *x509.Certificate) bool {
	if len(c.ExtKeyUsage) == 0 && len(c.UnknownExtKeyUsage) == 0 {
		return true
	}
	return slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageServerAuth) || slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageAny)
}
