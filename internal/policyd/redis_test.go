package policyd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mailsts/mailsts/internal/stscache"
	"github.com/mailsts/mailsts/internal/testnet"
)

const testRedisAddr = "127.0.0.1:6379"

// testRedis returns a client of the local Redis and a fresh key prefix
// whose keys are deleted at cleanup, or skips.
func testRedis(t *testing.T) (*redis.Client, string) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: testRedisAddr, DialTimeout: time.Second, MaxRetries: -1})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		t.Skipf("redis not reachable at %s: %v (SKIPPED, NOT PASSED: run redis-server there to test policyd on Redis)", testRedisAddr, err)
	}
	b := make([]byte, 8)
	rand.Read(b)
	prefix := "mailsts-test-" + hex.EncodeToString(b) + ":"
	t.Cleanup(func() {
		defer c.Close()
		deletePrefix(t, c, prefix)
	})
	return c, prefix
}

// deletePrefix deletes every key under prefix: what a Redis restart without
// persistence does to them.
func deletePrefix(t *testing.T, c *redis.Client, prefix string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var cursor uint64
	for range 10000 {
		keys, next, err := c.Scan(ctx, cursor, prefix+"*", 1000).Result()
		if err != nil {
			t.Errorf("deleting %s*: %v", prefix, err)
			return
		}
		if len(keys) > 0 {
			c.Del(ctx, keys...)
		}
		if cursor = next; cursor == 0 {
			return
		}
	}
}

// noSTSDomain has mail but no MTA-STS.
func noSTSDomain() testnet.Domain {
	return testnet.Domain{Name: "nosts.example", MX: []testnet.MXHost{{Name: "mx.nosts.example", Pref: 10}}}
}

// blockedF2Domain is example.com as an attacker on the path shows it: no
// _mta-sts record, no policy host.
func blockedF2Domain() testnet.Domain {
	d := f2Domain()
	d.STSTXT, d.Policy = nil, nil
	return d
}

func waitFor[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatalf("no %s within 30 s", what)
		panic("unreachable")
	}
}

// Issue #10 item 1, "Done means": Redis restarts without persistence (its
// keys are gone, the purge subscription drops and comes back), then an
// attacker blocks the policy fetch. The daemon kept its memory, wrote the
// enforce policy back to Redis, and still answers enforce (STS-CACHE-10,
// STS-TXT-11). Before, the resubscription dropped memory and the lookup got
// NOTFOUND.
func TestDaemonRedisRestartKeepsEnforce(t *testing.T) {
	t.Parallel()
	h := startProxiedF2(t)
	direct, prefix, proxy, n, clk, r, subscribed, resynced := h.direct, h.prefix, h.proxy, h.n, h.clk, h.r, h.subscribed, h.resynced

	// The restart: connections drop, the keys are gone.
	proxy.Cut()
	deletePrefix(t, direct, prefix)
	if k, _ := direct.Exists(context.Background(), prefix+"policy:example.com").Result(); k != 0 {
		t.Fatal("key survived the simulated restart")
	}
	// Resyncs before this point could not reach Redis or predate the
	// restart; any resync from here on runs against the emptied Redis.
	for len(resynced) > 0 {
		<-resynced
	}
	proxy.Restore()
	if k := waitFor(t, subscribed, "resubscription"); k != 0 {
		t.Fatalf("resubscription dropped %d domains", k)
	}
	waitFor(t, resynced, "resync after the resubscription")
	if k, _ := direct.Exists(context.Background(), prefix+"policy:example.com").Result(); k != 1 {
		t.Error("the enforce policy Redis lost was not written back")
	}

	// The attack: no TXT record, no policy host; past every memo and the
	// TXT check interval, so the daemon asks the store and DNS again.
	if err := n.Set(blockedF2Domain()); err != nil {
		t.Fatal(err)
	}
	clk.Advance(20 * time.Minute)
	if got := lookup(t, r.addr, "postfix", "example.com"); got != f2Secure {
		t.Errorf("after the restart, with the fetch blocked: %q, want the enforce answer %q", got, f2Secure)
	}
}

// Issue #10 item 4: Redis down at start. The daemon starts and answers: a
// domain without MTA-STS gets NOTFOUND (before: TEMP), an MTA-STS domain is
// fetched and answered, and the degraded state shows in CacheStatus and
// the metrics.
func TestDaemonRedisDownAtStart(t *testing.T) {
	t.Parallel()
	n := startNet(t, f2Domain(), noSTSDomain())
	cfg := testConfig(t, n, "redis", t.TempDir())
	cfg.Cache.Redis.Address = net.JoinHostPort("127.0.0.1", strconv.Itoa(testnet.RefusedPortFor(t)))
	cfg.Cache.Redis.Prefix = "mailsts-test-down:"
	cfg.Metrics.Listen = "127.0.0.1:0"
	r := startDaemon(t, &Daemon{Config: cfg}, nil)
	if got := lookup(t, r.addr, "postfix", "nosts.example"); got != "NOTFOUND " {
		t.Errorf("no-MTA-STS domain with Redis down: %q, want NOTFOUND", got)
	}
	for range 3 {
		if got := lookup(t, r.addr, "postfix", "example.com"); got != f2Secure {
			t.Errorf("MTA-STS domain with Redis down: %q, want %q", got, f2Secure)
		}
	}
	st := r.d.CacheStatus()
	if !st.Back.Degraded || st.Back.Err == nil || st.Back.Pending < 1 || st.Kind != "redis" {
		t.Errorf("CacheStatus = %+v, want degraded with pending entries", st)
	}
	resp, err := http.Get("http://" + r.metricsAddr.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "mailsts_policyd_cache_degraded 1") {
		t.Error("metrics lack mailsts_policyd_cache_degraded 1")
	}
}

// Issue #10 item 4: after a flap Redis hangs (accepts, never answers).
// Before, lookups of cached enforce domains waited on Redis and timed out
// into TEMP. Now the first lookup pays one short bounded wait and then no
// lookup touches Redis: every lookup below completes while the proxy still
// hangs, cached domains keep their enforce answer, new domains are
// fetched. When Redis answers again, what was written meanwhile reaches it.
func TestDaemonRedisHang(t *testing.T) {
	t.Parallel()
	direct, prefix := testRedis(t)
	proxy := testnet.StartProxyFor(t, testRedisAddr)
	const cached = 20
	domains := []testnet.Domain{noSTSDomain()}
	for i := range cached {
		name := "d" + strconv.Itoa(i) + ".example"
		domains = append(domains, stsDomain(name, "1", "enforce", "mx."+name))
	}
	domains = append(domains, stsDomain("late.example", "1", "enforce", "mx.late.example"))
	n := startNet(t, domains...)
	cfg := testConfig(t, n, "redis", t.TempDir())
	cfg.Cache.Redis.Address = proxy.Addr()
	cfg.Cache.Redis.Prefix = prefix
	clk := newClock()
	resynced := make(chan stscache.ResyncStats, 64)
	d := &Daemon{Config: cfg, Now: clk.Now, resynced: func(s stscache.ResyncStats) { resynced <- s }}
	r := startDaemon(t, d, nil)
	want := func(name string) string { return "OK secure match=mx." + name + " servername=hostname" }
	for i := range cached {
		name := "d" + strconv.Itoa(i) + ".example"
		if got := lookup(t, r.addr, "postfix", name); got != want(name) {
			t.Fatalf("%s: %q", name, got)
		}
	}

	proxy.Hang()
	clk.Advance(20 * time.Minute) // past memos, FrontTTL and the TXT check interval
	for i := range cached {
		name := "d" + strconv.Itoa(i) + ".example"
		if got := lookup(t, r.addr, "postfix", name); got != want(name) {
			t.Errorf("%s while Redis hangs: %q, want the enforce answer", name, got)
		}
	}
	if got := lookup(t, r.addr, "postfix", "late.example"); got != want("late.example") {
		t.Errorf("new domain while Redis hangs: %q", got)
	}
	if got := lookup(t, r.addr, "postfix", "nosts.example"); got != "NOTFOUND " {
		t.Errorf("no-MTA-STS domain while Redis hangs: %q, want NOTFOUND", got)
	}
	if !r.d.CacheStatus().Back.Degraded {
		t.Error("not degraded while Redis hangs")
	}
	// What `mailsts cache status` reads: the status file says so too. It
	// is written by whichever goroutine met the failure, after the state
	// changed, so it may trail the state by that goroutine's next steps:
	// a bounded poll (nothing else can tell when that write is done).
	statusPath := StatusPath(cfg, func(string) string { return "" })
	var st *StoreStatus
	var err error
	for range 500 {
		if st, err = ReadStatus(statusPath); err == nil && st.BackFailing {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil || !st.BackFailing || st.BackError == "" {
		t.Errorf("status file while Redis hangs: %+v %v, want back_failing with its error", st, err)
	}
	proxy.Restore()
	for range 100 {
		if st := waitFor(t, resynced, "resync after Redis came back"); st.WrittenBack > 0 {
			break
		}
	}
	if k, _ := direct.Exists(context.Background(), prefix+"policy:late.example").Result(); k != 1 {
		t.Error("the entry fetched while Redis hung was not written back")
	}
	if r.d.CacheStatus().Back.Degraded {
		t.Error("still degraded after Redis came back")
	}
}

// Issue #10 item 1: `mailsts cache purge` while this daemon's connection to
// Redis is down. The announcement is lost, but the purge left a tombstone:
// the resync on reconnection drops the domain from memory instead of
// writing it back, and the next lookup fetches the new policy.
func TestDaemonRedisPurgeWhileDisconnected(t *testing.T) {
	t.Parallel()
	h := startProxiedF2(t)
	direct, prefix, proxy, n, r, subscribed, resynced := h.direct, h.prefix, h.proxy, h.n, h.r, h.subscribed, h.resynced
	proxy.Cut()
	if err := n.Set(fixedF2Domain()); err != nil {
		t.Fatal(err)
	}
	// The purge, as the CLI does it, straight to Redis.
	if err := openRedisCache(t, prefix).Delete(context.Background(), "example.com"); err != nil {
		t.Fatal(err)
	}
	for len(resynced) > 0 {
		<-resynced
	}
	proxy.Restore()
	waitFor(t, subscribed, "resubscription")
	if st := waitFor(t, resynced, "resync"); st.Purged != 1 {
		t.Errorf("resync %+v, want the purged domain dropped", st)
	}
	if k, _ := direct.Exists(context.Background(), prefix+"policy:example.com").Result(); k != 0 {
		t.Error("purged policy written back to Redis")
	}
	if got := lookup(t, r.addr, "postfix", "example.com"); got != "OK secure match=mail.example.com servername=hostname" {
		t.Errorf("after the purge: %q, want the new policy", got)
	}
}

// openRedisCache opens a cache on the test Redis under prefix, as another
// process (`mailsts cache`) would: its memory starts empty.
func openRedisCache(t *testing.T, prefix string) *stscache.Cache {
	t.Helper()
	c, err := stscache.Open(context.Background(), stscache.Config{Kind: stscache.KindRedis,
		Redis: &redis.Options{Addr: testRedisAddr}, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// proxiedF2 is a daemon on the test Redis, reached through a proxy the
// test can cut, hang and restore, with the F-2 domain (example.com,
// enforce) looked up once and cached; purged and resynced report the
// daemon's subscriptions and reconciliations.
type proxiedF2 struct {
	direct     *redis.Client
	prefix     string
	proxy      *testnet.Proxy
	n          *testnet.Net
	clk        *clock
	r          *running
	subscribed chan int
	resynced   chan stscache.ResyncStats
}

func startProxiedF2(t *testing.T) *proxiedF2 {
	t.Helper()
	h := &proxiedF2{clk: newClock(), subscribed: make(chan int, 16), resynced: make(chan stscache.ResyncStats, 16)}
	h.direct, h.prefix = testRedis(t)
	h.proxy = testnet.StartProxyFor(t, testRedisAddr)
	h.n = startNet(t, f2Domain())
	cfg := testConfig(t, h.n, "redis", t.TempDir())
	cfg.Cache.Redis.Address = h.proxy.Addr()
	cfg.Cache.Redis.Prefix = h.prefix
	d := &Daemon{Config: cfg, Now: h.clk.Now,
		purged:   func(k int) { h.subscribed <- k },
		resynced: func(s stscache.ResyncStats) { h.resynced <- s }}
	h.r = startDaemon(t, d, nil)
	waitFor(t, h.subscribed, "subscription")
	if got := lookup(t, h.r.addr, "postfix", "example.com"); got != f2Secure {
		t.Fatalf("before: %q", got)
	}
	return h
}
