package policyd

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mailsts/mailsts/postfix"
)

// The shipped example parses and equals the defaults (its comments say
// every uncommented value is the default).
func TestExampleConfigIsDefault(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../../contrib/policyd.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, notes, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(notes) != 0 {
		t.Errorf("mailsts dialect gave notes: %v", notes)
	}
	def := Default()
	def.DNS.Servers = []string{}
	def.Overrides = []OverrideConfig{}
	if !reflect.DeepEqual(cfg, def) {
		a, _ := cfg.YAML()
		b, _ := def.YAML()
		t.Errorf("example differs from the defaults:\n%s\n---\n%s", a, b)
	}
}

func TestParseConfig(t *testing.T) {
	t.Parallel()
	cfg, _, err := Parse([]byte(`
listen:
  - {socketmap: "127.0.0.1:8461"}
  - {tcp_table: "127.0.0.1:8462", zone: postfix}
  - {socketmap: "unix:/run/mailsts/policyd.sock", mode: "0660"}
dns: {servers: ["127.0.0.1:5353"], timeout: 3s}
cache: {type: redis, redis: {address: "10.0.0.1:6379", prefix: "x:", db: 2}}
zones:
  strict: {strict_testing: true, dane: off, temp_window: 1m, require_sni: false}
overrides:
  - {domain: a.example, action: enforce, mx: ["*.a.example"], reason: r, expires: 2030-01-01T00:00:00Z}
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Listen) != 3 || cfg.Listen[1].Zone != "postfix" || cfg.DNS.Timeout != 3*time.Second || cfg.Cache.Redis.DB != 2 {
		t.Errorf("parsed %+v", cfg)
	}
	if m, ok := cfg.Listen[2].FileMode(); !ok || m != 0o660 {
		t.Errorf("mode %v %v", m, ok)
	}
	rules, err := cfg.Rules()
	if err != nil {
		t.Fatal(err)
	}
	z := rules.Zones["strict"]
	if !z.StrictTesting || z.DANE != DANEOff || !z.NoSNI || z.TempWindow != time.Minute {
		t.Errorf("zone %+v", z)
	}
	if o := rules.Overrides[0]; o.Expires.Year() != 2030 || o.MX[0] != "*.a.example" {
		t.Errorf("override %+v", o)
	}
	// Omitted keys keep their defaults.
	if cfg.Cache.NegativeTTL != 5*time.Minute || cfg.ShutdownTimeout != 20*time.Second {
		t.Errorf("defaults lost: %+v", cfg.Cache)
	}
}

func TestParseConfigErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ yaml, want string }{
		{"listen: [{socketmap: x}]\nbogus: 1\n", "line 2"},
		{"dns:\n  timeout: 2s\n  server: [1.2.3.4]\n", "line 3"},
		{"listen: []\n", "at least one listener"},
		{"listen: [{socketmap: '127.0.0.1:1', tcp_table: '127.0.0.1:2'}]\n", "exactly one"},
		{"listen: [{socketmap: '127.0.0.1:1', zone: z}]\n", "zone is for tcp_table"},
		{"listen: [{socketmap: 'unix:/x', mode: '0999'}]\n", "mode"},
		{"cache: {type: mongo}\n", "cache.type"},
		{"default_zone: {dane: maybe}\n", "dane"},
		{"overrides: [{domain: x.example, action: enforce}]\n", "needs mx"},
		{"log: {level: loud}\n", "log.level"},
		{"dns: {servers: [resolver.example]}\n", "dns.servers"},
		{"- a\n- b\n", "mapping"},
		{"dns: {timeout: soon}\n", "soon"},
	} {
		_, _, err := Parse([]byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q) = %v, want an error mentioning %q", c.yaml, err, c.want)
		}
	}
}

// postfix-mta-sts-resolver's mta-sts-daemon.yml, from its man page's
// example, is mapped key by key, and the ignored keys are reported.
func TestParseLegacyConfig(t *testing.T) {
	t.Parallel()
	cfg, notes, err := Parse([]byte(`host: 127.0.0.1
port: 8461
reuse_port: true
shutdown_timeout: 20
cache_grace: 60
proactive_policy_fetching:
  enabled: true
  interval: 86400
  concurrency_limit: 100
  grace_ratio: 2
cache:
  type: internal
  options:
    cache_size: 10000
default_zone:
  strict_testing: false
  timeout: 4
zones:
  myzone:
    strict_testing: true
    timeout: 4
    require_sni: false
    tlsrpt: true
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen[0].Socketmap != "127.0.0.1:8461" || cfg.Cache.Type != "memory" || cfg.Cache.MaxEntries != 10000 ||
		cfg.Fetch.Timeout != 4*time.Second || cfg.Cache.RefreshInterval != 24*time.Hour || cfg.Cache.RefreshConcurrency != 100 ||
		cfg.ShutdownTimeout != 20*time.Second {
		t.Errorf("mapped %+v", cfg)
	}
	z := cfg.Zones["myzone"]
	if !z.StrictTesting || !z.TLSRPT || z.RequireSNI == nil || *z.RequireSNI {
		t.Errorf("zone %+v", z)
	}
	all := strings.Join(notes, "\n")
	for _, want := range []string{"reuse_port ignored", "cache_grace ignored", "grace_ratio ignored", "zones.myzone.timeout ignored", "cache_size → cache.max_entries"} {
		if !strings.Contains(all, want) {
			t.Errorf("notes lack %q:\n%s", want, all)
		}
	}

	cfg, _, err = Parse([]byte("path: /run/mta-sts.sock\nmode: 0666\ncache:\n  type: sqlite\n  options:\n    filename: /var/lib/mta-sts/cache.db\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen[0].Socketmap != "unix:/run/mta-sts.sock" || cfg.Listen[0].Mode != "0666" ||
		cfg.Cache.Path != "" || cfg.Cache.ImportResolver != "/var/lib/mta-sts/cache.db" {
		t.Errorf("unix/sqlite mapped to %+v %+v", cfg.Listen, cfg.Cache)
	}
	cfg, _, err = Parse([]byte("port: 9000\ncache:\n  type: redis\n  options:\n    url: redis://:pw@10.1.1.1:6380/3\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r := cfg.Cache.Redis; r.URL != "redis://10.1.1.1:6380?db=3" || r.Password != "pw" || cfg.Listen[0].Socketmap != "127.0.0.1:9000" {
		t.Errorf("redis mapped to %+v", r)
	}
	if _, _, err := Parse([]byte("host: 127.0.0.1\nbogus: 1\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("unknown legacy key: %v", err)
	}
	// The Debian package's shipped file.
	if _, _, err := Parse([]byte("cache:\n  type: sqlite\n  options:\n    filename: \"/var/lib/mta-sts/cache.db\"\n")); err != nil {
		t.Errorf("Debian default: %v", err)
	}
}

// FuzzParseConfig: no input panics, and an accepted configuration
// round-trips through its printed form.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{
		"", "listen: [{socketmap: '127.0.0.1:8461'}]\n", "host: 127.0.0.1\nport: 8461\n",
		"cache: {type: memory}\nzones: {a: {tlsrpt: true}}\n", "overrides: [{domain: a.example, action: none}]\n",
		"path: /x\nmode: 0666\n", "cache:\n  type: redis\n  options:\n    url: redis://h/1\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, _, err := Parse(data)
		if err != nil {
			return
		}
		out, err := cfg.YAML()
		if err != nil {
			t.Fatal(err)
		}
		again, _, err := Parse(out)
		if err != nil {
			t.Fatalf("printed config does not parse: %v\n%s", err, out)
		}
		a, _ := again.YAML()
		if string(a) != string(out) {
			t.Fatalf("round trip differs:\n%s\n---\n%s", out, a)
		}
	})
}

// Issue #10 (fail-safe): an enforce override whose answer does not fit a
// listener's reply limit is refused with the configuration, instead of
// answered with TEMP (mail deferred) on every lookup.
func TestOverrideAnswerMustFit(t *testing.T) {
	t.Parallel()
	var mx []string
	for i := range 200 { // "mx123.mail-servers.customer.example" patterns: about 7,000 bytes
		mx = append(mx, fmt.Sprintf("'mx%03d.mail-servers.customer.example'", i))
	}
	override := "overrides: [{domain: big.example, action: enforce, mx: [" + strings.Join(mx, ", ") + "]}]\n"
	for _, c := range []struct {
		listen, want string
	}{
		{"listen: [{socketmap: '127.0.0.1:8461'}]\n", ""},
		{"listen: [{socketmap: '127.0.0.1:8461'}, {tcp_table: '127.0.0.1:8462'}]\n", "does not fit the reply size limit of listen[1] (tcp_table, 4096 bytes a line)"},
		{"listen: [{socketmap: '127.0.0.1:8461', max_reply_size: 4000}]\n", "does not fit the reply size limit of listen[0] (socketmap, max_reply_size 4000)"},
	} {
		_, _, err := Parse([]byte(c.listen + override))
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.listen, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrConfig)):
			t.Errorf("%s: %v, want an ErrConfig with %q", c.listen, err, c.want)
		}
	}
	// A zone's servername counts: find a pattern list that fits
	// tcp_table with the default servername but not with a long one.
	sni := strings.Repeat("a", 60) + "." + strings.Repeat("b", 60) + "." + strings.Repeat("c", 60) + ".example"
	var pats []string
	for i := range 1000 {
		pats = append(pats, fmt.Sprintf("mx%03d.s.example", i))
		answer := "secure match=" + matchList(pats) + " servername="
		if postfix.FitsListener(answer+DefaultServerName, true, 0) && !postfix.FitsListener(answer+sni, true, 0) {
			break
		}
	}
	small := "listen: [{tcp_table: '127.0.0.1:8462'}]\noverrides: [{domain: s.example, action: enforce, mx: [" + strings.Join(pats, ", ") + "]}]\n"
	if _, _, err := Parse([]byte(small)); err != nil {
		t.Errorf("an override that just fits tcp_table: %v", err)
	}
	long := small + "zones: {z: {servername: '" + sni + "'}}\n"
	if _, _, err := Parse([]byte(long)); err == nil || !strings.Contains(err.Error(), "override s.example") {
		t.Errorf("the same with a zone's long servername: %v", err)
	}
}
