package publish

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// GetCertificateFunc picks the certificate for a TLS handshake, the
// signature of tls.Config.GetCertificate. The ACME source plugs in here
// (it returns one from its own storage, issuing on demand); StaticCerts
// is the source for certificates managed outside mailsts.
type GetCertificateFunc func(*tls.ClientHelloInfo) (*tls.Certificate, error)

// ErrNoCertificate is returned for a handshake whose server name no
// certificate covers: RFC 8461 §7.1 (STS-PUB-3) wants a matching chain
// or an aborted handshake, never another name's certificate.
var ErrNoCertificate = errors.New("publish: no certificate for this server name")

// StaticCerts holds certificates read from files, indexed by the DNS
// names of their leaf (a wildcard name covers one label).
type StaticCerts struct {
	byName map[string]*tls.Certificate
	first  *tls.Certificate
}

// LoadStaticCerts reads the certificate and key files certFile/keyFile
// (both, or neither) and every NAME.crt with its NAME.key in dir (when
// dir is not empty).
func LoadStaticCerts(certFile, keyFile, dir string) (*StaticCerts, error) {
	s := &StaticCerts{byName: map[string]*tls.Certificate{}}
	if certFile != "" {
		if err := s.add(certFile, keyFile); err != nil {
			return nil, err
		}
	}
	if dir != "" {
		crts, err := filepath.Glob(filepath.Join(dir, "*.crt"))
		if err != nil {
			return nil, err
		}
		if len(crts) == 0 {
			if _, err := os.Stat(dir); err != nil {
				return nil, fmt.Errorf("cert_dir: %w", err)
			}
		}
		for _, c := range crts {
			if err := s.add(c, strings.TrimSuffix(c, ".crt")+".key"); err != nil {
				return nil, err
			}
		}
	}
	if s.first == nil {
		return nil, errors.New("no certificate: give tls_cert and tls_key, or a cert_dir holding NAME.crt and NAME.key")
	}
	return s, nil
}

func (s *StaticCerts) add(certFile, keyFile string) error {
	kp, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return fmt.Errorf("%s: %w", certFile, err)
	}
	leaf, err := x509.ParseCertificate(kp.Certificate[0])
	if err != nil {
		return fmt.Errorf("%s: %w", certFile, err)
	}
	kp.Leaf = leaf
	if s.first == nil {
		s.first = &kp
	}
	for _, n := range leaf.DNSNames {
		n = strings.ToLower(n)
		if _, dup := s.byName[n]; !dup {
			s.byName[n] = &kp
		}
	}
	return nil
}

// Names returns the DNS names covered, for the start-up log.
func (s *StaticCerts) Names() []string {
	var out []string
	for n := range s.byName {
		out = append(out, n)
	}
	return out
}

// Covers reports whether some certificate covers host.
func (s *StaticCerts) Covers(host string) bool {
	_, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: host})
	return err == nil
}

// GetCertificate returns the certificate for hello's server name: an
// exact name, else a wildcard one label up. Without SNI the first
// certificate loaded is presented; an unknown name fails the handshake.
func (s *StaticCerts) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name := strings.TrimSuffix(strings.ToLower(hello.ServerName), ".")
	if name == "" {
		return s.first, nil
	}
	if c, ok := s.byName[name]; ok {
		return c, nil
	}
	if _, parent, ok := strings.Cut(name, "."); ok {
		if c, ok := s.byName["*."+parent]; ok {
			return c, nil
		}
	}
	return nil, fmt.Errorf("%w: %q", ErrNoCertificate, hello.ServerName)
}

// TLSConfig returns the policy host's TLS configuration: certificates
// from get, TLS 1.2 or later (senders require it, STS-FETCH-14),
// HTTP/1.1 only.
func TLSConfig(get GetCertificateFunc) *tls.Config {
	return &tls.Config{GetCertificate: get, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
}
