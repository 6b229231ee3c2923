package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailsts/mailsts/internal/testnet"
)

// Issue 11 item 12: the local resolver down is "could not run" (exit 3)
// and never blamed on the domain.
func TestCheckResolverDown(t *testing.T) { // STS-TXT-13
	t.Parallel()
	dns := fmt.Sprintf("127.0.0.1:%d", testnet.RefusedPortFor(t))
	code, stdout, stderr := run(t, "check", "--dns", dns, "--timeout", "2s", "--probe-timeout", "1s", "enforce.example")
	if code != 3 || !strings.Contains(stderr, "could not run: resolver unreachable") || strings.Contains(stdout+stderr, "authoritative") {
		t.Errorf("exit %d, want 3\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
}

// In bulk too: a run in which the resolver answered nothing could not run.
func TestCheckBulkResolverDown(t *testing.T) {
	t.Parallel()
	dns := fmt.Sprintf("127.0.0.1:%d", testnet.RefusedPortFor(t))
	list := filepath.Join(t.TempDir(), "list.txt")
	if err := os.WriteFile(list, []byte("enforce.example\ntesting.example\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := run(t, "check", "--dns", dns, "--timeout", "2s", "--probe-timeout", "1s", "--bulk", list)
	if code != 3 || !strings.Contains(stderr, "could not run: resolver unreachable") {
		t.Errorf("exit %d, want 3\n%s", code, stderr)
	}
}

// A nonexistent domain is told so, not asked to publish an MX record.
func TestCheckNXDOMAINText(t *testing.T) {
	t.Parallel()
	n := defaultNet(t)
	code, stdout, _ := run(t, checkArgs(n, "no-such-domain.example")...)
	if code != 2 || !strings.Contains(stdout, "does not exist (NXDOMAIN)") || strings.Contains(stdout, "publish an MX") {
		t.Errorf("exit %d\n%s", code, stdout)
	}
}

// resolve, check and policyd agree on IP literals (STS-SEL-4): no MTA-STS,
// and no DNS traffic (the --dns server here refuses every query).
func TestIPLiteralAgreement(t *testing.T) { // STS-SEL-4
	t.Parallel()
	dns := fmt.Sprintf("127.0.0.1:%d", testnet.RefusedPortFor(t))
	for _, ip := range []string{"192.0.2.1", "[IPv6:2001:db8::1]"} {
		code, _, stderr := run(t, "check", "--dns", dns, ip)
		if code != ExitUsage || !strings.Contains(stderr, "IP literal: MTA-STS does not apply") {
			t.Errorf("check %s: exit %d %q", ip, code, stderr)
		}
		code, stdout, _ := run(t, "resolve", "--dns", dns, ip)
		if code != ExitFailure || !strings.Contains(stdout, "IP literal: MTA-STS does not apply") {
			t.Errorf("resolve %s: exit %d %q", ip, code, stdout)
		}
		code, stdout, _ = run(t, "resolve", "--json", "--dns", dns, ip)
		var out resolveOutput
		if err := json.Unmarshal([]byte(stdout), &out); code != ExitFailure || err != nil || out.Error != "no-policy" || out.Detail != "IP literal: MTA-STS does not apply" {
			t.Errorf("resolve --json %s: exit %d %+v %v", ip, code, out, err)
		}
	}
}
