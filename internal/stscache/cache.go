package stscache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mailsts/mailsts/mtasts"
)

// Store kinds: the values of [Config.Kind] and [Status.Kind].
const (
	KindMemory = "memory"
	KindSQLite = "sqlite"
	KindRedis  = "redis"
)

// Config says which policy cache [Open] opens and how.
type Config struct {
	// Kind is KindSQLite (the default when empty), KindMemory or
	// KindRedis.
	Kind string
	// Path is the SQLite file (KindSQLite). Its directory is created.
	Path string
	// OwnPath is the file used instead when Path is postfix-mta-sts-
	// resolver's cache file (ErrResolverCache): mailsts never writes into
	// it; the old file is left for an import ([Status.ResolverFile]).
	OwnPath string
	// Redis is the go-redis client options (KindRedis); Open bounds its
	// timeouts where they are not set (see redisIOTimeout). RedisWhere
	// describes the server in logs and Status, without credentials
	// (default: Redis.Addr). Prefix begins every key.
	Redis      *redis.Options
	RedisWhere string
	Prefix     string
	// FrontTTL is the [Tiered.FrontTTL] of a Redis cache (zero:
	// DefaultFrontTTL). A SQLite cache trusts memory forever: the process
	// is the file's only writer, and purges reach it through the purge
	// log ([Cache.WatchPurges]).
	FrontTTL time.Duration
	// NoFallback makes a SQLite file that cannot be opened an error
	// instead of an ERROR line and an in-memory cache (the cache command
	// wants the error).
	NoFallback bool
	// Logger receives everything; nil discards.
	Logger *slog.Logger
	// Now is the clock of the stores; nil means time.Now.
	Now func() time.Time
	// OnUnreadable, when set, hears of each SQLite cache entry that could
	// not be read (treated as absent: its policy is fetched again).
	OnUnreadable func(domain string, err error)
}

// Cache is an opened policy cache: an in-memory front ([Memory]), alone or
// before a SQLite file or a shared Redis ([Tiered]). It is the
// [mtasts.Store] a daemon's [mtasts.Cache] uses, and it carries the
// operations around it: Touch and Flush of use times, Warm, Maintain,
// Purge with its propagation to other processes, WatchPurges, Watch and
// Check of the back store, Status and Close. Open returns it; it is safe
// for concurrent use.
type Cache struct {
	kind, where  string
	resolverFile string
	durable      bool
	fellBack     error
	repair       *Repair

	store  mtasts.Store // front or tiered
	front  *Memory
	tiered *Tiered
	sqlite *SQLite
	redis  *Redis
	rdb    *redis.Client

	now    func() time.Time
	logger *slog.Logger
}

var _ mtasts.Store = (*Cache)(nil)

// Open opens the cache cfg describes. A SQLite file that cannot be opened
// or created (permissions, a full disk, a read-only state directory) falls
// back to memory, unless cfg.NoFallback: a policy daemon that cannot keep
// its cache across restarts still protects mail while it runs. The fall
// back is loud: an ERROR line, and [Status.FellBack] says why (policyd
// turns it into the cache_degraded metric and its status file). A damaged
// file is not a reason to fall back: OpenSQLite sets it aside and
// rebuilds it ([Status.Repair]). Redis being down is not an error either
// (see [Cache.Watch]); options go-redis cannot use are.
func Open(ctx context.Context, cfg Config) (*Cache, error) {
	logger := cfg.Logger
	if logger == nil {
		logger = discard
	}
	front := &Memory{Now: cfg.Now, Logger: logger}
	c := &Cache{kind: KindMemory, where: "memory", store: front, front: front, now: cfg.Now, logger: logger}
	switch cfg.Kind {
	case KindMemory:
		return c, nil
	case KindRedis:
		return c.openRedis(cfg)
	}
	path := cfg.Path
	db, err := openSQLiteDir(ctx, path, logger)
	if errors.Is(err, ErrResolverCache) && cfg.OwnPath != "" {
		// Never write into postfix-mta-sts-resolver's file. Use our own
		// and import what the old one holds.
		logger.Error("cache.path is postfix-mta-sts-resolver's cache file: mailsts does not write into it; using its own file and importing the old file's policies",
			"resolver_file", path, "path", cfg.OwnPath)
		c.resolverFile, path = path, cfg.OwnPath
		db, err = openSQLiteDir(ctx, path, logger)
	}
	if err != nil {
		if cfg.NoFallback {
			return nil, err
		}
		logger.Error("cannot open the SQLite policy cache; FALLING BACK TO MEMORY: cached policies will not survive a restart "+
			"(STS-CACHE-10); fix the path or its permissions and restart (mailsts cache status tells what is wrong)",
			"path", path, "error", err)
		c.where, c.fellBack, c.resolverFile = "memory (fallback from "+path+")", err, ""
		return c, nil
	}
	db.Now = cfg.Now
	db.OnUnreadable = cfg.OnUnreadable
	// This process is the file's only writer: trust memory forever.
	// Nothing is read yet: a lookup that misses memory reads the file, and
	// Warm copies the whole file into memory in the background.
	t := &Tiered{Front: front, Back: db, FrontTTL: -1, Now: cfg.Now, Logger: logger}
	c.kind, c.where, c.durable, c.repair = KindSQLite, db.Path(), true, db.Repaired()
	c.store, c.tiered, c.sqlite = t, t, db
	return c, nil
}

func openSQLiteDir(ctx context.Context, path string, logger *slog.Logger) (*SQLite, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("stscache: state directory: %w", err)
	}
	return OpenSQLite(ctx, path, logger)
}

// Get implements [mtasts.Store].
func (c *Cache) Get(ctx context.Context, domain string) (*mtasts.Entry, error) {
	return c.store.Get(ctx, domain)
}

// Put implements [mtasts.Store].
func (c *Cache) Put(ctx context.Context, e *mtasts.Entry) error { return c.store.Put(ctx, e) }

// Delete implements [mtasts.Store]. On Redis it announces the delete to
// the other processes on the prefix; to purge from the outside, use
// [Cache.Purge].
func (c *Cache) Delete(ctx context.Context, domain string) error {
	return c.store.Delete(ctx, domain)
}

// Range implements [mtasts.Store]: the back store's entries when there is
// one (with what memory holds newer), else memory's.
func (c *Cache) Range(ctx context.Context, fn func(*mtasts.Entry) bool) error {
	return c.store.Range(ctx, fn)
}

// Kind returns KindMemory, KindSQLite or KindRedis: what was actually
// opened (KindMemory after a fall back).
func (c *Cache) Kind() string { return c.kind }

// Touch records use of domain in memory (never a write per query).
func (c *Cache) Touch(domain string, now time.Time) bool {
	if c.tiered != nil {
		return c.tiered.Touch(domain, now)
	}
	return c.front.Touch(domain, now)
}

// Flush writes recorded use times to the back store.
func (c *Cache) Flush(ctx context.Context) error {
	if c.tiered == nil {
		return nil
	}
	_, err := c.tiered.Flush(ctx)
	return err
}

// Len returns the number of entries in memory.
func (c *Cache) Len() int { return c.front.Len() }

// Warm copies every entry of a SQLite file into memory, keeping entries
// already there (written or read since start). Until it is done, lookups
// that miss memory read the file, so a daemon can answer at once after a
// restart. It returns the number of entries added; other stores: 0.
func (c *Cache) Warm(ctx context.Context) (int, error) {
	if c.sqlite == nil {
		return 0, nil
	}
	n, err := c.tiered.Load(ctx)
	if err != nil {
		return n, fmt.Errorf("stscache: loading %s: %w", c.where, err)
	}
	return n, nil
}

// Maintain evicts entries without a valid policy unused since unusedSince
// and caps the entries at max (never dropping valid enforce or testing
// policies, STS-CACHE-10), and trims the SQLite purge log of records older
// than purgeKeep. It returns how many entries were removed.
func (c *Cache) Maintain(ctx context.Context, unusedSince time.Time, max int) (int, error) {
	var errs []error
	total := 0
	if c.sqlite != nil {
		if err := c.Flush(ctx); err != nil {
			errs = append(errs, err)
		}
		n, err := c.sqlite.Evict(ctx, unusedSince)
		total += n
		errs = append(errs, err)
		if max > 0 {
			n, err = c.sqlite.Cap(ctx, max)
			total += n
			errs = append(errs, err)
		}
	}
	n, err := c.front.Evict(ctx, unusedSince)
	total += n
	errs = append(errs, err)
	if max > 0 {
		if c.tiered != nil {
			n, err = c.tiered.Cap(ctx, max)
		} else {
			n, err = c.front.Cap(ctx, max)
		}
		total += n
		errs = append(errs, err)
	}
	if c.sqlite != nil {
		if _, err := c.sqlite.TrimPurges(ctx, c.clock().Add(-purgeKeep)); err != nil {
			errs = append(errs, fmt.Errorf("trimming the cache purge log: %w", err))
		}
	}
	return total, errors.Join(errs...)
}

func (c *Cache) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}

// Damaged reports whether a read or write hit a damaged page of the SQLite
// file since it was opened (it is set aside and rebuilt at the next Open).
func (c *Cache) Damaged() bool { return c.sqlite != nil && c.sqlite.Damaged() }

// Close flushes use times and closes the back store.
func (c *Cache) Close(ctx context.Context) error {
	err := c.Flush(ctx)
	if c.sqlite != nil {
		err = errors.Join(err, c.sqlite.Close())
	}
	if c.rdb != nil {
		err = errors.Join(err, c.rdb.Close())
	}
	return err
}

// Status is the state of a cache, for `mailsts cache status`, policyd's
// status file, logs and metrics.
type Status struct {
	// Kind is KindMemory, KindSQLite or KindRedis (what was opened).
	Kind string
	// Where describes the location: the file path, the Redis address and
	// prefix, or "memory …".
	Where string
	// ResolverFile is set when the configured path was
	// postfix-mta-sts-resolver's cache file: Where is then mailsts's own
	// file, and the old one is left untouched, to be imported.
	ResolverFile string
	// Durable is true when the cache survives a restart (SQLite, Redis).
	Durable bool
	// FellBack is why the configured SQLite file could not be opened, when
	// Open fell back to memory; nil otherwise.
	FellBack error
	// Repair is the damaged SQLite file that was set aside and rebuilt at
	// Open, or nil.
	Repair *Repair
	// Damaged: see [Cache.Damaged].
	Damaged bool
	// Entries is the number of entries in memory.
	Entries int
	// Back is the back store's state as this process sees it now: while
	// Back.Degraded, lookups are answered from memory, domains not in
	// memory are looked up afresh, and what is written meanwhile waits in
	// memory (Back.Pending entries) to be written back when the store
	// answers again.
	Back BackState
}

// Status returns the cache's state as this process sees it now.
func (c *Cache) Status() Status {
	st := Status{Kind: c.kind, Where: c.where, ResolverFile: c.resolverFile, Durable: c.durable,
		FellBack: c.fellBack, Repair: c.repair, Damaged: c.Damaged(), Entries: c.front.Len()}
	if c.tiered != nil {
		st.Back = c.tiered.BackState()
	}
	return st
}

// Check asks the back store now (bounded by a short timeout) and returns
// the cache's state: a command that opened the cache (`mailsts cache
// status`) learns whether the back store answers. A failure is logged at
// ERROR.
func (c *Cache) Check(ctx context.Context) Status {
	if c.tiered != nil {
		c.tiered.Check(ctx)
	}
	return c.Status()
}

// Watch makes the cache resilient to its back store failing (Redis down,
// dropping, hanging or back empty): lookups on a Redis cache wait at most
// redisQueryTimeout on it; onState hears when the back store fails (true)
// and answers again (false), onResync after each reconciliation of memory
// with the back store (either may be nil); the back store is checked now
// (down at start: an ERROR line and the degraded state); and the watch
// runs until the returned stop is called. It must be called before the
// cache serves lookups. A memory cache has nothing to watch.
func (c *Cache) Watch(ctx context.Context, onState func(failing bool), onResync func(ResyncStats)) (stop func()) {
	t := c.tiered
	if t == nil {
		return func() {}
	}
	if c.kind == KindRedis {
		t.BackTimeout = redisQueryTimeout
	}
	t.OnBackState = onState
	t.OnResync = onResync
	stop = t.StartWatch(ctx)
	t.Check(ctx)
	return stop
}

// importMarker is the Redis key (under the prefix) that records that
// postfix-mta-sts-resolver's cache was imported, so that a fleet imports
// once.
const importMarker = "imported-resolver"

// ErrImportedBefore is returned by [Cache.ClaimImport] when the one-time
// import ran before (or the cache is not empty): nothing to do.
var ErrImportedBefore = errors.New("stscache: postfix-mta-sts-resolver cache imported before")

// ClaimImport decides whether this process runs the one-time import of
// postfix-mta-sts-resolver's cache: with SQLite, when the file holds no
// entry yet; with Redis, when no process on the prefix claimed it before
// (a marker key, set now, so that a fleet imports once); in memory,
// always. It returns release, which withdraws the claim (call it when the
// import fails, so that it is tried again), or ErrImportedBefore, or the
// error that kept it from telling (Redis unreachable).
func (c *Cache) ClaimImport(ctx context.Context, now time.Time) (release func(), err error) {
	switch {
	case c.sqlite != nil:
		n, err := c.sqlite.Len(ctx)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			return nil, fmt.Errorf("%w: the cache holds %d entries", ErrImportedBefore, n)
		}
	case c.rdb != nil:
		key := c.redis.prefix + importMarker
		ok, err := c.rdb.SetNX(ctx, key, now.Unix(), 0).Result()
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, ErrImportedBefore
		}
		return func() { c.rdb.Del(context.WithoutCancel(ctx), key) }, nil
	}
	return func() {}, nil
}

// ErrImportSource: the source given to [Cache.ImportResolver] is not
// usable (the message says why); fix it.
var ErrImportSource = errors.New("postfix-mta-sts-resolver cache")

// ResolverSource is a postfix-mta-sts-resolver cache to import: its
// SQLite File (read only, never changed), or its Redis database (go-redis
// options), whose keys are read except those under SkipPrefix (mailsts's
// own).
type ResolverSource struct {
	File       string
	Redis      *redis.Options
	SkipPrefix string
}

// ImportResolver copies the policies of postfix-mta-sts-resolver's cache
// src into c ([Import]): each policy body is parsed as a fetched policy
// would be; the policy id and the time the old daemon last checked it are
// kept; expired and unreadable records are counted and skipped; a domain c
// already holds a policy for, fetched as recently, is kept. Importing c's
// own SQLite file is refused (ErrImportSource).
func (c *Cache) ImportResolver(ctx context.Context, src ResolverSource, now time.Time) (ImportStats, error) {
	if src.Redis == nil {
		if c.sqlite != nil && samePath(src.File, c.where) {
			return ImportStats{}, fmt.Errorf("%w: %s is the cache being imported into", ErrImportSource, src.File)
		}
		return Import(ctx, c, now, func(fn ResolverRecordFunc) error {
			return ReadResolverSQLite(ctx, src.File, now, fn)
		}, c.logger)
	}
	rdb := redis.NewClient(src.Redis)
	defer rdb.Close()
	return Import(ctx, c, now, func(fn ResolverRecordFunc) error {
		return ReadResolverRedis(ctx, rdb, "", src.SkipPrefix, now, fn)
	}, c.logger)
}

func samePath(a, b string) bool {
	aa, err1 := filepath.Abs(a)
	bb, err2 := filepath.Abs(b)
	return err1 == nil && err2 == nil && aa == bb
}
