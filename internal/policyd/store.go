package policyd

import (
	"context"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/mailsts/mailsts/internal/stscache"
)

// CacheFileName is the SQLite file under the state directory.
const CacheFileName = "policyd-cache.sqlite"

// StoreOptions adjust StoreConfig and OpenCache.
type StoreOptions struct {
	// Getenv finds the default state directory; nil means os.Getenv.
	Getenv func(string) string
	// NoFallback makes a SQLite file that cannot be opened an error instead
	// of a warning and an in-memory cache (the cache command wants the
	// error).
	NoFallback bool
	// Now is the clock of the stores; nil means time.Now.
	Now func() time.Time
	// OnUnreadable, when set, hears of each SQLite cache entry that could
	// not be read (treated as absent: its policy is fetched again).
	OnUnreadable func(domain string, err error)
}

// StatePath returns the SQLite cache path for cfg.
func StatePath(cfg *Config, getenv func(string) string) string {
	if cfg.Cache.Path != "" {
		return cfg.Cache.Path
	}
	dir := cfg.StateDir
	if dir == "" {
		dir = DefaultStateDir(getenv)
	}
	return filepath.Join(dir, CacheFileName)
}

// StoreConfig maps cfg.Cache (and the state directory) to the
// configuration of the policy cache, stscache.Open's. An unusable Redis
// address or URL is an error.
func StoreConfig(cfg *Config, opts StoreOptions, logger *slog.Logger) (stscache.Config, error) {
	sc := stscache.Config{Kind: cfg.Cache.Type, NoFallback: opts.NoFallback, Logger: logger, Now: opts.Now, OnUnreadable: opts.OnUnreadable}
	switch cfg.Cache.Type {
	case stscache.KindRedis:
		rc := cfg.Cache.Redis
		ro, err := rc.Options()
		if err != nil {
			return stscache.Config{}, err
		}
		sc.Redis, sc.RedisWhere, sc.Prefix = ro, rc.Where(), rc.Prefix
	case stscache.KindMemory:
	default:
		sc.Path = StatePath(cfg, opts.Getenv)
		// When cache.path is postfix-mta-sts-resolver's
		// file, mailsts uses its own and imports what the old one holds.
		sc.OwnPath = StatePath(&Config{StateDir: cfg.StateDir}, opts.Getenv)
	}
	return sc, nil
}

// OpenCache opens the policy cache cfg describes (see stscache.Open: a
// SQLite file that cannot be opened falls back to memory, loudly, unless
// opts.NoFallback).
func OpenCache(ctx context.Context, cfg *Config, opts StoreOptions, logger *slog.Logger) (*stscache.Cache, error) {
	sc, err := StoreConfig(cfg, opts, logger)
	if err != nil {
		return nil, err
	}
	return stscache.Open(ctx, sc)
}

// watchBack makes the daemon's cache resilient to its back store failing
// (stscache.Cache.Watch): the hooks feed the metric, the status file and
// the memoised answers. It must be called before the cache serves lookups;
// the watch runs until the returned stop is called.
func (d *Daemon) watchBack(ctx context.Context, m DaemonObserver) (stop func()) {
	return d.store.Watch(ctx, func(failing bool) {
		m.CacheDegraded(failing)
		d.writeStatus(d.started) // for `mailsts cache status`
	}, func(rs stscache.ResyncStats) {
		if rs.Purged+rs.Adopted > 0 {
			// Memoised answers came from entries that changed.
			d.responder.ForgetAnswers()
		}
		if d.resynced != nil {
			d.resynced(rs)
		}
	})
}

// CacheStatus returns the running daemon's cache state (zero before Run
// opened the cache).
func (d *Daemon) CacheStatus() stscache.Status {
	if d.store == nil {
		return stscache.Status{}
	}
	return d.store.Status()
}
