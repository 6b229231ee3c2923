package cli

import (
	"context"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/outgoing"
	"github.com/mailsts/mailsts/internal/policyd"
	"github.com/mailsts/mailsts/tlsrpt"
	"github.com/mailsts/mailsts/tlsrpt/result"
)

// policyd's report observer wired to the results store: a discovery
// failure is a failed session even without a connection; every answer is
// kept per domain for the log join.
func TestPolicydReportToStore(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	ctx := context.Background()
	rep, err := openPolicydReport(ctx, "default", state, nil)
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 5, 2, 10, 0, 0, 0, time.UTC)
	rep.PolicyAnswered(policyd.PolicyAnswer{Time: day, Domain: "broken.example", Answer: policyd.AnswerNotFound,
		PolicyType: "no-policy-found", Failure: result.STSWebPKIInvalid, Detail: "certificate name mismatch"})
	rep.PolicyAnswered(policyd.PolicyAnswer{Time: day, Domain: "good.example", Answer: policyd.AnswerSecure, PolicyType: "sts",
		PolicyStrings: []string{"version: STSv1", "mode: enforce", "mx: mx.good.example", "max_age: 86400"}, MXPatterns: []string{"mx.good.example"}})
	rep.Close()

	st, err := outgoing.Open(ctx, "", state, outgoing.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ps, err := st.Policies(ctx, outgoing.DomainDay{Domain: "broken.example", Day: tlsrpt.DayRange(day).Start})
	if err != nil || len(ps) != 1 || ps[0].Summary.TotalFailureSessionCount != 1 || len(ps[0].FailureDetails) != 1 ||
		ps[0].FailureDetails[0].ResultType != result.STSWebPKIInvalid || ps[0].FailureDetails[0].AdditionalInformation != "certificate name mismatch" {
		t.Errorf("failure stored as %+v %v", ps, err)
	}
	if ps, _ := st.Policies(ctx, outgoing.DomainDay{Domain: "good.example", Day: tlsrpt.DayRange(day).Start}); len(ps) != 0 {
		t.Errorf("a successful answer counted as a session: %+v", ps)
	}
	a, found, err := st.AnswerFor(ctx, "good.example")
	if err != nil || !found || a.Policy.Type != "sts" || len(a.Policy.MXHosts) != 1 || a.Answer != policyd.AnswerSecure {
		t.Errorf("answer = %+v %v %v", a, found, err)
	}
}
