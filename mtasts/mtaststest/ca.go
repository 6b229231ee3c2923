package mtaststest

import (
	"crypto/tls"
	"crypto/x509"

	"github.com/mailsts/mailsts/internal/testca"
)

// CA is a throw-away certificate authority (ECDSA P-256) for tests: trust
// [CA.Pool] in the client under test and serve certificates from
// [CA.Issue]. It is safe for concurrent use.
type CA struct {
	root *testca.CA
}

// NewCA generates a fresh root certificate valid from an hour ago for ten
// years.
func NewCA() (*CA, error) {
	root, err := testca.New("mtaststest")
	if err != nil {
		return nil, err
	}
	return &CA{root: root}, nil
}

// Certificate returns the root certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.root.Certificate() }

// PEM returns the root certificate in PEM form, for a CA file.
func (ca *CA) PEM() []byte { return ca.root.PEM() }

// Pool returns a new pool holding only the root certificate, for
// [mtasts.Client.RootCAs] or a [tls.Config].
func (ca *CA) Pool() *x509.CertPool { return ca.root.Pool() }

// Issue returns a server certificate for the DNS names (subject alternative
// names; wildcards allowed), with a fresh key, valid from an hour ago for 90
// days. The chain includes the root.
func (ca *CA) Issue(names ...string) (*tls.Certificate, error) {
	return ca.root.Issue(testca.Leaf{DNSNames: names})
}
