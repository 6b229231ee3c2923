package cli

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/alerts"
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
