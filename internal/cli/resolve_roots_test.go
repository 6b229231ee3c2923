package cli

import (
	"strconv"
	"strings"
	"testing"
)

// resolve --roots: the curated set alone does not trust the testnet's
// policy hosts; with --ca-file added it does; an unknown set is a usage
// error.
func TestResolveRoots(t *testing.T) {
	t.Parallel()
	n := defaultNet(t)
	base := []string{"resolve", "--dns", n.DNSAddr(), "--https-port", strconv.Itoa(n.HTTPSPort())}
	code, stdout, _ := run(t, append(base, "--roots", "curated", "enforce.example")...)
	if code != ExitError || !strings.Contains(stdout, "sts-webpki-invalid") {
		t.Errorf("curated only: exit %d\n%s", code, stdout)
	}
	code, stdout, _ = run(t, append(base, "--roots", "curated", "--ca-file", n.CAFile(), "enforce.example")...)
	if code != ExitOK {
		t.Errorf("curated + ca-file: exit %d\n%s", code, stdout)
	}
	if code, _, stderr := run(t, append(base, "--roots", "everything", "enforce.example")...); code != ExitUsage || !strings.Contains(stderr, "unknown root set") {
		t.Errorf("unknown set: exit %d %s", code, stderr)
	}
}
