package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailsts/mailsts/internal/alerts"
	"github.com/mailsts/mailsts/internal/dashboard"
	"github.com/mailsts/mailsts/internal/metrics"
	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/httpapi"
)

// serveDashboard is the dashboard of `mailsts serve`: set when
// dashboard.users lists someone.
type serveDashboard struct {
	srv  *dashboard.Server
	auth *dashboard.Auth
	// policydMetrics is dashboard.policyd_metrics (checked).
	policydMetrics string
}

// newServeDashboard builds the dashboard from the configuration; nil
// when no user is configured. token is the API bearer token of
// --api-token-file (read access to everything for scripts). The
// sign-ins are kept in stateDir (dashboard-sessions.json) across
// restarts.
func newServeDashboard(cfg reports.DashboardConfig, st reports.Store, token, stateDir string, log *slog.Logger) (*serveDashboard, error) {
	if len(cfg.Users) == 0 {
		return nil, nil
	}
	users := make([]dashboard.User, 0, len(cfg.Users))
	for _, u := range cfg.Users {
		users = append(users, dashboard.User{Name: u.Name, PasswordHash: u.PasswordHash, TokenHash: u.TokenHash, Domains: u.Domains})
	}
	if err := dashboard.CheckUsers(users); err != nil {
		return nil, fmt.Errorf("%w: %v", errServeConfig, err)
	}
	if u := cfg.PolicydMetrics; u != "" {
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return nil, fmt.Errorf("%w: dashboard.policyd_metrics %q: want the URL of policyd's metrics listener, for example http://127.0.0.1:9461/metrics", errServeConfig, u)
		}
		if !isLoopbackAddr(pu.Host) && !isLoopbackAddr(pu.Host+":0") {
			log.Warn("mailsts serve: dashboard.policyd_metrics is not on loopback; keep policyd's metrics listener off the public network", "url", pu.Redacted())
		}
	}
	auth := &dashboard.Auth{Users: users, APIToken: token, SessionTTL: cfg.SessionTTL, SecureCookie: cfg.SecureCookie,
		SessionsPath: filepath.Join(stateDir, dashboard.SessionsFile), Logger: log}
	return &serveDashboard{auth: auth, policydMetrics: cfg.PolicydMetrics,
		srv: &dashboard.Server{Store: st, Auth: auth, Logger: log, OverviewDays: cfg.OverviewDays}}, nil
}

// api returns the query API reading through each signed-in user's view.
func (d *serveDashboard) api(st reports.Store, log *slog.Logger) http.Handler {
	return (&httpapi.API{Store: st, Logger: log, StoreFor: func(r *http.Request) reports.Store { return dashboard.StoreFor(r, st) }}).Handler("/api/v1")
}

// handler is the API listener's handler: the dashboard at /, the API
// under /api/v1/ behind the same sign-in.
func (d *serveDashboard) handler(api http.Handler) (http.Handler, error) {
	return d.srv.Handler(api)
}

// newServeAlerts builds the alert engine of dashboard.alerts; nil when
// it is off. Its metrics register with reg. hosted is the last check of
// the hosted policies (nil: no policy host, or no checks): with it the
// publishing-side rules are on by default.
func newServeAlerts(cfg reports.AlertsConfig, st reports.Store, stateDir string, hosted alerts.HostedStatusSource, reg prometheus.Registerer, log *slog.Logger) (*alerts.Engine, error) {
	if !cfg.Enabled {
		return nil, nil
	}
	e := &alerts.Engine{Store: st, Logger: log, Interval: cfg.Interval, StatePath: cfg.StateFile}
	if e.StatePath == "" {
		e.StatePath = filepath.Join(stateDir, "alerts.json")
	}
	names := cfg.Rules
	if len(names) == 0 {
		names = []string{alerts.RuleReporterSilent, alerts.RuleFailureRate, alerts.RuleNewFailureType}
		if hosted != nil {
			names = append(names, alerts.RulePolicyCertExpiring, alerts.RulePolicyIDMismatch)
		}
	}
	for _, n := range names {
		switch n {
		case alerts.RuleReporterSilent:
			c := cfg.ReporterSilent
			e.Rules = append(e.Rules, alerts.ReporterSilent{Days: c.Days, Window: c.Window, MinDays: c.MinDays})
		case alerts.RuleFailureRate:
			c := cfg.FailureRate
			e.Rules = append(e.Rules, alerts.FailureRate{Threshold: c.Threshold, BaselineDays: c.BaselineDays, MinSessions: c.MinSessions})
		case alerts.RuleNewFailureType:
			c := cfg.NewFailureType
			e.Rules = append(e.Rules, alerts.NewFailureType{RecentDays: c.RecentDays, BaselineDays: c.BaselineDays})
		case alerts.RulePolicyCertExpiring, alerts.RulePolicyIDMismatch:
			if hosted == nil {
				return nil, fmt.Errorf("%w: dashboard.alerts.rules: %s watches the hosted policies: it needs a publish: section with checks (publish.check_interval not negative)", errServeConfig, n)
			}
			if n == alerts.RulePolicyIDMismatch {
				e.Rules = append(e.Rules, &alerts.PolicyIDMismatch{Source: hosted})
				break
			}
			days := cfg.PolicyCertExpiring.Days
			if days < 0 {
				return nil, fmt.Errorf("%w: dashboard.alerts.policy_cert_expiring.days %d: want a positive number of days", errServeConfig, days)
			}
			e.Rules = append(e.Rules, &alerts.PolicyCertExpiring{Source: hosted, Days: days})
		default:
			return nil, fmt.Errorf("%w: dashboard.alerts.rules: unknown rule %q (want %s, %s, %s, %s or %s)", errServeConfig, n,
				alerts.RuleReporterSilent, alerts.RuleFailureRate, alerts.RuleNewFailureType, alerts.RulePolicyCertExpiring, alerts.RulePolicyIDMismatch)
		}
	}
	if u := cfg.Webhook.URL; u != "" {
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" {
			return nil, fmt.Errorf("%w: dashboard.alerts.webhook.url %q: want an http(s) URL", errServeConfig, u)
		}
		e.Notifiers = append(e.Notifiers, &alerts.Webhook{URL: u})
	}
	if m := cfg.Mail; m.Relay != "" {
		if m.From == "" || len(m.To) == 0 {
			return nil, fmt.Errorf("%w: dashboard.alerts.mail needs from and to with relay", errServeConfig)
		}
		e.Notifiers = append(e.Notifiers, &alerts.Mail{Relay: m.Relay, From: m.From, To: slices.Clone(m.To)})
	}
	if h := cfg.DigestHour; h != nil && *h >= 0 {
		if *h > 23 {
			return nil, fmt.Errorf("%w: dashboard.alerts.digest_hour %d: want 0 to 23, or -1", errServeConfig, *h)
		}
		e.Digest, e.DigestHour = true, *h
	}
	m, err := metrics.NewAlerts(reg)
	if err != nil {
		return nil, err
	}
	e.Observer = m
	// Every rule's series from the start, before the first evaluation.
	for _, r := range e.Rules {
		m.Open(r.Name(), 0)
	}
	return e, nil
}

// alertLister shows the engine's open alerts on the dashboard.
type alertLister struct{ e *alerts.Engine }

func (l alertLister) OpenAlerts(ctx context.Context, domains []string) ([]dashboard.Alert, error) {
	open, err := l.e.OpenAlerts(ctx, domains)
	if err != nil {
		return nil, err
	}
	out := make([]dashboard.Alert, 0, len(open))
	for _, a := range open {
		out = append(out, dashboard.Alert{Domain: a.Domain, Rule: a.Rule, Subject: a.Subject, Since: a.Since})
	}
	return out, nil
}
