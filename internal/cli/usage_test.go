package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestUsageExitCode: every command exits 64 for an unknown flag, a bad flag
// value, a missing or extra argument and conflicting flags, and creates
// nothing on the way (issue 11 item 13).
func TestUsageExitCode(t *testing.T) {
	t.Parallel()
	state := filepath.Join(t.TempDir(), "state")
	cases := [][]string{
		{}, {"no-such-command"},
		{"version", "--no-such-flag"}, {"version", "extra"},
		{"selftest", "--no-such-flag"}, {"selftest", "extra"},
		{"testnet", "--no-such-flag"}, {"testnet", "extra"}, {"testnet", "--dns-port", "70000"}, {"testnet", "--generate", "x"},
		{"resolve"}, {"resolve", "--no-such-flag", "a.example"}, {"resolve", "a.example", "b.example"}, {"resolve", "a..b"},
		{"resolve", "--timeout", "-1s", "a.example"}, {"resolve", "--dns", "no:such:server", "a.example"},
		{"check"}, {"check", "--no-such-flag", "a.example"}, {"check", "a..b"}, {"check", "--bulk", "x", "a.example"},
		{"check", "--timeout", "0s", "a.example"}, {"check", "--https-port", "-1", "a.example"}, {"check", "--out", "x", "a.example"},
		{"policyd", "--no-such-flag"}, {"policyd", "extra"}, {"policyd", "--cache", "bogus", "--check-config"},
		{"policyd", "--dns", "no:such:server", "--check-config"},
		{"cache"}, {"cache", "--no-such-flag", "list"}, {"cache", "frobnicate"}, {"cache", "show"}, {"cache", "list", "extra"},
		{"cache", "--cache", "bogus", "list"}, {"cache", "export", "--json=false"}, {"cache", "warm", "--all", "f"},
		{"tlsrpt"}, {"tlsrpt", "frobnicate"}, {"tlsrpt", "summary", "--no-such-flag"}, {"tlsrpt", "summary", "extra"},
		{"tlsrpt", "show"}, {"tlsrpt", "show", "--csv", "x"}, {"tlsrpt", "summary", "--json", "--csv"},
		{"tlsrpt", "ingest", "--no-such-flag"}, {"tlsrpt", "ingest", "--dkim", "maybe"},
		{"serve", "--no-such-flag"}, {"serve", "extra"},
	}
	for _, args := range cases {
		args := append(args, []string{}...)
		if len(args) > 0 && (args[0] == "cache" || args[0] == "policyd") && len(args) > 1 {
			args = append([]string{args[0], "--state-dir", state}, args[1:]...)
		}
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			if code, _, stderr := runStdin(t, nil, state, args...); code != ExitUsage {
				t.Errorf("exit %d, want %d\n%s", code, ExitUsage, stderr)
			}
		})
	}
	t.Cleanup(func() {
		if _, err := os.Stat(state); !os.IsNotExist(err) {
			t.Errorf("a usage error created the state directory %s", state)
		}
	})
}
