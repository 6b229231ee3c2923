package tlsrpt

// ResultType is a result type from the RFC 8460 §6.6 registry (failure
// details' "result-type"). Unknown values are kept as they are: the registry
// grows by Expert Review (RPT-RES-12).
type ResultType string

// The initial registry values (RFC 8460 §4.3, §6.6).
const (
	// Negotiation failures (§4.3.1).
	ResultSTARTTLSNotSupported    ResultType = "starttls-not-supported"    // RPT-RES-1
	ResultCertificateHostMismatch ResultType = "certificate-host-mismatch" // RPT-RES-2
	ResultCertificateExpired      ResultType = "certificate-expired"       // RPT-RES-3
	ResultCertificateNotTrusted   ResultType = "certificate-not-trusted"   // RPT-RES-4
	ResultValidationFailure       ResultType = "validation-failure"        // RPT-RES-5
	// DANE failures (§4.3.2).
	ResultTLSAInvalid   ResultType = "tlsa-invalid"   // RPT-RES-6
	ResultDNSSECInvalid ResultType = "dnssec-invalid" // RPT-RES-7
	ResultDANERequired  ResultType = "dane-required"  // RPT-RES-8
	// MTA-STS failures (§4.3.3).
	ResultSTSPolicyFetchError ResultType = "sts-policy-fetch-error" // RPT-RES-9
	ResultSTSPolicyInvalid    ResultType = "sts-policy-invalid"     // RPT-RES-10
	ResultSTSWebPKIInvalid    ResultType = "sts-webpki-invalid"     // RPT-RES-11
)

// ResultTypes lists the 11 registry values in registry order.
func ResultTypes() []ResultType {
	return []ResultType{
		ResultSTARTTLSNotSupported, ResultCertificateHostMismatch, ResultCertificateExpired,
		ResultCertificateNotTrusted, ResultValidationFailure, ResultTLSAInvalid,
		ResultDNSSECInvalid, ResultDANERequired, ResultSTSPolicyFetchError,
		ResultSTSPolicyInvalid, ResultSTSWebPKIInvalid,
	}
}

// Known reports whether t is one of the registry values above.
func (t ResultType) Known() bool {
	for _, k := range ResultTypes() {
		if t == k {
			return true
		}
	}
	return false
}

// WantsReasonCode reports whether RFC 8460 §4.3 says a failure-reason-code
// SHOULD accompany this result type (RPT-RES-4, RPT-RES-5).
func (t ResultType) WantsReasonCode() bool {
	return t == ResultCertificateNotTrusted || t == ResultValidationFailure
}

// Policy types of RFC 8460 §4.4 ("policy-type"). Policy.Type is a plain
// string so that unknown values survive parsing.
const (
	PolicyTypeTLSA          = "tlsa"
	PolicyTypeSTS           = "sts"
	PolicyTypeNoPolicyFound = "no-policy-found"
)
