package cli

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailsts/mailsts/internal/alerts"
	"github.com/mailsts/mailsts/internal/dashboard"
	"github.com/mailsts/mailsts/internal/metrics"
	"github.com/mailsts/mailsts/internal/outgoing/outbox"
	"github.com/mailsts/mailsts/internal/policyd"
	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/httpapi"
	"github.com/mailsts/mailsts/internal/reports/ingest"
	"github.com/mailsts/mailsts/internal/reports/mailbox"
	"github.com/mailsts/mailsts/internal/reports/sqlstore"
	"github.com/mailsts/mailsts/tlsrpt"
)

var serveCommand = command{
	name:    "serve",
	summary: "receive TLS reports over HTTPS (RFC 8460 §5.4) and serve the query API",
	run:     runServe,
}

const serveHelp = `
Receives TLS reports POSTed to the report path (default /tlsrpt) with
Content-Type application/tlsrpt+gzip or application/tlsrpt+json
(application/json and application/gzip are tolerated), stores them, and
answers 201 (stored) or 200 (duplicate: same organisation, report-id and
content) only after the report is on disk; a report with the
organisation and report-id of a stored one but other content is stored
too (201) and both are flagged as a conflict. HTTPS reports are stored
as unauthenticated (RFC 8460 §5.3).
Bad input gets a 4xx answer, JSON {"error": {"code": …, "message": …}}
like every error of the API (413 too large, 415 wrong type, 400 not a
report; see docs/tlsrpt.md), and is kept as rejected input. The report listener (--listen)
serves only that POST path and GET /healthz: it is the public side.

The JSON query API (/api/v1/: summary, failures, reports/{report-id},
rejected; see docs/tlsrpt.md) reads every stored report, so it has its
own listener, --api-listen, on loopback by default (127.0.0.1:8462). A
non-loopback --api-listen, or --api-listen same (the API on the report
listener), needs a bearer token: --api-token-file F (at least 16
characters; clients send "Authorization: Bearer TOKEN"); without one
serve refuses to start. With a token file the token is required on
loopback too. --api=false turns the API off.

With users under dashboard: in the configuration, the API listener also
serves the web dashboard at / (sign-in with a password or token; see
'mailsts dashboard' and docs/dashboard.md), and every API request then
needs a sign-in or a token, the --api-token-file token included.

Publish the endpoint in DNS as
  _smtp._tls.example.org. TXT "v=TLSRPTv1; rua=https://reports.example.org/tlsrpt"
Senders POST over HTTPS: give --tls-cert and --tls-key, or run plain HTTP
on loopback behind a reverse proxy that terminates TLS (and does not
buffer unlimited bodies); a plain-HTTP report listener on a non-loopback
address is logged as a warning. SIGTERM/SIGINT stop accepting, finish
requests in flight (up to 20 s), then exit.

Bounds: a client address (IPv6: its /64) may POST --rate-limit reports a
minute (default 600, burst --rate-burst 600), beyond which it gets 429
with Retry-After. Rejected input is kept as its first 64 KiB with its size
and SHA-256, at most --rejected-budget bytes in all (default 256 MiB,
oldest deleted first). --retention 400d deletes reports, their summary
rows and rejected input older than that, at start and daily (default:
keep everything; see also 'mailsts tlsrpt prune').

With a publish: section in --config, serve also hosts MTA-STS policies
(RFC 8461) at https://mta-sts.<domain>/.well-known/mta-sts.txt on its own
listener (publish.listen, default :443), re-reads the live MX of mx: auto
domains, checks every hosted domain as senders see it, and re-reads the
publish section on SIGHUP; see 'mailsts policy --help' and
docs/publish.md. With publish.acme the policy hosts' certificates come
from an ACME CA (HTTP-01 on publish.http_listen, default :80, and
TLS-ALPN-01 on publish.listen), obtained at start and on reload, and on
demand for domains delegated with publish.delegation; with
publish.dns_update serve publishes each new policy id in DNS once the
policy is served (docs/publish-certs.md).

Examples:
  mailsts serve --listen :443 --tls-cert /etc/mailsts/cert.pem --tls-key /etc/mailsts/key.pem
      reports on :443 for everyone; the API on 127.0.0.1:8462 only
  curl http://127.0.0.1:8462/api/v1/summary
  mailsts serve --listen 127.0.0.1:8460 --db postgres://mailsts@db/mailsts
  mailsts serve --listen :443 --tls-cert cert.pem --tls-key key.pem \
      --api-listen 10.0.0.5:8462 --api-token-file /etc/mailsts/api.token
  curl -H "Authorization: Bearer $(cat /etc/mailsts/api.token)" http://10.0.0.5:8462/api/v1/failures
  mailsts serve --config /etc/mailsts/reports.yml
  mailsts serve --config /etc/mailsts/reports.yml --check-config
  mailsts serve --retention 400d --rate-limit 120

Logging: log.level and log.format (text or json) in --config, to stderr;
--log-level overrides the level. --check-config reads and checks the
configuration and the flags (database spec, TLS files, token file, API
exposure, log settings, and the publish: section as a start checks it,
live MX included) without opening the database or a listener,
prints one line and exits with the code a start would have.

Exit codes:
  0  stopped cleanly (or --check-config found the configuration valid)
  2  could not start (configuration, database, listener)
  64 usage error, or an exposed API without --api-token-file
`

// serveShutdownTimeout bounds the drain of requests in flight.
const serveShutdownTimeout = 20 * time.Second

// Defaults of `mailsts serve`. The API port is the one after policyd's
// 8461 (DESIGN.md): 8460 reports, 8461 policyd, 8462 the query API.
const (
	defaultReportListen = "127.0.0.1:8460"
	defaultAPIListen    = "127.0.0.1:8462"
	// apiListenSame puts the API on the report listener (token required).
	apiListenSame = "same"
	// minAPIToken is the shortest accepted API token.
	minAPIToken = 16
)

// errServeConfig marks a refused `mailsts serve` configuration (exit 64).
var errServeConfig = errors.New("invalid serve configuration")

// serveRun is a configured `mailsts serve`: open store and listeners,
// ready to serve.
type serveRun struct {
	st      reports.Store
	log     *slog.Logger
	servers []servedListener
	// retention is the age after which reports are pruned (0: never).
	retention time.Duration
	// alerts watch the reports (nil: off).
	alerts *alerts.Engine
	// publish is the policy host (serve_publish.go), nil without one.
	publish *publishRun
	// outbox is read by the dashboard's outgoing-reports page (nil: none).
	outbox *outbox.Store
}

// Default per-client rate of report POSTs: a sender posts one report per
// policy domain per day, so 10 a second from one address leaves room for a
// large provider's daily run and stops a flood.
const (
	defaultRateLimit = 600 // per minute
	defaultRateBurst = 600
)

// pruneDaily applies the retention age now and then every day until ctx
// ends.
func pruneDaily(ctx context.Context, st reports.Store, age time.Duration, log *slog.Logger) {
	t := time.NewTicker(24 * time.Hour)
	defer t.Stop()
	for {
		before := retentionDay(time.Now(), age)
		if _, err := st.Prune(ctx, reports.Prune{Before: before}); err != nil && ctx.Err() == nil {
			log.Error("mailsts serve: pruning failed, retrying tomorrow", "before", before.Format(time.DateOnly), "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

type servedListener struct {
	name string
	srv  *http.Server
	ln   net.Listener
}

func runServe(ctx context.Context, env Env, args []string) int {
	sr, code := prepareServe(ctx, env, args)
	if sr == nil {
		return code
	}
	defer sr.close()
	if err := sr.run(ctx); err != nil {
		sr.log.Error("mailsts serve failed", "error", err)
		return ExitError
	}
	return ExitOK
}

// prepareServe parses the command line, opens the store and the
// listeners; nil and an exit code when it cannot start.
func prepareServe(ctx context.Context, env Env, args []string) (*serveRun, int) {
	fs := newFlagSet("serve", "mailsts serve [--config F] [--listen ADDR] [--tls-cert F --tls-key F] [--db DB] [--path /tlsrpt] [--api-listen ADDR|same] [--api-token-file F]", serveHelp, env.Stderr)
	var df dbFlags
	df.register(fs)
	listen := fs.String("listen", "", "report listener `address` (default "+defaultReportListen+")")
	path := fs.String("path", "", "report `path` (default /tlsrpt)")
	cert := fs.String("tls-cert", "", "TLS certificate `file` (PEM); plain HTTP without it")
	key := fs.String("tls-key", "", "TLS key `file` (PEM)")
	api := fs.Bool("api", true, "serve the JSON query API under /api/v1/")
	apiListen := fs.String("api-listen", "", "query API listener `address`, or \"same\" for the report listener (default "+defaultAPIListen+")")
	apiTokenFile := fs.String("api-token-file", "", "`file` holding the API bearer token (required unless the API listens on loopback)")
	retention := fs.String("retention", "", "keep reports and rejected input for `AGE` (for example 400d), pruned daily; default forever")
	rateLimit := fs.Float64("rate-limit", 0, "report POSTs per minute per client address, IPv6 per /64 (default 600; negative: off)")
	rateBurst := fs.Int("rate-burst", 0, "report POSTs a client may make at once (default 600)")
	rejectedBudget := fs.Int64("rejected-budget", 0, "bytes kept of rejected input, oldest deleted first (default 256 MiB; negative: no cap)")
	var lf logFlags
	lf.register(fs, "info")
	check := checkConfigFlag(fs)
	if code := parseFlags(fs, args); code >= 0 {
		return nil, code
	}
	if fs.NArg() != 0 {
		return nil, usageError(env.Stderr, "serve", "no arguments expected")
	}
	if err := lf.check(); err != nil {
		return nil, usageError(env.Stderr, "serve", "%v", err)
	}
	var sr *serveRun
	fail := func(code int, format string, args ...any) (*serveRun, int) {
		if code == ExitUsage {
			usageError(env.Stderr, "serve", format, args...)
		} else {
			fmt.Fprintf(env.Stderr, "mailsts serve: "+format+"\n", args...)
		}
		if sr != nil {
			sr.close()
		}
		return nil, code
	}
	// Everything is read and checked before anything is opened, so that
	// --check-config and a refused start create nothing.
	cfg, err := reports.LoadConfig(df.config)
	if err != nil {
		return fail(ExitError, "%v", err)
	}
	if df.db != "" {
		cfg.DB = df.db
	}
	if err := sqlstore.CheckSpec(cfg.DB); err != nil {
		return fail(ExitError, "db: %v", err)
	}
	cfg.Log = lf.apply(cfg.Log)
	if err := cfg.Log.Validate(); err != nil {
		return fail(ExitError, "%v", err)
	}
	log, _ := newLog(env.Stderr, cfg.Log)
	var retentionAge time.Duration
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	sc := cfg.Serve
	for _, o := range []struct {
		name string
		v    string
		dst  *string
	}{{"listen", *listen, &sc.Listen}, {"path", *path, &sc.Path}, {"tls-cert", *cert, &sc.TLSCert}, {"tls-key", *key, &sc.TLSKey},
		{"api-listen", *apiListen, &sc.APIListen}, {"api-token-file", *apiTokenFile, &sc.APITokenFile}} {
		if set[o.name] {
			*o.dst = o.v
		}
	}
	if set["api"] || sc.API == nil {
		sc.API = api
	}
	if set["retention"] {
		cfg.Retention = *retention
	}
	if set["rate-limit"] {
		sc.RateLimit = *rateLimit
	}
	if set["rate-burst"] {
		sc.RateBurst = *rateBurst
	}
	if set["rejected-budget"] {
		cfg.RejectedBudget = *rejectedBudget
	}
	if cfg.Retention != "" {
		if retentionAge, err = parseAge(cfg.Retention); err != nil {
			return fail(ExitUsage, "retention: %v", err)
		}
	}
	var limiter *httpapi.RateLimiter
	if sc.RateLimit >= 0 {
		perMin := sc.RateLimit
		if perMin == 0 {
			perMin = defaultRateLimit
		}
		limiter = &httpapi.RateLimiter{Rate: perMin / 60, Burst: cmp.Or(sc.RateBurst, defaultRateBurst)}
	}
	sc.Listen = cmpOr(sc.Listen, defaultReportListen)
	sc.APIListen = cmpOr(sc.APIListen, defaultAPIListen)
	sc.Path = cmpOr(sc.Path, "/tlsrpt")
	if !strings.HasPrefix(sc.Path, "/") || strings.HasPrefix(sc.Path, "/api/") || sc.Path == "/healthz" {
		return fail(ExitUsage, "path %q must start with / and be neither under /api/ nor /healthz", sc.Path)
	}
	if (sc.TLSCert == "") != (sc.TLSKey == "") {
		return fail(ExitUsage, "--tls-cert and --tls-key go together")
	}
	token := ""
	if sc.APITokenFile != "" {
		if token, err = readAPIToken(sc.APITokenFile); err != nil {
			return fail(ExitUsage, "--api-token-file: %v", err)
		}
	}
	// The dashboard and alerts are checked here, with the rest of the
	// configuration; they get the store once it is open.
	dash, err := newServeDashboard(cfg.Dashboard, nil, token, policyd.DefaultStateDir(env.getenv), log)
	if err != nil {
		return fail(ExitUsage, "%v", err)
	}
	reg := prometheus.NewRegistry()
	var hosted alerts.HostedStatusSource
	if publishSection(cfg.Publish) && cfg.Publish.CheckInterval >= 0 {
		hosted = hostedStatuses{pr: func() *publishRun { return sr.publish }}
	}
	alertEngine, err := newServeAlerts(cfg.Dashboard.Alerts, nil, policyd.DefaultStateDir(env.getenv), hosted, reg, log)
	if err != nil {
		return fail(ExitUsage, "%v", err)
	}
	if dash != nil && alertEngine != nil {
		dash.srv.Alerts = alertLister{alertEngine}
		dash.srv.Metrics = metrics.Handler(reg)
	}
	// With dashboard users every API request needs a sign-in or a token.
	if *sc.API && dash == nil {
		if err := checkAPIExposure(sc.APIListen, token); err != nil {
			return fail(ExitUsage, "%v", err)
		}
	}
	var certs []tls.Certificate
	if sc.TLSCert != "" {
		kp, err := tls.LoadX509KeyPair(sc.TLSCert, sc.TLSKey)
		if err != nil {
			return fail(ExitError, "%v", err)
		}
		certs = []tls.Certificate{kp}
	}
	if *check {
		// The publish: section as a start would check it.
		pubSummary, err := checkPublishConfig(ctx, cfg, log)
		if err != nil {
			return fail(ExitError, "%v", err)
		}
		db := cmpOr(cfg.DB, "sqlite:"+filepath.Join(policyd.DefaultStateDir(env.getenv), sqlstore.DefaultFile))
		scheme := "http"
		if certs != nil {
			scheme = "https"
		}
		apiAt := "off"
		if *sc.API {
			apiAt = "http://" + sc.APIListen + "/api/v1/"
			if sc.APIListen == apiListenSame {
				apiAt = "on the report listener"
			}
			if token != "" {
				apiAt += " (token)"
			}
		}
		if pubSummary != "" {
			pubSummary += ", "
		}
		return nil, configOK(env.Stdout, "serve", "reports %s://%s%s, API %s, database %s, %slog %s/%s",
			scheme, sc.Listen, sc.Path, apiAt, redactDB(db), pubSummary, cfg.Log.Level, cfg.Log.Format)
	}
	st, err := sqlstore.Open(ctx, cfg.DB, policyd.DefaultStateDir(env.getenv), log)
	if err != nil {
		return fail(ExitError, "%v", err)
	}
	sr = &serveRun{st: st, log: log, retention: retentionAge, alerts: alertEngine}
	if dash != nil {
		dash.srv.Store = st
	}
	if alertEngine != nil {
		alertEngine.Store = st
	}
	// SQLite has one writer and syncs at each commit: concurrent POSTs
	// share a transaction (one sync), each answered after its commit.
	// PostgreSQL commits concurrent transactions in parallel and groups
	// their WAL flushes itself (bench/reports: 16 writers, 782 reports/s
	// direct, 576 through GroupCommit).
	put := st
	if !sqlstore.IsPostgres(cfg.DB) {
		put = &sqlstore.GroupCommit{Store: st}
	}
	in := &ingest.Ingester{Store: put, Logger: log, DKIM: ingest.DKIMOff, RejectedBudget: cfg.RejectedBudget,
		Limits: tlsrpt.Limits{MaxInput: cfg.MaxInput, MaxOutput: cfg.MaxOutput}}
	var apiHandler http.Handler
	if *sc.API {
		apiHandler = (&httpapi.API{Store: st, Logger: log, Token: token}).Handler("/api/v1")
		if dash != nil {
			apiHandler = dash.api(st, log)
		}
	}
	sameAPI := *sc.API && sc.APIListen == apiListenSame
	reportMux := newReportMux(in, limiter, sc.Path, log)
	if sameAPI {
		if dash != nil {
			// The API only: the dashboard never goes on the public listener.
			apiHandler = dash.auth.GuardAPI(apiHandler)
		}
		reportMux.Handle("/api/v1/", apiHandler)
	}
	ln, err := net.Listen("tcp", sc.Listen)
	if err != nil {
		return fail(ExitError, "%v", err)
	}
	scheme := "http"
	if certs != nil {
		ln = tls.NewListener(ln, &tls.Config{Certificates: certs, MinVersion: tls.VersionTLS12})
		scheme = "https"
	} else {
		warnPlainReportListener(log, ln)
	}
	sr.servers = append(sr.servers, servedListener{name: "reports", srv: newHTTPServer(reportMux, log), ln: ln})
	log.Info("mailsts serve: listening for reports", "url", scheme+"://"+ln.Addr().String()+sc.Path, "api_here", sameAPI)
	if *sc.API && !sameAPI {
		aln, err := net.Listen("tcp", sc.APIListen)
		if err != nil {
			return fail(ExitError, "--api-listen: %v", err)
		}
		var h http.Handler = newAPIMux(apiHandler)
		if dash != nil {
			if publishSection(cfg.Publish) {
				dash.srv.Sections = append(dash.srv.Sections, policiesSection(dash.srv, func() *publishRun { return sr.publish }))
			}
			if sr.outbox = openServeOutbox(ctx, cfg.Delivery, policyd.DefaultStateDir(env.getenv), log); sr.outbox != nil {
				dash.srv.Sections = append(dash.srv.Sections, dashboard.OutboxSection(dash.srv, sr.outbox))
			}
			if dash.policydMetrics != "" {
				dash.srv.Sections = append(dash.srv.Sections, dashboard.PolicydSection(dash.srv, dash.policydMetrics, nil))
			}
			if h, err = dash.handler(apiHandler); err != nil {
				aln.Close()
				return fail(ExitError, "%v", err)
			}
			log.Info("mailsts serve: dashboard listening", "url", "http://"+aln.Addr().String()+"/", "users", len(cfg.Dashboard.Users))
		}
		sr.servers = append(sr.servers, servedListener{name: "api", srv: newHTTPServer(h, log), ln: aln})
		if token == "" && dash == nil && !isLoopbackListener(aln) {
			// A host name that resolved to a non-loopback address.
			return fail(ExitUsage, "--api-listen %s is bound to %s, not loopback: give --api-token-file", sc.APIListen, aln.Addr())
		}
		if !isLoopbackListener(aln) {
			log.Warn("mailsts serve: the query API is plain HTTP on a non-loopback address; its token and reports cross the network unencrypted unless a TLS proxy or tunnel carries them",
				"api_listen", aln.Addr().String())
		}
		log.Info("mailsts serve: query API listening", "url", "http://"+aln.Addr().String()+"/api/v1/", "token", token != "")
	}
	if err := sr.preparePublish(ctx, env, df.config, cfg); err != nil {
		return fail(ExitError, "%v", err)
	}
	return sr, ExitOK
}

// checkAPIExposure refuses an API that anyone could reach without a
// token: on the report listener ("same"), or on an address that is not
// a loopback IP or "localhost" (a name, or an empty host meaning every
// interface, counts as exposed).
func checkAPIExposure(apiListen, token string) error {
	if token != "" {
		return nil
	}
	if apiListen == apiListenSame {
		return fmt.Errorf("%w: --api-listen same serves every stored report on the public report listener: give --api-token-file", errServeConfig)
	}
	if !isLoopbackAddr(apiListen) {
		return fmt.Errorf("%w: --api-listen %s is not a loopback address: give --api-token-file, or listen on 127.0.0.1 or [::1]", errServeConfig, apiListen)
	}
	return nil
}

// isLoopbackAddr reports whether host:port names a loopback address.
func isLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// warnPlainReportListener logs a warning when the plain-HTTP report
// listener ln is not on loopback. RFC 8460 §5.4: senders POST to an
// https: URI; plain HTTP is for loopback behind a proxy that terminates
// TLS.
func warnPlainReportListener(log *slog.Logger, ln net.Listener) {
	if isLoopbackListener(ln) {
		return
	}
	log.Warn("mailsts serve: the report listener is plain HTTP on a non-loopback address; senders expect HTTPS (give --tls-cert/--tls-key, or listen on loopback behind a TLS proxy)",
		"listen", ln.Addr().String())
}

func isLoopbackListener(ln net.Listener) bool {
	ta, ok := ln.Addr().(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// readAPIToken reads the token file: its first line, trimmed.
func readAPIToken(name string) (string, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return "", err
	}
	tok, _, _ := strings.Cut(string(b), "\n")
	tok = strings.TrimSpace(tok)
	if len(tok) < minAPIToken {
		return "", fmt.Errorf("%w: %s: the token must be at least %d characters (for example: openssl rand -hex 32)", errServeConfig, name, minAPIToken)
	}
	return tok, nil
}

func (sr *serveRun) close() {
	if sr.publish != nil {
		sr.publish.close()
	}
	for _, s := range sr.servers {
		s.ln.Close()
	}
	if sr.st != nil {
		sr.st.Close()
	}
	if sr.outbox != nil {
		sr.outbox.Close()
	}
}

// run serves every listener until ctx ends or one fails, then shuts all
// down gracefully.
func (sr *serveRun) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if sr.retention > 0 {
		go pruneDaily(ctx, sr.st, sr.retention, sr.log)
	}
	if sr.alerts != nil {
		go sr.alerts.Run(ctx)
	}
	if sr.publish != nil {
		go sr.publish.run(ctx)
	}
	errc := make(chan error, len(sr.servers))
	for _, s := range sr.servers {
		go func() {
			err := serveUntil(ctx, s.srv, s.ln, sr.log)
			if err != nil {
				err = fmt.Errorf("%s listener: %w", s.name, err)
			}
			cancel() // one stopping stops all
			errc <- err
		}()
	}
	var errs []error
	for range sr.servers {
		if err := <-errc; err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// newReportMux is the public side of `mailsts serve`: the report POST
// path and GET /healthz, nothing that reads stored data.
func newReportMux(in *ingest.Ingester, limiter *httpapi.RateLimiter, path string, log *slog.Logger) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle(path, &httpapi.Receiver{Ingester: in, Limiter: limiter, Logger: log})
	mux.HandleFunc("GET /healthz", healthz)
	return mux
}

// newAPIMux serves the query API and GET /healthz.
func newAPIMux(api http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/api/v1/", api)
	mux.HandleFunc("GET /healthz", healthz)
	return mux
}

func healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ok")
}

// newHTTPServer returns an HTTP server of `mailsts serve`. The timeouts
// bound slow clients; the body size is capped by the Receiver.
func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// serveUntil serves on ln until ctx ends, then shuts down gracefully:
// stop accepting, drain with a deadline, then close.
func serveUntil(ctx context.Context, srv *http.Server, ln net.Listener, log *slog.Logger) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("mailsts serve: shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), serveShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// newIMAPClient returns the client of the configured IMAP mailbox, its
// settings checked and its password and CA file read, without connecting;
// nil and the exit code when they are wrong.
func newIMAPClient(env Env, cfg *reports.Config, log *slog.Logger) (*mailbox.IMAP, int) {
	u, err := url.Parse(cfg.IMAP.URL)
	if err != nil || u.Host == "" {
		return nil, usageError(env.Stderr, "tlsrpt ingest", "--imap %q: want imaps://host[:port]/MAILBOX", cfg.IMAP.URL)
	}
	c := &mailbox.IMAP{Addr: u.Host, Logger: log, Username: cfg.IMAP.Username,
		Mailbox: strings.TrimPrefix(u.Path, "/"), Processed: cfg.IMAP.Processed, Rejected: cfg.IMAP.Rejected}
	port := "993"
	switch u.Scheme {
	case "imaps":
		c.Security = mailbox.IMAPTLS
	case "imap":
		c.Security, port = mailbox.IMAPStartTLS, "143"
	case "imap+insecure":
		// Plain text, for a local server on loopback only.
		c.Security, port = mailbox.IMAPPlainInsecure, "143"
	default:
		return nil, usageError(env.Stderr, "tlsrpt ingest", "--imap scheme %q: want imaps or imap (STARTTLS)", u.Scheme)
	}
	if u.Port() == "" {
		c.Addr = net.JoinHostPort(u.Hostname(), port)
	}
	if c.Security == mailbox.IMAPPlainInsecure {
		if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
			return nil, usageError(env.Stderr, "tlsrpt ingest", "imap+insecure is only allowed to a loopback address")
		}
	}
	if c.Username == "" && u.User != nil {
		c.Username = u.User.Username()
	}
	c.Password = env.getenv("MAILSTS_IMAP_PASSWORD")
	if cfg.IMAP.PasswordFile != "" {
		b, err := os.ReadFile(cfg.IMAP.PasswordFile)
		if err != nil {
			fmt.Fprintf(env.Stderr, "mailsts tlsrpt ingest: %v\n", err)
			return nil, ExitError
		}
		c.Password = strings.TrimRight(string(b), "\r\n")
	}
	if cfg.IMAP.CAFile != "" {
		pem, err := os.ReadFile(cfg.IMAP.CAFile)
		pool := x509.NewCertPool()
		if err != nil || !pool.AppendCertsFromPEM(pem) {
			fmt.Fprintf(env.Stderr, "mailsts tlsrpt ingest: --imap-ca-file %s: no certificates (%v)\n", cfg.IMAP.CAFile, err)
			return nil, ExitError
		}
		c.TLSConfig = &tls.Config{RootCAs: pool, ServerName: u.Hostname()}
	}
	return c, ExitOK
}

// runIMAPIngest polls the IMAP mailbox once, or every cfg.IMAP.Poll until
// ctx ends.
func runIMAPIngest(ctx context.Context, env Env, cfg *reports.Config, c *mailbox.IMAP, log *slog.Logger) int {
	for {
		stats, err := c.Poll(ctx)
		fmt.Fprintf(env.Stdout, "%s: %s\n", cfg.IMAP.URL, stats)
		if err != nil && cfg.IMAP.Poll <= 0 {
			fmt.Fprintf(env.Stderr, "mailsts tlsrpt ingest: %v\n", err)
			return ExitTempFail
		}
		if err != nil {
			log.Warn("mailsts tlsrpt ingest: imap poll failed, retrying", "error", err, "in", cfg.IMAP.Poll)
		}
		if cfg.IMAP.Poll <= 0 || !sleepCtx(ctx, cfg.IMAP.Poll) {
			return ExitOK
		}
	}
}

// redactDB hides the password of a postgres:// database spec.
func redactDB(spec string) string {
	if !sqlstore.IsPostgres(spec) {
		return spec
	}
	u, err := url.Parse(spec)
	if err != nil {
		return "postgres://…"
	}
	return u.Redacted()
}
