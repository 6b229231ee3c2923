package testnet

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"sync"
	"time"

	"github.com/mailsts/mailsts/internal/testca"
)

// DefaultCertValidity is how long good leaf certificates stay valid when
// no validity is given: 90 days, like the ACME certificates real domains
// use, so that a good demo domain passes without an expiry warning.
const DefaultCertValidity = 90 * 24 * time.Hour

// ExpiringCertValidity is the lifetime of CertExpiring certificates: inside
// the checker's 14-day expiry warning, as a certificate whose renewal
// failed.
const ExpiringCertValidity = 7 * 24 * time.Hour

// CA is a throw-away certificate authority (ECDSA P-256) that issues leaf
// certificates on demand, one per (name, kind, validity), cached. It is safe
// for concurrent use. Several Nets may share one CA through Options.CA so
// that a single RootCAs pool trusts them all.
type CA struct {
	root *testca.CA

	mu     sync.Mutex
	leaves map[leafKey]*leafEntry
}

type leafKey struct {
	name     string
	kind     CertKind
	validity time.Duration
}

// leafEntry issues its certificate once; the CA lock is not held while
// signing, so different names are issued in parallel.
type leafEntry struct {
	once sync.Once
	cert *tls.Certificate
	err  error
}

// NewCA generates a fresh root certificate valid from an hour ago for ten
// years.
func NewCA() (*CA, error) {
	root, err := testca.New("mailsts testnet")
	if err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	return &CA{root: root, leaves: make(map[leafKey]*leafEntry)}, nil
}

// Certificate returns the root certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.root.Certificate() }

// PEM returns the root certificate in PEM form.
func (ca *CA) PEM() []byte { return ca.root.PEM() }

// Pool returns a new pool holding only the root certificate.
func (ca *CA) Pool() *x509.CertPool { return ca.root.Pool() }

// TASHA256 returns the SHA-256 digest of the root certificate, the
// association data of a "2 0 1" (DANE-TA, full certificate) TLSA record.
func (ca *CA) TASHA256() []byte {
	sum := sha256.Sum256(ca.root.Certificate().Raw)
	return sum[:]
}

// Leaf returns the certificate of the given kind for name, issuing it on
// first use. validity is the lifetime of good certificates (0 means
// DefaultCertValidity). CA-issued chains include the root, so that DANE-TA
// clients find the trust anchor in the handshake (RFC 7672 §3.1.1).
// The returned value is shared: do not modify it.
func (ca *CA) Leaf(name string, kind CertKind, validity time.Duration) (*tls.Certificate, error) {
	if validity <= 0 {
		validity = DefaultCertValidity
	}
	if kind == "" {
		kind = CertGood
	}
	k := leafKey{name: name, kind: kind, validity: validity}
	ca.mu.Lock()
	e, ok := ca.leaves[k]
	if !ok {
		e = &leafEntry{}
		ca.leaves[k] = e
	}
	ca.mu.Unlock()
	e.once.Do(func() { e.cert, e.err = ca.issue(k) })
	return e.cert, e.err
}

func (ca *CA) issue(k leafKey) (*tls.Certificate, error) {
	now := time.Now()
	l := testca.Leaf{CommonName: k.name, DNSNames: []string{k.name}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(k.validity)}
	switch k.kind {
	case CertGood:
	case CertExpiring:
		l.NotAfter = now.Add(ExpiringCertValidity)
	case CertExpired:
		l.NotBefore, l.NotAfter = now.Add(-30*24*time.Hour), now.Add(-24*time.Hour)
	case CertNotYetValid:
		l.NotBefore, l.NotAfter = now.Add(24*time.Hour), now.Add(24*time.Hour+k.validity)
	case CertWrongName:
		l.CommonName = WrongName
		l.DNSNames = []string{WrongName}
	case CertCNOnly:
		// RFC 9525 §6.3 and STS-FETCH-2: clients must ignore the CN.
		l.DNSNames = nil
	case CertSelfSigned:
		l.SelfSigned = true
	default:
		return nil, fmt.Errorf("%w: unknown certificate kind %q", ErrScenario, k.kind)
	}
	cert, err := ca.root.Issue(l)
	if err != nil {
		return nil, fmt.Errorf("testnet: issuing %s certificate for %s: %w", k.kind, k.name, err)
	}
	return cert, nil
}

// spkiSHA256 returns the "3 1 1" (DANE-EE, SPKI, SHA-256) association data
// of a certificate.
func spkiSHA256(c *x509.Certificate) []byte {
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return sum[:]
}
