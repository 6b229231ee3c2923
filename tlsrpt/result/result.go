// Package result is the vocabulary of outcomes of SMTP TLS Reporting
// (RFC 8460): the result types of the §6.6 registry, which a report's
// failure details carry in "result-type", and the few local classes mailsts
// uses for discovery outcomes that are not RFC 8460 result types.
//
// It is a leaf package (standard library only) so that the mtasts sender
// side, the tlsrpt report side and diagnostics can share one typed
// vocabulary without the report side's mail and DKIM dependencies.
//
// Conformance (IDs from docs/rfc-checklist.md):
//   - RPT-RES-1..11: the 11 initial registry values, in registry order
//     ([Types]).
//   - RPT-RES-12: any other string is a [Type] too, kept as it is: the
//     registry grows by Expert Review, so parsers must not reject unknown
//     values ([Type.Known] tells them apart).
package result

// Type is a result type from the RFC 8460 §6.6 registry (failure details'
// "result-type"), or one of the local classes below. Unknown values are
// kept as they are: the registry grows by Expert Review (RPT-RES-12).
type Type string

// The initial registry values (RFC 8460 §4.3, §6.6).
const (
	// Negotiation failures (§4.3.1).
	STARTTLSNotSupported    Type = "starttls-not-supported"    // RPT-RES-1
	CertificateHostMismatch Type = "certificate-host-mismatch" // RPT-RES-2
	CertificateExpired      Type = "certificate-expired"       // RPT-RES-3
	CertificateNotTrusted   Type = "certificate-not-trusted"   // RPT-RES-4
	ValidationFailure       Type = "validation-failure"        // RPT-RES-5
	// DANE failures (§4.3.2).
	TLSAInvalid   Type = "tlsa-invalid"   // RPT-RES-6
	DNSSECInvalid Type = "dnssec-invalid" // RPT-RES-7
	DANERequired  Type = "dane-required"  // RPT-RES-8
	// MTA-STS failures (§4.3.3).
	STSPolicyFetchError Type = "sts-policy-fetch-error" // RPT-RES-9
	STSPolicyInvalid    Type = "sts-policy-invalid"     // RPT-RES-10
	STSWebPKIInvalid    Type = "sts-webpki-invalid"     // RPT-RES-11
)

// Local classes: outcomes of policy discovery that RFC 8460 does not count
// as failures with a result type, named in mailsts's own output (policyd's
// decision log, the checker, resolve, metrics labels) and in its policy
// cache. They never appear in a TLS report's "result-type": [Type.Known]
// is false for them, and [Type.Local] true.
const (
	// NoPolicy: the domain has no usable MTA-STS record (none, several, or
	// a malformed one). Not a failure: RFC 8460 §4.4 reports such sessions
	// under policy-type "no-policy-found".
	NoPolicy Type = "no-policy"
	// DNSError: a DNS lookup failed (SERVFAIL, timeout); the answer is
	// unknown and the failure usually temporary.
	DNSError Type = "dns-error"
	// CacheError: the policy cache could not answer at all (a failing
	// store, the caller's context ended).
	CacheError Type = "cache-error"
)

// Types lists the 11 registry values in registry order.
func Types() []Type {
	return []Type{
		STARTTLSNotSupported, CertificateHostMismatch, CertificateExpired,
		CertificateNotTrusted, ValidationFailure, TLSAInvalid,
		DNSSECInvalid, DANERequired, STSPolicyFetchError,
		STSPolicyInvalid, STSWebPKIInvalid,
	}
}

// Locals lists the local classes, which are not registry values.
func Locals() []Type {
	return []Type{NoPolicy, DNSError, CacheError}
}

// Known reports whether t is one of the 11 registry values.
func (t Type) Known() bool {
	switch t {
	case STARTTLSNotSupported, CertificateHostMismatch, CertificateExpired,
		CertificateNotTrusted, ValidationFailure, TLSAInvalid,
		DNSSECInvalid, DANERequired, STSPolicyFetchError,
		STSPolicyInvalid, STSWebPKIInvalid:
		return true
	}
	return false
}

// Local reports whether t is one of mailsts's local classes, not an
// RFC 8460 result type.
func (t Type) Local() bool {
	return t == NoPolicy || t == DNSError || t == CacheError
}

// WantsReasonCode reports whether RFC 8460 §4.3 says a failure-reason-code
// SHOULD accompany this result type (RPT-RES-4, RPT-RES-5).
func (t Type) WantsReasonCode() bool {
	return t == CertificateNotTrusted || t == ValidationFailure
}
