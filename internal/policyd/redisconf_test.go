package policyd

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// Issue #10 item 7: every Redis setting of postfix-mta-sts-resolver's
// mta-sts-daemon.yml (aioredis.from_url's url and keywords, aioredis 1.x's
// address) becomes go-redis options, or an error naming the option.
func TestResolverRedisTranslation(t *testing.T) {
	t.Parallel()
	type want struct {
		network, addr, user, password string
		db                            int
		tls                           bool
		dial, read, write             time.Duration
		pool                          int
	}
	for _, c := range []struct {
		opts string // the cache.options block, YAML
		want want
	}{
		{`address: "redis://127.0.0.1/0?timeout=5"`, want{network: "tcp", addr: "127.0.0.1:6379", dial: 5 * time.Second}},
		{`url: "redis://127.0.0.1/0"
    max_connections: 25
    socket_timeout: 1.0
    socket_connect_timeout: 1.5`, want{network: "tcp", addr: "127.0.0.1:6379", dial: 1500 * time.Millisecond, read: time.Second, write: time.Second, pool: 25}},
		{`url: "redis://user:s3cret@10.0.0.5:6380/4?socket_timeout=2&db=5"`, want{network: "tcp", addr: "10.0.0.5:6380", user: "user", password: "s3cret", db: 5, read: 2 * time.Second, write: 2 * time.Second}},
		{`url: "rediss://:pw@redis.example:6390/1"`, want{network: "tcp", addr: "redis.example:6390", password: "pw", db: 1, tls: true}},
		{`url: "unix:///run/redis/redis.sock?db=2"`, want{network: "unix", addr: "/run/redis/redis.sock", db: 2}},
		{`url: "unix://:pw@/run/redis/redis.sock"`, want{network: "unix", addr: "/run/redis/redis.sock", password: "pw"}},
		{`address: /run/redis/redis.sock
    db: 3
    password: pw`, want{network: "unix", addr: "/run/redis/redis.sock", db: 3, password: "pw"}},
		{`address: "redis://10.1.1.1:6379"
    ssl: true
    timeout: 2.5`, want{network: "tcp", addr: "10.1.1.1:6379", tls: true, dial: 2500 * time.Millisecond}},
		{`address: [10.1.1.2, 6381]
    minsize: 2
    maxsize: 8`, want{network: "tcp", addr: "10.1.1.2:6381", pool: 8}},
		{`url: "redis://[::1]:6379/0?health_check_interval=10"`, want{network: "tcp", addr: "[::1]:6379"}},
		{`url: "redis:///0"`, want{network: "tcp", addr: "localhost:6379"}},
	} {
		cfg, notes, err := Parse([]byte("cache:\n  type: redis\n  options:\n    " + c.opts + "\n"))
		if err != nil {
			t.Errorf("%s: %v", c.opts, err)
			continue
		}
		o, err := cfg.Cache.Redis.Options()
		if err != nil {
			t.Errorf("%s: Options: %v", c.opts, err)
			continue
		}
		got := want{network: o.Network, addr: o.Addr, user: o.Username, password: o.Password, db: o.DB, tls: o.TLSConfig != nil,
			dial: o.DialTimeout, read: o.ReadTimeout, write: o.WriteTimeout, pool: o.PoolSize}
		if got != c.want {
			t.Errorf("%s:\n got %+v\nwant %+v\n(url %s, notes %q)", c.opts, got, c.want, cfg.Cache.Redis.URL, notes)
		}
		if cfg.Cache.Redis.Prefix != "mailsts:" || cfg.Cache.ImportResolver != cfg.Cache.Redis.URL {
			t.Errorf("%s: prefix %q, import_resolver %q", c.opts, cfg.Cache.Redis.Prefix, cfg.Cache.ImportResolver)
		}
		// The password never shows in the printed configuration.
		if out, _ := cfg.YAML(); c.want.password != "" && strings.Contains(string(out), c.want.password) {
			t.Errorf("%s: password printed:\n%s", c.opts, out)
		}
	}
	// Refused, naming the option.
	for opts, name := range map[string]string{
		`url: "redis://h/0?ssl_certfile=/c.pem"`:            "ssl_certfile",
		`url: "rediss://h/0"` + "\n    ssl_keyfile: /k.pem": "ssl_keyfile",
		`url: "rediss://h/0?ssl_cert_reqs=none"`:            "ssl_cert_reqs",
		`url: "redis://h/0?frobnicate=1"`:                   "frobnicate",
		`url: "redis://h/0"` + "\n    retry: 3":             "retry",
		`url: "http://h/0"`:                                 "http",
		`url: "redis://h/zero"`:                             "zero",
		`url: "redis://h/0?socket_timeout=soon"`:            "socket_timeout",
		`url: "redis://h/0"` + "\n    address: h":           "not both",
		`url: "unix://"`:                                    "socket path",
		`url: "redis://h/0?ssl_ca_certs=/ca.pem"`:           "ssl_ca_certs",
	} {
		_, _, err := Parse([]byte("cache:\n  type: redis\n  options:\n    " + opts + "\n"))
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v; want an error naming %q", opts, err, name)
		}
	}
}

// mailsts's own dialect: an address go-redis cannot dial is a
// configuration error (--check-config said valid, every query got TEMP).
func TestRedisConfigValidate(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{
		`{type: redis, redis: {address: "redis://127.0.0.1/0?timeout=5"}}`,
		`{type: redis, redis: {address: "127.0.0.1"}}`,
		`{type: redis, redis: {url: "redis://127.0.0.1/0?timeout=5"}}`,
		`{type: redis, redis: {url: "http://127.0.0.1/"}}`,
		`{type: redis, redis: {url: "redis://127.0.0.1/0", ca_file: /nonexistent.pem}}`,
		`{type: redis, redis: {address: "127.0.0.1:6379", ca_file: /nonexistent.pem}}`,
	} {
		if _, _, err := Parse([]byte("cache: " + bad + "\n")); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", bad, err)
		}
	}
	cfg, _, err := Parse([]byte("cache: {type: redis, redis: {url: \"rediss://u:pw@r.example:6380/2?dial_timeout=3s\", prefix: \"x:\"}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	o, err := cfg.Cache.Redis.Options()
	if err != nil || o.Addr != "r.example:6380" || o.DB != 2 || o.TLSConfig == nil || o.DialTimeout != 3*time.Second || o.Password != "pw" {
		t.Errorf("url options: %+v, %v", o, err)
	}
	if out, _ := cfg.YAML(); strings.Contains(string(out), ":pw@") {
		t.Errorf("password printed:\n%s", out)
	}
}
