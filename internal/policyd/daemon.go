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
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mailsts/mailsts/dnsresolve"
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

	// purgePollEvery is how often a daemon on SQLite reads the file's purge
	// log, so that `mailsts cache purge` reaches it without a restart: one
	// indexed query, off the query path.
	purgePollEvery = 2 * time.Second
	// purgeBatch and purgePages bound one poll; the rest waits for the next.
	purgeBatch = 1000
	purgePages = 10
	// purgeKeep is how long purge log records are kept: far longer than a
	// poll, so that only a daemon stopped (SIGSTOP, suspended VM) for longer
	// misses records, and it then notices the gap and forgets everything.
	purgeKeep = time.Hour
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
	// Ready, when set, is called once every listener is open, with their
	// addresses in Config.Listen order.
	Ready func(addrs []net.Addr)
	// Observer, when set, receives the daemon's events for metrics
	// (internal/metrics.Metrics implements it); nil reports nothing.
	Observer DaemonObserver

	responder *Responder
	cache     *mtasts.Cache
	store     *Store
	started   time.Time // when Run began
	// damageRecorded: the status file says the SQLite file was found
	// damaged while running (maintainLoop only).
	damageRecorded bool

	// Tests: purgeEvery replaces purgePollEvery; purged, when set, is
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
	started := d.now() // purges made from here on are applied (purgeLoop)
	d.started = started
	st, err := OpenStore(ctx, cfg, StoreOptions{Getenv: d.Getenv, Now: d.Now,
		OnUnreadable: func(string, error) { m.CacheUnreadable() }}, log)
	if err != nil {
		return err
	}
	d.store = st
	m.CacheOpened(st.Durable, st.Degraded != nil)
	if st.Repair != nil {
		m.CacheRepaired()
	}
	d.writeStatus(started)
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
		Store:              st.Store,
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
	d.responder.Now = d.Now
	d.responder.Logger = log
	d.responder.Observer = m
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
	log.Info("mailsts policyd started", "cache", st.Kind, "where", st.Where)

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
	if st.Kind == "sqlite" {
		g.Go(func() error {
			// Listeners are open: lookups meanwhile read the file.
			begin := time.Now()
			n, err := st.Warm(bg)
			switch {
			case err != nil && bg.Err() == nil:
				log.Warn("loading the policy cache into memory failed; lookups read the file instead", "error", err)
			case err == nil:
				log.Info("policy cache loaded", "where", st.Where, "entries", n, "took", time.Since(begin).Round(time.Millisecond))
			}
			return nil
		})
	}
	g.Go(func() error { d.refreshLoop(bg, m); return nil })
	g.Go(func() error { d.maintainLoop(bg); return nil })
	if st.sqlite != nil {
		g.Go(func() error { d.purgeLoop(bg, started); return nil })
	}
	if t, ok := st.Store.(*stscache.Tiered); ok {
		if rb, ok := t.Back.(*stscache.Redis); ok {
			g.Go(func() error { d.followRedisPurges(bg, rb); return nil })
		}
	}
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
	roots, err := mtasts.LoadRootCAs(cfg.Fetch.CAFile)
	if err != nil {
		return nil, fmt.Errorf("policyd: fetch.ca_file: %w", err)
	}
	return &mtasts.Client{DNS: dns, RootCAs: roots, Timeout: cfg.Fetch.Timeout, HTTPSPort: cfg.Fetch.HTTPSPort}, nil
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
	if _, err := os.Stat(filepath.Dir(path)); err != nil && d.store.Kind != "sqlite" && d.store.Degraded == nil {
		return // memory or Redis and no state directory: nothing to say
	}
	if err := WriteStatus(path, d.store.Status(started, d.now())); err != nil {
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
			if d.store.sqlite != nil && d.store.sqlite.Damaged() && !d.damageRecorded {
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
			if d.store.sqlite != nil {
				if _, err := d.store.sqlite.TrimPurges(ctx, now.Add(-purgeKeep)); err != nil && ctx.Err() == nil {
					log.Warn("trimming the cache purge log", "error", err)
				}
			}
			p := d.responder.Prune(now)
			log.Debug("cache maintenance", "evicted", n, "pruned_states", p, "entries", d.store.Len())
		}
	}
}

// purgeLoop follows the SQLite file's purge log, written by `mailsts cache
// purge` (and any other process deleting from the file), and drops the
// purged domains from memory, where this daemon would otherwise keep
// answering from them until a restart: Tiered never re-reads SQLite for a
// domain it holds. The next query for such a domain reads the file, finds
// nothing and fetches the policy again. It starts with the purges made
// since started, when the daemon began loading the file.
func (d *Daemon) purgeLoop(ctx context.Context, started time.Time) {
	log := d.logger()
	every := d.purgeEvery
	if every <= 0 {
		every = purgePollEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	seq := int64(-1) // not read yet
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if seq < 0 {
			s, err := d.store.sqlite.PurgeSeqBefore(ctx, started)
			if err != nil {
				if ctx.Err() == nil {
					log.Warn("reading the cache purge log", "error", err)
				}
				continue
			}
			seq = s
		}
		var err error
		seq, err = d.applyPurges(ctx, seq)
		if err != nil && ctx.Err() == nil {
			log.Warn("reading the cache purge log", "error", err)
		}
	}
}

// applyPurges reads the purge log after seq, drops what it names from
// memory and returns the last seq read.
func (d *Daemon) applyPurges(ctx context.Context, seq int64) (int64, error) {
	log := d.logger()
	all := false
	var domains []string
	var err error
	for range purgePages {
		var ps []stscache.Purge
		ps, err = d.store.sqlite.PurgesAfter(ctx, seq, purgeBatch)
		if err != nil {
			break
		}
		if len(ps) > 0 && ps[0].Seq != seq+1 {
			// Records were trimmed before this daemon read them (it was
			// stopped for longer than purgeKeep): forget everything.
			log.Warn("cache purges were missed; dropping every cached policy from memory (the file still has them)",
				"after", seq, "next", ps[0].Seq)
			all = true
		}
		for _, p := range ps {
			if p.Domain == "" {
				all = true
			} else {
				domains = append(domains, p.Domain)
			}
			seq = p.Seq
		}
		if len(ps) < purgeBatch {
			break
		}
	}
	if !all && len(domains) == 0 {
		if d.purged != nil {
			d.purged(0)
		}
		return seq, err
	}
	n := d.dropFromMemory(ctx, all, domains)
	if !all {
		log.Info("cache purged: dropped domains from memory", "count", n, "domains", strings.Join(domains[:min(n, 10)], " "))
	}
	if d.purged != nil {
		d.purged(n)
	}
	return seq, err
}

// dropFromMemory drops domains, or every entry when all (which it logs),
// from the Tiered front and returns the number of domains dropped (-1 for
// all). Front.Delete, not Store.Delete: the back store already lost
// the entries, and a delete through the Tiered would announce another
// purge.
func (d *Daemon) dropFromMemory(ctx context.Context, all bool, domains []string) int {
	log := d.logger()
	front := d.store.front
	if d.responder != nil {
		// Memoised answers were derived from the entries going away.
		defer d.responder.ForgetAnswers()
	}
	if all {
		var held []string
		front.Range(ctx, func(e *mtasts.Entry) bool { held = append(held, e.Domain); return true })
		for _, dom := range held {
			d.forget(ctx, dom)
		}
		if len(held) > 0 {
			log.Info("cache purged: dropped every policy from memory", "entries", len(held))
		}
		return -1
	}
	for _, dom := range domains {
		d.forget(ctx, dom)
	}
	return len(domains)
}

// forget drops domain from memory, under the Tiered's per-domain lock when
// there is a back store (a read racing the purge cannot put it back).
func (d *Daemon) forget(ctx context.Context, domain string) {
	if d.store.tiered != nil {
		d.store.tiered.Forget(ctx, domain)
		return
	}
	d.store.front.Delete(ctx, domain)
}

// followRedisPurges drops from memory the domains other processes delete
// from the shared Redis (`mailsts cache purge`), as Redis.Delete announces
// them, so that this daemon neither keeps answering from them nor, after
// FrontTTL, writes a purged enforce policy back (Tiered restores valid
// policies Redis lost). When the subscription is (re)established, purges
// may have been missed and Redis may have lost its keys (a restart without
// persistence): the Tiered reconciles memory with Redis (Tiered.Resync)
// instead of dropping memory, which would lose enforce policies an
// attacker could then keep us from fetching again (issue #10 item 1).
// Dropped domains are counted in the log every purgePollEvery, not one line
// each (purge --all on Redis deletes domain by domain).
func (d *Daemon) followRedisPurges(ctx context.Context, rb *stscache.Redis) {
	var dropped atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(purgePollEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if n := dropped.Swap(0); n > 0 {
					d.logger().Info("cache purged: dropped domains from memory", "count", n)
				}
			}
		}
	}()
	rb.FollowPurges(ctx, func(dom string) {
		n := 0
		if dom == "" {
			d.store.tiered.Resync()
		} else {
			n = d.dropFromMemory(ctx, false, []string{dom})
			dropped.Add(int64(n))
		}
		if d.purged != nil {
			d.purged(n)
		}
	})
	<-done
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
func ParseLevel(s string) slog.Level {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug
	case "warn", "warning":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}
