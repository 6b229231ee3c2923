package policyd

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

	"github.com/mailsts/mailsts/internal/stscache"
)

// Redis time bounds. A Redis on the LAN answers in well under a
// millisecond; one that takes longer than redisQueryTimeout on a query's
// behalf is treated as down: policyd then answers from memory and fetches
// what memory does not hold, and a background probe finds Redis again
// (stscache.Tiered.Watch). redisIOTimeout bounds every Redis call at the
// client (a dial, with one attempt and no dial retries; a read; a write; a
// wait for a pooled connection), for the daemon's background work and the
// cache command as well. So no lookup waits on go-redis's dial retries
// (five attempts of up to 5 s each by default) or command retries.
const (
	redisQueryTimeout = 300 * time.Millisecond
	redisIOTimeout    = time.Second
)

// redisOptions returns the go-redis options of rc (RedisConfig.Options:
// an address or a URL): short timeouts where the URL sets none, no retries
// (see redisIOTimeout), deadlines from the caller's context honoured, so a
// lookup waits at most its own bound whatever the URL says.
func redisOptions(rc RedisConfig) (*redis.Options, error) {
	o, err := rc.Options()
	if err != nil {
		return nil, err
	}
	o.DialTimeout = cmp.Or(o.DialTimeout, redisIOTimeout)
	o.ReadTimeout = cmp.Or(o.ReadTimeout, redisIOTimeout)
	o.WriteTimeout = cmp.Or(o.WriteTimeout, redisIOTimeout)
	o.PoolTimeout = cmp.Or(o.PoolTimeout, redisIOTimeout)
	o.DialerRetries = 1
	o.MaxRetries = -1
	o.ContextTimeoutEnabled = true
	return o, nil
}

// openRedis opens the Redis back store of rc behind front. Redis being down
// is not an error: a daemon starts and answers (stscache.Tiered's degraded
// mode, see Daemon.Run). An unusable address or URL is.
func openRedis(rc RedisConfig, front *stscache.Memory, now func() time.Time, logger *slog.Logger) (*Store, error) {
	ropts, err := redisOptions(rc)
	if err != nil {
		return nil, err
	}
	useRedisLogger(logger)
	rdb := redis.NewClient(ropts)
	back := stscache.NewRedis(rdb, rc.Prefix, logger)
	back.Now = now
	where := rc.Where() + " prefix " + rc.Prefix
	t := &stscache.Tiered{Front: front, Back: back, Now: now, BackTimeout: redisIOTimeout,
		Logger: logger.With(slog.String("cache", "redis "+where))}
	return &Store{Store: t, Kind: "redis", Where: where, Durable: true, front: front, tiered: t, rdb: rdb}, nil
}

// watchBack makes the daemon's store resilient to its back store failing
// (Redis down, dropping, hanging or back empty): lookups on a Redis store wait at most
// redisQueryTimeout on it; the hooks feed the metric and the memoised
// answers; the back store is checked now (Redis down at start: an ERROR
// line and the degraded state); and Watch runs until the returned stop is
// called. It must be called before the store serves lookups.
func (d *Daemon) watchBack(ctx context.Context, m DaemonObserver) (stop func()) {
	t := d.store.tiered
	if t == nil {
		return func() {}
	}
	if d.store.Kind == "redis" {
		t.BackTimeout = redisQueryTimeout
	}
	t.OnBackState = func(failing bool) {
		m.CacheDegraded(failing)
		d.writeStatus(d.started) // for `mailsts cache status`
	}
	t.OnResync = func(rs stscache.ResyncStats) {
		if rs.Purged+rs.Adopted > 0 {
			// Memoised answers came from entries that changed.
			d.responder.ForgetAnswers()
		}
		if d.resynced != nil {
			d.resynced(rs)
		}
	}
	stop = t.StartWatch(ctx)
	t.Check(ctx)
	return stop
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
