package certs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/redis/go-redis/v9"
)

// RedisOptions configure NewRedisStorage.
type RedisOptions struct {
	// Prefix begins every Redis key of the storage (default
	// "mailsts:certs:"); instances sharing certificates use the same one.
	// With Redis Cluster, put a hash tag in it ("{mailsts-certs}:") so
	// that every key lands in one slot: Store and Delete update a key and
	// the index in one transaction.
	Prefix string
	// LockLease is the lease of distributed locks (default
	// DefaultLockLease).
	LockLease time.Duration
	// Logger receives lock renewal problems; nil discards.
	Logger *slog.Logger
}

// RedisStorage is a certmagic.Storage in Redis. Each key is a hash
// <prefix>k:<key> holding the value and its modification time; the sorted
// set <prefix>index lists every key (all with score 0, so that prefix
// queries are lexicographic ranges); locks are <prefix>lock:<name> strings
// holding the holder's random token with a TTL equal to the lease.
type RedisStorage struct {
	*locker
	c      redis.UniversalClient
	prefix string
}

var (
	_ certmagic.Storage          = (*RedisStorage)(nil)
	_ certmagic.LockLeaseRenewer = (*RedisStorage)(nil)
)

// NewRedisStorage returns a storage over c. The caller keeps ownership of
// c; Close only stops lock renewals.
func NewRedisStorage(c redis.UniversalClient, o RedisOptions) *RedisStorage {
	p := o.Prefix
	if p == "" {
		p = "mailsts:certs:"
	}
	s := &RedisStorage{c: c, prefix: p}
	s.locker = newLocker(redisLocks{s}, o.LockLease, o.Logger)
	return s
}

// Close stops lock renewals; held locks expire on their own.
func (s *RedisStorage) Close() { s.locker.close() }

func (s *RedisStorage) dataKey(key string) string { return s.prefix + "k:" + key }
func (s *RedisStorage) indexKey() string          { return s.prefix + "index" }

// Store implements certmagic.Storage.
func (s *RedisStorage) Store(ctx context.Context, key string, value []byte) error {
	key = strings.Trim(key, "/")
	_, err := s.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, s.dataKey(key), "v", value, "m", strconv.FormatInt(time.Now().UnixNano(), 10))
		p.ZAdd(ctx, s.indexKey(), redis.Z{Member: key})
		return nil
	})
	if err != nil {
		return fmt.Errorf("certs: redis store %q: %w", key, err)
	}
	return nil
}

// Load implements certmagic.Storage.
func (s *RedisStorage) Load(ctx context.Context, key string) ([]byte, error) {
	key = strings.Trim(key, "/")
	v, err := s.c.HGet(ctx, s.dataKey(key), "v").Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("certs: %q: %w", key, fs.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("certs: redis load %q: %w", key, err)
	}
	return v, nil
}

// under returns the keys below dir, in order.
func (s *RedisStorage) under(ctx context.Context, dir string) ([]string, error) {
	lo, hi := prefixRange(dir)
	min, max := "["+lo, "("+hi
	if lo == "" {
		min, max = "-", "+"
	}
	return s.c.ZRangeByLex(ctx, s.indexKey(), &redis.ZRangeBy{Min: min, Max: max}).Result()
}

// Delete implements certmagic.Storage: the key and everything under it.
func (s *RedisStorage) Delete(ctx context.Context, key string) error {
	key = strings.Trim(key, "/")
	keys, err := s.under(ctx, key)
	if err != nil {
		return fmt.Errorf("certs: redis delete %q: %w", key, err)
	}
	keys = append(keys, key)
	_, err = s.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.Del(ctx, s.dataKey(k))
			p.ZRem(ctx, s.indexKey(), k)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("certs: redis delete %q: %w", key, err)
	}
	return nil
}

// Exists implements certmagic.Storage.
func (s *RedisStorage) Exists(ctx context.Context, key string) bool {
	_, err := s.Stat(ctx, key)
	return err == nil
}

// List implements certmagic.Storage.
func (s *RedisStorage) List(ctx context.Context, dir string, recursive bool) ([]string, error) {
	keys, err := s.under(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("certs: redis list %q: %w", dir, err)
	}
	return listKeys(dir, keys, recursive)
}

// Stat implements certmagic.Storage.
func (s *RedisStorage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	key = strings.Trim(key, "/")
	var size *redis.IntCmd
	var mod *redis.StringCmd
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		size = p.HStrLen(ctx, s.dataKey(key), "v")
		mod = p.HGet(ctx, s.dataKey(key), "m")
		return nil
	})
	if err == nil {
		ns, _ := strconv.ParseInt(mod.Val(), 10, 64)
		return certmagic.KeyInfo{Key: key, Modified: time.Unix(0, ns), Size: size.Val(), IsTerminal: true}, nil
	}
	if !errors.Is(err, redis.Nil) {
		return certmagic.KeyInfo{}, fmt.Errorf("certs: redis stat %q: %w", key, err)
	}
	keys, err := s.under(ctx, key)
	if err != nil {
		return certmagic.KeyInfo{}, fmt.Errorf("certs: redis stat %q: %w", key, err)
	}
	if len(keys) == 0 {
		return certmagic.KeyInfo{}, fmt.Errorf("certs: %q: %w", key, fs.ErrNotExist)
	}
	return certmagic.KeyInfo{Key: key, IsTerminal: false}, nil
}

// String names the storage in certmagic's logs.
func (s *RedisStorage) String() string { return "redis:" + s.prefix }

// redisLocks keeps locks as strings with a TTL; renew and release check the
// token atomically in Lua.
type redisLocks struct{ s *RedisStorage }

var (
	redisRenew = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then
		return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end
	return 0`)
	redisRelease = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then
		return redis.call("DEL", KEYS[1]) end
	return 0`)
)

func (r redisLocks) key(name string) string { return r.s.prefix + "lock:" + name }

func (r redisLocks) acquire(ctx context.Context, name, token string, lease time.Duration) (bool, error) {
	err := r.s.c.SetArgs(ctx, r.key(name), token, redis.SetArgs{Mode: "NX", TTL: lease}).Err()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	return err == nil, err
}

func (r redisLocks) renew(ctx context.Context, name, token string, lease time.Duration) (bool, error) {
	n, err := redisRenew.Run(ctx, r.s.c, []string{r.key(name)}, token, lease.Milliseconds()).Int()
	return n == 1, err
}

func (r redisLocks) release(ctx context.Context, name, token string) (bool, error) {
	n, err := redisRelease.Run(ctx, r.s.c, []string{r.key(name)}, token).Int()
	return n == 1, err
}
