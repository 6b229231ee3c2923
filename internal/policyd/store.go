package policyd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mailsts/mailsts/internal/stscache"
	"github.com/mailsts/mailsts/mtasts"
)

// CacheFileName is the SQLite file under the state directory.
const CacheFileName = "policyd-cache.sqlite"

// Store is the opened policy cache store of a configuration: a Memory, or a
// Tiered with a Memory front before SQLite or Redis.
type Store struct {
	// Store is what the mtasts.Cache uses.
	Store mtasts.Store
	// Kind is "memory", "sqlite" or "redis" (what was actually opened).
	Kind string
	// Where describes the location: the file path or the Redis address.
	Where string
	// ResolverFile is set when the configured cache.path was
	// postfix-mta-sts-resolver's cache file: Where is then mailsts's own
	// file, and the old one is left untouched, to be imported.
	ResolverFile string
	// Durable is true when the cache survives a restart (SQLite, Redis).
	Durable bool
	// Degraded is why the configured SQLite file could not be opened, when
	// OpenStore fell back to memory; nil otherwise.
	Degraded error
	// Repair is the damaged SQLite file that was set aside and rebuilt at
	// open, or nil.
	Repair *stscache.Repair

	front  *stscache.Memory
	tiered *stscache.Tiered
	sqlite *stscache.SQLite
	rdb    *redis.Client
}

// StoreOptions adjust OpenStore.
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

// OpenStore opens the store cfg.Cache describes. A SQLite file that cannot
// be opened or created (permissions, a full disk, a read-only state
// directory) falls back to memory, unless opts.NoFallback: a policy daemon
// that cannot keep its cache across restarts still protects mail while it
// runs. The fall back is loud: an ERROR line, and Store.Degraded says why
// (policyd turns it into the cache_degraded metric and its status file).
// A damaged file is not a reason to fall back: stscache.OpenSQLite sets it
// aside and rebuilds it (Store.Repair).
func OpenStore(ctx context.Context, cfg *Config, opts StoreOptions, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	front := &stscache.Memory{Now: opts.Now, Logger: logger}
	switch cfg.Cache.Type {
	case "memory":
		return &Store{Store: front, Kind: "memory", Where: "memory", front: front}, nil
	case "redis":
		return openRedis(cfg.Cache.Redis, front, opts.Now, logger)
	}
	path := StatePath(cfg, opts.Getenv)
	db, err := openSQLite(ctx, path, logger)
	resolverFile := ""
	if errors.Is(err, stscache.ErrResolverCache) {
		// Issue #10 item 7: never write into postfix-mta-sts-resolver's
		// file. Use our own and import what the old one holds.
		own := StatePath(&Config{StateDir: cfg.StateDir}, opts.Getenv)
		logger.Error("cache.path is postfix-mta-sts-resolver's cache file: mailsts does not write into it; using its own file and importing the old file's policies",
			"resolver_file", path, "path", own)
		resolverFile, path = path, own
		db, err = openSQLite(ctx, path, logger)
	}
	if err != nil {
		if opts.NoFallback {
			return nil, err
		}
		logger.Error("cannot open the SQLite policy cache; FALLING BACK TO MEMORY: cached policies will not survive a restart "+
			"(STS-CACHE-10); fix the path or its permissions and restart (mailsts cache status tells what is wrong)",
			"path", path, "error", err)
		return &Store{Store: front, Kind: "memory", Where: "memory (fallback from " + path + ")", Degraded: err, front: front}, nil
	}
	db.Now = opts.Now
	db.OnUnreadable = opts.OnUnreadable
	// This process is the file's only writer: trust memory forever.
	// Nothing is read yet: a lookup that misses memory reads the file, and
	// Warm copies the whole file into memory in the background.
	t := &stscache.Tiered{Front: front, Back: db, FrontTTL: -1, Now: opts.Now, Logger: logger}
	return &Store{Store: t, Kind: "sqlite", Where: db.Path(), ResolverFile: resolverFile, Durable: true, Repair: db.Repaired(), front: front, tiered: t, sqlite: db}, nil
}

func openSQLite(ctx context.Context, path string, logger *slog.Logger) (*stscache.SQLite, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("policyd: state directory: %w", err)
	}
	return stscache.OpenSQLite(ctx, path, logger)
}

// Touch records use of domain in memory (never a write per query).
func (s *Store) Touch(domain string, now time.Time) bool {
	if s.tiered != nil {
		return s.tiered.Touch(domain, now)
	}
	return s.front.Touch(domain, now)
}

// Flush writes recorded use times to the back store.
func (s *Store) Flush(ctx context.Context) error {
	if s.tiered == nil {
		return nil
	}
	_, err := s.tiered.Flush(ctx)
	return err
}

// Maintain evicts entries without a valid policy unused since unusedSince
// and caps the entries at max (never dropping valid enforce or testing
// policies, STS-CACHE-10). It returns how many entries were removed.
func (s *Store) Maintain(ctx context.Context, unusedSince time.Time, max int) (int, error) {
	var errs []error
	total := 0
	if s.sqlite != nil {
		if err := s.Flush(ctx); err != nil {
			errs = append(errs, err)
		}
		n, err := s.sqlite.Evict(ctx, unusedSince)
		total += n
		errs = append(errs, err)
		if max > 0 {
			n, err = s.sqlite.Cap(ctx, max)
			total += n
			errs = append(errs, err)
		}
	}
	n, err := s.front.Evict(ctx, unusedSince)
	total += n
	errs = append(errs, err)
	if max > 0 {
		if s.tiered != nil {
			n, err = s.tiered.Cap(ctx, max)
		} else {
			n, err = s.front.Cap(ctx, max)
		}
		total += n
		errs = append(errs, err)
	}
	return total, errors.Join(errs...)
}

// Len returns the number of entries in memory.
func (s *Store) Len() int { return s.front.Len() }

// Warm copies every entry of a SQLite file into memory, keeping entries
// already there (written or read since start). Until it is done, lookups
// that miss memory read the file, so a daemon can answer at once after a
// restart. It returns the number of entries added; other stores: 0.
func (s *Store) Warm(ctx context.Context) (int, error) {
	if s.sqlite == nil {
		return 0, nil
	}
	n, err := s.tiered.Load(ctx)
	if err != nil {
		return n, fmt.Errorf("policyd: loading %s: %w", s.Where, err)
	}
	return n, nil
}

// Close flushes use times and closes the back store.
func (s *Store) Close(ctx context.Context) error {
	err := s.Flush(ctx)
	if s.sqlite != nil {
		err = errors.Join(err, s.sqlite.Close())
	}
	if s.rdb != nil {
		err = errors.Join(err, s.rdb.Close())
	}
	return err
}
