//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/testnet"
	"github.com/mailsts/mailsts/postfix"
)

// policyDaemon is a Postfix TLS policy daemon speaking socketmap.
type policyDaemon struct {
	name string
	addr string // socketmap listen address
	// start runs the daemon against the testnet, or skips t when it is an
	// optional peer that is not installed.
	start func(t *testing.T, n *testnet.Net, addr string) *process
}

// daemons are the policy daemons every case runs against.
var daemons = []policyDaemon{
	{name: "mailsts", addr: "127.0.0.1:8461", start: startMailsts},
	{name: "peer", addr: "127.0.0.1:8462", start: startPeer},
}

// startMailsts runs `mailsts policyd` with an in-memory cache, pointed at
// the testnet DNS server and policy hosts.
func startMailsts(t *testing.T, n *testnet.Net, addr string) *process {
	t.Helper()
	bin := os.Getenv(envBinary)
	if bin == "" {
		t.Fatal(envBinary + " is not set: the outer test builds mailsts and sets it")
	}
	return startProcess(t, "mailsts policyd", nil, bin, "policyd",
		"--listen", addr,
		"--dns", n.DNSAddr(),
		"--ca-file", n.CAFile(),
		"--https-port", strconv.Itoa(n.HTTPSPort()),
		"--state-dir", t.TempDir(),
		"--cache", "memory",
	)
}

// startPeer runs Debian's postfix-mta-sts-resolver (mta-sts-daemon), the
// daemon mailsts replaces, as a reference: the same cases must hold for it.
// It resolves through the namespace's resolv.conf and trusts the testnet CA
// through SSL_CERT_FILE (Python's ssl default context honours it).
func startPeer(t *testing.T, n *testnet.Net, addr string) *process {
	t.Helper()
	bin, err := tool("mta-sts-daemon")
	if err != nil {
		t.Skip("postfix-mta-sts-resolver (mta-sts-daemon) is not installed; the reference peer run is optional")
	}
	host, port, _ := strings.Cut(addr, ":")
	cfg := fmt.Sprintf(`host: %s
port: %s
reuse_port: true
shutdown_timeout: 2
cache:
  type: internal
  options:
    cache_size: 10000
default_zone:
  strict_testing: false
  timeout: 4
`, host, port)
	path := filepath.Join(t.TempDir(), "mta-sts-daemon.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return startProcess(t, "mta-sts-daemon", []string{"SSL_CERT_FILE=" + n.CAFile()},
		bin, "-c", path, "-v", "info")
}

// waitReady polls the daemon until it answers an enforce policy for
// enforce.example, which also proves it reaches the testnet.
func waitReady(t *testing.T, ctx context.Context, p *process, addr string) {
	t.Helper()
	err := poll(ctx, 30*time.Second, 100*time.Millisecond, func() error {
		if done, err := p.exited(); done {
			return fmt.Errorf("%w: %s exited: %w", errGiveUp, p.name, err)
		}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		c, err := postfix.DialSocketmap(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		r, err := c.Lookup(ctx, "postfix", "enforce.example")
		if err != nil {
			return err
		}
		if r.Status != postfix.StatusOK || !strings.HasPrefix(r.Data, "secure ") {
			return fmt.Errorf("enforce.example: got %v %q, want OK secure …", r.Status, r.Data)
		}
		return nil
	})
	if err != nil {
		if done, _ := p.exited(); done {
			t.Fatalf("%s did not start: %v\noutput:\n%s", p.name, err, p.out.String())
		}
		t.Fatalf("%s not ready on %s: %v", p.name, addr, err)
	}
}
