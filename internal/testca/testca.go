// Package testca is a throw-away certificate authority for tests (ECDSA
// P-256): the one behind internal/testnet's fake Internet and the policy
// server of mtasts/mtaststest, and the certificate helpers of the mtasts
// tests.
//
// It does not import package testing: the mailsts binary links testnet
// (for `mailsts testnet`), and testnet uses this package.
package testca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"time"
)

// DefaultValidity is how long a leaf stays valid when [Leaf.NotAfter] is
// zero: 90 days, like the ACME certificates real domains use.
const DefaultValidity = 90 * 24 * time.Hour

// CA is a root certificate and its key. It is safe for concurrent use.
type CA struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
	pem  []byte
}

// New generates a fresh root certificate valid from an hour ago for ten
// years. name is its organisation and, with a random suffix, its common
// name.
func New(name string) (*CA, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	cert, key, err := Sign(&x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name + " CA " + serial.Text(36)[:8], Organization: []string{name}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("testca: CA certificate: %w", err)
	}
	return &CA{key: key, cert: cert, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})}, nil
}

// Sign makes a certificate from tmpl with a fresh P-256 key, signed by
// parent's key parentKey, or by its own key when parent is nil; a nil
// tmpl.SerialNumber gets a random one. For tests that build their own
// hierarchies (intermediates, constraints) beside the CA.
func Sign(tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("testca: key: %w", err)
	}
	if tmpl.SerialNumber == nil {
		if tmpl.SerialNumber, err = randomSerial(); err != nil {
			return nil, nil, err
		}
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, fmt.Errorf("testca: signing %q: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("testca: parsing %q: %w", tmpl.Subject.CommonName, err)
	}
	return cert, key, nil
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

// Leaf describes a server certificate to issue.
type Leaf struct {
	// CommonName is the subject's common name, empty for none.
	CommonName string
	// DNSNames are the subject alternative names.
	DNSNames []string
	// NotBefore and NotAfter bound the validity; zero means an hour ago
	// and NotBefore plus an hour plus [DefaultValidity].
	NotBefore, NotAfter time.Time
	// SelfSigned signs the certificate with its own key instead of the
	// CA's.
	SelfSigned bool
}

// Issue issues a certificate as l describes, with a fresh key. Chains the
// CA signs include the root, so that DANE-TA clients find the trust
// anchor in the handshake (RFC 7672 §3.1.1); Leaf is set.
func (ca *CA) Issue(l Leaf) (*tls.Certificate, error) {
	if l.NotBefore.IsZero() {
		l.NotBefore = time.Now().Add(-time.Hour)
	}
	if l.NotAfter.IsZero() {
		l.NotAfter = l.NotBefore.Add(time.Hour + DefaultValidity)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: l.CommonName},
		DNSNames:    l.DNSNames,
		NotBefore:   l.NotBefore,
		NotAfter:    l.NotAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	parent, signer := ca.cert, ca.key
	if l.SelfSigned {
		parent, signer = nil, nil
	}
	leaf, key, err := Sign(tmpl, parent, signer)
	if err != nil {
		return nil, fmt.Errorf("testca: issuing a certificate for %q %q: %w", l.CommonName, l.DNSNames, err)
	}
	chain := [][]byte{leaf.Raw}
	if !l.SelfSigned {
		chain = append(chain, ca.cert.Raw)
	}
	return &tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf}, nil
}

func randomSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("testca: serial number: %w", err)
	}
	return s.Add(s, big.NewInt(1)), nil
}
