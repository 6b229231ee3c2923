package policyd

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mailsts/mailsts/internal/stscache"
)

// redisTimeout bounds every Redis call policyd makes for a query: a dial
// (one attempt, no dial retries), a read, a write, a wait for a pooled
// connection, and the whole back store call (stscache.Tiered.BackTimeout).
// A Redis on the LAN answers in well under a millisecond; one that takes
// longer is treated as down: policyd then answers from memory and fetches
// what memory does not hold, and a background probe finds Redis again
// (stscache.Tiered.Watch). So no lookup waits on go-redis's dial retries
// (five attempts of up to 5 s each by default) or command retries.
const redisTimeout = 300 * time.Millisecond

// redisOptions returns the go-redis options of rc: short timeouts, no
// retries (see redisTimeout), deadlines from the caller's context honoured.
func redisOptions(rc RedisConfig) *redis.Options {
	return &redis.Options{
		Addr:                  rc.Address,
		Password:              rc.Password,
		DB:                    rc.DB,
		DialTimeout:           redisTimeout,
		DialerRetries:         1,
		ReadTimeout:           redisTimeout,
		WriteTimeout:          redisTimeout,
		PoolTimeout:           redisTimeout,
		MaxRetries:            -1,
		ContextTimeoutEnabled: true,
	}
}

// openRedis opens the Redis back store of rc behind front. Redis being down
// is not an error: the daemon starts and answers (stscache.Tiered's
// degraded mode).
func openRedis(ctx context.Context, rc RedisConfig, front *stscache.Memory, now func() time.Time, logger *slog.Logger) (*Store, error) {
	useRedisLogger(logger)
	rdb := redis.NewClient(redisOptions(rc))
	back := stscache.NewRedis(rdb, rc.Prefix, logger)
	back.Now = now
	where := rc.Address + " prefix " + rc.Prefix
	t := &stscache.Tiered{Front: front, Back: back, Now: now, BackTimeout: redisTimeout,
		Logger: logger.With(slog.String("cache", "redis "+where))}
	// An error is logged by Check as the start of the degraded state; a
	// running daemon's Watch finds Redis when it comes.
	t.Check(ctx)
	return &Store{Store: t, Kind: "redis", Where: where, front: front, tiered: t, rdb: rdb}, nil
}

// Go-redis logs through one package-wide logger (redis.SetLogger; there is
// no per-client hook in v9). policyd installs a redisLog once per process:
// it forwards go-redis's lines to the *slog.Logger of the Redis store
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
// to the logger of the Redis store opened last.
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
