package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/mailsts/mailsts/internal/logging"
	"github.com/mailsts/mailsts/internal/metrics"
	"github.com/mailsts/mailsts/internal/policyd"
)

var policydCommand = command{
	name:    "policyd",
	summary: "run the Postfix MTA-STS policy daemon (socketmap/tcp_table)",
	run:     runPolicyd,
}

const policydHelp = `
Answers Postfix's smtp_tls_policy_maps lookups with each destination's MTA-STS
policy (RFC 8461), preferring DANE where the MX hosts have DNSSEC-validated TLSA
records. It reads --config, else /etc/mailsts/policyd.yml when that exists.
Without a configuration file it listens for socketmap on 127.0.0.1:8461
and keeps its cache in SQLite under the state directory ($STATE_DIRECTORY, else
/var/lib/mailsts as root, else ~/.local/state/mailsts; memory if unwritable).

Postfix main.cf:
  smtp_tls_policy_maps = socketmap:inet:127.0.0.1:8461:postfix

Flags override the configuration file. --config also accepts
postfix-mta-sts-resolver's /etc/mta-sts-daemon.yml (see docs/policyd.md).
SIGHUP reloads zones, overrides and the log level; SIGTERM/SIGINT drain
connections and stop.

Examples:
  mailsts policyd
  mailsts policyd --config /etc/mailsts/policyd.yml
  mailsts policyd --config /etc/mta-sts-daemon.yml --check-config
  mailsts policyd --listen unix:/run/mailsts/policyd.sock --cache memory

Exit codes:
  0  stopped cleanly (or --check-config found the file valid)
  2  could not start (bad configuration, listener in use, store unusable)
  64 usage error
`

// defaultPolicydConfig is read when --config is not given and it exists.
const defaultPolicydConfig = "/etc/mailsts/policyd.yml"

// daemonFlags are the flags policyd and cache share to find the
// configuration and the store.
type daemonFlags struct {
	config   string
	stateDir string
	cache    string
	net      netFlags
}

func (df *daemonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&df.config, "config", "", "configuration `file` (mailsts YAML, or postfix-mta-sts-resolver's mta-sts-daemon.yml; default "+defaultPolicydConfig+" when it exists)")
	fs.StringVar(&df.stateDir, "state-dir", "", "state `directory` holding the SQLite cache (overrides state_dir)")
	fs.StringVar(&df.cache, "cache", "", "cache `type`: sqlite, memory or redis (overrides cache.type)")
	df.net.register(fs)
}

// checkValues returns a usage error for a flag value that can never work
// (--cache bogus, --dns without a port), before anything is opened or
// created; values from the configuration file are checked by load's
// caller as configuration errors.
func (df *daemonFlags) checkValues(fs *flag.FlagSet) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["cache"] && !validCacheType(df.cache) {
		return fmt.Errorf("--cache %q: want sqlite, memory or redis", df.cache)
	}
	return df.net.checkValues(set)
}

// load reads the configuration (defaults without --config), applies the
// flags that were set and logs the dialect notes.
func (df *daemonFlags) load(fs *flag.FlagSet, log *slog.Logger) (*policyd.Config, error) {
	cfg := policyd.Default()
	if df.config == "" {
		// Like any daemon: the system-wide file when there is one.
		if _, err := os.Stat(defaultPolicydConfig); err == nil {
			df.config = defaultPolicydConfig
			log.Info("using the default configuration file", "file", defaultPolicydConfig)
		}
	}
	if df.config != "" {
		c, notes, err := policyd.Load(df.config)
		for _, n := range notes {
			log.Info(n)
		}
		if err != nil {
			return nil, err
		}
		cfg = c
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["state-dir"] {
		cfg.StateDir = df.stateDir
	}
	if set["cache"] {
		cfg.Cache.Type = df.cache
	}
	df.net.applyTo(cfg, set)
	return cfg, nil
}

func runPolicyd(ctx context.Context, env Env, args []string) int {
	fs := newFlagSet("policyd", "mailsts policyd [--config F] [--listen ADDR] [--dns ADDR] [--ca-file F] [--https-port N] [--state-dir D] [--cache memory|sqlite|redis]", policydHelp, env.Stderr)
	var df daemonFlags
	df.register(fs)
	listen := fs.String("listen", "", "socketmap `address` (host:port or unix:/path), replacing the configured listeners")
	metricsAddr := fs.String("metrics", "", "serve Prometheus /metrics on this `address` (overrides metrics.listen)")
	pprofOn := fs.Bool("pprof", false, "also serve Go's profiler under /debug/pprof/ on the metrics listener (sets metrics.pprof)")
	var lf logFlags
	lf.register(fs, "info")
	check := fs.Bool("check-config", false, "validate the configuration, print the effective one and exit")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() != 0 {
		return usageError(env.Stderr, "policyd", "no arguments expected")
	}
	if err := df.checkValues(fs); err != nil {
		return usageError(env.Stderr, "policyd", "%v", err)
	}
	if err := lf.check(); err != nil {
		return usageError(env.Stderr, "policyd", "%v", err)
	}
	level := new(slog.LevelVar)
	boot := newLogger(env.Stderr, "text", level)
	cfg, err := df.load(fs, boot)
	if err != nil {
		fmt.Fprintf(env.Stderr, "mailsts policyd: %v\n", err)
		return ExitError
	}
	if *listen != "" {
		cfg.Listen = []policyd.Listener{{Socketmap: *listen}}
	}
	if *metricsAddr != "" {
		cfg.Metrics.Listen = *metricsAddr
	}
	if *pprofOn {
		cfg.Metrics.Pprof = true
	}
	cfg.Log = lf.apply(cfg.Log)
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(env.Stderr, "mailsts policyd: %v\n", err)
		return ExitError
	}
	if *check {
		out, err := cfg.YAML()
		if err != nil {
			fmt.Fprintf(env.Stderr, "mailsts policyd: %v\n", err)
			return ExitError
		}
		fmt.Fprintf(env.Stdout, "# effective configuration (state directory %s)\n%s", policyd.StatePath(cfg, env.getenv), out)
		// The one line every --check-config prints, on stderr here:
		// stdout is the YAML above.
		var ls []string
		for _, l := range cfg.Listen {
			if l.Socketmap != "" {
				ls = append(ls, "socketmap "+l.Socketmap)
			}
			if l.TCPTable != "" {
				ls = append(ls, "tcp_table "+l.TCPTable)
			}
		}
		cache := cfg.Cache.Type
		if cache == "sqlite" {
			cache += " " + policyd.StatePath(cfg, env.getenv)
		}
		return configOK(env.Stderr, "policyd", "%s, cache %s, log %s/%s", strings.Join(ls, ", "), cache, cfg.Log.Level, cfg.Log.Format)
	}
	level.Set(logging.ParseLevel(cfg.Log.Level))
	log := logging.New(env.Stderr, cfg.Log.Format, level)

	reload := make(chan struct{}, 1)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				select {
				case reload <- struct{}{}:
				default:
				}
			}
		}
	}()

	d := &policyd.Daemon{Config: cfg, Logger: log, Level: level, Getenv: env.getenv}
	if cfg.TLSRPTResults != "" {
		dir := cfg.StateDir
		if dir == "" {
			dir = policyd.DefaultStateDir(env.getenv)
		}
		rep, err := openPolicydReport(ctx, cfg.TLSRPTResults, dir, log)
		if err != nil {
			log.Error("mailsts policyd: tlsrpt_results", "error", err)
			return ExitError
		}
		defer rep.Close()
		d.Report = rep
	}
	if df.config != "" {
		d.Load = func() (*policyd.Config, error) {
			c, err := df.load(fs, log)
			if err != nil {
				return nil, err
			}
			c.Log = lf.apply(c.Log)
			return c, nil
		}
	}
	if err := runDaemon(ctx, d, reload, log); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("mailsts policyd failed", "error", err)
		return ExitError
	}
	return ExitOK
}

// runDaemon runs d with its metrics: they are always collected, and served
// (with Go's profiler when metrics.pprof is set) on metrics.listen when it
// is set. The metrics listener is opened first, so that an address in use
// fails the start; a metrics server failing later stops the daemon, and the
// daemon stopping stops the metrics server.
func runDaemon(ctx context.Context, d *policyd.Daemon, reload <-chan struct{}, log *slog.Logger) error {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		return err
	}
	d.Observer = m
	mc := d.Config.Metrics
	if mc.Listen == "" {
		return d.Run(ctx, reload)
	}
	ln, err := net.Listen("tcp", mc.Listen)
	if err != nil {
		return fmt.Errorf("policyd: metrics listener: %w", err)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return d.Run(gctx, reload) })
	g.Go(func() error { return metrics.Serve(gctx, ln, reg, mc.Pprof, d.Config.ShutdownTimeout, log) })
	return g.Wait()
}

// newLogger returns a slog logger writing text or JSON to w, long values
// clipped (see logging.New).
func newLogger(w io.Writer, format string, level *slog.LevelVar) *slog.Logger {
	return logging.New(w, format, level)
}

// maxLogValue bounds one logged value (logging.MaxValue).
const maxLogValue = logging.MaxValue
