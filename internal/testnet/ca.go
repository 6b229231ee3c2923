package testnet

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"sync"
	"time"
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
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
	pem  []byte

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
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("testnet: CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "mailsts testnet CA " + serial.Text(36)[:8], Organization: []string{"mailsts testnet"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("testnet: CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("testnet: CA certificate: %w", err)
	}
	return &CA{
		key:    key,
		cert:   cert,
		pem:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		leaves: make(map[leafKey]*leafEntry),
	}, nil
}

// Certificate returns the root certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// PEM returns the root certificate in PEM form.
func (ca *CA) PEM() []byte { return append([]byte(nil), ca.pem...) }

// Pool returns a new pool holding only the root certificate.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// TASHA256 returns the SHA-256 digest of the root certificate, the
// association data of a "2 0 1" (DANE-TA, full certificate) TLSA record.
func (ca *CA) TASHA256() []byte {
	sum := sha256.Sum256(ca.cert.Raw)
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
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("testnet: leaf key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: k.name},
		DNSNames:     []string{k.name},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(k.validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	parent, signer := ca.cert, ca.key
	switch k.kind {
	case CertGood:
	case CertExpiring:
		tmpl.NotAfter = now.Add(ExpiringCertValidity)
	case CertExpired:
		tmpl.NotBefore, tmpl.NotAfter = now.Add(-30*24*time.Hour), now.Add(-24*time.Hour)
	case CertNotYetValid:
		tmpl.NotBefore, tmpl.NotAfter = now.Add(24*time.Hour), now.Add(24*time.Hour+k.validity)
	case CertWrongName:
		tmpl.Subject.CommonName = WrongName
		tmpl.DNSNames = []string{WrongName}
	case CertCNOnly:
		// RFC 9525 §6.3 and STS-FETCH-2: clients must ignore the CN.
		tmpl.DNSNames = nil
	case CertSelfSigned:
		parent, signer = tmpl, key
	default:
		return nil, fmt.Errorf("%w: unknown certificate kind %q", ErrScenario, k.kind)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		return nil, fmt.Errorf("testnet: issuing %s certificate for %s: %w", k.kind, k.name, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("testnet: parsing issued certificate: %w", err)
	}
	chain := [][]byte{der}
	if k.kind != CertSelfSigned {
		chain = append(chain, ca.cert.Raw)
	}
	return &tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf}, nil
}

func randomSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("testnet: serial number: %w", err)
	}
	return s.Add(s, big.NewInt(1)), nil
}

// spkiSHA256 returns the "3 1 1" (DANE-EE, SPKI, SHA-256) association data
// of a certificate.
func spkiSHA256(c *x509.Certificate) []byte {
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return sum[:]
}
