package stscache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mailsts/mailsts/mtasts"
)

// Redis is an [mtasts.Store] in Redis, shared by a fleet of MTAs so that a
// policy fetched by one is used by all.
//
// Each domain is one hash key, <prefix>policy:<domain>, with the field "e"
// holding the JSON entry and, once a daemon has flushed use times, the field
// "u" holding LastUsed in Unix milliseconds (kept apart so that recording
// use never rewrites, and so never reverts, an entry another daemon has
// just refreshed). A Put replaces the key in one MULTI/EXEC transaction, so
// two daemons writing the same domain leave one of the two entries whole,
// never a mix.
//
// Every key has a TTL: the entry's useful life (the policy's expiry, or the
// end of negative caching or of the failure back-off) plus Grace, at least
// MinTTL from now, at most max_age's upper bound plus Grace. A shared cache
// therefore forgets domains nobody has refreshed, instead of holding them
// forever.
//
// Redis is a network round trip per call: put a [Tiered] with a [Memory]
// front before it on the per-query path.
type Redis struct {
	// Grace is how long an entry is kept after it stops being useful, so
	// that a daemon refreshing an expired policy still finds the old id and
	// the failure history. Zero means 24 hours.
	Grace time.Duration
	// MinTTL is the least TTL a Put sets, so that an entry describing the
	// past (a failure with no policy) survives long enough to rate-limit
	// retries (STS-CACHE-8). Zero means 1 hour.
	MinTTL time.Duration
	// Now returns the current time for TTLs. Nil means time.Now.
	Now func() time.Time

	client redis.UniversalClient
	prefix string
	logger *slog.Logger
}

var (
	_ mtasts.Store   = (*Redis)(nil)
	_ LastUsedWriter = (*Redis)(nil)
)

// NewRedis returns a store keeping its keys under prefix (for example
// "mailsts:") in client. A nil logger discards. The client is not closed by
// the store.
func NewRedis(client redis.UniversalClient, prefix string, logger *slog.Logger) *Redis {
	if logger == nil {
		logger = discard
	}
	return &Redis{client: client, prefix: prefix, logger: logger}
}

// Key returns the Redis key holding domain's entry.
func (r *Redis) Key(domain string) string {
	return r.prefix + "policy:" + domain
}

const (
	fieldEntry    = "e"
	fieldLastUsed = "u"
)

// TTL returns how long Redis should keep e, counted from now.
func (r *Redis) TTL(e *mtasts.Entry, now time.Time) time.Duration {
	grace := cmpOr(r.Grace, 24*time.Hour)
	minTTL := cmpOr(r.MinTTL, time.Hour)
	useful := e.Expires()
	for _, t := range []time.Time{e.NoPolicyUntil, e.FailedAt, e.CheckedAt} {
		if t.After(useful) {
			useful = t
		}
	}
	ttl := useful.Add(grace).Sub(now)
	// A future timestamp (clock skew, a corrupt entry) must not make an
	// entry immortal: no policy lives longer than RFC 8461's max_age cap.
	maxTTL := time.Duration(mtasts.MaxMaxAge)*time.Second + grace
	return min(max(ttl, minTTL), maxTTL)
}

func cmpOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func (r *Redis) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Get implements [mtasts.Store].
func (r *Redis) Get(ctx context.Context, domain string) (*mtasts.Entry, error) {
	vals, err := r.client.HMGet(ctx, r.Key(domain), fieldEntry, fieldLastUsed).Result()
	if err != nil {
		if isWrongType(err) {
			return nil, fmt.Errorf("%w: redis key %s is not a hash", ErrCorruptEntry, r.Key(domain))
		}
		return nil, fmt.Errorf("stscache: redis get %s: %w", domain, err)
	}
	e, err := decodeHash(vals)
	if err != nil {
		return nil, fmt.Errorf("redis key %s: %w", r.Key(domain), err)
	}
	if e != nil && e.Domain != domain {
		return nil, fmt.Errorf("%w: redis key %s holds domain %q", ErrCorruptEntry, r.Key(domain), e.Domain)
	}
	return e, nil
}

func isWrongType(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && strings.HasPrefix(re.Error(), "WRONGTYPE")
}

// decodeHash turns HMGET e u into an entry; (nil, nil) when e is missing.
func decodeHash(vals []any) (*mtasts.Entry, error) {
	if len(vals) != 2 || vals[0] == nil {
		return nil, nil
	}
	s, ok := vals[0].(string)
	if !ok {
		return nil, fmt.Errorf("%w: entry field of type %T", ErrCorruptEntry, vals[0])
	}
	e, err := decodeEntry([]byte(s))
	if err != nil {
		return nil, err
	}
	if u, ok := vals[1].(string); ok {
		ms, err := strconv.ParseInt(u, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: last used %q", ErrCorruptEntry, u)
		}
		if ms > toMS(e.LastUsed) {
			e.LastUsed = fromMS(ms)
		}
	}
	return e, nil
}

// Put implements [mtasts.Store]: DEL, HSET and PEXPIREAT in one MULTI/EXEC.
func (r *Redis) Put(ctx context.Context, e *mtasts.Entry) error {
	if err := checkDomain(e.Domain); err != nil {
		return err
	}
	b, err := encodeEntry(e)
	if err != nil {
		return fmt.Errorf("stscache: redis put %s: %w", e.Domain, err)
	}
	key := r.Key(e.Domain)
	ttl := r.TTL(e, r.now())
	_, err = r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, key, r.tombstoneKey(e.Domain))
		p.HSet(ctx, key, fieldEntry, b)
		p.PExpire(ctx, key, ttl)
		return nil
	})
	if err != nil {
		return fmt.Errorf("stscache: redis put %s: %w", e.Domain, err)
	}
	return nil
}

// Delete implements [mtasts.Store]. It announces the deletion on
// [Redis.PurgeChannel] in the same MULTI/EXEC, so that daemons sharing the
// prefix drop the domain from memory ([Redis.FollowPurges]) instead of
// answering from it, or writing it back, for up to their FrontTTL.
func (r *Redis) Delete(ctx context.Context, domain string) error {
	_, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, r.Key(domain))
		p.Set(ctx, r.tombstoneKey(domain), r.now().Unix(), TombstoneTTL)
		p.Publish(ctx, r.PurgeChannel(), domain)
		return nil
	})
	if err != nil {
		return fmt.Errorf("stscache: redis delete %s: %w", domain, err)
	}
	return nil
}

// TombstoneTTL is how long Redis remembers that Delete removed a domain
// ([Redis.Purged]): far longer than a daemon's FrontTTL, so that one that
// missed the announcement (its subscription was down) learns of the purge
// when it next reads the domain instead of writing the entry back.
const TombstoneTTL = time.Hour

func (r *Redis) tombstoneKey(domain string) string { return r.prefix + "purged:" + domain }

// Purged implements [PurgeAware]: whether Delete removed domain within
// TombstoneTTL and no Put has stored it since.
func (r *Redis) Purged(ctx context.Context, domain string) (bool, error) {
	n, err := r.client.Exists(ctx, r.tombstoneKey(domain)).Result()
	if err != nil {
		return false, fmt.Errorf("stscache: redis purged %s: %w", domain, err)
	}
	return n > 0, nil
}

// restoreScript writes an entry unless the domain was purged recently (its
// tombstone, KEYS[2]) or an entry is there (KEYS[1]); in one step, so that
// a purge cannot fall between the check and the write. It returns the
// RestoreOutcome. A key of another type is someone else's: left alone.
var restoreScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 1 then return 2 end
local t = redis.call('TYPE', KEYS[1])['ok']
if t == 'hash' then
  if redis.call('HEXISTS', KEYS[1], 'e') == 1 then return 1 end
elseif t ~= 'none' then
  return 3
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'e', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 0
`)

// Restore implements [Restorer]: one script per entry, in one pipeline,
// each checking the tombstone and the key and writing the entry when both
// are missing (with the TTL a Put would set). Like Put and Delete, it needs
// the two keys of a domain on one server (no Redis Cluster).
func (r *Redis) Restore(ctx context.Context, entries []*mtasts.Entry) ([]RestoreOutcome, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	if err := restoreScript.Load(ctx, r.client).Err(); err != nil {
		return nil, fmt.Errorf("stscache: redis restore: %w", err)
	}
	now := r.now()
	cmds := make([]*redis.Cmd, len(entries))
	outs := make([]RestoreOutcome, len(entries))
	_, _ = r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, e := range entries {
			b, err := encodeEntry(e)
			if err != nil || checkDomain(e.Domain) != nil {
				outs[i] = Foreign // cannot be written; leave it to Put's error
				continue
			}
			cmds[i] = restoreScript.EvalSha(ctx, p, []string{r.Key(e.Domain), r.tombstoneKey(e.Domain)},
				b, r.TTL(e, now).Milliseconds())
		}
		return nil
	})
	for i, cmd := range cmds {
		if cmd == nil {
			continue
		}
		n, err := cmd.Int()
		if err != nil {
			return nil, fmt.Errorf("stscache: redis restore %s: %w", entries[i].Domain, err)
		}
		switch n {
		case 0:
			outs[i] = Restored
		case 1:
			outs[i] = Present
		case 2:
			outs[i] = Purged
		default:
			outs[i] = Foreign
		}
	}
	return outs, nil
}

var _ Restorer = (*Redis)(nil)

// PurgeChannel is the Pub/Sub channel on which Delete announces deleted
// domains: <prefix>purge.
func (r *Redis) PurgeChannel() string { return r.prefix + "purge" }

// followRetry is how long FollowPurges waits after a failed receive before
// the client reconnects; followPing is how long it waits for a message
// before checking the connection with a PING (a silently dead connection
// would otherwise hide purges forever).
const (
	followRetry = time.Second
	followPing  = 30 * time.Second
)

// FollowPurges subscribes to [Redis.PurgeChannel] and calls drop with each
// domain another process deletes, until ctx ends. Pub/Sub delivers at most
// once: announcements made while the subscription is down are lost. So
// each time the subscription is (re)established, including the first,
// drop is called with "": the caller should reconcile what it holds in
// memory with Redis ([Tiered.Resync]: the tombstones Delete leaves tell
// purged domains from lost ones, and what Redis lost is written back).
// drop is called from one goroutine.
func (r *Redis) FollowPurges(ctx context.Context, drop func(domain string)) {
	ps := r.client.Subscribe(ctx, r.PurgeChannel())
	defer ps.Close()
	// Receive does not return when ctx ends; closing the subscription does.
	stop := context.AfterFunc(ctx, func() { ps.Close() })
	defer stop()
	for ctx.Err() == nil {
		msg, err := ps.ReceiveTimeout(ctx, followPing)
		if ctx.Err() != nil {
			return
		}
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			// Quiet: make sure the connection is alive. A failed PING
			// makes the next receive reconnect and subscribe again.
			if err := ps.Ping(ctx); err != nil {
				r.logger.DebugContext(ctx, "stscache: redis purge subscription", "err", err)
			}
			continue
		case err != nil:
			// The client reconnects and subscribes again on the next
			// receive; do not spin while Redis is away.
			r.logger.DebugContext(ctx, "stscache: redis purge subscription", "err", err)
			t := time.NewTimer(followRetry)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				drop("")
			}
		case *redis.Message:
			if m.Payload != "" {
				drop(m.Payload)
			}
		}
	}
}

// scanBatch is the SCAN COUNT hint and the size of one HMGET pipeline.
const scanBatch = 500

// maxScanRounds bounds one Range: SCAN ends on its own, this only stops a
// misbehaving server from keeping us in the loop forever.
const maxScanRounds = 1 << 22

// globEscape escapes the characters SCAN MATCH treats as patterns.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Range implements [mtasts.Store] with SCAN over the prefix, in batches of
// scanBatch keys. Keys that expire during the scan are skipped; so are
// corrupt ones (logged). SCAN may return a key twice while Redis rehashes;
// Range calls fn at most once per domain. On a cluster client every master
// is scanned, and fn is never called concurrently.
func (r *Redis) Range(ctx context.Context, fn func(*mtasts.Entry) bool) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu      sync.Mutex
		stopped bool
		seen    = make(map[string]struct{})
	)
	visit := func(e *mtasts.Entry) bool {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return false
		}
		if _, dup := seen[e.Domain]; dup {
			return true
		}
		seen[e.Domain] = struct{}{}
		if !fn(e) {
			stopped = true
			cancel()
			return false
		}
		return true
	}
	var err error
	if cc, ok := r.client.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			return r.scan(ctx, c, visit)
		})
	} else {
		err = r.scan(ctx, r.client, visit)
	}
	mu.Lock()
	defer mu.Unlock()
	if stopped {
		return nil
	}
	return err
}

func (r *Redis) scan(ctx context.Context, c redis.Cmdable, visit func(*mtasts.Entry) bool) error {
	match := globEscape(r.prefix) + "policy:*"
	var cursor uint64
	for range maxScanRounds {
		keys, next, err := c.Scan(ctx, cursor, match, scanBatch).Result()
		if err != nil {
			return fmt.Errorf("stscache: redis scan: %w", err)
		}
		if len(keys) > 0 {
			cmds := make([]*redis.SliceCmd, len(keys))
			// The pipeline's own error is the first failed command's;
			// each command is checked below instead.
			_, _ = c.Pipelined(ctx, func(p redis.Pipeliner) error {
				for i, k := range keys {
					cmds[i] = p.HMGet(ctx, k, fieldEntry, fieldLastUsed)
				}
				return nil
			})
			for i, cmd := range cmds {
				vals, err := cmd.Result()
				if err != nil && !isWrongType(err) {
					return fmt.Errorf("stscache: redis range: %w", err)
				}
				var e *mtasts.Entry
				if err == nil {
					e, err = decodeHash(vals)
				}
				if err == nil && e != nil && r.Key(e.Domain) != keys[i] {
					err = fmt.Errorf("%w: holds domain %q", ErrCorruptEntry, e.Domain)
				}
				if err != nil {
					r.logger.WarnContext(ctx, "stscache: skipping corrupt redis entry", "key", keys[i], "err", err)
					continue
				}
				if e != nil && !visit(e) {
					return nil
				}
			}
		}
		cursor = next
		if cursor == 0 {
			return nil
		}
	}
	return fmt.Errorf("stscache: redis range: SCAN did not finish in %d rounds", maxScanRounds)
}

// touchScript raises the "u" field of an existing entry, never lowering it
// and never creating a key (which would have no TTL).
var touchScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], 'e') == 0 then return 0 end
local u = redis.call('HGET', KEYS[1], 'u')
if u and tonumber(u) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'u', ARGV[1])
return 1
`)

// WriteLastUsed implements [LastUsedWriter]: it raises the "u" field of the
// given domains in pipelines of scanBatch scripts, one key per script so
// that it works on a cluster. Missing domains are ignored.
func (r *Redis) WriteLastUsed(ctx context.Context, used map[string]time.Time) error {
	if len(used) == 0 {
		return nil
	}
	// Make sure the script is cached so the pipeline can use EVALSHA.
	if err := touchScript.Load(ctx, r.client).Err(); err != nil {
		return fmt.Errorf("stscache: redis write last_used: %w", err)
	}
	domains := make([]string, 0, len(used))
	for d, t := range used {
		if !t.IsZero() {
			domains = append(domains, d)
		}
	}
	for start := 0; start < len(domains); start += scanBatch {
		batch := domains[start:min(start+scanBatch, len(domains))]
		cmds := make([]*redis.Cmd, len(batch))
		_, _ = r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, d := range batch {
				cmds[i] = touchScript.EvalSha(ctx, p, []string{r.Key(d)}, used[d].UnixMilli())
			}
			return nil
		})
		for i, cmd := range cmds {
			// A key of the wrong type is someone else's data under our
			// prefix: skip it rather than fail every flush.
			if err := cmd.Err(); err != nil && !isWrongType(err) {
				return fmt.Errorf("stscache: redis write last_used %s: %w", batch[i], err)
			}
		}
	}
	return nil
}
