package policyd

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/metrics"
	"github.com/mailsts/mailsts/internal/testnet"
	"github.com/mailsts/mailsts/mtasts"
	"github.com/mailsts/mailsts/postfix"
)

// running is a Daemon started by startDaemon.
type running struct {
	d    *Daemon
	addr string
	stop context.CancelFunc
	done chan error
	once sync.Once
	err  error

	// metricsAddr is the metrics listener's address, when
	// Config.Metrics.Listen is set.
	metricsAddr net.Addr
}

func testConfig(t *testing.T, n *testnet.Net, cache, stateDir string) *Config {
	cfg := Default()
	cfg.Listen = []Listener{{Socketmap: "127.0.0.1:0"}}
	cfg.DNS.Servers = []string{n.DNSAddr()}
	cfg.DNS.Timeout = 200 * time.Millisecond
	cfg.Fetch.CAFile = n.CAFile()
	cfg.Fetch.HTTPSPort = n.HTTPSPort()
	cfg.Fetch.Timeout = 5 * time.Second
	cfg.Cache.Type = cache
	cfg.StateDir = stateDir
	cfg.ShutdownTimeout = 10 * time.Second
	return cfg
}

func startDaemon(t *testing.T, d *Daemon, reload chan struct{}) *running {
	t.Helper()
	ready := make(chan []net.Addr, 1)
	d.Ready = func(a []net.Addr) { ready <- a }
	if d.Logger == nil && testing.Verbose() {
		d.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{d: d, stop: cancel, done: make(chan error, 1)}
	if d.Config.Metrics.Listen != "" && d.Observer == nil {
		r.metricsAddr = serveMetrics(t, ctx, d)
	}
	go func() { r.done <- d.Run(ctx, reload) }()
	select {
	case a := <-ready:
		r.addr = a[0].String()
	case err := <-r.done:
		cancel()
		r.once.Do(func() {})
		t.Fatalf("daemon did not start: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("daemon did not start within 30s")
	}
	t.Cleanup(func() { r.shutdown(t) })
	return r
}

func (r *running) shutdown(t *testing.T) {
	r.stop()
	if err := r.wait(); err != nil {
		t.Errorf("Run: %v", err)
	}
}

// serveMetrics wires metrics to d as `mailsts policyd` does, serving them
// on d.Config.Metrics.Listen until ctx ends, and returns the listener's
// address.
func serveMetrics(t *testing.T, ctx context.Context, d *Daemon) net.Addr {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	d.Observer = m
	ln, err := net.Listen("tcp", d.Config.Metrics.Listen)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- metrics.Serve(ctx, ln, reg, d.Config.Metrics.Pprof, d.Config.ShutdownTimeout, d.Logger)
	}()
	// Registered before the daemon's shutdown, so run after it (ctx ended).
	t.Cleanup(func() {
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("metrics.Serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("metrics.Serve did not stop within 30s")
		}
	})
	return ln.Addr()
}

// wait returns Run's result, waiting at most 30 s.
func (r *running) wait() error {
	r.once.Do(func() {
		select {
		case r.err = <-r.done:
		case <-time.After(30 * time.Second):
			r.err = errors.New("daemon did not stop within 30s")
		}
	})
	return r.err
}

func lookup(t *testing.T, addr, name, key string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := postfix.DialSocketmap(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rep, err := c.Lookup(ctx, name, key)
	if err != nil {
		t.Fatal(err)
	}
	return rep.Status.String() + " " + rep.Data
}

// Issue #3 "Done means": after a restart with DNS and HTTPS unreachable,
// cached policies are still enforced from the SQLite file (STS-CACHE-10).
func TestDaemonRestartOffline(t *testing.T) {
	t.Parallel()
	n := startNet(t, f2Domain())
	state := t.TempDir()
	cfg := testConfig(t, n, "sqlite", state)
	// The CA file must outlive the network.
	ca := filepath.Join(state, "ca.pem")
	if err := os.WriteFile(ca, n.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Fetch.CAFile = ca
	r := startDaemon(t, &Daemon{Config: cfg}, nil)
	if got := lookup(t, r.addr, "postfix", "example.com"); got != f2Secure {
		t.Fatalf("online: %q", got)
	}
	r.shutdown(t)
	if _, err := os.Stat(filepath.Join(state, CacheFileName)); err != nil {
		t.Fatal(err)
	}
	n.Close() // DNS and HTTPS gone
	r = startDaemon(t, &Daemon{Config: cfg}, nil)
	if got := lookup(t, r.addr, "postfix", "example.com"); got != f2Secure {
		t.Errorf("after restart offline: %q, want the cached policy", got)
	}
}

// SIGHUP: a reload installs new overrides without a restart.
func TestDaemonReloadOverrides(t *testing.T) {
	t.Parallel()
	n := startNet(t, f2Domain())
	cfg := testConfig(t, n, "memory", t.TempDir())
	var next atomic.Pointer[Config]
	reload := make(chan struct{}, 1)
	d := &Daemon{Config: cfg, Load: func() (*Config, error) { return next.Load(), nil }}
	r := startDaemon(t, d, reload)
	if got := lookup(t, r.addr, "postfix", "example.com"); got != f2Secure {
		t.Fatalf("before reload: %q", got)
	}
	c2 := *cfg
	c2.Overrides = []OverrideConfig{{Domain: "example.com", Action: "notfound", Reason: "reload test"}}
	next.Store(&c2)
	reload <- struct{}{}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := lookup(t, r.addr, "postfix", "example.com")
		if got == "NOTFOUND " {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("override not applied after reload: %q", got)
		}
		time.Sleep(20 * time.Millisecond) // polling with a deadline
	}
}

// SIGTERM drains: a lookup in flight when shutdown starts is answered.
func TestDaemonGracefulShutdown(t *testing.T) {
	t.Parallel()
	slow := stsDomain("slow.example", "s1", "enforce", "mx.slow.example")
	slow.Policy.Delay = 700 * time.Millisecond
	n := startNet(t, slow)
	cfg := testConfig(t, n, "memory", t.TempDir())
	cfg.Metrics.Listen = "127.0.0.1:0"
	r := startDaemon(t, &Daemon{Config: cfg}, nil)
	got := make(chan string, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c, err := postfix.DialSocketmap(ctx, "tcp", r.addr)
		if err != nil {
			got <- err.Error()
			return
		}
		defer c.Close()
		rep, err := c.Lookup(ctx, "postfix", "slow.example")
		if err != nil {
			got <- err.Error()
			return
		}
		got <- rep.Status.String() + " " + rep.Data
	}()
	deadline := time.Now().Add(10 * time.Second)
	for n.Requests("slow.example") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the lookup never reached the policy host")
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.stop()
	select {
	case s := <-got:
		if s != "OK secure match=mx.slow.example servername=hostname" {
			t.Errorf("in-flight lookup during shutdown: %q", s)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("in-flight lookup not answered")
	}
	if err := r.wait(); err != nil {
		t.Errorf("Run: %v", err)
	}
	if _, err := net.DialTimeout("tcp", r.addr, time.Second); err == nil {
		t.Error("listener still accepting after shutdown")
	}
}

// The metrics listener serves the counters.
func TestDaemonMetrics(t *testing.T) {
	t.Parallel()
	n := startNet(t, f2Domain())
	cfg := testConfig(t, n, "memory", t.TempDir())
	cfg.Metrics.Listen = "127.0.0.1:0"
	r := startDaemon(t, &Daemon{Config: cfg}, nil)
	maddr := r.metricsAddr.String()
	lookup(t, r.addr, "postfix", "example.com")
	lookup(t, r.addr, "postfix", "example.com")
	lookup(t, r.addr, "postfix", ".example.com")
	resp, err := http.Get("http://" + maddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`mailsts_policyd_queries_total{answer="ok_secure",zone="default"} 2`,
		`mailsts_policyd_queries_total{answer="notfound",zone="default"} 1`,
		`mailsts_policyd_fetches_total{result="ok"} 1`,
		`mailsts_policyd_cache_lookups_total{result="hit"} 1`,
		`mailsts_policyd_cache_lookups_total{result="miss"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if code := httpStatus(t, "http://"+maddr+"/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("profiler served without metrics.pprof: status %d", code)
	}
}

// metrics.pprof adds Go's profiler to the metrics listener, so it needs
// one (the profiler itself: internal/metrics TestServePprof).
func TestDaemonPprof(t *testing.T) {
	t.Parallel()
	cfg := Default()
	cfg.Metrics.Pprof = true
	if err := cfg.Validate(); err == nil {
		t.Error("metrics.pprof without metrics.listen accepted")
	}
	cfg.Metrics.Listen = "127.0.0.1:0"
	if err := cfg.Validate(); err != nil {
		t.Errorf("metrics.pprof with metrics.listen: %v", err)
	}
}

func httpStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// A shared Redis cache: two daemons on one prefix; the second answers from
// the first one's entry with zero HTTPS requests.
func TestDaemonRedisShared(t *testing.T) {
	t.Parallel()
	conn, err := net.DialTimeout("tcp", "127.0.0.1:6379", time.Second)
	if err != nil {
		t.Skip("no Redis on 127.0.0.1:6379; the shared-cache test needs one")
	}
	conn.Close()
	n := startNet(t, f2Domain())
	prefix := "mailsts-test-" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
	newCfg := func() *Config {
		cfg := testConfig(t, n, "redis", t.TempDir())
		cfg.Cache.Redis.Prefix = prefix
		return cfg
	}
	a := startDaemon(t, &Daemon{Config: newCfg()}, nil)
	b := startDaemon(t, &Daemon{Config: newCfg()}, nil)
	if got := lookup(t, a.addr, "postfix", "example.com"); got != f2Secure {
		t.Fatalf("daemon A: %q", got)
	}
	before := n.Requests("example.com")
	if got := lookup(t, b.addr, "postfix", "example.com"); got != f2Secure {
		t.Fatalf("daemon B: %q", got)
	}
	if after := n.Requests("example.com"); after != before || before != 1 {
		t.Errorf("policy requests: %d before B, %d after, want 1 and 1", before, after)
	}
	t.Cleanup(func() {
		st, err := OpenCache(context.Background(), newCfg(), StoreOptions{}, nil)
		if err == nil {
			st.Delete(context.Background(), "example.com")
			st.Close(context.Background())
		}
	})
}

// purgeAsCLI deletes from the SQLite file as `mailsts cache purge` does: a
// cache opened from the same configuration, its Purge.
func purgeAsCLI(t *testing.T, cfg *Config, domains ...string) int {
	t.Helper()
	ctx := context.Background()
	st, err := OpenCache(ctx, cfg, StoreOptions{NoFallback: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(ctx)
	n, err := st.Purge(ctx, domains, len(domains) == 0)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Issue #3: `mailsts cache purge` reaches a daemon running on the same
// SQLite file. Without it the daemon answers from memory until a restart
// (Tiered never re-reads the file); with it, the next lookups after the
// purge log poll fetch the policy again.
func TestDaemonSQLitePurge(t *testing.T) {
	t.Parallel()
	n := startNet(t, f2Domain(), stsDomain("other.example", "o1", "enforce", "mx.other.example"))
	cfg := testConfig(t, n, "sqlite", t.TempDir())
	clk := newClock()
	applied := make(chan int, 16)
	d := &Daemon{Config: cfg, Now: clk.Now, purgeEvery: 5 * time.Millisecond, purged: func(k int) {
		if k != 0 {
			applied <- k
		}
	}}
	r := startDaemon(t, d, nil)
	waitPurge := func(want int) {
		t.Helper()
		select {
		case k := <-applied:
			if k != want {
				t.Fatalf("purge poll dropped %d domains, want %d", k, want)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the daemon did not apply the purge within 30 s")
		}
	}
	const otherSecure = "OK secure match=mx.other.example servername=hostname"
	if got := lookup(t, r.addr, "postfix", "example.com"); got != f2Secure {
		t.Fatalf("before: %q", got)
	}
	if got := lookup(t, r.addr, "postfix", "other.example"); got != otherSecure {
		t.Fatalf("before: %q", got)
	}

	// The domain owner publishes a new policy. The cached one is still
	// valid, so the daemon keeps applying it (STS-CACHE-5) ...
	if err := n.Set(fixedF2Domain()); err != nil {
		t.Fatal(err)
	}
	const fixedSecure = "OK secure match=mail.example.com servername=hostname"
	// Past any memoised answer; of the two lookups the second is memoised.
	clk.Advance(2 * time.Second)
	for range 2 {
		if got := lookup(t, r.addr, "postfix", "example.com"); got != f2Secure {
			t.Fatalf("new policy seen without a purge (the test shows nothing): %q", got)
		}
	}
	// ... until the operator purges it. The clock stands still: the purge
	// also ends memoised answers.
	if k := purgeAsCLI(t, cfg, "example.com"); k != 1 {
		t.Fatalf("purge deleted %d entries, want 1", k)
	}
	waitPurge(1)
	if got := lookup(t, r.addr, "postfix", "example.com"); got != fixedSecure {
		t.Errorf("after purge: %q, want %q", got, fixedSecure)
	}
	if k := n.Requests("example.com"); k != 2 {
		t.Errorf("example.com policy fetched %d times, want 2 (once more after the purge)", k)
	}
	if got := lookup(t, r.addr, "postfix", "other.example"); got != otherSecure || n.Requests("other.example") != 1 {
		t.Errorf("other.example after purging example.com: %q, %d fetches; want the cached policy", got, n.Requests("other.example"))
	}

	// purge --all: every domain is fetched again.
	if err := n.Set(stsDomain("other.example", "o2", "enforce", "mx2.other.example")); err != nil {
		t.Fatal(err)
	}
	if k := purgeAsCLI(t, cfg); k != 2 {
		t.Fatalf("purge --all deleted %d entries, want 2", k)
	}
	waitPurge(-1)
	if got := lookup(t, r.addr, "postfix", "other.example"); got != "OK secure match=mx2.other.example servername=hostname" {
		t.Errorf("after purge --all: %q", got)
	}
	if got := lookup(t, r.addr, "postfix", "example.com"); got != fixedSecure || n.Requests("example.com") != 3 {
		t.Errorf("example.com after purge --all: %q, %d fetches; want a third fetch", got, n.Requests("example.com"))
	}
}

// `mailsts cache purge` on a shared Redis: Redis.Delete announces the
// domain and the daemon drops it from memory at once. Without that it
// would answer from memory for FrontTTL and then, finding a valid enforce
// policy missing from Redis, write it back (STS-CACHE-10 restore): the
// purge would be undone.
func TestDaemonRedisPurge(t *testing.T) {
	t.Parallel()
	conn, err := net.DialTimeout("tcp", "127.0.0.1:6379", time.Second)
	if err != nil {
		t.Skip("no Redis on 127.0.0.1:6379; the Redis purge test needs one")
	}
	conn.Close()
	n := startNet(t, f2Domain())
	cfg := testConfig(t, n, "redis", t.TempDir())
	cfg.Cache.Redis.Prefix = "mailsts-test-purge-" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
	t.Cleanup(func() {
		st, err := OpenCache(context.Background(), cfg, StoreOptions{}, nil)
		if err == nil {
			st.Delete(context.Background(), "example.com")
			st.Close(context.Background())
		}
	})
	clk := newClock()
	applied := make(chan int, 16)
	d := &Daemon{Config: cfg, Now: clk.Now, purged: func(k int) { applied <- k }}
	r := startDaemon(t, d, nil)
	waitPurge := func(want int) {
		t.Helper()
		select {
		case k := <-applied:
			if k != want {
				t.Fatalf("purge dropped %d domains, want %d", k, want)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the daemon did not apply the purge within 30 s")
		}
	}
	waitPurge(0) // subscribed: memory is reconciled with Redis, not dropped
	if got := lookup(t, r.addr, "postfix", "example.com"); got != f2Secure {
		t.Fatalf("before: %q", got)
	}
	if err := n.Set(fixedF2Domain()); err != nil {
		t.Fatal(err)
	}
	st, err := OpenCache(context.Background(), cfg, StoreOptions{NoFallback: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(context.Background(), "example.com"); err != nil { // as the CLI does
		t.Fatal(err)
	}
	st.Close(context.Background())
	waitPurge(1)
	clk.Advance(31 * time.Second) // past FrontTTL: the restore window
	if got := lookup(t, r.addr, "postfix", "example.com"); got != "OK secure match=mail.example.com servername=hostname" {
		t.Errorf("after purge: %q, want the new policy", got)
	}
	if k := n.Requests("example.com"); k != 2 {
		t.Errorf("policy fetched %d times, want 2", k)
	}
}

// A daemon answers from its SQLite file before the file is copied into
// memory (Store.Warm runs in the background after the listeners open): a
// lookup that misses memory reads the file (STS-CACHE-10 across restarts).
func TestStoreAnswersBeforeWarm(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := Default()
	cfg.Cache.Type = "sqlite"
	cfg.StateDir = t.TempDir()
	seed, err := OpenCache(ctx, cfg, StoreOptions{NoFallback: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := &mtasts.Policy{Mode: mtasts.ModeEnforce, MX: []string{"mx.a.example"}, MaxAge: 86400}
	for _, dom := range []string{"a.example", "b.example"} {
		if err := seed.Put(ctx, &mtasts.Entry{Domain: dom, ID: "1", Policy: p, FetchedAt: time.Now(), CheckedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	seed.Close(ctx)

	st, err := OpenCache(ctx, cfg, StoreOptions{NoFallback: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(ctx)
	if n := st.Len(); n != 0 {
		t.Fatalf("%d entries in memory before Warm: the open blocked on loading", n)
	}
	// DNS and HTTPS unreachable: only the file can answer.
	c := &mtasts.Cache{Store: st, Client: &mtasts.Client{DNS: &dnsresolve.Fake{}}}
	res, err := c.Get(ctx, "a.example")
	if err != nil || res.Policy == nil || res.Policy.Mode != mtasts.ModeEnforce || res.Source != mtasts.SourceCache {
		t.Fatalf("before Warm: %+v, %v", res, err)
	}
	if n, err := st.Warm(ctx); n != 1 || err != nil {
		t.Errorf("Warm added %d (%v), want 1: the entry read on demand is kept", n, err)
	}
	if st.Len() != 2 {
		t.Errorf("%d entries in memory after Warm, want 2", st.Len())
	}
}

// fixedF2Domain is example.com after its owner published a new policy
// (new id) naming only mail.example.com, its one MX host now.
func fixedF2Domain() testnet.Domain {
	fixed := f2Domain()
	fixed.STSTXT = [][]string{{"v=STSv1; id=fixed1;"}}
	fixed.Policy = &testnet.PolicyHost{Body: "version: STSv1\nmode: enforce\nmx: mail.example.com\nmax_age: 86400\n"}
	fixed.MX = fixed.MX[:1] // mail.example.com
	return fixed
}

// With the per-domain state compacted and the collector paced to the live
// heap (gc_headroom), every policy is still answered after a restart from
// the SQLite file alone, DNS and HTTPS gone (STS-CACHE-10): domains sharing
// one policy (hosted mail) and domains with policies of their own.
func TestDaemonRestartAnswersEveryPolicy(t *testing.T) {
	t.Parallel()
	const n = 40
	var domains []testnet.Domain
	for i := range n {
		name := "d" + strconv.Itoa(i) + ".example"
		mx := "mx.hosted.example"
		if i%2 == 1 {
			mx = "mx1." + name
		}
		domains = append(domains, stsDomain(name, "id"+strconv.Itoa(i), "enforce", mx))
	}
	net := startNet(t, domains...)
	state := t.TempDir()
	cfg := testConfig(t, net, "sqlite", state)
	ca := filepath.Join(state, "ca.pem")
	if err := os.WriteFile(ca, net.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Fetch.CAFile = ca
	cfg.GCHeadroom = 10
	r := startDaemon(t, &Daemon{Config: cfg}, nil)
	want := map[string]string{}
	for _, d := range domains {
		got := lookup(t, r.addr, "postfix", d.Name)
		if !strings.HasPrefix(got, "OK secure match="+d.MX[0].Name+" ") {
			t.Fatalf("online, %s: %q", d.Name, got)
		}
		want[d.Name] = got
	}
	r.shutdown(t)
	net.Close() // DNS and HTTPS gone
	r = startDaemon(t, &Daemon{Config: cfg}, nil)
	for _, d := range domains {
		if got := lookup(t, r.addr, "postfix", d.Name); got != want[d.Name] {
			t.Errorf("after restart offline, %s: %q, want %q", d.Name, got, want[d.Name])
		}
	}
}
