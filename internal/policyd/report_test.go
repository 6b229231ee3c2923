package policyd

import (
	"context"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/testnet"
	"github.com/mailsts/mailsts/tlsrpt/result"
)

type reportLog struct {
	mu  sync.Mutex
	got []PolicyAnswer
}

func (l *reportLog) PolicyAnswered(a PolicyAnswer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, a)
}

func (l *reportLog) take() []PolicyAnswer {
	l.mu.Lock()
	defer l.mu.Unlock()
	g := l.got
	l.got = nil
	return g
}

// The ReportObserver hears the policy applied per next hop (for a join
// with the MTA's log) and discovery failures as RFC 8460 result types
// (RPT-RES-9, RPT-RES-10, RPT-RES-11), on memoised answers too.
func TestReportObserver(t *testing.T) {
	t.Parallel()
	bad := stsDomain("badcert.example", "b1", "enforce", "mx.badcert.example")
	bad.Policy.Cert = testnet.CertWrongName
	inv := stsDomain("invalid.example", "i1", "enforce", "mx.invalid.example")
	inv.Policy.Body = "version: STSv1\nmode: sometimes\n"
	down := stsDomain("down.example", "d1", "enforce", "mx.down.example")
	down.Policy.Status = 500
	test := stsDomain("testing.example", "t1", "testing", "mx.testing.example")
	plain := testnet.Domain{Name: "plain.example", MX: []testnet.MXHost{{Name: "mx.plain.example", Pref: 10}}}
	e := newEnv(t, nil, f2Domain(), bad, inv, down, test, plain)
	log := &reportLog{}
	e.r.Report = log
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	f2Lines := []string{"version: STSv1", "mode: enforce", "mx: mail.example.com", "mx: *.example.net", "mx: backupmx.example.com", "max_age: 604800"}
	for key, want := range map[string]PolicyAnswer{
		"example.com": {Domain: "example.com", Answer: AnswerSecure, PolicyType: "sts", PolicyStrings: f2Lines,
			MXPatterns: []string{"mail.example.com", "*.example.net", "backupmx.example.com"}},
		"testing.example": {Domain: "testing.example", Answer: AnswerNotFound, PolicyType: "sts",
			PolicyStrings: []string{"version: STSv1", "mode: testing", "mx: mx.testing.example", "max_age: 86400"},
			MXPatterns:    []string{"mx.testing.example"}},
		"plain.example":   {Domain: "plain.example", Answer: AnswerNotFound, PolicyType: "no-policy-found"},
		"badcert.example": {Domain: "badcert.example", Answer: AnswerNotFound, PolicyType: "no-policy-found", Failure: result.STSWebPKIInvalid},
		"invalid.example": {Domain: "invalid.example", Answer: AnswerNotFound, PolicyType: "no-policy-found", Failure: result.STSPolicyInvalid},
		"down.example":    {Domain: "down.example", Answer: AnswerNotFound, PolicyType: "no-policy-found", Failure: result.STSPolicyFetchError},
	} {
		for round := range 2 { // the second lookup is answered from the memo where memoable
			e.r.Lookup(ctx, "postfix", key)
			got := log.take()
			if len(got) != 1 {
				t.Fatalf("%s round %d: %d reports", key, round, len(got))
			}
			g := got[0]
			if g.Detail == "" || !g.Time.Equal(e.clock.Now()) {
				t.Errorf("%s: detail %q, time %v", key, g.Detail, g.Time)
			}
			g.Detail, g.Time = "", time.Time{}
			if !reflect.DeepEqual(g, want) {
				t.Errorf("%s round %d:\n got %+v\nwant %+v", key, round, g, want)
			}
		}
		e.clock.Advance(time.Second)
	}
	// Keys that are no next-hop domain report nothing.
	e.r.Lookup(ctx, "postfix", "[192.0.2.1]")
	e.r.Lookup(ctx, "postfix", ".example.com")
	if got := log.take(); len(got) != 0 {
		t.Errorf("non-domain keys reported %+v", got)
	}
}

// The report view of DANE decisions: a failed DNSSEC lookup where DANE
// could apply is dnssec-invalid (RPT-RES-7); DANE answers are tlsa.
func TestPolicyAnswerFromDecision(t *testing.T) {
	t.Parallel()
	now := time.Unix(1e9, 0)
	for name, c := range map[string]struct {
		d        Decision
		typ      string
		failure  result.Type
		reported bool
	}{
		"dane temp":     {Decision{Domain: "a.example", Answer: AnswerTemp, DANE: DANETemp, Err: string(result.DNSError)}, "no-policy-found", result.DNSSECInvalid, true},
		"dane-only":     {Decision{Domain: "a.example", Answer: AnswerDANEOnly, DANE: DANEAll, Source: "dane"}, "tlsa", "", true},
		"dane some":     {Decision{Domain: "a.example", Answer: AnswerDANE, DANE: DANESome, Source: "dane"}, "tlsa", "", true},
		"cache error":   {Decision{Domain: "a.example", Answer: AnswerTemp, Err: string(result.CacheError)}, "no-policy-found", "", true},
		"no domain":     {Decision{Answer: AnswerNotFound}, "", "", false},
		"dns error":     {Decision{Domain: "a.example", Answer: AnswerTemp, Err: string(result.DNSError)}, "no-policy-found", "", true},
		"override dane": {Decision{Domain: "a.example", Answer: AnswerDANE, Source: "override"}, "no-policy-found", "", true},
	} {
		a := policyAnswer(&c.d, nil, now)
		if !c.reported {
			if a != nil {
				t.Errorf("%s: reported %+v", name, a)
			}
			continue
		}
		if a == nil || a.PolicyType != c.typ || a.Failure != c.failure || !a.Time.Equal(now) {
			t.Errorf("%s: %+v, want type %q failure %q", name, a, c.typ, c.failure)
		}
	}
}
