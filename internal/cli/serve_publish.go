package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/checker"
	"github.com/mailsts/mailsts/internal/metrics"
	"github.com/mailsts/mailsts/internal/policyd"
	"github.com/mailsts/mailsts/internal/publish"
	"github.com/mailsts/mailsts/internal/publish/certs"
	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/mtasts"
)

// publishRun is the policy host of `mailsts serve`: the hosted domains of
// the publish: section, served on their own listener, re-validated
// every mx_refresh (mx: auto follows the live MX) and on SIGHUP (the
// configuration file is read again). A reload that fails validation
// keeps serving what was served and logs every problem.
type publishRun struct {
	cfgPath   string
	statePath string
	loader    *publish.Loader
	host      *publish.Host
	log       *slog.Logger

	// checker checks every hosted domain every checkInterval (0: never)
	// and reports to observer; metricsLn serves the metrics.
	checker       *publish.Checker
	checkInterval time.Duration
	observer      publish.Observer
	registry      *prometheus.Registry
	metricsLn     net.Listener

	// certs issues and renews the policy hosts' certificates (publish.acme;
	// nil without); certsClose releases it and its storage.
	certs      *certs.Manager
	certsClose func()
	// kick asks the effects loop (effects.go) for a round: manage the
	// certificates of the served set, publish changed ids in DNS.
	// firstRound is closed once the first round has run.
	kick       chan struct{}
	firstRound chan struct{}
	// effectsDone is closed when the effects loop has ended (if started).
	effectsDone    chan struct{}
	effectsStarted bool
	// announcer publishes ids in DNS (publish.dns_update; nil without);
	// announced maps each domain to the id last published (effects loop
	// only); dnsRetry is how soon a refused publication is retried.
	announcer *publish.Announcer
	announced map[string]string
	dnsRetry  time.Duration

	mu  sync.Mutex // guards cfg, set, lastStatus and lastAnnounce
	cfg reports.PublishConfig
	set *publish.Set
	// lastStatus and lastAnnounce are the last check and DNS publication
	// of each domain, for the dashboard (serve_policies.go).
	lastStatus   map[string]*publish.Status
	lastAnnounce map[string]policyAnnouncement
}

// publishSection reports whether the configuration asks for a policy host.
func publishSection(c reports.PublishConfig) bool {
	return len(c.Domains) > 0 || c.Listen != ""
}

// preparePublish validates the publish: section and opens the policy
// host's listener; nothing when the section is empty. The ACME
// certificate source is the seam in publishCertificates.
func (sr *serveRun) preparePublish(ctx context.Context, env Env, cfgPath string, cfg *reports.Config) error {
	pc := cfg.Publish
	if !publishSection(pc) {
		return nil
	}
	dns, err := dnsresolve.NewClient(cfg.DNS...)
	if err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	pr := &publishRun{cfgPath: cfgPath, loader: &publish.Loader{DNS: dns, Logger: sr.log},
		host: &publish.Host{Logger: sr.log}, log: sr.log, cfg: pc, statePath: publishStatePath(env, pc),
		kick: make(chan struct{}, 1), firstRound: make(chan struct{}), effectsDone: make(chan struct{})}
	// Set now, so that a failure below releases what was opened.
	sr.publish = pr
	set, err := pr.loader.Load(ctx, pc)
	if err != nil {
		return err
	}
	pr.set = set
	pr.host.Set(set)
	pr.record(set)
	var get publish.GetCertificateFunc
	if !pc.PlainHTTP && pc.ACME == nil {
		if get, err = publishCertificates(pc, set, sr.log); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
	}
	listen := pc.Listen
	if listen == "" {
		listen = ":443"
		if pc.PlainHTTP {
			listen = ":80"
		}
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("publish.listen: %w", err)
	}
	scheme := "http"
	var handler http.Handler = pr.host
	switch {
	case pc.ACME != nil:
		if err := pr.prepareACME(ctx, sr, pc, dns, ln); err != nil {
			ln.Close()
			return fmt.Errorf("publish: %w", err)
		}
		ln = tls.NewListener(ln, acmeTLSConfig(pr.certs, pc.ACME.TLSALPN01On()))
		scheme = "https"
		if pc.Delegation != nil {
			handler = &delegatedHost{host: pr.host, policyHost: pr.delegatedPolicyHost}
		}
	case get != nil:
		ln = tls.NewListener(ln, publish.TLSConfig(get))
		scheme = "https"
	}
	srv := newHTTPServer(handler, sr.log)
	// ReadTimeout bounds a request (a body the server discards included)
	// at no cost: net/http sets the read deadline for every request
	// anyway. A write deadline would cost a call on every kept-alive
	// request, and an answer of a few hundred bytes fits in the socket
	// buffer: none. Idle connections close after a minute. No separate
	// header timeout: the 30 s bound covers the headers too, and one
	// deadline per request instead of two is measurably cheaper on
	// kept-alive connections (bench/publish).
	srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout = 0, 30*time.Second, 0, 60*time.Second
	sr.servers = append(sr.servers, servedListener{name: "policy host", srv: srv, ln: ln})
	if set.CheckInterval > 0 {
		roots, err := mtasts.LoadRootCAs("")
		if err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		pr.checkInterval = set.CheckInterval
		pr.checker = statusChecker(&mtasts.Client{DNS: dns, RootCAs: roots, Timeout: time.Minute, UserAgent: userAgent()}, checker.DefaultSMTPPort)
	}
	if pc.MetricsListen != "" {
		pr.registry = prometheus.NewRegistry()
		m, err := metrics.NewPublish(pr.registry)
		if err != nil {
			return fmt.Errorf("publish metrics: %w", err)
		}
		pr.observer = m
		if pr.metricsLn, err = net.Listen("tcp", pc.MetricsListen); err != nil {
			return fmt.Errorf("publish.metrics_listen: %w", err)
		}
	}
	if err := pr.prepareDNSUpdate(pc, dns); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	for _, d := range set.Domains {
		sr.log.Info("mailsts serve: hosting policy", "url", scheme+"://"+d.PolicyHost()+portSuffix(ln)+publish.WellKnownPath,
			"mode", d.Mode, "id", d.Policy().ID, "mx", d.Patterns)
	}
	return nil
}

// portSuffix returns ":PORT" of ln unless it is 443 or 80.
func portSuffix(ln net.Listener) string {
	if ta, ok := ln.Addr().(*net.TCPAddr); ok && ta.Port != 443 && ta.Port != 80 {
		return fmt.Sprintf(":%d", ta.Port)
	}
	return ""
}

// publishCertificates returns the certificate source of the policy host.
// Today: the static files (tls_cert/tls_key and cert_dir). The ACME
// source (certificates issued and renewed by mailsts, on demand for
// delegated domains) plugs in here: when the configuration selects it,
// return its GetCertificate instead.
func publishCertificates(pc reports.PublishConfig, set *publish.Set, log *slog.Logger) (publish.GetCertificateFunc, error) {
	if pc.TLSCert == "" && pc.CertDir == "" {
		return nil, errors.New("the policy host needs certificates: give publish.acme (certificates from an ACME CA), publish.tls_cert and tls_key, or publish.cert_dir, or publish.plain_http: true behind a TLS proxy")
	}
	sc, err := publish.LoadStaticCerts(pc.TLSCert, pc.TLSKey, pc.CertDir)
	if err != nil {
		return nil, err
	}
	for _, d := range set.Domains {
		if !sc.Covers(d.PolicyHost()) {
			// Senders would fail the fetch (sts-webpki-invalid): say so now.
			log.Warn("mailsts serve: no certificate covers the policy host; senders will not fetch its policy", "host", d.PolicyHost())
		}
	}
	return sc.GetCertificate, nil
}

// close releases the metrics listener (metrics.Serve closes it too).
func (pr *publishRun) close() {
	if pr.metricsLn != nil {
		pr.metricsLn.Close()
	}
	pr.mu.Lock()
	started := pr.effectsStarted
	pr.mu.Unlock()
	if started {
		// The loop ends with serve's context; let a round in flight
		// finish before its certificate storage closes.
		select {
		case <-pr.effectsDone:
		case <-time.After(serveShutdownTimeout):
			pr.log.Warn("mailsts serve: certificate and DNS work still running at exit")
		}
	}
	if pr.certsClose != nil {
		pr.certsClose()
		pr.certsClose = nil
	}
}

// current returns the served set.
func (pr *publishRun) current() *publish.Set {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return pr.set
}

// reload validates the publish section again (read from the file when
// fromFile) and serves the result; on failure it keeps the served set.
func (pr *publishRun) reload(ctx context.Context, fromFile bool) error {
	pr.mu.Lock()
	pc := pr.cfg
	pr.mu.Unlock()
	if fromFile && pr.cfgPath != "" {
		cfg, err := reports.LoadConfig(pr.cfgPath)
		if err != nil {
			return err
		}
		pc = cfg.Publish
	}
	set, err := pr.loader.Load(ctx, pc)
	if err != nil {
		return err
	}
	pr.mu.Lock()
	old := pr.cfg
	pr.cfg, pr.set = pc, set
	pr.mu.Unlock()
	if !sameEffects(old, pc) {
		pr.log.Warn("mailsts serve: publish listen, http_listen, plain_http, acme, certs, delegation and dns_update changes take effect at the next start; the domains were reloaded")
	}
	pr.host.Set(set)
	pr.record(set)
	return nil
}

// publishStatePath is publish.state_file, else publish-state.json in the
// state directory.
func publishStatePath(env Env, pc reports.PublishConfig) string {
	if pc.StateFile != "" {
		return pc.StateFile
	}
	return filepath.Join(policyd.DefaultStateDir(env.getenv), publish.StateFileName)
}

// record notes in the state file that set is served from now on (when a
// mode started, the policies senders may still cache) and logs the MX
// changes senders' cached policies would refuse. A state file that cannot
// be written is logged: serving goes on.
func (pr *publishRun) record(set *publish.Set) {
	st, err := publish.LoadState(pr.statePath)
	if err != nil {
		pr.log.Error("mailsts serve: publish state unreadable; mode start times are not recorded", "file", pr.statePath, "error", err)
		return
	}
	now := time.Now()
	for _, w := range st.MXWarnings(set, now) {
		pr.log.Warn("mailsts serve: "+w.Msg, "domain", w.Domain)
	}
	if st.Record(set, now) {
		if err := st.Save(pr.statePath); err != nil {
			pr.log.Error("mailsts serve: publish state not saved; promote cannot see when testing began", "file", pr.statePath, "error", err)
		}
	}
}

// checkLoop checks every hosted domain now and every checkInterval
// until ctx ends.
func (pr *publishRun) checkLoop(ctx context.Context) {
	t := time.NewTicker(pr.checkInterval)
	defer t.Stop()
	for {
		pr.noteStatuses(pr.checker.CheckAll(ctx, pr.current(), pr.observer, pr.log))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// run re-validates every MXRefresh and on SIGHUP until ctx ends, and
// runs the checks and the metrics listener.
func (pr *publishRun) run(ctx context.Context) {
	if pr.metricsLn != nil {
		go func() {
			if err := metrics.Serve(ctx, pr.metricsLn, pr.registry, false, 5*time.Second, pr.log); err != nil {
				pr.log.Error("mailsts serve: publish metrics listener failed", "error", err)
			}
		}()
	}
	if pr.checker != nil {
		go pr.checkLoop(ctx)
	}
	pr.mu.Lock()
	pr.effectsStarted = true
	pr.mu.Unlock()
	go pr.effects(ctx)
	pr.kickEffects()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	t := time.NewTicker(pr.current().MXRefresh)
	defer t.Stop()
	for {
		fromFile := false
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-hup:
			fromFile = true
		}
		if err := pr.reload(ctx, fromFile); err != nil {
			pr.log.Error("mailsts serve: publish configuration not applied; still serving the previous policies", "error", err)
			continue
		}
		if fromFile {
			pr.log.Info("mailsts serve: publish configuration reloaded", "domains", len(pr.current().Domains))
		}
		pr.kickEffects()
	}
}
