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
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/mailsts/mailsts/internal/policyd"
	"github.com/mailsts/mailsts/internal/reports"
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
answers 201 (stored) or 200 (duplicate) only after the report is on disk.
Bad input gets a short 4xx text (413 too large, 415 wrong type, 400 not a
report) and is kept as rejected input. The JSON query API is under
/api/v1/: summary, failures, reports/{report-id}, rejected (see
docs/tlsrpt.md); --api=false turns it off.

Publish the endpoint in DNS as
  _smtp._tls.example.org. TXT "v=TLSRPTv1; rua=https://reports.example.org/tlsrpt"
Senders POST over HTTPS: give --tls-cert and --tls-key, or run plain HTTP
on loopback behind a reverse proxy that terminates TLS (and does not
buffer unlimited bodies). SIGTERM/SIGINT stop accepting, finish requests
in flight (up to 20 s), then exit.

Bounds: a client address (IPv6: its /64) may POST --rate-limit reports a
minute (default 600, burst --rate-burst 600), beyond which it gets 429
with Retry-After. Rejected input is kept as its first 64 KiB with its size
and SHA-256, at most --rejected-budget bytes in all (default 256 MiB,
oldest deleted first). --retention 400d deletes reports, their summary
rows and rejected input older than that, at start and daily (default:
keep everything; see also 'mailsts tlsrpt prune').

Examples:
  mailsts serve --listen :443 --tls-cert /etc/mailsts/cert.pem --tls-key /etc/mailsts/key.pem
  mailsts serve --listen 127.0.0.1:8460 --db postgres://mailsts@db/mailsts
  mailsts serve --config /etc/mailsts/reports.yml
  mailsts serve --retention 400d --rate-limit 120

Exit codes:
  0  stopped cleanly
  2  could not start (configuration, database, listener)
  64 usage error
`

// Default per-client rate of report POSTs: a sender posts one report per
// policy domain per day, so 10 a second from one address leaves room for a
// large provider's daily run and stops a flood.
const (
	defaultRateLimit = 600 // per minute
	defaultRateBurst = 600
)

// pruneDaily applies the retention age now and then every day until ctx
// ends (issue #11.5: nothing was ever deleted).
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

// serveShutdownTimeout bounds the drain of requests in flight.
const serveShutdownTimeout = 20 * time.Second

func runServe(ctx context.Context, env Env, args []string) int {
	fs := newFlagSet("serve", "mailsts serve [--config F] [--listen ADDR] [--tls-cert F --tls-key F] [--db DB] [--path /tlsrpt]", serveHelp, env.Stderr)
	var df dbFlags
	df.register(fs)
	listen := fs.String("listen", "", "listen `address` (default 127.0.0.1:8460)")
	path := fs.String("path", "", "report `path` (default /tlsrpt)")
	cert := fs.String("tls-cert", "", "TLS certificate `file` (PEM); plain HTTP without it")
	key := fs.String("tls-key", "", "TLS key `file` (PEM)")
	api := fs.Bool("api", true, "serve the JSON query API under /api/v1/")
	retention := fs.String("retention", "", "keep reports and rejected input for `AGE` (for example 400d), pruned daily; default forever")
	rateLimit := fs.Float64("rate-limit", 0, "report POSTs per minute per client address, IPv6 per /64 (default 600; negative: off)")
	rateBurst := fs.Int("rate-burst", 0, "report POSTs a client may make at once (default 600)")
	rejectedBudget := fs.Int64("rejected-budget", 0, "bytes kept of rejected input, oldest deleted first (default 256 MiB; negative: no cap)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return ExitUsage
	}
	level := new(slog.LevelVar)
	level.Set(policyd.ParseLevel(*logLevel))
	log := newLogger(env.Stderr, "text", level)
	cfg, st, err := df.open(ctx, env, log)
	if err != nil {
		fmt.Fprintf(env.Stderr, "mailsts serve: %v\n", err)
		return ExitError
	}
	defer st.Close()
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	sc := cfg.Serve
	for _, o := range []struct {
		name string
		v    string
		dst  *string
	}{{"listen", *listen, &sc.Listen}, {"path", *path, &sc.Path}, {"tls-cert", *cert, &sc.TLSCert}, {"tls-key", *key, &sc.TLSKey}} {
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
	var age time.Duration
	if cfg.Retention != "" {
		if age, err = parseAge(cfg.Retention); err != nil {
			fmt.Fprintf(env.Stderr, "mailsts serve: retention: %v\n", err)
			return ExitUsage
		}
	}
	var limiter *reports.RateLimiter
	if sc.RateLimit >= 0 {
		perMin := sc.RateLimit
		if perMin == 0 {
			perMin = defaultRateLimit
		}
		limiter = &reports.RateLimiter{Rate: perMin / 60, Burst: cmp.Or(sc.RateBurst, defaultRateBurst)}
	}
	sc.Listen = cmpOr(sc.Listen, "127.0.0.1:8460")
	sc.Path = cmpOr(sc.Path, "/tlsrpt")
	if !strings.HasPrefix(sc.Path, "/") || strings.HasPrefix(sc.Path, "/api/") {
		fmt.Fprintf(env.Stderr, "mailsts serve: path %q must start with / and not be under /api/\n", sc.Path)
		return ExitUsage
	}
	if (sc.TLSCert == "") != (sc.TLSKey == "") {
		fmt.Fprintln(env.Stderr, "mailsts serve: --tls-cert and --tls-key go together")
		return ExitUsage
	}
	// SQLite has one writer and syncs at each commit: concurrent POSTs
	// share a transaction (one sync), each answered after its commit.
	// PostgreSQL commits concurrent transactions in parallel and groups
	// their WAL flushes itself (bench/reports: 16 writers, 782 reports/s
	// direct, 576 through GroupCommit).
	put := st
	if !isPostgresSpec(cfg.DB) {
		put = &reports.GroupCommit{Store: st}
	}
	in := &reports.Ingester{Store: put, Logger: log, DKIM: reports.DKIMOff, RejectedBudget: cfg.RejectedBudget,
		Limits: tlsrpt.Limits{MaxInput: cfg.MaxInput, MaxOutput: cfg.MaxOutput}}
	srv := newLimitedReportServer(in, limiter, st, sc.Path, *sc.API, log)
	if age > 0 {
		go pruneDaily(ctx, st, age, log)
	}
	ln, err := net.Listen("tcp", sc.Listen)
	if err != nil {
		fmt.Fprintf(env.Stderr, "mailsts serve: %v\n", err)
		return ExitError
	}
	if sc.TLSCert != "" {
		kp, err := tls.LoadX509KeyPair(sc.TLSCert, sc.TLSKey)
		if err != nil {
			ln.Close()
			fmt.Fprintf(env.Stderr, "mailsts serve: %v\n", err)
			return ExitError
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{kp}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	scheme := "http"
	if sc.TLSCert != "" {
		scheme = "https"
	}
	log.Info("mailsts serve: listening", "url", scheme+"://"+ln.Addr().String()+sc.Path, "api", *sc.API)
	if err := serveUntil(ctx, srv, ln, log); err != nil {
		log.Error("mailsts serve failed", "error", err)
		return ExitError
	}
	return ExitOK
}

// newReportServer returns the HTTP server of `mailsts serve`. The
// timeouts bound slow clients; the body size is capped by the Receiver.
func newReportServer(in *reports.Ingester, st reports.Store, path string, api bool, log *slog.Logger) *http.Server {
	return newLimitedReportServer(in, nil, st, path, api, log)
}

// newLimitedReportServer is newReportServer with a rate limiter (nil:
// none) on the report path.
func newLimitedReportServer(in *reports.Ingester, limiter *reports.RateLimiter, st reports.Store, path string, api bool, log *slog.Logger) *http.Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.Handle(path, &reports.Receiver{Ingester: in, Limiter: limiter, Logger: log})
	if api {
		mux.Handle("/api/v1/", (&reports.API{Store: st, Logger: log}).Handler("/api/v1"))
	}
	return &http.Server{
		Handler:           mux,
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

// runIMAPIngest polls the configured IMAP mailbox once, or every
// cfg.IMAP.Poll until ctx ends.
func runIMAPIngest(ctx context.Context, env Env, cfg *ReportsConfig, in *reports.Ingester, log *slog.Logger) int {
	u, err := url.Parse(cfg.IMAP.URL)
	if err != nil || u.Host == "" {
		fmt.Fprintf(env.Stderr, "mailsts tlsrpt ingest: --imap %q: want imaps://host[:port]/MAILBOX\n", cfg.IMAP.URL)
		return ExitUsage
	}
	c := &reports.IMAP{Addr: u.Host, Ingester: in, Logger: log, Username: cfg.IMAP.Username,
		Mailbox: strings.TrimPrefix(u.Path, "/"), Processed: cfg.IMAP.Processed, Rejected: cfg.IMAP.Rejected}
	port := "993"
	switch u.Scheme {
	case "imaps":
		c.Security = reports.IMAPTLS
	case "imap":
		c.Security, port = reports.IMAPStartTLS, "143"
	case "imap+insecure":
		// Plain text, for a local server on loopback only.
		c.Security, port = reports.IMAPPlainInsecure, "143"
	default:
		fmt.Fprintf(env.Stderr, "mailsts tlsrpt ingest: --imap scheme %q: want imaps or imap (STARTTLS)\n", u.Scheme)
		return ExitUsage
	}
	if u.Port() == "" {
		c.Addr = net.JoinHostPort(u.Hostname(), port)
	}
	if c.Security == reports.IMAPPlainInsecure {
		if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
			fmt.Fprintln(env.Stderr, "mailsts tlsrpt ingest: imap+insecure is only allowed to a loopback address")
			return ExitUsage
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
			return ExitTempFail
		}
		c.Password = strings.TrimRight(string(b), "\r\n")
	}
	if cfg.IMAP.CAFile != "" {
		pem, err := os.ReadFile(cfg.IMAP.CAFile)
		pool := x509.NewCertPool()
		if err != nil || !pool.AppendCertsFromPEM(pem) {
			fmt.Fprintf(env.Stderr, "mailsts tlsrpt ingest: --imap-ca-file %s: no certificates (%v)\n", cfg.IMAP.CAFile, err)
			return ExitTempFail
		}
		c.TLSConfig = &tls.Config{RootCAs: pool, ServerName: u.Hostname()}
	}
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

func isPostgresSpec(spec string) bool {
	return strings.HasPrefix(spec, "postgres://") || strings.HasPrefix(spec, "postgresql://")
}
