package dashboard

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/mailsts/mailsts/internal/reports"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Server is the dashboard. Set Store and Users; the zero values of the
// other fields are usable.
type Server struct {
	// Store is read through reports.Scoped for users limited to some
	// domains.
	Store reports.Store
	// Auth signs users in and keeps their sessions.
	Auth *Auth
	// Alerts lists open alerts for the overview; nil shows none.
	Alerts AlertLister
	// Metrics, when set, is served at GET /metrics to users of every
	// domain and to the API token (a Prometheus scrape with a bearer
	// token).
	Metrics http.Handler
	// Sections are more pages, listed in the navigation after the
	// built-in ones.
	Sections []Section
	Logger   *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// OverviewDays is the default range of the overview (default 30).
	OverviewDays int
	// PageSize is the number of domains per overview page (default 50).
	PageSize int
	// ReportsPageSize is the number of reports per page of the report
	// list (default 200).
	ReportsPageSize int

	tmpl map[string]*template.Template
}

// Section is a page added by another part of mailsts (hosted policies,
// the outbox, …): served at Path (under the dashboard, signed-in users
// only), listed in the navigation as Title. The handler finds the user
// with UserFrom and renders inside the layout with Server.Render.
type Section struct {
	Path    string
	Title   string
	Handler http.Handler
	// AllDomains keeps the page to users of every domain: it is not
	// listed for the others, and refused to them (403).
	AllDomains bool
}

// Alert is an open alert shown on the overview.
type Alert struct {
	Domain  string
	Rule    string
	Subject string
	Since   time.Time
}

// AlertLister lists the open alerts of some policy domains (all when
// domains is nil).
type AlertLister interface {
	OpenAlerts(ctx context.Context, domains []string) ([]Alert, error)
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Server) log() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// httpError is an error with the status and the text the user sees; the
// log gets the cause.
type httpError struct {
	status int
	msg    string
	err    error
}

func (e *httpError) Error() string {
	if e.err != nil {
		return e.msg + ": " + e.err.Error()
	}
	return e.msg
}

func (e *httpError) Unwrap() error { return e.err }

func badRequest(msg string, err error) error {
	return &httpError{status: http.StatusBadRequest, msg: msg, err: err}
}

// storeError maps a store error to what the user sees.
func storeError(err error) error {
	switch {
	case errors.Is(err, reports.ErrBadFilter):
		return &httpError{status: http.StatusBadRequest, msg: err.Error(), err: err}
	case errors.Is(err, reports.ErrNotFound):
		return &httpError{status: http.StatusNotFound, msg: "not found", err: err}
	default:
		return &httpError{status: http.StatusServiceUnavailable, msg: "the report store failed; try again later", err: err}
	}
}

type handlerFunc func(w http.ResponseWriter, r *http.Request) error

func (s *Server) serve(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := h(w, r)
		if err == nil {
			return
		}
		var he *httpError
		if !errors.As(err, &he) {
			he = &httpError{status: http.StatusInternalServerError, msg: "internal error", err: err}
		}
		level := slog.LevelInfo
		if he.status >= 500 {
			level = slog.LevelError
		}
		s.log().Log(r.Context(), level, "dashboard: request failed", "path", r.URL.Path, "status", he.status, "error", err)
		s.renderStatus(w, r, he.status, he.msg)
	})
}

// Handler returns the dashboard's handler, for the root of the API
// listener. api, when not nil, is the JSON query API: it is served under
// /api/v1/ behind the same access control (a session cookie or a bearer
// token).
func (s *Server) Handler(api http.Handler) (http.Handler, error) {
	if s.Auth == nil {
		return nil, errors.New("dashboard: no Auth")
	}
	if err := s.parseTemplates(); err != nil {
		return nil, err
	}
	static, _ := fs.Sub(assets, "static")
	mux := http.NewServeMux()
	mux.Handle("GET /static/", http.StripPrefix("/static/", staticHandler(static)))
	mux.Handle("GET /login", s.serve(s.loginForm))
	mux.Handle("POST /login", s.serve(s.login))
	mux.Handle("POST /logout", s.signedIn(s.logout))
	mux.Handle("GET /{$}", s.signedIn(s.overview))
	mux.Handle("GET /domain/{domain}", s.signedIn(s.domain))
	mux.Handle("GET /failures", s.signedIn(s.failures))
	mux.Handle("GET /reports", s.signedIn(s.reportList))
	mux.Handle("GET /report/{id...}", s.signedIn(s.report))
	mux.Handle("GET /raw/report/{row}", s.signedIn(s.reportRaw))
	mux.Handle("GET /rejected", s.signedIn(s.rejected))
	mux.Handle("GET /raw/rejected/{id}", s.signedIn(s.rejectedRaw))
	for _, sec := range s.Sections {
		if !strings.HasPrefix(sec.Path, "/") {
			return nil, fmt.Errorf("dashboard: section path %q must start with /", sec.Path)
		}
		h, all := sec.Handler, sec.AllDomains
		mux.Handle(sec.Path, s.signedIn(func(w http.ResponseWriter, r *http.Request) error {
			if u := UserFrom(r.Context()); all && (u == nil || len(u.Domains) > 0) {
				return &httpError{status: http.StatusForbidden, msg: "this page is for users of every domain"}
			}
			h.ServeHTTP(w, r)
			return nil
		}))
	}
	if api != nil {
		mux.Handle("/api/v1/", s.Auth.GuardAPI(api))
	}
	if s.Metrics != nil {
		m := s.Metrics
		mux.Handle("GET /metrics", s.Auth.GuardAPI(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u := UserFrom(r.Context()); u == nil || len(u.Domains) > 0 {
				http.Error(w, "the metrics are for users of every domain", http.StatusForbidden)
				return
			}
			m.ServeHTTP(w, r)
		})))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	return securityHeaders(mux), nil
}

// securityHeaders: no script runs on these pages (CSP), none may frame
// them, and nothing is sniffed into another type.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "same-origin")
		h.ServeHTTP(w, r)
	})
}

func staticHandler(static fs.FS) http.Handler {
	fsrv := http.FileServerFS(static)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		fsrv.ServeHTTP(w, r)
	})
}

// page is what every template receives.
type page struct {
	Title string
	User  *User
	CSRF  string
	Nav   []navItem
	// Data is the page's own.
	Data any
	// Body is a section's content (Render).
	Body template.HTML
	// Status is the message of an error page.
	Status string
}

type navItem struct {
	Path, Title string
	Current     bool
}

func (s *Server) nav(r *http.Request, u *User) []navItem {
	items := []navItem{{Path: "/", Title: "Overview"}, {Path: "/reports", Title: "Reports"}, {Path: "/failures", Title: "Failures"}}
	if u != nil && len(u.Domains) == 0 {
		items = append(items, navItem{Path: "/rejected", Title: "Rejected input"})
	}
	for _, sec := range s.Sections {
		if sec.AllDomains && (u == nil || len(u.Domains) > 0) {
			continue
		}
		items = append(items, navItem{Path: sec.Path, Title: sec.Title})
	}
	for i := range items {
		p := items[i].Path
		items[i].Current = r.URL.Path == p || p != "/" && strings.HasPrefix(r.URL.Path, p)
	}
	return items
}

var templatePages = []string{"overview", "domain", "failures", "reports", "report", "rejected", "login", "status", "section"}

func (s *Server) parseTemplates() error {
	s.tmpl = make(map[string]*template.Template)
	for _, name := range templatePages {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return fmt.Errorf("dashboard: template %s: %w", name, err)
		}
		s.tmpl[name] = t
	}
	return nil
}

// render executes the named page into a buffer first, so that a
// template error becomes a clean 500 and not half a page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name, title string, data any, body template.HTML) error {
	u := UserFrom(r.Context())
	p := page{Title: title, User: u, Nav: s.nav(r, u), Data: data, Body: body}
	if sess := sessionFrom(r.Context()); sess != nil {
		p.CSRF = sess.csrf
	}
	if name == "status" {
		p.Status = title
	}
	var buf bytes.Buffer
	if err := s.tmpl[name].Execute(&buf, p); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, err := w.Write(buf.Bytes())
	return err
}

// Render writes a section's page: body inside the common layout, with
// the navigation and the user's sign-out form. body must be safe HTML
// (built with html/template).
func (s *Server) Render(w http.ResponseWriter, r *http.Request, title string, body template.HTML) error {
	return s.render(w, r, http.StatusOK, "section", title, nil, body)
}

func (s *Server) renderStatus(w http.ResponseWriter, r *http.Request, status int, msg string) {
	if s.tmpl == nil {
		http.Error(w, msg, status)
		return
	}
	if err := s.render(w, r, status, "status", msg, nil, ""); err != nil {
		s.log().Error("dashboard: rendering an error page failed", "error", err)
	}
}
