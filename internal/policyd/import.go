package policyd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/mailsts/mailsts/internal/stscache"
)

// ErrImportSource: the source given to ImportResolver is not usable (the
// message says why); fix it. It is stscache's.
var ErrImportSource = stscache.ErrImportSource

// isRedisURL reports whether source names a Redis database rather than a
// SQLite file.
func isRedisURL(source string) bool {
	for _, s := range []string{"redis://", "rediss://", "unix://"} {
		if strings.HasPrefix(source, s) {
			return true
		}
	}
	return false
}

// ImportResolver copies the policies of postfix-mta-sts-resolver's cache
// into st (stscache.Cache.ImportResolver): source is its SQLite file (read
// only, never changed) or a redis://, rediss:// or unix:// URL of its
// Redis database (its keys are read; mailsts's own keys, under
// cfg.Cache.Redis.Prefix, are passed over). A URL equal to
// cfg.Cache.Redis.URL uses cfg's password and CA file. Skipped records
// are logged to the cache's logger.
func ImportResolver(ctx context.Context, st *stscache.Cache, cfg *Config, source string, now time.Time) (stscache.ImportStats, error) {
	if !isRedisURL(source) {
		return st.ImportResolver(ctx, stscache.ResolverSource{File: source}, now)
	}
	rc := cfg.Cache.Redis
	if source != rc.URL {
		var err error
		if rc, _, err = ResolverRedis(map[string]any{"url": source}); err != nil {
			return stscache.ImportStats{}, fmt.Errorf("%w: %w", ErrImportSource, err)
		}
	}
	opts, err := rc.Options()
	if err != nil {
		return stscache.ImportStats{}, fmt.Errorf("%w: %w", ErrImportSource, err)
	}
	return st.ImportResolver(ctx, stscache.ResolverSource{Redis: opts, SkipPrefix: cfg.Cache.Redis.Prefix}, now)
}

// AutoImport runs the one-time import of a configuration translated from
// postfix-mta-sts-resolver's (cache.import_resolver), or of the old
// daemon's file that cache.path named (stscache.Status.ResolverFile): with
// SQLite, when mailsts's file holds no entry yet; with Redis, when no
// daemon on the prefix has imported before (stscache.Cache.ClaimImport: a
// marker key, set first, so that a fleet imports once; removed again if
// the import fails). Failures are logged, never fatal: the daemon starts
// with what it has.
func AutoImport(ctx context.Context, st *stscache.Cache, cfg *Config, now time.Time, logger *slog.Logger) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	source := cfg.Cache.ImportResolver
	if source == "" {
		source = st.Status().ResolverFile
	}
	if source == "" {
		return
	}
	release, err := st.ClaimImport(ctx, now)
	switch {
	case errors.Is(err, stscache.ErrImportedBefore):
		logger.Debug("postfix-mta-sts-resolver cache not imported: imported before", "source", maskURL(source), "error", err)
		return
	case err != nil && st.Kind() == stscache.KindRedis:
		logger.Warn("postfix-mta-sts-resolver cache not imported: Redis unreachable; it is tried again at the next start",
			"source", maskURL(source), "error", err)
		return
	case err != nil:
		logger.Debug("postfix-mta-sts-resolver cache not imported: mailsts's cache cannot be read", "source", source, "error", err)
		return
	}
	stats, err := ImportResolver(ctx, st, cfg, source, now)
	if err != nil {
		release()
		logger.Error("importing postfix-mta-sts-resolver's cache failed; starting with what mailsts has (retry: mailsts cache import --from-resolver)",
			"source", maskURL(source), "imported", stats.Imported, "error", err)
		return
	}
	logger.Info("imported postfix-mta-sts-resolver's cache", "source", maskURL(source), "read", stats.Read,
		"imported", stats.Imported, "kept", stats.Kept, "expired", stats.Expired, "bad", stats.Bad)
}
