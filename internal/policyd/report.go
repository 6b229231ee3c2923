package policyd

import (
	"time"

	"github.com/mailsts/mailsts/mtasts"
	"github.com/mailsts/mailsts/tlsrpt/result"
)

// ReportObserver hears, for SMTP TLS Reporting (RFC 8460), what the
// Responder found for each next-hop domain: the policy it applied (for a
// later join with the MTA's delivery log) and the discovery failures that
// a report must count even when the MTA never connected (an MTA-STS policy
// that could not be fetched, was invalid or came with a bad certificate;
// a DNSSEC lookup that failed where DANE could apply). It is called on
// every lookup, memoised answers included, so it must be fast, must not
// block and must be safe for concurrent use. policyd does not know what
// is done with it: the command line wires it to the results store.
type ReportObserver interface {
	PolicyAnswered(a PolicyAnswer)
}

// PolicyAnswer is what the Responder answered for one next-hop domain.
type PolicyAnswer struct {
	Time   time.Time
	Domain string // the policy domain, A-labels
	// Answer is one of the Answer* constants.
	Answer string
	// PolicyType is "sts" when an MTA-STS policy (enforce or testing)
	// applied, "tlsa" when DANE decided, else "no-policy-found"
	// (tlsrpt.PolicyType* values).
	PolicyType string
	// PolicyStrings are the MTA-STS policy's lines (RFC 8460 §4.5) and
	// MXPatterns its mx patterns; empty for other types.
	PolicyStrings []string
	MXPatterns    []string
	// Failure is the RFC 8460 result type of a discovery failure
	// (sts-policy-fetch-error, sts-policy-invalid, sts-webpki-invalid,
	// dnssec-invalid), "" when discovery did not fail.
	Failure result.Type
	// Detail says why, in one line (the Decision's reason).
	Detail string
}

// policyAnswer derives the report view of a decision; policy is the
// MTA-STS policy looked at, nil when none.
func policyAnswer(d *Decision, policy *mtasts.Policy, now time.Time) *PolicyAnswer {
	if d.Domain == "" {
		return nil // not a next-hop domain: nothing to report
	}
	a := &PolicyAnswer{Time: now, Domain: d.Domain, Answer: d.Answer, Detail: d.Reason, PolicyType: "no-policy-found"}
	switch {
	case d.Answer == AnswerDANEOnly || (d.Answer == AnswerDANE && d.Source == "dane"):
		a.PolicyType = "tlsa"
	case policy != nil && policy.Mode != mtasts.ModeNone:
		// Testing policies too: RFC 8460 reports sessions under the
		// policy that applied, whatever its mode.
		a.PolicyType = "sts"
		a.PolicyStrings = policy.Lines()
		a.MXPatterns = append([]string(nil), policy.MX...)
	}
	if t := result.Type(d.Err); t.Known() {
		a.Failure = t
	} else if d.DANE == DANETemp {
		// A DNSSEC lookup (MX, address or TLSA) failed where DANE could
		// apply: RFC 8460 §4.3.2 "no valid records were returned from
		// the recursive resolver".
		a.Failure = result.DNSSECInvalid
	}
	return a
}
