package stscache

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis time bounds. A Redis on the LAN answers in well under a
// millisecond; one that takes longer than redisQueryTimeout on a query's
// behalf is treated as down: the daemon then answers from memory and
// fetches what memory does not hold, and a background probe finds Redis
// again ([Cache.Watch]). redisIOTimeout bounds every Redis call at the
// client (a dial, with one attempt and no dial retries; a read; a write; a
// wait for a pooled connection), for the daemon's background work and the
// cache command as well. So no lookup waits on go-redis's dial retries
// (five attempts of up to 5 s each by default) or command retries.
const (
	redisQueryTimeout = 300 * time.Millisecond
	redisIOTimeout    = time.Second
)

// boundRedisOptions returns a copy of o with short timeouts where o sets
// none, no retries (see redisIOTimeout), and deadlines from the caller's
// context honoured, so a lookup waits at most its own bound whatever the
// URL says.
func boundRedisOptions(o *redis.Options) *redis.Options {
	c := *o
	c.DialTimeout = cmp.Or(c.DialTimeout, redisIOTimeout)
	c.ReadTimeout = cmp.Or(c.ReadTimeout, redisIOTimeout)
	c.WriteTimeout = cmp.Or(c.WriteTimeout, redisIOTimeout)
	c.PoolTimeout = cmp.Or(c.PoolTimeout, redisIOTimeout)
	c.DialerRetries = 1
	c.MaxRetries = -1
	c.ContextTimeoutEnabled = true
	return &c
}

// openRedis opens the Redis back store of cfg behind c's memory front.
// Redis being down is not an error: a daemon starts and answers (the
// Tiered's degraded mode, see [Cache.Watch]).
func (c *Cache) openRedis(cfg Config) (*Cache, error) {
	if cfg.Redis == nil {
		return nil, fmt.Errorf("stscache: redis cache without redis options")
	}
	useRedisLogger(c.logger)
	rdb := redis.NewClient(boundRedisOptions(cfg.Redis))
	back := NewRedis(rdb, cfg.Prefix, c.logger)
	back.Now = cfg.Now
	where := cmp.Or(cfg.RedisWhere, cfg.Redis.Addr) + " prefix " + cfg.Prefix
	t := &Tiered{Front: c.front, Back: back, FrontTTL: cfg.FrontTTL, Now: cfg.Now, BackTimeout: redisIOTimeout,
		Logger: c.logger.With(slog.String("cache", "redis "+where))}
	c.kind, c.where, c.durable = KindRedis, where, true
	c.store, c.tiered, c.redis, c.rdb = t, t, back, rdb
	return c, nil
}

// Go-redis logs through one package-wide logger (redis.SetLogger; there is
// no per-client hook in v9). Open installs a redisLog once per process:
// it forwards go-redis's lines to the *slog.Logger of the Redis cache
// opened last, at WARN with component=go-redis, so that JSON logs stay
// JSON. With a nil logger, lines are dropped.
var (
	redisLogOnce sync.Once
	redisLogger  atomic.Pointer[slog.Logger]
)

func useRedisLogger(l *slog.Logger) {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	redisLogger.Store(l)
	redisLogOnce.Do(func() { redis.SetLogger(redisLog{}) })
}

// redisLog adapts go-redis's Printf logger to slog: to logger, or when nil
// to the logger of the Redis cache opened last.
type redisLog struct{ logger *slog.Logger }

func (r redisLog) Printf(ctx context.Context, format string, v ...any) {
	l := r.logger
	if l == nil {
		l = redisLogger.Load()
	}
	if l == nil {
		return
	}
	msg := strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: ")
	if ctx == nil {
		ctx = context.Background()
	}
	l.LogAttrs(ctx, slog.LevelWarn, msg, slog.String("component", "go-redis"))
}
