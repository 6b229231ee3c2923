package reports

import "time"

// DashboardConfig is the `dashboard:` section: the web dashboard of
// `mailsts serve` on the API listener, its users, and the alerts.
type DashboardConfig struct {
	// Users may sign in to the dashboard and call the API. Without users
	// there is no dashboard and the API keeps its bearer-token rule.
	Users []DashboardUser `yaml:"users"`
	// SessionTTL is how long a sign-in lasts (0: 12h).
	SessionTTL time.Duration `yaml:"session_ttl"`
	// SecureCookie marks cookies Secure even on plain HTTP (a TLS proxy
	// in front of the API listener).
	SecureCookie bool `yaml:"secure_cookie"`
	// OverviewDays is the overview's default range in days (0: 30).
	OverviewDays int `yaml:"overview_days"`
	// Alerts watch the reports (internal/alerts).
	Alerts AlertsConfig `yaml:"alerts"`
	// PolicydMetrics is the URL of `mailsts policyd`'s metrics listener
	// (http://127.0.0.1:PORT/metrics): the dashboard's policy daemon page
	// reads it. Empty: no such page.
	PolicydMetrics string `yaml:"policyd_metrics"`
}

// DashboardUser is one user of the dashboard and API.
type DashboardUser struct {
	Name string `yaml:"name"`
	// PasswordHash is a bcrypt hash (`mailsts dashboard hash-password`).
	PasswordHash string `yaml:"password_hash"`
	// TokenHash is "sha256:HEX" of a token (`mailsts dashboard new-token`).
	TokenHash string `yaml:"token_hash"`
	// Domains limits the user to these policy domains; empty: all.
	Domains []string `yaml:"domains"`
}

// AlertsConfig is `dashboard.alerts`: the rules watching the reports
// and where their notices go (internal/alerts).
type AlertsConfig struct {
	// Enabled runs the alert loop in `mailsts serve`.
	Enabled bool `yaml:"enabled"`
	// Rules lists the rules on (default: all).
	Rules []string `yaml:"rules"`
	// Interval between evaluations (0: 1h).
	Interval time.Duration `yaml:"interval"`
	// StateFile keeps the open alerts and pending notices (default:
	// alerts.json in the state directory).
	StateFile      string `yaml:"state_file"`
	ReporterSilent struct {
		Days    int `yaml:"days"`
		Window  int `yaml:"window"`
		MinDays int `yaml:"min_days"`
	} `yaml:"reporter_silent"`
	FailureRate struct {
		Threshold    float64 `yaml:"threshold"`
		BaselineDays int     `yaml:"baseline_days"`
		MinSessions  int64   `yaml:"min_sessions"`
	} `yaml:"failure_rate"`
	NewFailureType struct {
		RecentDays   int `yaml:"recent_days"`
		BaselineDays int `yaml:"baseline_days"`
	} `yaml:"new_failure_type"`
	// PolicyCertExpiring: a hosted policy host's certificate ends
	// within Days days (0: 14).
	PolicyCertExpiring struct {
		Days int `yaml:"days"`
	} `yaml:"policy_cert_expiring"`
	Webhook struct {
		URL string `yaml:"url"`
	} `yaml:"webhook"`
	Mail struct {
		Relay string   `yaml:"relay"`
		From  string   `yaml:"from"`
		To    []string `yaml:"to"`
	} `yaml:"mail"`
	// DigestHour sends a daily digest of the open alerts at this UTC
	// hour (0 to 23); negative: none.
	DigestHour *int `yaml:"digest_hour"`
}
