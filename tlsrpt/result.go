package tlsrpt

import "github.com/mailsts/mailsts/tlsrpt/result"

// ResultType is a result type from the RFC 8460 §6.6 registry (failure
// details' "result-type"). Unknown values are kept as they are: the registry
// grows by Expert Review (RPT-RES-12). It is [result.Type], the vocabulary
// shared with the mtasts package; the names below are kept for existing
// callers.
type ResultType = result.Type

// The initial registry values (RFC 8460 §4.3, §6.6).
const (
	// Negotiation failures (§4.3.1).
	ResultSTARTTLSNotSupported    = result.STARTTLSNotSupported    // RPT-RES-1
	ResultCertificateHostMismatch = result.CertificateHostMismatch // RPT-RES-2
	ResultCertificateExpired      = result.CertificateExpired      // RPT-RES-3
	ResultCertificateNotTrusted   = result.CertificateNotTrusted   // RPT-RES-4
	ResultValidationFailure       = result.ValidationFailure       // RPT-RES-5
	// DANE failures (§4.3.2).
	ResultTLSAInvalid   = result.TLSAInvalid   // RPT-RES-6
	ResultDNSSECInvalid = result.DNSSECInvalid // RPT-RES-7
	ResultDANERequired  = result.DANERequired  // RPT-RES-8
	// MTA-STS failures (§4.3.3).
	ResultSTSPolicyFetchError = result.STSPolicyFetchError // RPT-RES-9
	ResultSTSPolicyInvalid    = result.STSPolicyInvalid    // RPT-RES-10
	ResultSTSWebPKIInvalid    = result.STSWebPKIInvalid    // RPT-RES-11
)

// ResultTypes lists the 11 registry values in registry order
// ([result.Types]).
func ResultTypes() []ResultType { return result.Types() }

// Policy types of RFC 8460 §4.4 ("policy-type"). Policy.Type is a plain
// string so that unknown values survive parsing.
const (
	PolicyTypeTLSA          = "tlsa"
	PolicyTypeSTS           = "sts"
	PolicyTypeNoPolicyFound = "no-policy-found"
)
