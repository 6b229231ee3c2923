package policyd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/logging"
	"github.com/mailsts/mailsts/internal/stscache"
	"github.com/mailsts/mailsts/mtasts"
	"github.com/mailsts/mailsts/postfix"
)

// Intervals of the daemon's background work.
const (
	refreshEvery  = time.Minute
	flushEvery    = time.Minute
	maintainEvery = 10 * time.Minute
	refreshBatch  = 1000
)

// Daemon is the policy daemon: store, cache, Responder, listeners and the
// background refresh and maintenance loops, run as one errgroup by Run. It
// reports to Observer; serving the metrics (metrics.listen) is the
// caller's job (internal/metrics.Serve, wired by `mailsts policyd`).
type Daemon struct {
	// Config is the configuration to run; required.
	Config *Config
	// Load re-reads the configuration on reload; nil disables reload.
	Load func() (*Config, error)
	// Logger receives everything; nil discards.
	Logger *slog.Logger
	// Level, when set, is adjusted on reload to the new log.level.
	Level *slog.LevelVar
	// Getenv finds the default state directory; nil means os.Getenv.
	Getenv func(string) string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// DNS replaces the resolver built from Config.DNS (tests).
	DNS dnsresolve.Resolver
	// ProbeIPv6 replaces the routing-table check behind
	// fetch.policy_host_aaaa: auto (tests); nil means a connected UDP
	// socket to a documentation address.
	ProbeIPv6 func() bool
	// Ready, when set, is called once every listener is open, with their
	// addresses in Config.Listen order.
	Ready func(addrs []net.Addr)
	// Observer, when set, receives the daemon's events for metrics
	// (internal/metrics.Metrics implements it); nil reports nothing.
	Observer DaemonObserver
	// Report, when set, hears policyd's answers and discovery failures
	// for TLS reporting (see ReportObserver); nil reports nothing.
	Report ReportObserver

	responder *Responder
	cache     *mtasts.Cache
	store     *stscache.Cache
	started   time.Time // when Run began
	// damageRecorded: the status file says the SQLite file was found
	// damaged while running (maintainLoop only).
	damageRecorded bool

	// Tests: purgeEvery replaces the purge log poll interval (see
	// stscache.Cache.WatchPurges); purged, when set, is
	// called after each poll of the SQLite purge log and each Redis purge
	// announcement with the number of domains dropped (-1: all of them; 0
	// also when the Redis subscription is (re)established); resynced,
	// when set, after each reconciliation of memory with the back store.
	purgeEvery time.Duration
	purged     func(n int)
	resynced   func(stscache.ResyncStats)
}

// Responder returns the daemon's Responder once Run has built it (nil
// before).
func (d *Daemon) Responder() *Responder { return d.responder }

func (d *Daemon) logger() *slog.Logger {
	if d.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Logger
}

// server is a postfix server of either kind.
type server interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
	Close() error
}

// Run runs the daemon until ctx ends, then shuts down gracefully: stop
// accepting, let in-flight requests finish within ShutdownTimeout, close
// the rest, flush and close the store. Each value received on reload
// re-reads the configuration (SIGHUP). Run returns nil after a clean
// shutdown.
func (d *Daemon) Run(ctx context.Context, reload <-chan struct{}) error {
	cfg := d.Config
	log := d.logger()
	var m DaemonObserver = nopObserver{}
	if d.Observer != nil {
		m = d.Observer
	}

	client, err := NewClient(cfg, d.DNS)
	if err != nil {
		return err
	}
	var aaaa string
	client.IPv6, aaaa = policyHostIPv6(cfg.Fetch.PolicyHostAAAA, d.ProbeIPv6, d.Now)
	log.Info(aaaa)
	started := d.now() // purges made from here on are applied (WatchPurges)
	d.started = started
	st, err := OpenCache(ctx, cfg, StoreOptions{Getenv: d.Getenv, Now: d.Now,
		OnUnreadable: func(string, error) { m.CacheUnreadable() }}, log)
	if err != nil {
		return err
	}
	d.store = st
	if sz, ok := m.(CacheSizer); ok {
		sz.CacheSize(st.Len)
	}
	cs := st.Status()
	m.CacheOpened(cs.Durable, cs.FellBack != nil)
	if cs.Repair != nil {
		m.CacheRepaired()
	}
	d.writeStatus(started)
	if stop := d.tuneGC(); stop != nil {
		defer stop()
	}
	// The policies postfix-mta-sts-resolver learned survive the move
	// (once).
	AutoImport(ctx, st, cfg, d.now(), log)
	defer func() {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := st.Close(fctx); err != nil {
			log.Error("closing the policy cache", "error", err)
		}
	}()
	d.cache = &mtasts.Cache{
		Client:             client,
		Store:              st,
		Now:                d.Now,
		RefreshInterval:    cfg.Cache.RefreshInterval,
		RefreshConcurrency: cfg.Cache.RefreshConcurrency,
		NegativeTTL:        cfg.Cache.NegativeTTL,
		Logger:             log,
		Observer:           m,
	}
	d.responder, err = NewResponder(cfg, d.cache)
	if err != nil {
		return err
	}
	d.responder.Touch = st.Touch
	d.responder.DeferFetchedMXCheck = true
	if d.responder.DNS != nil {
		// Every answer with the AD bit, the discovery's included, shows
		// the resolver validates (ProbeValidation).
		w := d.responder.WatchAD(d.responder.DNS)
		d.responder.DNS, client.DNS = w, w
		d.responder.onValidation = func(string) { d.writeStatus(d.started) }
	}
	d.responder.Now = d.Now
	d.responder.Logger = log
	d.responder.Observer = m
	d.responder.Report = d.Report
	// A failing back store never fails a lookup: the Tiered answers from
	// memory, reports the rest as not cached (they are fetched), and
	// writes back what it missed when it answers again. Deferred after
	// Close, so stopped before the store closes.
	defer d.watchBack(ctx, m)()

	listeners, err := openListeners(cfg.Listen)
	if err != nil {
		return err
	}
	servers := make([]server, len(listeners))
	addrs := make([]net.Addr, len(listeners))
	for i, l := range cfg.Listen {
		addrs[i] = listeners[i].Addr()
		if l.Socketmap != "" {
			servers[i] = &postfix.SocketmapServer{Handler: d.responder, MaxReplySize: l.MaxReplySize, Logger: log, Observer: m}
		} else {
			servers[i] = &postfix.TCPTableServer{Handler: d.responder, Name: l.Zone, Logger: log, Observer: m}
		}
		log.Info("listening", "kind", l.Kind(), "address", addrs[i].String())
	}
	log.Info("mailsts policyd started", "cache", cs.Kind, "where", cs.Where)

	if d.Ready != nil {
		d.Ready(addrs)
	}

	g, gctx := errgroup.WithContext(ctx)
	for i, srv := range servers {
		g.Go(func() error {
			if err := srv.Serve(listeners[i]); !errors.Is(err, postfix.ErrServerClosed) {
				return fmt.Errorf("policyd: %s listener %s: %w", cfg.Listen[i].Kind(), addrs[i], err)
			}
			return nil
		})
	}
	bg, stopBG := context.WithCancel(gctx)
	if cs.Kind == stscache.KindSQLite {
		g.Go(func() error {
			// Listeners are open: lookups meanwhile read the file.
			begin := time.Now()
			n, err := st.Warm(bg)
			switch {
			case err != nil && bg.Err() == nil:
				log.Warn("loading the policy cache into memory failed; lookups read the file instead", "error", err)
			case err == nil:
				log.Info("policy cache loaded", "where", cs.Where, "entries", n, "took", time.Since(begin).Round(time.Millisecond))
			}
			return nil
		})
	}
	g.Go(func() error { d.refreshLoop(bg, m); return nil })
	if d.responder.DNS != nil {
		g.Go(func() error { d.validationLoop(bg); return nil })
	}
	g.Go(func() error { d.maintainLoop(bg); return nil })
	// `mailsts cache purge` reaches this daemon without a restart.
	g.Go(func() error { st.WatchPurges(bg, started, d.purgeEvery, d.onPurged); return nil })
	g.Go(func() error {
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-reload:
				d.reload(gctx)
			}
		}
	})
	g.Go(func() error {
		<-gctx.Done()
		stopBG()
		log.Info("shutting down: draining connections", "timeout", cfg.ShutdownTimeout)
		sctx, cancel := context.WithTimeout(context.WithoutCancel(gctx), max(cfg.ShutdownTimeout, time.Millisecond))
		defer cancel()
		for _, srv := range servers {
			if err := srv.Shutdown(sctx); err != nil {
				log.Warn("connections still busy at the shutdown deadline; closing them", "error", err)
				srv.Close()
			}
		}
		return nil
	})
	err = g.Wait()
	stopBG()
	if ctx.Err() != nil && err == nil {
		log.Info("mailsts policyd stopped")
	}
	return err
}

// NewClient builds the mtasts client cfg describes; dns, when not nil,
// replaces the resolver of cfg.DNS.
func NewClient(cfg *Config, dns dnsresolve.Resolver) (*mtasts.Client, error) {
	if dns == nil {
		c, err := dnsresolve.NewClient(cfg.DNS.Servers...)
		if err != nil {
			return nil, fmt.Errorf("policyd: dns.servers: %w", err)
		}
		c.Timeout = cfg.DNS.Timeout
		dns = c
	}
	set, err := RootSet(cfg.Fetch)
	if err != nil {
		return nil, err
	}
	c := &mtasts.Client{DNS: dns, RootCAs: set.Default(), Timeout: cfg.Fetch.Timeout, HTTPSPort: cfg.Fetch.HTTPSPort}
	if len(cfg.Fetch.ZoneRoots) > 0 {
		c.RootsFor = set.For
	}
	return c, nil
}

// NewResponder returns the Responder policyd runs for cfg on cache, whose
// Client (see [NewClient]) also serves the DANE and MX-check lookups: zones,
// overrides, DANE and MX-check intervals and the time limit of an answer.
// The daemon adds its store hook, clock, logger and metrics; `mailsts
// resolve --explain` uses it as it is, so that both answer alike.
func NewResponder(cfg *Config, cache *mtasts.Cache) (*Responder, error) {
	rules, err := cfg.Rules()
	if err != nil {
		return nil, err
	}
	var dns dnsresolve.Resolver
	if cache.Client != nil {
		dns = cache.Client.DNS
	}
	r := &Responder{
		Cache:           cache,
		DNS:             dns,
		DANETTL:         cfg.DANETTL,
		MXCheckInterval: cfg.MXCheckInterval,
		Timeout:         cfg.Fetch.Timeout,
	}
	if err := r.SetRules(rules); err != nil {
		return nil, err
	}
	return r, nil
}

func openListeners(ls []Listener) ([]net.Listener, error) {
	var out []net.Listener
	fail := func(err error) ([]net.Listener, error) {
		for _, l := range out {
			l.Close()
		}
		return nil, err
	}
	for _, l := range ls {
		network, addr, err := l.Network()
		if err != nil {
			return fail(err)
		}
		if network == "unix" {
			// A socket left by an earlier run would make Listen fail;
			// remove it, but never a file that is not a socket.
			if fi, err := os.Lstat(addr); err == nil && fi.Mode()&os.ModeSocket != 0 {
				os.Remove(addr)
			}
		}
		ln, err := net.Listen(network, addr)
		if err != nil {
			return fail(fmt.Errorf("policyd: %s listener: %w", l.Kind(), err))
		}
		if m, ok := l.FileMode(); ok && network == "unix" {
			if err := os.Chmod(addr, m); err != nil {
				ln.Close()
				return fail(fmt.Errorf("policyd: %s: %w", addr, err))
			}
		}
		out = append(out, ln)
	}
	return out, nil
}

// jitter returns d plus or minus up to 10%.
func jitter(d time.Duration) time.Duration {
	return d - d/10 + rand.N(d/5+1)
}

// refreshLoop refreshes cached policies ahead of expiry (RFC 8461 §10.2,
// STS-FETCH-11), with jitter so that a fleet does not fetch in step.
func (d *Daemon) refreshLoop(ctx context.Context, m DaemonObserver) {
	log := d.logger()
	t := time.NewTimer(jitter(refreshEvery))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// One scan a round; the Cache runs RefreshConcurrency discoveries
		// at once and at most refreshBatch a round, so a large cache
		// catches up over a few rounds instead of flooding the network.
		n, err := d.cache.RefreshDue(ctx, d.now(), refreshBatch)
		if n > 0 {
			log.Debug("refreshed cached policies", "count", n)
			m.Refreshed(n, 0)
		}
		if err != nil && ctx.Err() == nil {
			log.Warn("background refresh", "error", err)
			m.Refreshed(0, 1)
		}
		t.Reset(jitter(refreshEvery))
	}
}

// validationLoop asks the resolver whether it validates DNSSEC at start
// and every DANETTL (Responder.ProbeValidation).
func (d *Daemon) validationLoop(ctx context.Context) {
	for {
		d.responder.ProbeValidation(ctx)
		t := time.NewTimer(d.responder.daneTTL())
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (d *Daemon) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// maintainLoop flushes use times, evicts and caps the store, and prunes the
// Responder's per-domain state.
// writeStatus records the cache store in use in the status file under the
// state directory, for `mailsts cache status`; best effort (a daemon that
// fell back to memory because the directory is not writable cannot write
// it either, and has said so at ERROR).
func (d *Daemon) writeStatus(started time.Time) {
	path := StatusPath(d.Config, d.Getenv)
	cs := d.store.Status()
	if _, err := os.Stat(filepath.Dir(path)); err != nil && cs.Kind != stscache.KindSQLite && cs.FellBack == nil {
		return // memory or Redis and no state directory: nothing to say
	}
	status := NewStoreStatus(cs, started, d.now())
	if d.responder != nil && d.responder.DNS != nil {
		status.ResolverValidates = d.responder.ResolverValidates()
	}
	if err := WriteStatus(path, status); err != nil {
		d.logger().Warn("cannot record the cache status for `mailsts cache status`", "path", path, "error", err)
	}
}

func (d *Daemon) maintainLoop(ctx context.Context) {
	log := d.logger()
	flush := time.NewTicker(flushEvery)
	defer flush.Stop()
	maint := time.NewTicker(jitter(maintainEvery))
	defer maint.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-flush.C:
			if err := d.store.Flush(ctx); err != nil && ctx.Err() == nil {
				log.Warn("writing cache use times", "error", err)
			}
			if d.store.Damaged() && !d.damageRecorded {
				d.damageRecorded = true
				d.writeStatus(d.started)
			}
		case <-maint.C:
			now := d.now()
			cc := d.Config.Cache
			n, err := d.store.Maintain(ctx, now.Add(-cc.EvictUnusedAfter), cc.MaxEntries)
			if err != nil && ctx.Err() == nil {
				log.Warn("cache maintenance", "error", err)
			}
			p := d.responder.Prune(now)
			log.Debug("cache maintenance", "evicted", n, "pruned_states", p, "entries", d.store.Len())
		}
	}
}

// onPurged hears from the cache's purge watch how many domains it dropped
// from memory (-1: all of them).
func (d *Daemon) onPurged(n int) {
	if n != 0 && d.responder != nil {
		// Memoised answers were derived from the entries that went away.
		d.responder.ForgetAnswers()
	}
	if d.purged != nil {
		d.purged(n)
	}
}

// reload re-reads the configuration and applies what can change while
// running: zones, overrides and the log level. Other changes are logged as
// needing a restart.
func (d *Daemon) reload(ctx context.Context) {
	log := d.logger()
	if d.Load == nil {
		log.Info("reload requested, but there is no configuration file to re-read")
		return
	}
	cfg, err := d.Load()
	if err != nil {
		log.Error("reload failed; keeping the running configuration", "error", err)
		return
	}
	rules, err := cfg.Rules()
	if err == nil {
		err = d.responder.SetRules(rules)
	}
	if err != nil {
		log.Error("reload failed; keeping the running configuration", "error", err)
		return
	}
	if d.Level != nil {
		d.Level.Set(ParseLevel(cfg.Log.Level))
	}
	old := d.Config
	var restart []string
	if !reflect.DeepEqual(old.Listen, cfg.Listen) {
		restart = append(restart, "listen")
	}
	if !reflect.DeepEqual(old.Cache, cfg.Cache) || old.StateDir != cfg.StateDir {
		restart = append(restart, "cache/state_dir")
	}
	if !reflect.DeepEqual(old.DNS, cfg.DNS) || !reflect.DeepEqual(old.Fetch, cfg.Fetch) {
		restart = append(restart, "dns/fetch")
	}
	if old.Metrics != cfg.Metrics {
		restart = append(restart, "metrics")
	}
	if old.Log.Format != cfg.Log.Format {
		restart = append(restart, "log.format")
	}
	if len(restart) > 0 {
		log.Warn("configuration reloaded, but these changes need a restart", "keys", strings.Join(restart, ", "))
	}
	log.Info("configuration reloaded", "zones", len(rules.Zones), "overrides", len(rules.Overrides))
}

// ParseLevel turns a log.level value into a slog level (info by default).
func ParseLevel(s string) slog.Level { return logging.ParseLevel(s) }

// tuneGC starts the garbage collector tuning of Config.GCHeadroom unless
// the operator set GOGC, and returns its stop function (nil when none).
func (d *Daemon) tuneGC() func() {
	getenv := d.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	h := d.Config.GCHeadroom
	if h == 0 {
		h = DefaultGCHeadroom
	}
	if h >= 100 || getenv("GOGC") != "" {
		return nil
	}
	t := &gcTuner{headroom: h}
	t.start()
	d.logger().Debug("garbage collector paced to the live heap", "gc_headroom_percent", h)
	return t.stop
}
