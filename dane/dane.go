// Package dane implements the parts of DANE for SMTP (RFC 7672, on RFC 6698
// TLSA records) that mailsts needs: deciding whether DANE applies to a
// destination ([Applies], [Decide]: the one place mailsts decides it),
// whether a TLSA RRset is usable for SMTP, and checking a presented
// certificate chain against it.
//
// Conformance notes (checklist DANE-*):
//   - Only certificate usages DANE-TA(2) and DANE-EE(3) are usable for SMTP;
//     PKIX-TA(0) and PKIX-EE(1) are not (RFC 7672 §3.1.3, DANE-6).
//   - Selectors Cert(0) and SPKI(1); matching types Full(0), SHA2-256(1) and
//     SHA2-512(2). Other values make a record unusable (DANE-3).
//   - DANE-EE(3) ignores names and expiry: the key or certificate matches
//     or it does not (RFC 7672 §3.1.1, DANE-7).
//   - DANE-TA(2) requires a chain from the presented leaf up to a
//     certificate that matches the record, and the leaf must carry one of
//     the reference names (the TLSA base domain, usually the MX host name),
//     with wildcards only as the whole left-most label (RFC 7672 §3.2.3,
//     DANE-8). Expiry is checked for DANE-TA.
//   - Records only count when the MX RRset, the MX host's address records
//     and the TLSA RRset were all DNSSEC-validated (RFC 7672 §2.2, DANE-1);
//     [Decide] applies this to the AD bits of the answers
//     (dnsresolve.Answer.Authenticated). A lookup that fails where DANE
//     could apply is a temporary failure, never "no DANE" (DANE-5).
//   - Not done: TLSA lookups at the CNAME-expanded MX host name (RFC 7672
//     §2.2); the TLSA RRset is looked up at the MX host name as given.
package dane

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
)

// TLSA certificate usages, selectors and matching types (RFC 6698 §2.1).
const (
	UsagePKIXTA = 0
	UsagePKIXEE = 1
	UsageDANETA = 2
	UsageDANEEE = 3

	SelectorCert = 0
	SelectorSPKI = 1

	MatchFull   = 0
	MatchSHA256 = 1
	MatchSHA512 = 2
)

// Errors returned by Verify. Both mean "DANE authentication failed": the
// sender must not deliver to that host (DANE-2). RFC 8460 result type:
// tlsa-invalid.
var (
	// ErrNoUsableRecords: the RRset holds no record usable for SMTP; the
	// caller should treat the host as "mandatory TLS without
	// authentication" (DANE-3), not as a DANE failure.
	ErrNoUsableRecords = errors.New("dane: no usable TLSA records")
	// ErrNoMatch: no usable record matches the presented chain.
	ErrNoMatch = errors.New("dane: no TLSA record matches the certificate chain")
)

// Usable reports whether r can authenticate an SMTP server (DANE-6).
func Usable(r dnsresolve.TLSA) bool {
	if r.Usage != UsageDANETA && r.Usage != UsageDANEEE {
		return false
	}
	if r.Selector != SelectorCert && r.Selector != SelectorSPKI {
		return false
	}
	switch r.MatchingType {
	case MatchFull:
		return len(r.Data) > 0
	case MatchSHA256:
		return len(r.Data) == sha256.Size
	case MatchSHA512:
		return len(r.Data) == sha512.Size
	}
	return false
}

// AnyUsable reports whether at least one record of rs is usable.
func AnyUsable(rs []dnsresolve.TLSA) bool {
	for _, r := range rs {
		if Usable(r) {
			return true
		}
	}
	return false
}

// Matches reports whether cert matches record r's selector, matching type
// and data (ignoring the usage).
func Matches(r dnsresolve.TLSA, cert *x509.Certificate) bool {
	var data []byte
	switch r.Selector {
	case SelectorCert:
		data = cert.Raw
	case SelectorSPKI:
		data = cert.RawSubjectPublicKeyInfo
	default:
		return false
	}
	switch r.MatchingType {
	case MatchFull:
		return bytes.Equal(data, r.Data)
	case MatchSHA256:
		sum := sha256.Sum256(data)
		return bytes.Equal(sum[:], r.Data)
	case MatchSHA512:
		sum := sha512.Sum512(data)
		return bytes.Equal(sum[:], r.Data)
	}
	return false
}

// Record returns the TLSA record of the given usage, selector and matching
// type for cert, as a server operator would publish it.
func Record(usage, selector, matchingType uint8, cert *x509.Certificate) dnsresolve.TLSA {
	r := dnsresolve.TLSA{Usage: usage, Selector: selector, MatchingType: matchingType}
	data := cert.Raw
	if selector == SelectorSPKI {
		data = cert.RawSubjectPublicKeyInfo
	}
	switch matchingType {
	case MatchSHA256:
		sum := sha256.Sum256(data)
		r.Data = sum[:]
	case MatchSHA512:
		sum := sha512.Sum512(data)
		r.Data = sum[:]
	default:
		r.Data = bytes.Clone(data)
	}
	return r
}

// Verify checks the chain a server presented (leaf first, as in
// tls.ConnectionState.PeerCertificates) against the TLSA RRset. names are
// the reference identifiers for DANE-TA (the TLSA base domain and, per
// Postfix, the next-hop domain). It returns the record that matched.
func Verify(records []dnsresolve.TLSA, chain []*x509.Certificate, names []string, now time.Time) (dnsresolve.TLSA, error) {
	if !AnyUsable(records) {
		return dnsresolve.TLSA{}, ErrNoUsableRecords
	}
	if len(chain) == 0 {
		return dnsresolve.TLSA{}, fmt.Errorf("%w: no certificate presented", ErrNoMatch)
	}
	leaf := chain[0]
	var taErr error
	for _, r := range records {
		if !Usable(r) {
			continue
		}
		switch r.Usage {
		case UsageDANEEE:
			// RFC 7672 §3.1.1: no name or validity checks for DANE-EE.
			if Matches(r, leaf) {
				return r, nil
			}
		case UsageDANETA:
			if err := verifyTA(r, chain, names, now); err == nil {
				return r, nil
			} else if taErr == nil {
				taErr = err
			}
		}
	}
	if taErr != nil {
		return dnsresolve.TLSA{}, fmt.Errorf("%w: %v", ErrNoMatch, taErr)
	}
	return dnsresolve.TLSA{}, ErrNoMatch
}

// verifyTA checks a DANE-TA(2) record: some certificate of the presented
// chain (other than a self-issued leaf standing alone) matches r, the leaf
// chains to it, and the leaf is valid for one of names.
func verifyTA(r dnsresolve.TLSA, chain []*x509.Certificate, names []string, now time.Time) error {
	var anchor *x509.Certificate
	for _, c := range chain[1:] {
		if Matches(r, c) {
			anchor = c
			break
		}
	}
	if anchor == nil {
		return errors.New("no certificate in the chain matches the DANE-TA record")
	}
	roots := x509.NewCertPool()
	roots.AddCert(anchor)
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	var lastErr error
	for _, name := range names {
		_, err := chain[0].Verify(x509.VerifyOptions{
			DNSName:       name,
			Roots:         roots,
			Intermediates: inter,
			CurrentTime:   now,
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
		})
		if err == nil {
			return nil
		}
		lastErr = err
	}
	if lastErr == nil {
		return errors.New("no reference name to check the certificate against")
	}
	return lastErr
}
