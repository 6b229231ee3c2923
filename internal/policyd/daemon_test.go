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

	"github.com/mailsts/mailsts/internal/testnet"
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	maddr := ln.Addr().String()
	ln.Close()
	cfg.Metrics.Listen = maddr
	r := startDaemon(t, &Daemon{Config: cfg}, nil)
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

// metrics.pprof adds Go's profiler to the metrics listener.
func TestDaemonPprof(t *testing.T) {
	t.Parallel()
	n := startNet(t, f2Domain())
	cfg := testConfig(t, n, "memory", t.TempDir())
	cfg.Metrics.Pprof = true
	if err := cfg.Validate(); err == nil {
		t.Error("metrics.pprof without metrics.listen accepted")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	maddr := ln.Addr().String()
	ln.Close()
	cfg.Metrics.Listen = maddr
	startDaemon(t, &Daemon{Config: cfg}, nil)
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap?debug=1", "/metrics"} {
		if code := httpStatus(t, "http://"+maddr+path); code != http.StatusOK {
			t.Errorf("%s: status %d", path, code)
		}
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
		st, err := OpenStore(context.Background(), newCfg(), StoreOptions{}, nil)
		if err == nil {
			st.Store.Delete(context.Background(), "example.com")
			st.Close(context.Background())
		}
	})
}
