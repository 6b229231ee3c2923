// Package trustroots chooses the roots that verify MTA-STS policy hosts
// (RFC 8461 §3.3: the policy host's certificate must chain to a trusted
// root): the operating system's store, a curated set vendored with mailsts
// (curated.pem, selected by curated.list from Debian's ca-certificates and
// refreshed with `make curated-roots`), private roots from a file, and
// extra or replacement roots per domain suffix.
//
// A [Set] answers "which pool verifies the policy host of this domain";
// [Describe] says which root a verified chain depends on, and whether it is
// in the curated set.
package trustroots

import (
	"crypto/sha256"
	"crypto/x509"
	_ "embed"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/mailsts/mailsts/dnsresolve"
)

//go:embed curated.pem
var curatedPEM []byte // read only

// Base names of a Set's default pool.
const (
	System  = "system"  // the operating system's store (SSL_CERT_FILE/SSL_CERT_DIR override it)
	Curated = "curated" // the vendored curated set
)

// ErrRoots is wrapped by every error of this package: a root file or name
// is wrong.
var ErrRoots = errors.New("trustroots")

// CuratedCerts returns the certificates of the curated set, in the order
// of curated.list.
func CuratedCerts() ([]*x509.Certificate, error) {
	return parsePEM(curatedPEM, "curated.pem")
}

// parsePEM reads every CERTIFICATE block of data.
func parsePEM(data []byte, name string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, data = pem.Decode(data)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrRoots, name, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %s holds no PEM certificate", ErrRoots, name)
	}
	return out, nil
}

// LoadFile reads the PEM certificates of a file.
func LoadFile(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRoots, err)
	}
	return parsePEM(data, path)
}

// BasePool returns a fresh pool of the named base ("" means System) with
// the certificates of caFile added when it is not "".
func BasePool(base, caFile string) (*x509.CertPool, error) {
	var pool *x509.CertPool
	switch base {
	case "", System:
		p, err := x509.SystemCertPool()
		if err != nil || p == nil {
			p = x509.NewCertPool()
		}
		pool = p
	case Curated:
		certs, err := CuratedCerts()
		if err != nil {
			return nil, err
		}
		pool = x509.NewCertPool()
		for _, c := range certs {
			pool.AddCert(c)
		}
	default:
		return nil, fmt.Errorf("%w: unknown root set %q (system or curated)", ErrRoots, base)
	}
	if caFile != "" {
		certs, err := LoadFile(caFile)
		if err != nil {
			return nil, err
		}
		for _, c := range certs {
			pool.AddCert(c)
		}
	}
	return pool, nil
}

// Zone gives the policy hosts of some domains roots of their own.
type Zone struct {
	// Domains are domain suffixes: each covers itself and its subdomains.
	Domains []string
	// Certs are the zone's roots.
	Certs []*x509.Certificate
	// Replace makes Certs the only roots for the zone; otherwise they are
	// added to the default pool.
	Replace bool
}

type zonePool struct {
	suffix string
	pool   *x509.CertPool
}

// Set maps policy domains to root pools.
type Set struct {
	def   *x509.CertPool
	zones []zonePool // longest suffix first
}

// NewSet returns a Set answering def, except for domains of a zone. A
// domain in several zones takes the longest matching suffix.
func NewSet(def *x509.CertPool, zones []Zone) (*Set, error) {
	s := &Set{def: def}
	for _, z := range zones {
		var pool *x509.CertPool
		if z.Replace || def == nil {
			pool = x509.NewCertPool()
		} else {
			pool = def.Clone()
		}
		for _, c := range z.Certs {
			pool.AddCert(c)
		}
		for _, d := range z.Domains {
			n, err := dnsresolve.Normalize(strings.TrimPrefix(d, "."))
			if err != nil || n == "" {
				return nil, fmt.Errorf("%w: zone domain %q: %v", ErrRoots, d, err)
			}
			s.zones = append(s.zones, zonePool{suffix: n, pool: pool})
		}
	}
	slices.SortStableFunc(s.zones, func(a, b zonePool) int { return len(b.suffix) - len(a.suffix) })
	return s, nil
}

// For returns the pool verifying the policy host of domain (a normalized
// name): that of the longest zone suffix matching it, else the default.
func (s *Set) For(domain string) *x509.CertPool {
	for _, z := range s.zones {
		if domain == z.suffix || strings.HasSuffix(domain, "."+z.suffix) {
			return z.pool
		}
	}
	return s.def
}

// Default returns the default pool.
func (s *Set) Default() *x509.CertPool { return s.def }

// Root describes the root a chain depends on.
type Root struct {
	Subject string `json:"subject"`
	// SHA256 is the fingerprint of the root certificate (hex).
	SHA256 string `json:"sha256"`
	// Curated is true when the root is in the curated set.
	Curated bool `json:"curated"`
}

// Describe returns the root of a verified chain (its last certificate).
func Describe(verified []*x509.Certificate) (Root, bool) {
	if len(verified) == 0 {
		return Root{}, false
	}
	root := verified[len(verified)-1]
	sum := sha256.Sum256(root.Raw)
	r := Root{Subject: root.Subject.String(), SHA256: hex.EncodeToString(sum[:])}
	if certs, err := CuratedCerts(); err == nil {
		r.Curated = slices.ContainsFunc(certs, func(c *x509.Certificate) bool { return c.Equal(root) })
	}
	return r, true
}
