package policyd

import (
	"log/slog"

	"github.com/mailsts/mailsts/mtasts"
)

// Answer kinds, the values of Decision.Answer and of the metrics label.
const (
	AnswerSecure   = "ok_secure"
	AnswerDANE     = "ok_dane"
	AnswerDANEOnly = "ok_dane_only"
	AnswerMay      = "ok_may"
	AnswerNotFound = "notfound"
	AnswerTemp     = "temp"
	AnswerPerm     = "perm"
)

// DANE outcomes, the values of Decision.DANE.
const (
	DANESkipped  = ""          // DANE not looked at (off, override, no resolver)
	DANEAll      = "dane-only" // every MX host has usable TLSA records
	DANESome     = "dane"      // some MX hosts have TLSA records (answer: the enforced MTA-STS policy, else "OK dane")
	DANENone     = "none"      // secure proof that no MX host has TLSA records
	DANEInsecure = "insecure"  // the MX (or TLSA) answers are not DNSSEC-validated
	DANETemp     = "temp"      // a lookup failed while DANE could apply
	DANENoMX     = "no-mx"     // null MX: the domain accepts no mail
)

// Decision explains an answer: for logs, metrics and `resolve --explain`.
type Decision struct {
	Key    string
	Zone   string
	Domain string // the policy domain, "" when the key has none
	// Answer is one of the Answer* constants.
	Answer string
	// Source is where the answer comes from: "key" (the key itself decided),
	// "override", "dane", or the mtasts.Source of the policy ("cache",
	// "fetched", "stale", "none").
	Source string
	// Mode and PolicyID describe the MTA-STS policy that was applied or
	// looked at; empty without one.
	Mode     mtasts.Mode
	PolicyID string
	// MXCheck is the outcome of the live MX check of an enforce policy:
	// "" (not done), "match", "mismatch", "recovered", "recovery-failed",
	// "lookup-failed".
	MXCheck string
	// MXHosts is the live MX set the check used, and Unmatched its hosts
	// that match none of MXPatterns, the applied policy's mx patterns:
	// Postfix cannot authenticate those hosts (RFC 8461 §4.1), and when
	// every host is unmatched an enforce answer defers all mail.
	MXHosts, Unmatched, MXPatterns []string
	// DANE is one of the DANE* outcomes.
	DANE string
	// Override is the override's reason when one decided.
	Override string
	// Err is the class of the discovery error: an RFC 8460 result type,
	// a local class of package result ("dns-error", "no-policy",
	// "cache-error"), "policy-render" or "".
	Err string
	// Reason says why, in one line for people.
	Reason string
}

// LogValue implements slog.LogValuer.
func (d Decision) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("key", d.Key), slog.String("zone", d.Zone), slog.String("answer", d.Answer)}
	add := func(k, v string) {
		if v != "" {
			attrs = append(attrs, slog.String(k, v))
		}
	}
	add("domain", d.Domain)
	add("source", d.Source)
	add("mode", string(d.Mode))
	add("policy_id", d.PolicyID)
	add("mx_check", d.MXCheck)
	if len(d.Unmatched) > 0 {
		attrs = append(attrs, slog.Any("unmatched_mx", d.Unmatched))
	}
	add("dane", d.DANE)
	add("override", d.Override)
	add("error", d.Err)
	add("reason", d.Reason)
	return slog.GroupValue(attrs...)
}

// errClass returns the error class for Decision.Err.
func errClass(err error) string {
	if err == nil {
		return ""
	}
	return string(mtasts.ResultType(err))
}
