package reports

import "time"

// DashboardConfig is the `dashboard:` section: the web dashboard of
// `mailsts serve` on the API listener, its users, and its alerts.
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
