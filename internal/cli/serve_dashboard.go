package cli

import (
	"fmt"
	"log/slog"
	"net/http"

	"github.com/mailsts/mailsts/internal/dashboard"
	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/httpapi"
)

// serveDashboard is the dashboard of `mailsts serve`: set when
// dashboard.users lists someone.
type serveDashboard struct {
	srv  *dashboard.Server
	auth *dashboard.Auth
}

// newServeDashboard builds the dashboard from the configuration; nil
// when no user is configured. token is the API bearer token of
// --api-token-file (read access to everything for scripts).
func newServeDashboard(cfg reports.DashboardConfig, st reports.Store, token string, log *slog.Logger) (*serveDashboard, error) {
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
	auth := &dashboard.Auth{Users: users, APIToken: token, SessionTTL: cfg.SessionTTL, SecureCookie: cfg.SecureCookie}
	return &serveDashboard{auth: auth, srv: &dashboard.Server{Store: st, Auth: auth, Logger: log, OverviewDays: cfg.OverviewDays}}, nil
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
