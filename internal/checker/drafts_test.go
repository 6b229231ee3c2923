package checker

import (
	"context"
	"strings"
	"testing"

	"github.com/mailsts/mailsts/internal/testnet"
)

// Each draft form of the default scenario produces its finding, saying
// what it is and the exact record or file to publish instead.
func TestDraftForms(t *testing.T) {
	t.Parallel()
	n := defaultNet(t)
	c := newChecker(t, n, false)
	for _, tc := range []struct {
		domain string
		w      want
		msg    string // in the message
		fix    string // in the fix
	}{
		{"draft-sts.example", want{"sts.record.draft-name", SeverityWarn, ""}, "_smtp_sts.draft-sts.example TXT \"v=STSv1; id=2016draft1\" is the record name of the first MTA-STS drafts",
			"publish instead: _mta-sts.draft-sts.example TXT \"v=STSv1; id=2016draft1\""},
		{"draft-sts.example", want{"sts.policy.draft-json", SeverityWarn, ""}, "its mode \"report\" is now \"testing\"",
			"publish instead at https://mta-sts.draft-sts.example/.well-known/mta-sts.txt, as text/plain: version: STSv1 ⏎ mode: testing ⏎ mx: mx1.draft-sts.example ⏎ max_age: 86400"},
		{"draft-version.example", want{"sts.record.draft-version", SeverityWarn, ""}, "has the version \"v=STS1\"",
			"publish instead: _mta-sts.draft-version.example TXT \"v=STSv1; id=draftversion1\""},
		{"draft-report.example", want{"sts.policy.draft-mode", SeverityWarn, ""}, "no current sender accepts it",
			"publish instead: \"mode: testing\" in https://mta-sts.draft-report.example/.well-known/mta-sts.txt"},
		{"draft-tlsrpt.example", want{"tlsrpt.draft-name", SeverityWarn, ""}, "no current sender looks it up (RFC 8460 §3 uses _smtp._tls.draft-tlsrpt.example): the domain receives no TLS reports",
			"publish instead: _smtp._tls.draft-tlsrpt.example TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@draft-tlsrpt.example\""},
	} {
		r := c.Check(context.Background(), tc.domain)
		record(r)
		var f *Finding
		for i := range r.Findings {
			if r.Findings[i].ID == tc.w.id {
				f = &r.Findings[i]
			}
		}
		if f == nil || f.Severity != tc.w.sev || !strings.Contains(f.Message, tc.msg) || !strings.Contains(f.Fix, tc.fix) || !strings.Contains(f.Message, "no current sender") {
			t.Errorf("%s: %s: got %+v\n%s", tc.domain, tc.w.id, f, dump(r))
		}
	}
	// A good domain produces none of them.
	r := c.Check(context.Background(), "enforce.example")
	for _, f := range r.Findings {
		if strings.Contains(f.ID, "draft") {
			t.Errorf("enforce.example: %+v", f)
		}
	}
}

// STSV1 (a mis-cased version) is explained like the drafts' v=STS1; a
// leftover draft record next to the current one is only info.
func TestDraftFormsMore(t *testing.T) {
	t.Parallel()
	n, err := testnet.Start(context.Background(), &testnet.Scenario{Domains: []testnet.Domain{
		{Name: "upper.test", STSTXT: [][]string{{"v=STSV1; id=upper1"}}, MX: []testnet.MXHost{{Name: "mx.upper.test"}}},
		{Name: "both.test", STSTXT: [][]string{{"v=STSv1; id=both1"}}, MX: []testnet.MXHost{{Name: "mx.both.test"}},
			Policy:    &testnet.PolicyHost{Body: "version: STSv1\nmode: enforce\nmx: mx.both.test\nmax_age: 86400\n"},
			TLSRPTTXT: [][]string{{"v=TLSRPTv1; rua=mailto:r@both.test"}},
			Records:   []string{`_smtp_sts.both.test. 300 IN TXT "v=STSv1; id=old"`, `_smtp-tlsrpt.both.test. 300 IN TXT "v=TLSRPTv1; rua=mailto:r@both.test"`}},
	}}, testnet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	c := newChecker(t, n, false)
	r := c.Check(context.Background(), "upper.test")
	if !hasFinding(r, want{"sts.record.draft-version", SeverityWarn, ""}) {
		t.Errorf("upper.test\n%s", dump(r))
	}
	r = c.Check(context.Background(), "both.test")
	if got := n.Requests("both.test"); got != 1 {
		t.Errorf("both.test: %d policy requests, want 1 (no JSON fetch when a policy is in effect)", got)
	}
	if !hasFinding(r, want{"sts.record.draft-name", SeverityInfo, ""}) || !hasFinding(r, want{"tlsrpt.draft-name", SeverityInfo, ""}) {
		t.Errorf("both.test\n%s", dump(r))
	}
	for _, v := range []string{"v=STSv1; id=1", "v=STSv2", "hello"} {
		if _, ok := DraftVersion(v); ok {
			t.Errorf("DraftVersion(%q) true", v)
		}
	}
}
