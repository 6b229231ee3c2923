package checker

import (
	"log/slog"
	"time"

	"github.com/mailsts/mailsts/internal/trustroots"
	"github.com/mailsts/mailsts/tlsrpt/result"
)

// SchemaVersion is the version of the JSON form of Report. It changes only
// when a field is removed or changes meaning; new fields may appear within
// a version (consumers must ignore unknown fields).
const SchemaVersion = 1

// Verdicts of a Report.
const (
	VerdictPass  = "pass"  // only ok and info findings
	VerdictWarn  = "warn"  // at least one warning, no failure
	VerdictFail  = "fail"  // at least one failure
	VerdictError = "error" // the check could not run (invalid domain name)
)

// Report is the result of checking one domain. Its JSON form is the
// documented, stable schema of `mailsts check --json` (docs/check.md).
type Report struct {
	// Schema is SchemaVersion.
	Schema int `json:"schema"`
	// Domain is the checked domain, normalized: lowercase A-labels.
	Domain string `json:"domain"`
	// Input is the name as given, when it differs from Domain (IDN input,
	// case, trailing dot).
	Input string `json:"input,omitempty"`
	// Started is when the check began (UTC); DurationMS how long it took.
	Started    time.Time `json:"started"`
	DurationMS int64     `json:"duration_ms"`
	// Strict is whether the check judged as the strictest sender would.
	Strict bool `json:"strict"`
	// Verdict is pass, warn, fail or error: the worst finding.
	Verdict string `json:"verdict"`
	// Error explains VerdictError.
	Error string `json:"error,omitempty"`
	// Counts counts findings by severity.
	Counts Counts `json:"counts"`
	// STS summarizes the MTA-STS record and policy.
	STS STSSummary `json:"sts"`
	// MX has one entry per MX host, in MX preference order.
	MX []MXResult `json:"mx"`
	// TLSRPT summarizes the reporting record.
	TLSRPT TLSRPTSummary `json:"tlsrpt"`
	// Clients has one entry per RFC 8314 endpoint probed (--clients).
	Clients []EndpointResult `json:"clients,omitempty"`
	// ClientSummary is what a latching mail client would use and
	// remember (--clients with an account, domain or host).
	ClientSummary *ClientSummary `json:"client_summary,omitempty"`
	// Findings lists every finding, grouped in the order of Groups.
	Findings []Finding `json:"findings"`
}

// LogValue implements slog.LogValuer.
func (r *Report) LogValue() slog.Value {
	return slog.GroupValue(slog.String("domain", r.Domain), slog.String("verdict", r.Verdict),
		slog.Int("fail", r.Counts.Fail), slog.Int("warn", r.Counts.Warn), slog.Int64("ms", r.DurationMS))
}

// Counts counts findings by severity.
type Counts struct {
	OK   int `json:"ok"`
	Info int `json:"info"`
	Warn int `json:"warn"`
	Fail int `json:"fail"`
}

// STSSummary is what the check learned about the MTA-STS policy.
type STSSummary struct {
	// Record is the selected v=STSv1 TXT record as published, ID its id.
	Record string `json:"record,omitempty"`
	ID     string `json:"id,omitempty"`
	// RecordName is where the record was found when _mta-sts is a CNAME.
	RecordName string `json:"record_name,omitempty"`
	// PolicyURL is where the policy is fetched from.
	PolicyURL string `json:"policy_url"`
	// Fetch describes the HTTPS exchange; nil when no fetch was made.
	Fetch *FetchSummary `json:"fetch,omitempty"`
	// Mode, MX and MaxAge are from the parsed policy (empty without one).
	Mode   string   `json:"mode,omitempty"`
	MX     []string `json:"mx_patterns,omitempty"`
	MaxAge int64    `json:"max_age,omitempty"`
	// Result is "" when a usable policy was found, otherwise the RFC 8460
	// result type of the failure ([result.STSPolicyFetchError], …) or the
	// local class [result.NoPolicy] or [result.DNSError].
	Result result.Type `json:"result,omitempty"`
}

// FetchSummary describes the policy fetch.
type FetchSummary struct {
	Status      int       `json:"status,omitempty"`
	ContentType string    `json:"content_type,omitempty"`
	Bytes       int       `json:"bytes"`
	TLSVersion  string    `json:"tls_version,omitempty"`
	Cert        *CertInfo `json:"cert,omitempty"`
	Error       string    `json:"error,omitempty"`
	// Root is the root the verified chain depends on.
	Root *trustroots.Root `json:"root,omitempty"`
}

// CertInfo describes a presented leaf certificate.
type CertInfo struct {
	Subject  string    `json:"subject"`
	Issuer   string    `json:"issuer"`
	DNSNames []string  `json:"dns_names"`
	NotAfter time.Time `json:"not_after"`
	DaysLeft int       `json:"days_left"`
	// Problem is "" for a certificate valid for the name checked, else
	// "expired", "not-yet-valid", "name-mismatch" or "untrusted".
	Problem string `json:"problem,omitempty"`
}

// MXResult is the outcome of checking one MX host.
type MXResult struct {
	Host string `json:"host"`
	Pref uint16 `json:"pref"`
	// Addrs are the addresses found; the probe used the first one.
	Addrs []string `json:"addrs"`
	// Pattern is the first policy mx pattern the host matches ("" for none
	// or no policy).
	Pattern string `json:"pattern,omitempty"`
	// Probe is what the SMTP conversation showed.
	Probe ProbeResult `json:"probe"`
	// DANE is "none", "insecure", "unusable", "valid", "invalid" or
	// "lookup-error".
	DANE string `json:"dane"`
	// STSDecision is what a sender applying the domain's MTA-STS policy
	// would do with this host: "deliver", "refuse", "report" (testing
	// mode: deliver and report the failure) or "n/a" (no policy).
	STSDecision string `json:"sts_decision"`
}

// ProbeResult is what an SMTP STARTTLS probe of one host saw.
type ProbeResult struct {
	// Stage is the last step reached: "dns", "connect", "banner", "ehlo",
	// "starttls", "handshake" or "done".
	Stage       string    `json:"stage"`
	Banner      string    `json:"banner,omitempty"`
	STARTTLS    bool      `json:"starttls"`
	TLSVersion  string    `json:"tls_version,omitempty"`
	CipherSuite string    `json:"cipher_suite,omitempty"`
	Cert        *CertInfo `json:"cert,omitempty"`
	Error       string    `json:"error,omitempty"`
	// ElapsedMS is the duration of the probe.
	ElapsedMS int64 `json:"elapsed_ms"`
}

// TLSRPTSummary is what the check learned about the TLSRPT record.
type TLSRPTSummary struct {
	Record string   `json:"record,omitempty"`
	RUA    []string `json:"rua,omitempty"`
}

// EndpointResult is the outcome of probing one RFC 8314 endpoint.
type EndpointResult struct {
	Endpoint
	Probe ProbeResult `json:"probe"`
	// Level is the confidentiality level reached: validated,
	// tls-unvalidated, cleartext, or unknown when no session was judged.
	Level string `json:"level,omitempty"`
	// Accept is whether a mail client with the default policy (TLS 1.2
	// or later, validated certificate; RFC 8314 §5.2) accepts the
	// endpoint; Reasons say why not.
	Accept  bool     `json:"accept"`
	Reasons []string `json:"reasons,omitempty"`
}
