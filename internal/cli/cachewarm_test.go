package cli

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mailsts/mailsts/internal/policyd"
	"github.com/mailsts/mailsts/internal/stscache"
	"github.com/mailsts/mailsts/internal/testnet"
	"github.com/mailsts/mailsts/mtasts"
)

// Issue #10 item 8: a `cache warm` run with a wrong flag must not poison
// the shared store: the daemon on the same file still answers from a fresh
// discovery (not TEMP, not NOTFOUND), and the corrected warm fetches.
func TestCacheWarmFailureDoesNotPoison(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n, err := testnet.Start(ctx, testnet.DefaultScenario(), testnet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	state := t.TempDir()
	list := filepath.Join(state, "domains.txt")
	if err := os.WriteFile(list, []byte("enforce.example\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := []string{"--state-dir", state, "--dns", n.DNSAddr(), "--ca-file", n.CAFile(), "--https-port", strconv.Itoa(n.HTTPSPort())}
	wrong := map[string][]string{
		// Connection refused: a temporary fetch error (TEMP for the
		// daemon if it were remembered).
		"https-port": {"--state-dir", state, "--dns", n.DNSAddr(), "--ca-file", n.CAFile(), "--https-port", strconv.Itoa(testnet.RefusedPortFor(t))},
		// The private CA forgotten: a certificate failure (NOTFOUND
		// for the daemon if it were remembered, a downgrade).
		"ca-file": {"--state-dir", state, "--dns", n.DNSAddr(), "--https-port", strconv.Itoa(n.HTTPSPort())},
	}
	for _, name := range []string{"https-port", "ca-file"} {
		code, out, errs := runCLI(t, append(append([]string{"cache", "warm"}, wrong[name]...), list)...)
		if code != ExitFailure || !strings.Contains(out, "1 domain: 0 with a policy, 0 without, 1 failed") {
			t.Fatalf("warm with a wrong --%s: %d %q %q", name, code, out, errs)
		}
	}

	// The daemon's view: nothing stored, and a lookup discovers.
	cfg := policyd.Default()
	cfg.StateDir = state
	cfg.DNS.Servers = []string{n.DNSAddr()}
	cfg.Fetch.CAFile, cfg.Fetch.HTTPSPort = n.CAFile(), n.HTTPSPort()
	st, err := policyd.OpenCache(ctx, cfg, policyd.StoreOptions{NoFallback: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if e, err := st.Get(ctx, "enforce.example"); err != nil || e != nil {
		t.Errorf("after failed warms the shared store holds %+v, %v; want nothing", e, err)
	}
	client, err := policyd.NewClient(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &policyd.Responder{Cache: &mtasts.Cache{Client: client, Store: st}}
	if _, d := r.Answer(ctx, "postfix", "enforce.example"); d.Answer != policyd.AnswerSecure {
		t.Errorf("daemon after failed warms: %+v; want secure", d)
	}
	if err := st.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// A corrected warm fetches (the daemon above stored the policy in the
	// same file, so purge it first to make the warm fetch again).
	if code, _, errs := runCLI(t, append([]string{"cache", "purge"}, append(good, "enforce.example")...)...); code != ExitOK {
		t.Fatalf("purge: %d %q", code, errs)
	}
	before := n.Requests("enforce.example")
	code, out, errs := runCLI(t, append(append([]string{"cache", "warm"}, good...), list)...)
	if code != ExitOK || !strings.Contains(out, "1 domain: 1 with a policy, 0 without, 0 failed") || n.Requests("enforce.example") == before {
		t.Errorf("corrected warm: %d %q %q (policy requests %d → %d)", code, out, errs, before, n.Requests("enforce.example"))
	}
}

// A corrected warm right after a failed one (no daemon in between) fetches
// instead of refusing with the failure "remembered from an earlier attempt".
func TestCacheWarmRetriesAfterFailedWarm(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n, err := testnet.Start(ctx, testnet.DefaultScenario(), testnet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	state := t.TempDir()
	list := filepath.Join(state, "domains.txt")
	if err := os.WriteFile(list, []byte("enforce.example\ntesting.example\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	common := []string{"--state-dir", state, "--dns", n.DNSAddr(), "--ca-file", n.CAFile()}
	refused := strconv.Itoa(testnet.RefusedPortFor(t))
	code, out, errs := runCLI(t, append(append([]string{"cache", "warm", "--https-port", refused}, common...), list)...)
	if code != ExitFailure || !strings.Contains(out, "2 failed") {
		t.Fatalf("failed warm: %d %q %q", code, out, errs)
	}
	code, out, errs = runCLI(t, append(append([]string{"cache", "warm", "--https-port", strconv.Itoa(n.HTTPSPort())}, common...), list)...)
	if code != ExitOK || !strings.Contains(out, "2 domains: 2 with a policy") || strings.Contains(errs, "remembered") {
		t.Errorf("corrected warm: %d %q %q", code, out, errs)
	}
}

// A bad flag is an error before any lookup, not a failure per domain.
func TestCacheWarmBadFlag(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	list := filepath.Join(state, "domains.txt")
	if err := os.WriteFile(list, []byte("enforce.example\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI(t, "cache", "warm", "--state-dir", state, "--dns", "not an address", list)
	if code != ExitUsage || strings.Contains(out, "domains:") || !strings.Contains(errs, "dns") {
		t.Errorf("warm --dns 'not an address': %d %q %q", code, out, errs)
	}
}

// The shared Redis cache of a fleet: a failed warm leaves no key behind;
// the corrected warm stores the policy.
func TestCacheWarmFailureRedis(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", DialTimeout: time.Second})
	t.Cleanup(func() { rdb.Close() }) // after the cleanups below (LIFO)
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Skipf("no Redis on 127.0.0.1:6379 (SKIPPED, NOT PASSED): %v", err)
	}
	n, err := testnet.Start(ctx, testnet.DefaultScenario(), testnet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	prefix := "mailsts-test-warm-" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
	t.Cleanup(func() {
		keys, _ := rdb.Keys(context.Background(), prefix+"*").Result()
		if len(keys) > 0 {
			rdb.Del(context.Background(), keys...)
		}
	})
	dir := t.TempDir()
	cfg := filepath.Join(dir, "policyd.yml")
	os.WriteFile(cfg, []byte("cache:\n  type: redis\n  redis:\n    address: 127.0.0.1:6379\n    prefix: '"+prefix+"'\n"), 0o600)
	list := filepath.Join(dir, "domains.txt")
	os.WriteFile(list, []byte("enforce.example\n"), 0o600)
	common := []string{"--config", cfg, "--dns", n.DNSAddr(), "--ca-file", n.CAFile()}
	code, out, errs := runCLI(t, append(append([]string{"cache", "warm", "--https-port", strconv.Itoa(testnet.RefusedPortFor(t))}, common...), list)...)
	if code != ExitFailure || !strings.Contains(out, "1 failed") {
		t.Fatalf("failed warm: %d %q %q", code, out, errs)
	}
	if keys, err := rdb.Keys(ctx, prefix+"*").Result(); err != nil || len(keys) != 0 {
		t.Errorf("failed warm left %q (%v) in the shared cache", keys, err)
	}
	code, out, errs = runCLI(t, append(append([]string{"cache", "warm", "--https-port", strconv.Itoa(n.HTTPSPort())}, common...), list)...)
	if code != ExitOK || !strings.Contains(out, "1 with a policy") {
		t.Errorf("corrected warm: %d %q %q", code, out, errs)
	}
	shared, err := stscache.Open(ctx, stscache.Config{Kind: stscache.KindRedis, Redis: &redis.Options{Addr: "127.0.0.1:6379"}, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer shared.Close(ctx)
	e, err := shared.Get(ctx, "enforce.example")
	if err != nil || e == nil || e.Policy == nil || e.LastError != "" {
		t.Errorf("after the corrected warm: %+v, %v", e, err)
	}
}
