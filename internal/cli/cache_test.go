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

	"github.com/mailsts/mailsts/internal/testnet"
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
	code, out, _ = runCLI(t, append([]string{"cache", "list"}, common...)...)
	if code != ExitOK || !strings.Contains(out, "enforce.example") || !strings.Contains(out, "enforce20240101") || !strings.Contains(out, "(none)") {
		t.Errorf("list: %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, append([]string{"cache", "show"}, append(common, "ENFORCE.example.")...)...)
	if code != ExitOK || !strings.Contains(out, "mx:              *.enforce.example") {
		t.Errorf("show: %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, append([]string{"cache", "export"}, common...)...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != ExitOK || len(lines) != 3 {
		t.Fatalf("export: %d\n%s", code, out)
	}
	var x exportEntry
	if err := json.Unmarshal([]byte(lines[0]), &x); err != nil || x.Domain == "" {
		t.Errorf("export line %q: %v", lines[0], err)
	}
	code, out, _ = runCLI(t, append([]string{"cache", "purge"}, append(common, "enforce.example")...)...)
	if code != ExitOK || !strings.Contains(out, "purged 1") {
		t.Errorf("purge: %d %q", code, out)
	}
	if code, _, _ = runCLI(t, append([]string{"cache", "show"}, append(common, "enforce.example")...)...); code != ExitFailure {
		t.Errorf("show after purge: %d, want %d", code, ExitFailure)
	}
	code, out, _ = runCLI(t, append([]string{"cache", "purge", "--all"}, common...)...)
	if code != ExitOK || !strings.Contains(out, "purged 2") {
		t.Errorf("purge --all: %d %q", code, out)
	}
	for _, bad := range [][]string{{"cache"}, {"cache", "frobnicate"}, {"cache", "show"}, {"cache", "purge"}, {"cache", "warm"}} {
		if code, _, _ := runCLI(t, bad...); code != ExitUsage {
			t.Errorf("%v: %d, want usage error", bad, code)
		}
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
