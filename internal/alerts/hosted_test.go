package alerts

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/reports"
)

// fakeHosted is a HostedStatusSource the test sets by hand.
type fakeHosted struct {
	mu  sync.Mutex
	sts map[string]HostedStatus
	err error
}

func (f *fakeHosted) set(s HostedStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sts == nil {
		f.sts = map[string]HostedStatus{}
	}
	if s.PolicyHost == "" {
		s.PolicyHost = "mta-sts." + s.Domain
	}
	f.sts[s.Domain] = s
}

func (f *fakeHosted) remove(domain string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.sts, domain)
}

func (f *fakeHosted) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakeHosted) HostedStatuses(context.Context) ([]HostedStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	var out []HostedStatus
	for _, s := range f.sts {
		out = append(out, s)
	}
	return out, nil
}

// openRules returns rule|domain|key of the open alerts.
func openIDs(t *testing.T, e *Engine) []string {
	t.Helper()
	open, err := e.OpenAlerts(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, a := range open {
		ids = append(ids, a.ID)
	}
	return ids
}

// The policy host certificate of a hosted domain nears its end: the
// alert fires once inside the warning time (not before), stays open
// while a check cannot fetch the policy, and resolves after a renewal.
func TestPolicyCertExpiring(t *testing.T) {
	t.Parallel()
	clk := &clock{t: jan(1).Add(10 * time.Hour)}
	src := &fakeHosted{}
	end := jan(20).Add(12 * time.Hour)
	src.set(HostedStatus{Domain: "example.org", PolicyID: "a", LiveID: "a", CertNotAfter: end, Checked: clk.now()})
	src.set(HostedStatus{Domain: "other.example", PolicyID: "b", LiveID: "b", CertNotAfter: jan(1).AddDate(0, 3, 0), Checked: clk.now()})
	h := &hook{}
	srv := httptest.NewServer(h)
	defer srv.Close()
	e := &Engine{Rules: []Rule{&PolicyCertExpiring{Source: src, Now: clk.now}}, Notifiers: []Notifier{&Webhook{URL: srv.URL}},
		Now: clk.now, Interval: time.Hour}
	tick(t, e)
	if ids := openIDs(t, e); len(ids) != 0 {
		t.Fatalf("19 days before the end: %v", ids)
	}
	clk.set(jan(6).Add(13 * time.Hour)) // 13 days 23 hours left: inside 14 days
	tick(t, e)
	ids := openIDs(t, e)
	if len(ids) != 1 || ids[0] != RulePolicyCertExpiring+"|example.org|mta-sts.example.org" {
		t.Fatalf("13 days before the end: %v", ids)
	}
	evs := h.events()
	if len(evs) != 1 || evs[0].Type != EventFiring || !strings.Contains(evs[0].Alert.Subject, "in 13 days") {
		t.Fatalf("webhook got %+v", evs)
	}
	// A check that could not fetch the policy knows no certificate: the
	// alert stays, and does not fire again.
	src.set(HostedStatus{Domain: "example.org", PolicyID: "a", LiveID: "a"})
	clk.add(2 * time.Hour)
	tick(t, e)
	if ids := openIDs(t, e); len(ids) != 1 || len(h.events()) != 1 {
		t.Fatalf("after a failed fetch: %v, %d events", ids, len(h.events()))
	}
	// Renewed: resolved.
	src.set(HostedStatus{Domain: "example.org", PolicyID: "a", LiveID: "a", CertNotAfter: jan(6).AddDate(0, 3, 0)})
	clk.add(2 * time.Hour)
	tick(t, e)
	evs = h.events()
	if ids := openIDs(t, e); len(ids) != 0 || len(evs) != 2 || evs[1].Type != EventResolved {
		t.Fatalf("after renewal: %v, %+v", ids, evs)
	}
	// An expired certificate says so.
	src.set(HostedStatus{Domain: "example.org", PolicyID: "a", CertNotAfter: jan(6)})
	clk.add(2 * time.Hour)
	tick(t, e)
	open, _ := e.OpenAlerts(context.Background(), []string{"example.org"})
	if len(open) != 1 || !strings.Contains(open[0].Subject, "ended") {
		t.Fatalf("expired: %+v", open)
	}
}

// Days tunes the warning time.
func TestPolicyCertExpiringDays(t *testing.T) {
	t.Parallel()
	now := jan(1)
	src := &fakeHosted{}
	src.set(HostedStatus{Domain: "example.org", CertNotAfter: now.AddDate(0, 0, 20)})
	for _, c := range []struct {
		days int
		want int
	}{{0, 0}, {14, 0}, {21, 1}, {30, 1}} {
		r := &PolicyCertExpiring{Source: src, Days: c.days, Now: func() time.Time { return now }}
		got, err := r.Check(context.Background(), nil, now)
		if err != nil || len(got) != c.want {
			t.Errorf("days %d: %d findings (%v), want %d", c.days, len(got), err, c.want)
		}
	}
}

// The live TXT id differs from the served policy's: the alert fires,
// survives a failed TXT lookup, resolves when the record is updated, and
// a domain no longer hosted resolves too. A source that fails keeps the
// alerts as they are.
func TestPolicyIDMismatch(t *testing.T) {
	t.Parallel()
	clk := &clock{t: jan(1).Add(10 * time.Hour)}
	src := &fakeHosted{}
	src.set(HostedStatus{Domain: "example.org", PolicyID: "20250101", LiveID: "20241201"})
	src.set(HostedStatus{Domain: "good.example", PolicyID: "x1", LiveID: "x1"})
	src.set(HostedStatus{Domain: "norecord.example", PolicyID: "x2"})
	obs := &countObserver{}
	e := &Engine{Rules: []Rule{&PolicyIDMismatch{Source: src}}, Observer: obs, Now: clk.now, Interval: time.Hour}
	tick(t, e)
	ids := openIDs(t, e)
	if len(ids) != 1 || ids[0] != RulePolicyIDMismatch+"|example.org|" {
		t.Fatalf("open: %v", ids)
	}
	open, _ := e.OpenAlerts(context.Background(), nil)
	if s := open[0].Subject; !strings.Contains(s, "20241201") || !strings.Contains(s, "20250101") {
		t.Errorf("subject %q", s)
	}
	// The TXT lookup fails: the id seen before stands.
	src.set(HostedStatus{Domain: "example.org", PolicyID: "20250101", TXTUnknown: true})
	clk.add(time.Hour)
	tick(t, e)
	if ids := openIDs(t, e); len(ids) != 1 || obs.resolved != 0 {
		t.Fatalf("after a failed lookup: %v, resolved %d", ids, obs.resolved)
	}
	// The source fails: nothing changes.
	src.fail(errors.New("no status"))
	clk.add(time.Hour)
	if err := e.Tick(context.Background()); err == nil {
		t.Error("a failing source is not reported")
	}
	if ids := openIDs(t, e); len(ids) != 1 {
		t.Fatalf("after a failing source: %v", ids)
	}
	// Not checked yet (a restart): nothing changes, and it is no error.
	src.fail(fmt.Errorf("hosted policies: %w", ErrNotReady))
	clk.add(time.Hour)
	tick(t, e)
	if ids := openIDs(t, e); len(ids) != 1 {
		t.Fatalf("before the first check: %v", ids)
	}
	src.fail(nil)
	// The record is updated: resolved.
	src.set(HostedStatus{Domain: "example.org", PolicyID: "20250101", LiveID: "20250101"})
	clk.add(time.Hour)
	tick(t, e)
	if ids := openIDs(t, e); len(ids) != 0 || obs.resolved != 1 {
		t.Fatalf("after the update: %v, resolved %d", ids, obs.resolved)
	}
	// A new policy served before its record: fires; the domain is then
	// no longer hosted: resolves.
	src.set(HostedStatus{Domain: "good.example", PolicyID: "x3", LiveID: "x1"})
	clk.add(time.Hour)
	tick(t, e)
	if ids := openIDs(t, e); len(ids) != 1 || ids[0] != RulePolicyIDMismatch+"|good.example|" {
		t.Fatalf("good.example: %v", ids)
	}
	src.remove("good.example")
	clk.add(time.Hour)
	tick(t, e)
	if ids := openIDs(t, e); len(ids) != 0 {
		t.Fatalf("after removal: %v", ids)
	}
}

// countingRule counts its checks.
type countingRule struct {
	name   string
	checks *int
}

func (r countingRule) Name() string { return r.name }
func (r countingRule) Check(context.Context, reports.Store, time.Time) ([]Finding, error) {
	*r.checks++
	return nil, nil
}

// A rule that is not ready runs again at the next tick, once its data is
// there, without waiting for the interval; the other rules wait.
func TestNotReadyRuleRunsAgainSoon(t *testing.T) {
	t.Parallel()
	clk := &clock{t: jan(1).Add(10 * time.Hour)}
	src := &fakeHosted{}
	src.fail(fmt.Errorf("first checks running: %w", ErrNotReady))
	var others int
	e := &Engine{Rules: []Rule{countingRule{"other", &others}, &PolicyIDMismatch{Source: src}}, Now: clk.now, Interval: time.Hour}
	tick(t, e)
	clk.add(time.Minute)
	tick(t, e) // still not ready
	if others != 1 || len(openIDs(t, e)) != 0 {
		t.Fatalf("other rule checked %d times", others)
	}
	src.fail(nil)
	src.set(HostedStatus{Domain: "example.org", PolicyID: "new", LiveID: "old"})
	clk.add(time.Minute)
	tick(t, e)
	if ids := openIDs(t, e); len(ids) != 1 || others != 1 {
		t.Fatalf("a minute after the checks: %v; other rule checked %d times", ids, others)
	}
	clk.add(time.Minute)
	tick(t, e)
	if others != 1 {
		t.Errorf("the ready rule keeps running: other rule checked %d times", others)
	}
}
