package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mailsts/mailsts/internal/policyd"
	"github.com/mailsts/mailsts/internal/sqlitedb"
	"github.com/mailsts/mailsts/internal/stscache"
	"github.com/mailsts/mailsts/internal/testnet"
	"github.com/mailsts/mailsts/mtasts"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code := Main(ctx, args, Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }})
	return code, out.String(), errb.String()
}

// mailsts cache warm, list, show, export and purge on a SQLite store,
// against the testnet.
func TestCacheCommand(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := testnet.Start(ctx, testnet.DefaultScenario(), testnet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	state := t.TempDir()
	common := []string{"--state-dir", state, "--dns", n.DNSAddr(), "--ca-file", n.CAFile(), "--https-port", strconv.Itoa(n.HTTPSPort())}
	list := filepath.Join(state, "domains.txt")
	os.WriteFile(list, []byte("# top destinations\nenforce.example\ntesting.example # trailing comment\n\nnosts.example\n"), 0o600)

	code, out, errs := runCLI(t, append(append([]string{"cache", "warm"}, common...), list)...)
	if code != ExitFailure || !strings.Contains(out, "3 domains: 2 with a policy, 1 without, 0 failed") {
		t.Fatalf("warm: %d %q %q", code, out, errs)
	}
	// Warm stores what it learned, the two policies; "no policy" is not
	// stored (issue #10 item 8: a wrong --dns must not tell the daemons
	// that domains have none).
	code, out, _ = runCLI(t, append([]string{"cache", "list"}, common...)...)
	if code != ExitOK || !strings.Contains(out, "enforce.example") || !strings.Contains(out, "enforce20240101") || strings.Contains(out, "nosts.example") {
		t.Errorf("list: %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, append([]string{"cache", "show"}, append(common, "ENFORCE.example.")...)...)
	if code != ExitOK || !strings.Contains(out, "mx:              *.enforce.example") {
		t.Errorf("show: %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, append([]string{"cache", "export"}, common...)...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != ExitOK || len(lines) != 2 {
		t.Fatalf("export: %d\n%s", code, out)
	}
	var x exportEntry
	if err := json.Unmarshal([]byte(lines[0]), &x); err != nil || x.Domain == "" {
		t.Errorf("export line %q: %v", lines[0], err)
	}
	// --json works where it is documented and is refused elsewhere.
	code, out, _ = runCLI(t, append([]string{"cache", "list", "--json"}, common...)...)
	if jl := strings.Split(strings.TrimSpace(out), "\n"); code != ExitOK || len(jl) != 2 || json.Unmarshal([]byte(jl[0]), &x) != nil {
		t.Errorf("list --json: %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, append([]string{"cache", "show", "--json"}, append(common, "enforce.example")...)...)
	if err := json.Unmarshal([]byte(out), &x); code != ExitOK || err != nil || x.Domain != "enforce.example" || x.Mode != "enforce" {
		t.Errorf("show --json: %d %v\n%s", code, err, out)
	}
	for _, bad := range [][]string{
		{"cache", "export", "--json=false"},
		{"cache", "purge", "--json", "enforce.example"},
		{"cache", "list", "--all"},
		{"cache", "list", "--concurrency", "4"},
	} {
		if code, _, _ := runCLI(t, append(bad, common...)...); code != ExitUsage {
			t.Errorf("%v: %d, want usage error", bad, code)
		}
	}
	// A bad name among good ones: nothing is purged.
	if code, _, _ = runCLI(t, append([]string{"cache", "purge"}, append(common, "testing.example", "bad..name")...)...); code != ExitUsage {
		t.Errorf("purge with a bad name: %d, want %d", code, ExitUsage)
	}
	code, out, _ = runCLI(t, append([]string{"cache", "purge"}, append(common, "enforce.example", "never-cached.example")...)...)
	if code != ExitOK || !strings.Contains(out, "purged 1 entry") || !strings.Contains(out, "drop them from memory within a few seconds") {
		t.Errorf("purge: %d %q", code, out)
	}
	if code, _, _ = runCLI(t, append([]string{"cache", "show"}, append(common, "enforce.example")...)...); code != ExitFailure {
		t.Errorf("show after purge: %d, want %d", code, ExitFailure)
	}
	code, out, _ = runCLI(t, append([]string{"cache", "purge", "--all"}, common...)...)
	if code != ExitOK || !strings.Contains(out, "purged 1") {
		t.Errorf("purge --all: %d %q", code, out)
	}
	// What a running policyd on the file reads: the purged names, in
	// order, then one record for --all (the file's purges table).
	db, err := sqlitedb.Open(filepath.Join(state, policyd.CacheFileName), sqlitedb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var log []string
	rows, err := db.R.QueryContext(ctx, `SELECT coalesce(domain, '') FROM purges ORDER BY seq LIMIT 10`)
	for err == nil && rows.Next() {
		var d string
		if err = rows.Scan(&d); err == nil {
			log = append(log, d)
		}
	}
	if err == nil {
		err = rows.Err()
		rows.Close()
	}
	db.Close()
	if err != nil || strings.Join(log, ",") != "enforce.example,never-cached.example," {
		t.Errorf("purge log = %q, %v; want enforce.example, never-cached.example, then all (\"\")", log, err)
	}
	for _, bad := range [][]string{{"cache"}, {"cache", "frobnicate"}, {"cache", "show"}, {"cache", "purge"}, {"cache", "warm"}} {
		if code, _, _ := runCLI(t, bad...); code != ExitUsage {
			t.Errorf("%v: %d, want usage error", bad, code)
		}
	}
}

// cache.type memory: the cache lives in each policyd; every subcommand
// says so and fails instead of acting on an empty cache of its own (a purge
// that reached nothing, a list that is always empty).
func TestCacheMemoryRefused(t *testing.T) {
	t.Parallel()
	warm := filepath.Join(t.TempDir(), "domains.txt")
	if err := os.WriteFile(warm, []byte("example.com\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"purge", "example.com"}, {"list"}, {"show", "example.com"}, {"export"}, {"warm", warm}} {
		code, out, errs := runCLI(t, append([]string{"cache", "--cache", "memory", "--state-dir", t.TempDir()}, args...)...)
		if code != ExitError || out != "" || !strings.Contains(errs, "restart policyd") || !strings.Contains(errs, "mailsts cache "+args[0]) {
			t.Errorf("%v on memory: %d %q %q", args, code, out, errs)
		}
	}
}

// Redis: purge deletes and announces each domain on <prefix>purge, which
// running daemons follow.
func TestCachePurgeRedis(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", DialTimeout: time.Second})
	t.Cleanup(func() { rdb.Close() }) // after the key cleanup below (LIFO)
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Skipf("no Redis on 127.0.0.1:6379 (SKIPPED, NOT PASSED): %v", err)
	}
	prefix := "mailsts-test-cli-" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
	store, err := stscache.Open(ctx, stscache.Config{Kind: stscache.KindRedis, Redis: &redis.Options{Addr: "127.0.0.1:6379"}, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close(ctx)
	now := time.Now()
	for _, d := range []string{"a.example", "b.example"} {
		p := &mtasts.Policy{Mode: mtasts.ModeEnforce, MX: []string{"mx." + d}, MaxAge: 86400}
		if err := store.Put(ctx, &mtasts.Entry{Domain: d, ID: "1", Policy: p, FetchedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { rdb.Del(context.Background(), prefix+"policy:a.example", prefix+"policy:b.example") })
	cfg := filepath.Join(t.TempDir(), "policyd.yml")
	os.WriteFile(cfg, []byte("cache:\n  type: redis\n  redis:\n    address: 127.0.0.1:6379\n    prefix: '"+prefix+"'\n"), 0o600)

	sub := rdb.Subscribe(ctx, prefix+"purge")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil { // the subscription
		t.Fatal(err)
	}
	code, out, errs := runCLI(t, "cache", "purge", "--config", cfg, "a.example", "gone.example")
	if code != ExitOK || !strings.Contains(out, "purged 1 entry") || !strings.Contains(out, "drop them from memory now") {
		t.Fatalf("purge: %d %q %q", code, out, errs)
	}
	for _, want := range []string{"a.example", "gone.example"} {
		m, err := sub.ReceiveMessage(ctx)
		if err != nil || m.Payload != want {
			t.Fatalf("announced %+v, %v; want %s", m, err, want)
		}
	}
	if code, out, _ = runCLI(t, "cache", "purge", "--config", cfg, "--all"); code != ExitOK || !strings.Contains(out, "purged 1 entry") {
		t.Errorf("purge --all: %d %q", code, out)
	}
	if m, err := sub.ReceiveMessage(ctx); err != nil || m.Payload != "b.example" {
		t.Errorf("purge --all announced %+v, %v; want b.example", m, err)
	}
}

// --check-config reads postfix-mta-sts-resolver's file and prints the
// mapped configuration.
func TestPolicydCheckConfig(t *testing.T) {
	t.Parallel()
	f := filepath.Join(t.TempDir(), "mta-sts-daemon.yml")
	os.WriteFile(f, []byte("host: 127.0.0.1\nport: 8461\nreuse_port: true\ncache:\n  type: internal\n  options:\n    cache_size: 10000\ndefault_zone:\n  strict_testing: true\n"), 0o600)
	code, out, errs := runCLI(t, "policyd", "--config", f, "--check-config", "--state-dir", "/nonexistent")
	if code != ExitOK || !strings.Contains(out, "socketmap: 127.0.0.1:8461") || !strings.Contains(out, "type: memory") ||
		!strings.Contains(out, "strict_testing: true") || !strings.Contains(errs, "reuse_port ignored") {
		t.Errorf("check-config: %d\n%s\n%s", code, out, errs)
	}
	os.WriteFile(f, []byte("listen: [{socketmap: x}]\n"), 0o600)
	if code, _, _ := runCLI(t, "policyd", "--config", f, "--check-config"); code != ExitError {
		t.Errorf("bad config: %d, want %d", code, ExitError)
	}
}

// Issue 11 item 13: `cache --cache bogus list` is a usage error and
// creates nothing; an unknown cache.type in the configuration is a
// configuration error, also without creating files.
func TestCacheBogusType(t *testing.T) {
	t.Parallel()
	state := filepath.Join(t.TempDir(), "state")
	if code, _, stderr := runCLI(t, "cache", "--state-dir", state, "--cache", "bogus", "list"); code != ExitUsage || !strings.Contains(stderr, "bogus") {
		t.Errorf("--cache bogus: %d %q, want %d", code, stderr, ExitUsage)
	}
	cfg := filepath.Join(t.TempDir(), "policyd.yml")
	if err := os.WriteFile(cfg, []byte("cache:\n  type: bogus\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := runCLI(t, "cache", "--config", cfg, "--state-dir", state, "list"); code != ExitError {
		t.Errorf("cache.type bogus: %d, want %d", code, ExitError)
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("the state directory was created: %v", err)
	}
}
