package cli

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/alerts"
	"github.com/mailsts/mailsts/internal/dashboard"
	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/mtasts"
)

// TestServeHostedAlerts: the publishing-side rules read serve's checks
// of its hosted domains (on the test network): stale.example's expiring
// policy host certificate and its stale TXT id, badmx.example's TXT id;
// nothing for hosted.example (all right) nor nolive.example (no record).
// Before the first check the rules are not ready.
func TestServeHostedAlerts(t *testing.T) {
	t.Parallel()
	n := pubNet.Net(t)
	cfg := pubConfigDomains(t, n, fourDomains, "")
	sr, port := startPublishRun(t, cfg)
	pr := sr.publish
	src := hostedStatuses{pr: func() *publishRun { return pr }}
	now := time.Now()
	e := &alerts.Engine{Rules: []alerts.Rule{&alerts.PolicyCertExpiring{Source: src}, &alerts.PolicyIDMismatch{Source: src}},
		Now: func() time.Time { return now }}
	if _, err := src.HostedStatuses(context.Background()); !errors.Is(err, alerts.ErrNotReady) {
		t.Errorf("before the first check: %v, want ErrNotReady", err)
	}
	if _, err := (hostedStatuses{pr: func() *publishRun { return nil }}).HostedStatuses(context.Background()); !errors.Is(err, alerts.ErrNotReady) {
		t.Errorf("without a policy host: %v, want ErrNotReady", err)
	}
	if err := e.Tick(context.Background()); err != nil {
		t.Fatalf("a tick before the first check: %v", err)
	}
	dns, _ := dnsresolve.NewClient(n.DNSAddr())
	c := statusChecker(&mtasts.Client{DNS: dns, RootCAs: n.RootCAs(), HTTPSPort: port, Timeout: time.Hour}, n.SMTPPort())
	pr.noteStatuses(c.CheckAll(context.Background(), pr.current(), nil, nil))
	now = now.Add(time.Minute) // not-ready rules run at the next tick
	if err := e.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	open, _ := e.OpenAlerts(context.Background(), nil)
	var ids []string
	for _, a := range open {
		ids = append(ids, a.ID)
	}
	slices.Sort(ids)
	want := []string{
		alerts.RulePolicyCertExpiring + "|stale.example|mta-sts.stale.example",
		alerts.RulePolicyIDMismatch + "|badmx.example|",
		alerts.RulePolicyIDMismatch + "|stale.example|",
	}
	if !slices.Equal(ids, want) {
		t.Errorf("open alerts %v, want %v", ids, want)
	}
	for _, a := range open {
		if a.Rule == alerts.RulePolicyIDMismatch && a.Domain == "stale.example" && !strings.Contains(a.Subject, "old1") {
			t.Errorf("subject %q does not name the live id", a.Subject)
		}
	}
}

// TestServeAlertsHostedRules: the publishing-side rules are on by
// default with a policy host that checks, refused without one.
func TestServeAlertsHostedRules(t *testing.T) {
	t.Parallel()
	src := hostedStatuses{pr: func() *publishRun { return nil }}
	names := func(e *alerts.Engine) []string {
		var out []string
		for _, r := range e.Rules {
			out = append(out, r.Name())
		}
		return out
	}
	var cfg reports.AlertsConfig
	cfg.Enabled = true
	e, err := newServeAlerts(cfg, nil, t.TempDir(), src, prometheus.NewRegistry(), nil)
	if err != nil || !slices.Contains(names(e), alerts.RulePolicyCertExpiring) || !slices.Contains(names(e), alerts.RulePolicyIDMismatch) {
		t.Errorf("with a policy host: %v %v", names(e), err)
	}
	e, err = newServeAlerts(cfg, nil, t.TempDir(), nil, prometheus.NewRegistry(), nil)
	if err != nil || len(names(e)) != 3 {
		t.Errorf("without a policy host: %v %v", names(e), err)
	}
	cfg.Rules = []string{alerts.RulePolicyIDMismatch}
	if _, err := newServeAlerts(cfg, nil, t.TempDir(), nil, prometheus.NewRegistry(), nil); err == nil || !strings.Contains(err.Error(), "publish") {
		t.Errorf("policy-id-mismatch without a policy host: %v", err)
	}
	cfg.Rules = []string{alerts.RulePolicyCertExpiring}
	cfg.PolicyCertExpiring.Days = 30
	e, err = newServeAlerts(cfg, nil, t.TempDir(), src, prometheus.NewRegistry(), nil)
	if err != nil || len(e.Rules) != 1 || e.Rules[0].(*alerts.PolicyCertExpiring).Days != 30 {
		t.Errorf("days 30: %+v %v", e, err)
	}
	cfg.PolicyCertExpiring.Days = -1
	if _, err := newServeAlerts(cfg, nil, t.TempDir(), src, prometheus.NewRegistry(), nil); err == nil {
		t.Error("negative days accepted")
	}
}

// fakeAlerts lists fixed open alerts.
type fakeAlerts []dashboard.Alert

func (f fakeAlerts) OpenAlerts(_ context.Context, domains []string) ([]dashboard.Alert, error) {
	var out []dashboard.Alert
	for _, a := range f {
		if len(domains) == 0 || slices.Contains(domains, a.Domain) {
			out = append(out, a)
		}
	}
	return out, nil
}

// TestPoliciesPageAlerts: the hosted policies page shows the open
// alerts of the publishing rules on their domain's row (escaped), not
// those of the report rules.
func TestPoliciesPageAlerts(t *testing.T) {
	t.Parallel()
	n := pubNet.Net(t)
	sr, _ := startPublishRun(t, pubConfigDomains(t, n, fourDomains, ""))
	hash, err := dashboard.HashPassword("a long password", 4)
	if err != nil {
		t.Fatal(err)
	}
	since := time.Date(2025, 1, 2, 3, 0, 0, 0, time.UTC)
	srv := &dashboard.Server{Auth: &dashboard.Auth{Users: []dashboard.User{{Name: "alice", PasswordHash: hash}}},
		Alerts: fakeAlerts{
			{Domain: "stale.example", Rule: alerts.RulePolicyIDMismatch, Subject: "live id <old1>", Since: since},
			{Domain: "stale.example", Rule: alerts.RuleReporterSilent, Subject: "a reporter went quiet", Since: since},
		}}
	srv.Sections = append(srv.Sections, policiesSection(srv, func() *publishRun { return sr.publish }))
	h, err := srv.Handler(nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(h)
	defer ts.Close()
	c := signIn(t, ts.URL, "alice", "a long password")
	resp, err := c.Get(ts.URL + "/policies")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(b)
	_, row, _ := strings.Cut(page, `<tr data-domain="stale.example">`)
	row, _, _ = strings.Cut(row, "</tr>")
	if !strings.Contains(row, "alert: policy-id-mismatch since 2025-01-02: live id &lt;old1&gt;") || strings.Contains(page, "went quiet") {
		t.Errorf("stale.example's row:\n%s", row)
	}
}
