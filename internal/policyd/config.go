package policyd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/logging"
	"github.com/mailsts/mailsts/postfix"
)

// DefaultListen is where policyd listens without configuration: the port
// Postfix users know from postfix-mta-sts-resolver.
const DefaultListen = "127.0.0.1:8461"

// minReplySize is the smallest listen[].max_reply_size: room for a secure
// answer with one pattern of the longest name.
const minReplySize = 512

// MaxConfigSize caps the configuration file.
const MaxConfigSize = 4 << 20

// ErrConfig is wrapped by every configuration error: fix the file (the
// message names the line or key).
var ErrConfig = errors.New("policyd: invalid configuration")

// Config is the policyd configuration file (YAML). Every field has a safe
// default, applied by Default and kept by Parse for omitted keys.
type Config struct {
	// Listen lists the listeners; each has exactly one of Socketmap and
	// TCPTable. Addresses are "host:port" (loopback only is advised,
	// PFX-SOCKETMAP-10) or "unix:/path".
	Listen []Listener  `yaml:"listen"`
	DNS    DNSConfig   `yaml:"dns"`
	Fetch  FetchConfig `yaml:"fetch"`
	// StateDir holds the SQLite cache; "" means DefaultStateDir().
	StateDir string      `yaml:"state_dir"`
	Cache    CacheConfig `yaml:"cache"`
	// DANETTL is how long DANE decisions are reused.
	DANETTL time.Duration `yaml:"dane_ttl"`
	// MXCheckInterval is how long a domain's MX set is trusted when
	// checking an enforce policy against it (stale-policy recovery).
	MXCheckInterval time.Duration `yaml:"mx_check_interval"`
	// ShutdownTimeout bounds the drain of connections on SIGTERM.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// DefaultZone applies to map names not listed in Zones.
	DefaultZone ZoneConfig            `yaml:"default_zone"`
	Zones       map[string]ZoneConfig `yaml:"zones"`
	Overrides   []OverrideConfig      `yaml:"overrides"`
	Metrics     MetricsConfig         `yaml:"metrics"`
	Log         LogConfig             `yaml:"log"`
	// TLSRPTResults is the results store of TLS reporting (the send.db
	// of `mailsts tlsrpt collect`: sqlite:PATH, postgres://…, or
	// "default" for tlsrpt-send.db in the state directory). When set,
	// policyd records there its discovery failures as failed sessions
	// and its answer per next hop; "" records nothing.
	TLSRPTResults string `yaml:"tlsrpt_results"`
	// GCHeadroom is how far, in percent of the live heap, the garbage
	// collector lets the heap grow before collecting, once the cache is
	// large (below 32 MiB live Go's default pacing applies): 25 keeps the
	// memory per cached domain near the live size at the cost of more
	// frequent collections; 100 is Go's default. Ignored when the GOGC
	// environment variable is set. 0 means DefaultGCHeadroom.
	GCHeadroom int `yaml:"gc_headroom"`
}

// Listener is one socket Postfix connects to.
type Listener struct {
	// Socketmap is the address of a socketmap listener
	// (smtp_tls_policy_maps = socketmap:inet:127.0.0.1:8461:postfix).
	Socketmap string `yaml:"socketmap,omitempty"`
	// TCPTable is the address of a tcp_table listener.
	TCPTable string `yaml:"tcp_table,omitempty"`
	// Zone is the zone of a tcp_table listener (socketmap requests carry
	// their own map name); "" means the default zone.
	Zone string `yaml:"zone,omitempty"`
	// Mode is the file mode of a unix socket, in octal ("0660"); "" keeps
	// the umask's.
	Mode string `yaml:"mode,omitempty"`
	// MaxReplySize is the longest socketmap reply payload Postfix takes:
	// its socketmap_max_reply_size (PFX-SOCKETMAP-6); 0 means Postfix's
	// default, 100000. Longer policy answers are shortened to fit, as for
	// tcp_table's fixed 4096 bytes (docs/policyd.md).
	MaxReplySize int `yaml:"max_reply_size,omitempty"`
}

// DNSConfig configures the DNS layer.
type DNSConfig struct {
	// Servers are recursive resolvers ("127.0.0.1:53"); empty means
	// /etc/resolv.conf. For DANE, point them at a validating resolver
	// (unbound) on loopback.
	Servers []string      `yaml:"servers"`
	Timeout time.Duration `yaml:"timeout"`
}

// FetchConfig configures policy fetches.
type FetchConfig struct {
	// Timeout bounds one answer to Postfix (DANE and MX lookups, MTA-STS
	// discovery) and a whole discovery: TXT, A/AAAA, HTTPS.
	Timeout time.Duration `yaml:"timeout"`
	// CAFile adds private roots to the root set.
	CAFile string `yaml:"ca_file"`
	// HTTPSPort replaces 443, for test networks only.
	HTTPSPort int `yaml:"https_port,omitempty"`
	// Roots is the root set verifying policy hosts: "system" (default)
	// or "curated" (mailsts's vendored list).
	Roots string `yaml:"roots,omitempty"`
	// ZoneRoots gives domains roots of their own.
	ZoneRoots []ZoneRoots `yaml:"zone_roots,omitempty"`
	// PolicyHostAAAA is auto (default: the policy host's AAAA query only
	// with a route to the IPv6 Internet or without an IPv4 address) or
	// always.
	PolicyHostAAAA string `yaml:"policy_host_aaaa"`
}

// ZoneRoots adds roots for, or replaces the roots of, the policy hosts of
// some domains (suffixes: each covers its subdomains).
type ZoneRoots struct {
	Domains []string `yaml:"domains"`
	CAFile  string   `yaml:"ca_file"`
	Replace bool     `yaml:"replace,omitempty"`
}

// CacheConfig configures the policy cache.
type CacheConfig struct {
	// Type is sqlite (default), memory or redis.
	Type string `yaml:"type"`
	// Path is the SQLite file; "" means <state_dir>/policyd-cache.sqlite.
	Path  string      `yaml:"path"`
	Redis RedisConfig `yaml:"redis"`
	// RefreshInterval: policies this old are fetched again in the
	// background even with an unchanged id (RFC 8461 §10.2).
	RefreshInterval time.Duration `yaml:"refresh_interval"`
	// RefreshConcurrency bounds the background refreshes run at once.
	RefreshConcurrency int `yaml:"refresh_concurrency"`
	// NegativeTTL: how long "no policy" is remembered.
	NegativeTTL time.Duration `yaml:"negative_ttl"`
	// MaxEntries caps the entries in memory (and in the SQLite file);
	// valid enforce and testing policies are never dropped for it.
	MaxEntries int `yaml:"max_entries"`
	// EvictUnusedAfter removes entries without a valid policy unused for
	// this long.
	EvictUnusedAfter time.Duration `yaml:"evict_unused_after"`
	// ImportResolver is postfix-mta-sts-resolver's cache (its SQLite file,
	// or a redis://, rediss:// or unix:// URL of its Redis database) whose
	// policies policyd imports once, at the first start with an empty
	// cache, so that the trust it learned survives the move. The
	// mta-sts-daemon.yml dialect sets it from the old cache settings.
	ImportResolver string `yaml:"import_resolver,omitempty"`
}

// RedisConfig is the shared Redis cache.
type RedisConfig struct {
	// Address is host:port, used when URL is empty.
	Address string `yaml:"address"`
	// URL, when set, replaces Address and DB: a go-redis URL,
	// redis://[user@]host[:port][/db][?option=value&...], rediss:// for
	// TLS, or unix:///path/to/socket[?db=N]. Options are go-redis's
	// (dial_timeout, read_timeout, write_timeout, pool_size, ...).
	URL      string `yaml:"url,omitempty"`
	Prefix   string `yaml:"prefix"`
	Password string `yaml:"password,omitempty"`
	DB       int    `yaml:"db"`
	// CAFile adds roots for verifying a rediss:// server.
	CAFile string `yaml:"ca_file,omitempty"`
}

// ZoneConfig is one zone in the file.
type ZoneConfig struct {
	StrictTesting bool          `yaml:"strict_testing"`
	TLSRPT        bool          `yaml:"tlsrpt"`
	DANE          string        `yaml:"dane"`
	TempWindow    time.Duration `yaml:"temp_window"`
	// RequireSNI adds servername=hostname (Postfix 3.4+); default true.
	RequireSNI *bool  `yaml:"require_sni"`
	ServerName string `yaml:"servername,omitempty"`
}

// OverrideConfig is one override in the file.
type OverrideConfig struct {
	Domain  string    `yaml:"domain"`
	Action  string    `yaml:"action"`
	MX      []string  `yaml:"mx,omitempty"`
	Reason  string    `yaml:"reason,omitempty"`
	Expires time.Time `yaml:"expires,omitempty"`
}

// MetricsConfig is the opt-in Prometheus listener.
type MetricsConfig struct {
	// Listen is "host:port" serving /metrics; "" disables it.
	Listen string `yaml:"listen"`
	// Pprof also serves Go's profiler under /debug/pprof/ on that
	// listener, for diagnosing CPU or memory use. Off by default: profiles
	// reveal internals, so keep the listener on loopback.
	Pprof bool `yaml:"pprof,omitempty"`
}

// LogConfig configures logging: the `log:` section shared by every
// long-running command.
type LogConfig = logging.Config

// Default returns the configuration used when there is no file.
func Default() *Config {
	t := true
	return &Config{
		Listen: []Listener{{Socketmap: DefaultListen}},
		DNS:    DNSConfig{Timeout: dnsresolve.DefaultTimeout},
		Fetch:  FetchConfig{Timeout: 20 * time.Second, Roots: "system", PolicyHostAAAA: AAAAAuto},
		Cache: CacheConfig{
			Type:               "sqlite",
			Redis:              RedisConfig{Address: "127.0.0.1:6379", Prefix: "mailsts:"},
			RefreshInterval:    24 * time.Hour,
			RefreshConcurrency: 16,
			NegativeTTL:        5 * time.Minute,
			MaxEntries:         200000,
			EvictUnusedAfter:   90 * 24 * time.Hour,
		},
		DANETTL:         DefaultDANETTL,
		MXCheckInterval: DefaultMXCheckInterval,
		ShutdownTimeout: 20 * time.Second,
		GCHeadroom:      DefaultGCHeadroom,
		DefaultZone:     ZoneConfig{DANE: string(DANEAuto), TempWindow: DefaultTempWindow, RequireSNI: &t},
		Zones:           map[string]ZoneConfig{},
		Log:             LogConfig{Level: "info", Format: "text"},
	}
}

// DefaultStateDir picks the state directory when none is configured:
// $STATE_DIRECTORY (set by systemd's StateDirectory=), else /var/lib/mailsts
// when running as root, else $XDG_STATE_HOME/mailsts or
// ~/.local/state/mailsts.
func DefaultStateDir(getenv func(string) string) string {
	if getenv == nil {
		getenv = os.Getenv
	}
	if d := getenv("STATE_DIRECTORY"); d != "" {
		// systemd may pass several, colon-separated; the first is ours.
		d, _, _ = strings.Cut(d, ":")
		return d
	}
	if os.Geteuid() == 0 {
		return "/var/lib/mailsts"
	}
	if d := getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "mailsts")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".local", "state", "mailsts")
	}
	return "/var/lib/mailsts"
}

// Load reads and parses the configuration file at path (see Parse).
func Load(path string) (*Config, []string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxConfigSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: reading %s: %w", ErrConfig, path, err)
	}
	if len(data) > MaxConfigSize {
		return nil, nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrConfig, path, MaxConfigSize)
	}
	cfg, notes, err := Parse(data)
	if err != nil {
		return nil, notes, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, notes, nil
}

// Parse parses a configuration in either dialect: mailsts's own, or
// postfix-mta-sts-resolver's mta-sts-daemon.yml, detected by its keys.
// Unknown keys are errors with their line. Omitted keys keep their
// defaults. The notes say, for the mta-sts-daemon.yml dialect, how keys
// were mapped and which were ignored and why; log them.
func Parse(data []byte) (*Config, []string, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	cfg := Default()
	if len(root.Content) == 0 {
		return cfg, nil, cfg.Validate()
	}
	doc := root.Content[0]
	if doc.Kind != yaml.MappingNode {
		return nil, nil, fmt.Errorf("%w: line %d: the configuration must be a mapping", ErrConfig, doc.Line)
	}
	if isLegacy(doc) {
		notes, err := parseLegacy(data, cfg)
		if err != nil {
			return nil, notes, err
		}
		return cfg, notes, cfg.Validate()
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return cfg, nil, cfg.Validate()
}

func isLegacy(doc *yaml.Node) bool {
	for i := 0; i+1 < len(doc.Content); i += 2 {
		k, v := doc.Content[i].Value, doc.Content[i+1]
		switch k {
		case "host", "port", "path", "mode", "reuse_port", "cache_grace", "proactive_policy_fetching":
			// Top-level keys only mta-sts-daemon.yml has.
			return true
		case "cache":
			if t := mapValue(v, "type"); t != nil && t.Value == "internal" {
				return true
			}
			if mapValue(v, "options") != nil {
				return true
			}
		case "default_zone":
			if mapValue(v, "timeout") != nil {
				return true
			}
		case "zones":
			if v.Kind == yaml.MappingNode {
				for j := 1; j < len(v.Content); j += 2 {
					if mapValue(v.Content[j], "timeout") != nil {
						return true
					}
				}
			}
		}
	}
	return false
}

func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// legacyConfig is postfix-mta-sts-resolver's mta-sts-daemon.yml(5).
type legacyConfig struct {
	Host            *string   `yaml:"host"`
	Port            *int      `yaml:"port"`
	Path            *string   `yaml:"path"`
	Mode            yaml.Node `yaml:"mode"`
	ReusePort       *bool     `yaml:"reuse_port"`
	CacheGrace      *float64  `yaml:"cache_grace"`
	ShutdownTimeout *float64  `yaml:"shutdown_timeout"`
	Cache           *struct {
		Type    string         `yaml:"type"`
		Options map[string]any `yaml:"options"`
	} `yaml:"cache"`
	Proactive *struct {
		Enabled          *bool    `yaml:"enabled"`
		Interval         *float64 `yaml:"interval"`
		ConcurrencyLimit *int     `yaml:"concurrency_limit"`
		GraceRatio       *float64 `yaml:"grace_ratio"`
	} `yaml:"proactive_policy_fetching"`
	DefaultZone *legacyZone           `yaml:"default_zone"`
	Zones       map[string]legacyZone `yaml:"zones"`
}

type legacyZone struct {
	StrictTesting *bool    `yaml:"strict_testing"`
	Timeout       *float64 `yaml:"timeout"`
	RequireSNI    *bool    `yaml:"require_sni"`
	TLSRPT        *bool    `yaml:"tlsrpt"`
}

func seconds(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

// parseLegacy maps mta-sts-daemon.yml onto cfg (which holds the defaults).
func parseLegacy(data []byte, cfg *Config) ([]string, error) {
	var l legacyConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&l); err != nil {
		return nil, fmt.Errorf("%w: mta-sts-daemon.yml dialect: %w", ErrConfig, err)
	}
	notes := []string{"configuration is in postfix-mta-sts-resolver's mta-sts-daemon.yml dialect; keys mapped to mailsts's (see docs/policyd.md)"}
	note := func(format string, a ...any) { notes = append(notes, fmt.Sprintf(format, a...)) }

	host, port := "127.0.0.1", 8461
	if l.Host != nil {
		host = *l.Host
	}
	if l.Port != nil {
		port = *l.Port
	}
	if l.Path != nil {
		ln := Listener{Socketmap: "unix:" + *l.Path}
		if l.Mode.Kind != 0 {
			m, err := parseMode(l.Mode.Value, true)
			if err != nil {
				return notes, fmt.Errorf("%w: line %d: mode: %w", ErrConfig, l.Mode.Line, err)
			}
			ln.Mode = fmt.Sprintf("%#o", m)
		}
		cfg.Listen = []Listener{ln}
		note("path → listen: [{socketmap: %q}]", ln.Socketmap)
		if l.Host != nil || l.Port != nil {
			note("host/port ignored: path is set (as in mta-sts-daemon)")
		}
	} else {
		cfg.Listen = []Listener{{Socketmap: net.JoinHostPort(host, strconv.Itoa(port))}}
		note("host/port → listen: [{socketmap: %q}]", cfg.Listen[0].Socketmap)
		if l.Mode.Kind != 0 {
			note("mode ignored: it only applies to a unix socket (path)")
		}
	}
	if l.ReusePort != nil {
		note("reuse_port ignored: one mailsts process serves all connections on all cores")
	}
	if l.CacheGrace != nil {
		note("cache_grace ignored: mailsts re-checks a cached policy's TXT id every 15 minutes and refreshes in the background")
	}
	if l.ShutdownTimeout != nil {
		cfg.ShutdownTimeout = seconds(*l.ShutdownTimeout)
		note("shutdown_timeout → shutdown_timeout: %s", cfg.ShutdownTimeout)
	}
	if c := l.Cache; c != nil {
		switch c.Type {
		case "", "internal":
			cfg.Cache.Type = "memory"
			note("cache type internal → cache.type: memory (consider sqlite: it survives restarts)")
			if v, ok := c.Options["cache_size"]; ok {
				n, ok := v.(int)
				if !ok {
					return notes, fmt.Errorf("%w: cache.options.cache_size must be an integer", ErrConfig)
				}
				cfg.Cache.MaxEntries = n
				note("cache.options.cache_size → cache.max_entries: %d", n)
			}
		case "sqlite":
			cfg.Cache.Type = "sqlite"
			if v, ok := c.Options["filename"]; ok {
				s, ok := v.(string)
				if !ok {
					return notes, fmt.Errorf("%w: cache.options.filename must be a string", ErrConfig)
				}
				// Never write into the old daemon's file: mailsts keeps
				// its own (cache.path, default under state_dir) and
				// imports the policies of the old one.
				cfg.Cache.ImportResolver = s
				note("cache.options.filename %s is postfix-mta-sts-resolver's cache: mailsts keeps its own cache (cache.path, default <state_dir>/%s) and never writes into the old file; "+
					"its policies are imported at the first start (cache.import_resolver; by hand: mailsts cache import --from-resolver %s)", s, CacheFileName, s)
			}
		case "redis":
			cfg.Cache.Type = "redis"
			rc, rnotes, err := ResolverRedis(c.Options)
			notes = append(notes, rnotes...)
			if err != nil {
				return notes, err
			}
			rc.Prefix = cfg.Cache.Redis.Prefix
			cfg.Cache.Redis = rc
			cfg.Cache.ImportResolver = rc.URL
			note("cache.options → cache.redis: url %s (keys under prefix %q, mailsts's own format; the old daemon's keys in that database are imported at the first start, cache.import_resolver)",
				rc.Where(), rc.Prefix)
		default:
			return notes, fmt.Errorf("%w: cache.type %q is not internal, sqlite or redis", ErrConfig, c.Type)
		}
		if c.Type != "redis" {
			for k := range c.Options {
				switch k {
				case "cache_size", "filename":
				default:
					note("cache.options.%s ignored: no equivalent in mailsts", k)
				}
			}
		}
	}
	if p := l.Proactive; p != nil {
		note("proactive_policy_fetching: mailsts always refreshes cached policies ahead of expiry in the background")
		if p.Interval != nil {
			cfg.Cache.RefreshInterval = seconds(*p.Interval)
			note("proactive_policy_fetching.interval → cache.refresh_interval: %s", cfg.Cache.RefreshInterval)
		}
		if p.ConcurrencyLimit != nil {
			cfg.Cache.RefreshConcurrency = *p.ConcurrencyLimit
			note("proactive_policy_fetching.concurrency_limit → cache.refresh_concurrency: %d", *p.ConcurrencyLimit)
		}
		if p.GraceRatio != nil {
			note("proactive_policy_fetching.grace_ratio ignored: refreshes are scheduled per policy from its age and max_age")
		}
	}
	zone := func(name string, lz legacyZone, z *ZoneConfig) {
		if lz.StrictTesting != nil {
			z.StrictTesting = *lz.StrictTesting
		}
		if lz.RequireSNI != nil {
			v := *lz.RequireSNI
			z.RequireSNI = &v
		}
		if lz.TLSRPT != nil {
			z.TLSRPT = *lz.TLSRPT
		}
		if lz.Timeout != nil {
			if name == "default_zone" {
				cfg.Fetch.Timeout = seconds(*lz.Timeout)
				note("default_zone.timeout → fetch.timeout: %s (DNS keeps dns.timeout per query)", cfg.Fetch.Timeout)
			} else {
				note("zones.%s.timeout ignored: the fetch timeout is global (fetch.timeout)", name)
			}
		}
	}
	if l.DefaultZone != nil {
		zone("default_zone", *l.DefaultZone, &cfg.DefaultZone)
	}
	for name, lz := range l.Zones {
		z := cfg.DefaultZone
		z.StrictTesting, z.TLSRPT = false, false
		t := true
		z.RequireSNI = &t
		zone(name, lz, &z)
		cfg.Zones[name] = z
	}
	return notes, nil
}

// parseMode parses a unix socket mode: octal text ("0660"), or, for the
// legacy dialect where YAML already read 0666 as a number, decimal text.
func parseMode(s string, legacy bool) (uint32, error) {
	base := 8
	if legacy && !strings.HasPrefix(s, "0") {
		base = 10
	}
	m, err := strconv.ParseUint(strings.TrimPrefix(s, "0o"), base, 32)
	if err != nil || m > 0o777 {
		return 0, fmt.Errorf("%q is not a file mode like 0660", s)
	}
	return uint32(m), nil
}

// Validate checks the values (Parse calls it).
func (c *Config) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, a...))
	}
	if len(c.Listen) == 0 {
		return bad("listen: at least one listener is needed")
	}
	for i, l := range c.Listen {
		if (l.Socketmap == "") == (l.TCPTable == "") {
			return bad("listen[%d]: give exactly one of socketmap and tcp_table", i)
		}
		if _, _, err := l.Network(); err != nil {
			return bad("listen[%d]: %v", i, err)
		}
		if l.Mode != "" {
			if _, err := parseMode(l.Mode, false); err != nil {
				return bad("listen[%d].mode: %v", i, err)
			}
		}
		if l.MaxReplySize != 0 && (l.Socketmap == "" || l.MaxReplySize < minReplySize) {
			return bad("listen[%d].max_reply_size: only for socketmap, and at least %d bytes", i, minReplySize)
		}
		if l.Zone != "" && l.Socketmap != "" {
			return bad("listen[%d].zone: socketmap requests name their zone themselves (the map name); zone is for tcp_table", i)
		}
	}
	for _, s := range c.DNS.Servers {
		if _, err := dnsresolve.NormalizeServer(s); err != nil {
			return bad("dns.servers: %v", err)
		}
	}
	switch c.Fetch.Roots {
	case "", "system", "curated":
	default:
		return bad("fetch.roots %q is not system or curated", c.Fetch.Roots)
	}
	switch c.Fetch.PolicyHostAAAA {
	case "", AAAAAuto, AAAAAlways:
	default:
		return bad("fetch.policy_host_aaaa %q is not auto or always", c.Fetch.PolicyHostAAAA)
	}
	for i, z := range c.Fetch.ZoneRoots {
		if len(z.Domains) == 0 || z.CAFile == "" {
			return bad("fetch.zone_roots[%d]: give domains and ca_file", i)
		}
	}
	switch c.Cache.Type {
	case "sqlite", "memory", "redis":
	default:
		return bad("cache.type %q is not sqlite, memory or redis", c.Cache.Type)
	}
	if c.Cache.Type == "redis" {
		// The address must be one go-redis can dial: a bad one would
		// make every query TEMP.
		if _, err := c.Cache.Redis.Options(); err != nil {
			return err
		}
	}
	if c.Cache.MaxEntries < 0 || c.Cache.RefreshConcurrency < 0 {
		return bad("cache: max_entries and refresh_concurrency must not be negative")
	}
	if c.GCHeadroom < 0 || c.GCHeadroom > 100 {
		return bad("gc_headroom %d is not a percentage from 1 to 100 (0: the default)", c.GCHeadroom)
	}
	if c.Metrics.Pprof && c.Metrics.Listen == "" {
		return bad("metrics.pprof needs metrics.listen (the profiler is served on the metrics listener)")
	}
	if c.Fetch.HTTPSPort < 0 || c.Fetch.HTTPSPort > 65535 {
		return bad("fetch.https_port %d is not a port", c.Fetch.HTTPSPort)
	}
	if err := c.Log.Validate(); err != nil {
		return bad("%v", err)
	}
	_, cr, err := c.rules()
	if err != nil {
		return bad("%v", err)
	}
	return c.checkOverrideSizes(cr)
}

// checkOverrideSizes refuses an enforce override whose answer does not
// fit a listener's reply limit: the server would answer TEMP for it on
// every lookup, deferring the domain's mail, where a refused
// configuration is seen at start or reload. The answer is the one
// answered in each zone (its servername differs).
func (c *Config) checkOverrideSizes(cr *compiled) error {
	zones := append([]Zone{cr.def}, slices.Collect(maps.Values(cr.zones))...)
	for _, d := range slices.Sorted(maps.Keys(cr.overrides)) {
		ov := cr.overrides[d]
		if ov.Action != ActionEnforce {
			continue
		}
		answer := ""
		for _, z := range zones { // the longest of the zones' answers
			if a := ov.secureAnswer(z); len(a) > len(answer) {
				answer = a
			}
		}
		for i, l := range c.Listen {
			if !postfix.FitsListener(answer, l.TCPTable != "", l.MaxReplySize) {
				fix := "raise its max_reply_size"
				if l.TCPTable != "" {
					fix = "use a socketmap listener"
				}
				return fmt.Errorf("%w: override %s: its answer (%d bytes with %d mx patterns) does not fit the reply size limit of listen[%d] (%s); Postfix would get TEMP for every lookup: list fewer or shorter mx patterns, or %s",
					ErrConfig, d, len(answer), len(ov.MX), i, listenerLimit(l), fix)
			}
		}
	}
	return nil
}

// listenerLimit names a listener's reply size limit in an error.
func listenerLimit(l Listener) string {
	if l.TCPTable != "" {
		return fmt.Sprintf("tcp_table, %d bytes a line", postfix.MaxTCPReplySize)
	}
	if l.MaxReplySize > 0 {
		return fmt.Sprintf("socketmap, max_reply_size %d", l.MaxReplySize)
	}
	return fmt.Sprintf("socketmap, %d bytes", postfix.DefaultMaxReplySize)
}

// Network returns the network ("tcp" or "unix") and address of a listener.
func (l Listener) Network() (network, addr string, err error) {
	a := l.Socketmap
	if a == "" {
		a = l.TCPTable
	}
	if p, ok := strings.CutPrefix(a, "unix:"); ok {
		if p == "" {
			return "", "", errors.New("empty unix socket path")
		}
		return "unix", p, nil
	}
	if _, _, err := net.SplitHostPort(a); err != nil {
		return "", "", fmt.Errorf("address %q: %w", a, err)
	}
	return "tcp", a, nil
}

// Kind returns "socketmap" or "tcp_table".
func (l Listener) Kind() string {
	if l.Socketmap != "" {
		return "socketmap"
	}
	return "tcp_table"
}

// FileMode returns the unix socket mode and whether one is set.
func (l Listener) FileMode() (os.FileMode, bool) {
	if l.Mode == "" {
		return 0, false
	}
	m, err := parseMode(l.Mode, false)
	if err != nil {
		return 0, false
	}
	return os.FileMode(m), true
}

func (z ZoneConfig) zone() Zone {
	return Zone{
		StrictTesting: z.StrictTesting,
		TLSRPT:        z.TLSRPT,
		DANE:          DANEMode(z.DANE),
		TempWindow:    z.TempWindow,
		NoSNI:         z.RequireSNI != nil && !*z.RequireSNI,
		ServerName:    z.ServerName,
	}
}

// Rules returns the zones and overrides for a Responder.
func (c *Config) Rules() (*Rules, error) {
	r, _, err := c.rules()
	return r, err
}

// rules returns the Rules and their compiled form (checked).
func (c *Config) rules() (*Rules, *compiled, error) {
	r := &Rules{Default: c.DefaultZone.zone(), Zones: map[string]Zone{}}
	for name, z := range c.Zones {
		r.Zones[name] = z.zone()
	}
	for _, o := range c.Overrides {
		r.Overrides = append(r.Overrides, Override{
			Domain: o.Domain, Action: Action(o.Action), MX: append([]string(nil), o.MX...),
			Reason: o.Reason, Expires: o.Expires,
		})
	}
	cr, err := compile(r)
	if err != nil {
		return nil, nil, err
	}
	return r, cr, nil
}

// YAML returns the configuration as YAML (mailsts dialect), secrets masked:
// the effective configuration that --check-config prints.
func (c *Config) YAML() ([]byte, error) {
	cp := *c
	if cp.Cache.Redis.Password != "" {
		cp.Cache.Redis.Password = "********"
	}
	cp.Cache.Redis.URL = maskURL(cp.Cache.Redis.URL)
	cp.Cache.ImportResolver = maskURL(cp.Cache.ImportResolver)
	return yaml.Marshal(&cp)
}
