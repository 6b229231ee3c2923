package policyd

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mailsts/mailsts/mtasts"
)

// Options returns the go-redis client options rc describes. With URL set,
// it is parsed by go-redis (redis://, rediss:// for TLS, unix://) and
// Address and DB are not used; Password, when set, replaces the URL's.
// CAFile adds roots for a rediss:// server. An address or URL go-redis
// cannot use is an error (ErrConfig), so --check-config catches it.
func (rc RedisConfig) Options() (*redis.Options, error) {
	bad := func(format string, a ...any) (*redis.Options, error) {
		return nil, fmt.Errorf("%w: cache.redis.%s", ErrConfig, fmt.Sprintf(format, a...))
	}
	var o *redis.Options
	if rc.URL != "" {
		var err error
		if o, err = redis.ParseURL(rc.URL); err != nil {
			return bad("url %q: %v", maskURL(rc.URL), err)
		}
		if rc.Password != "" {
			o.Password = rc.Password
		}
	} else {
		if strings.Contains(rc.Address, "://") {
			return bad("address %q: a URL belongs in cache.redis.url; address is host:port", rc.Address)
		}
		if _, _, err := net.SplitHostPort(rc.Address); err != nil {
			return bad("address %q is not host:port: %v", rc.Address, err)
		}
		if rc.DB < 0 {
			return bad("db %d is negative", rc.DB)
		}
		o = &redis.Options{Addr: rc.Address, Password: rc.Password, DB: rc.DB}
	}
	if rc.CAFile != "" {
		if o.TLSConfig == nil {
			return bad("ca_file is set but the connection is not TLS (use a rediss:// url)")
		}
		roots, err := mtasts.LoadRootCAs(rc.CAFile)
		if err != nil {
			return bad("ca_file: %v", err)
		}
		o.TLSConfig = &tls.Config{ServerName: o.TLSConfig.ServerName, MinVersion: o.TLSConfig.MinVersion, RootCAs: roots}
	}
	return o, nil
}

// Where describes the server for logs, without credentials.
func (rc RedisConfig) Where() string {
	if rc.URL != "" {
		return maskURL(rc.URL)
	}
	return rc.Address
}

// maskURL replaces the password of a URL with asterisks.
func maskURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "********")
	}
	return u.String()
}

// resolverRedisIgnored are the options of postfix-mta-sts-resolver's Redis
// cache (passed to aioredis.from_url, or to aioredis 1.x's
// create_redis_pool in older releases), as cache.options keys or as query
// parameters of its url/address.
var resolverRedisIgnored = map[string]string{
	"encoding":              "mailsts stores its own format",
	"decode_responses":      "mailsts stores its own format",
	"health_check_interval": "go-redis checks connections itself",
	"retry_on_timeout":      "go-redis retries on its own",
	"socket_keepalive":      "go-redis keeps connections alive",
}

// ResolverRedis translates postfix-mta-sts-resolver's Redis settings
// (cache.options: url or address, and the keyword options) into a go-redis
// configuration: url (redis://, rediss://, unix://, or aioredis 1.x's bare
// unix socket path or host:port), password, db, TLS (rediss or ssl: true,
// ssl_ca_certs), timeouts (socket_timeout → read and write timeouts;
// socket_connect_timeout and aioredis 1.x's timeout → dial timeout) and
// pool size. Options mailsts cannot honour safely (client certificates,
// certificate checks turned off) and unknown ones are errors naming the
// option. The returned notes say what was mapped and what ignored.
func ResolverRedis(opts map[string]any) (RedisConfig, []string, error) {
	var notes []string
	note := func(format string, a ...any) { notes = append(notes, fmt.Sprintf(format, a...)) }
	bad := func(format string, a ...any) (RedisConfig, []string, error) {
		return RedisConfig{}, notes, fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, a...))
	}
	raw, from := "", ""
	for _, k := range []string{"url", "address"} {
		v, ok := opts[k]
		if !ok {
			continue
		}
		if from != "" {
			return bad("cache.options: give url or address, not both")
		}
		from = k
		switch v := v.(type) {
		case string:
			raw = v
		case []any:
			// aioredis 1.x: address: [host, port].
			if len(v) != 2 {
				return bad("cache.options.address: a list must be [host, port]")
			}
			raw = "redis://" + net.JoinHostPort(fmt.Sprint(v[0]), fmt.Sprint(v[1]))
		default:
			return bad("cache.options.%s must be a string", k)
		}
	}
	if from == "" {
		from, raw = "url", "redis://localhost:6379"
		note("cache.options has no url: postfix-mta-sts-resolver's default is assumed (%s)", raw)
	}
	switch {
	case strings.HasPrefix(raw, "/"):
		// aioredis 1.x: a unix socket path.
		raw = "unix://" + raw
	case !strings.Contains(raw, "://"):
		raw = "redis://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return bad("cache.options.%s %q: %v", from, maskURL(raw), err)
	}
	// Keyword options first, then the URL's query, which wins (as in
	// redis-py's from_url).
	params := map[string]string{}
	origin := map[string]string{}
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		switch k {
		case "url", "address":
			continue
		}
		params[k], origin[k] = fmt.Sprint(opts[k]), "cache.options."+k
	}
	for k, vs := range u.Query() {
		if len(vs) > 0 {
			params[k], origin[k] = vs[len(vs)-1], "cache.options."+from+" query parameter "+k
		}
	}

	var rc RedisConfig
	q := url.Values{}
	scheme := u.Scheme
	switch scheme {
	case "redis", "rediss", "unix":
	default:
		return bad("cache.options.%s %q: scheme %q is not redis, rediss or unix", from, maskURL(raw), scheme)
	}
	out := url.URL{Scheme: scheme}
	user := ""
	if u.User != nil {
		user = u.User.Username()
		if pw, ok := u.User.Password(); ok {
			rc.Password = pw
		}
	}
	db := ""
	if scheme == "unix" {
		if u.Path == "" {
			return bad("cache.options.%s %q: no socket path", from, maskURL(raw))
		}
		out.Path = u.Path
	} else {
		out.Host = u.Host
		if u.Hostname() == "" {
			out.Host = "localhost"
			if p := u.Port(); p != "" {
				out.Host += ":" + p
			}
		}
		if p := strings.Trim(u.Path, "/"); p != "" {
			db = p
		}
	}
	seconds := func(k, v string) (string, error) {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 || f > 1e6 {
			return "", fmt.Errorf("%w: %s %q is not a number of seconds", ErrConfig, origin[k], v)
		}
		return time.Duration(f * float64(time.Second)).String(), nil
	}
	pkeys := make([]string, 0, len(params))
	for k := range params {
		pkeys = append(pkeys, k)
	}
	slices.Sort(pkeys)
	for _, k := range pkeys {
		v := params[k]
		switch k {
		case "db":
			db = v
		case "password":
			rc.Password = v
		case "username":
			user = v
		case "client_name":
			q.Set("client_name", v)
		case "socket_timeout":
			d, err := seconds(k, v)
			if err != nil {
				return RedisConfig{}, notes, err
			}
			q.Set("read_timeout", d)
			q.Set("write_timeout", d)
		case "socket_connect_timeout", "timeout":
			d, err := seconds(k, v)
			if err != nil {
				return RedisConfig{}, notes, err
			}
			q.Set("dial_timeout", d)
		case "max_connections", "maxsize":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return bad("%s %q is not a positive integer", origin[k], v)
			}
			q.Set("pool_size", strconv.Itoa(n))
		case "minsize":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return bad("%s %q is not an integer", origin[k], v)
			}
			q.Set("min_idle_conns", strconv.Itoa(n))
		case "ssl":
			// aioredis 1.x: ssl: true means TLS.
			on, err := strconv.ParseBool(v)
			if err != nil {
				return bad("%s %q is not true or false", origin[k], v)
			}
			if on {
				if scheme == "unix" {
					return bad("%s: TLS over a unix socket is not supported", origin[k])
				}
				out.Scheme = "rediss"
			}
		case "ssl_ca_certs":
			rc.CAFile = v
		case "ssl_cert_reqs":
			switch strings.ToLower(v) {
			case "required", "cert_required", "ssl.cert_required":
			default:
				return bad("%s %q: mailsts always verifies the Redis server's certificate; give its CA with ssl_ca_certs", origin[k], v)
			}
		case "ssl_check_hostname":
			if on, err := strconv.ParseBool(v); err != nil || !on {
				return bad("%s %q: mailsts always checks the Redis server's name", origin[k], v)
			}
		case "ssl_certfile", "ssl_keyfile", "ssl_password":
			return bad("%s: TLS client certificates for Redis are not supported by mailsts; use a password", origin[k])
		default:
			why, ok := resolverRedisIgnored[k]
			if !ok {
				return bad("%s: unknown Redis option, no equivalent in mailsts (remove it, or set cache.redis in mailsts's own configuration)", origin[k])
			}
			note("%s ignored: %s", origin[k], why)
		}
	}
	if db != "" {
		n, err := strconv.Atoi(db)
		if err != nil || n < 0 {
			return bad("cache.options.%s %q: database %q is not a number", from, maskURL(raw), db)
		}
		q.Set("db", strconv.Itoa(n))
	}
	if user != "" {
		out.User = url.User(user)
	}
	if rc.CAFile != "" && out.Scheme != "rediss" {
		return bad("cache.options.ssl_ca_certs is set but the connection is not TLS (use rediss://)")
	}
	out.RawQuery = q.Encode()
	rc.URL = out.String()
	rc.Address = ""
	if _, err := rc.Options(); err != nil {
		return RedisConfig{}, notes, err
	}
	return rc, notes, nil
}
