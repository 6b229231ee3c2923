//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
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
	// optional peer that is not installed. A nil process means the daemon
	// runs inside the test.
	start func(t *testing.T, n *testnet.Net, addr string) *process
	// enforces: the daemon answers "secure …" for enforce.example.
	enforces bool
	// cases are the messages sent through a Postfix using this daemon.
	cases []mailCase
}

// daemons are the policy daemons the test runs Postfix with.
var daemons = []policyDaemon{
	{name: "mailsts", addr: "127.0.0.1:8461", start: startMailsts, enforces: true, cases: slices.Concat(mtaSTSCases, daneCases)},
	{name: "peer", addr: "127.0.0.1:8462", start: startPeer, enforces: true, cases: slices.Concat(mtaSTSCases, peerDANECases)},
	{name: "control", addr: "127.0.0.1:8463", start: startNoPolicy, cases: slices.Concat(controlCases, controlDANECases)},
	{name: "mailsts-redis-down", addr: "127.0.0.1:8464", start: startMailstsRedisDown, enforces: true, cases: redisDownCases},
}

// redisDownCases are what mailsts policyd must achieve with its Redis cache
// unreachable from the start (issue #10 item 4): mail is delivered, not
// deferred, both to a domain without MTA-STS (NOTFOUND, not TEMP) and to
// an enforce domain (waitReady's lookup cached it in memory), which keeps
// its verified TLS.
var redisDownCases = []mailCase{
	{
		id: "PFX-STS redis-down", domain: "enforce.example",
		mx:      []string{"mx1.enforce.example", "mx2.enforce.example"},
		answer:  "OK secure ",
		deliver: true, sni: true, logLine: "Verified TLS connection established to ",
	},
	{
		id: "PFX-POL NOTFOUND redis-down", domain: "nosts.example", mx: []string{"mx1.nosts.example"},
		answer:  "NOTFOUND ",
		deliver: true,
	},
}

// startMailstsRedisDown runs `mailsts policyd` with cache.type redis
// pointed at a port of the namespace where nothing listens.
func startMailstsRedisDown(t *testing.T, n *testnet.Net, addr string) *process {
	t.Helper()
	bin := os.Getenv(envBinary)
	if bin == "" {
		t.Fatal(envBinary + " is not set: the outer test builds mailsts and sets it")
	}
	port := testnet.RefusedPortFor(t)
	cfg := fmt.Sprintf("cache:\n  type: redis\n  redis:\n    address: 127.0.0.1:%d\n    prefix: \"e2e:\"\n", port)
	path := filepath.Join(t.TempDir(), "policyd.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return startProcess(t, "mailsts policyd (redis down)", nil, bin, "policyd",
		"--config", path,
		"--listen", addr,
		"--dns", n.DNSAddr(),
		"--ca-file", n.CAFile(),
		"--https-port", strconv.Itoa(n.HTTPSPort()),
		"--state-dir", t.TempDir(),
	)
}

// startNoPolicy serves NOTFOUND for every key, as if no policy daemon were
// configured: the control run showing that without MTA-STS Postfix does
// deliver to the broken MX hosts, so the deferrals seen with a real daemon
// come from its policy and not from the test set-up.
func startNoPolicy(t *testing.T, _ *testnet.Net, addr string) *process {
	t.Helper()
	srv := &postfix.SocketmapServer{Handler: postfix.HandlerFunc(func(context.Context, string, string) postfix.Reply {
		return postfix.NotFound()
	})}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("control socketmap server shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, postfix.ErrServerClosed) {
			t.Errorf("control socketmap server: %v", err)
		}
	})
	return nil
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

// waitReady polls the daemon until it answers for enforce.example: an
// enforce policy, which also proves it reaches the testnet, or NOTFOUND for
// the control.
func waitReady(t *testing.T, ctx context.Context, d policyDaemon, p *process) {
	t.Helper()
	addr := d.addr
	err := poll(ctx, 30*time.Second, 100*time.Millisecond, func() error {
		if p == nil {
			// In-process; Serve may not have been reached yet.
		} else if done, err := p.exited(); done {
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
		if !d.enforces {
			if r.Status != postfix.StatusNotFound {
				return fmt.Errorf("enforce.example: got %v %q, want NOTFOUND", r.Status, r.Data)
			}
			return nil
		}
		if r.Status != postfix.StatusOK || !strings.HasPrefix(r.Data, "secure ") {
			return fmt.Errorf("enforce.example: got %v %q, want OK secure …", r.Status, r.Data)
		}
		return nil
	})
	if err != nil {
		if p == nil {
			t.Fatalf("%s not ready on %s: %v", d.name, addr, err)
		}
		if done, _ := p.exited(); done {
			t.Fatalf("%s did not start: %v\noutput:\n%s", p.name, err, p.out.String())
		}
		t.Fatalf("%s not ready on %s: %v", p.name, addr, err)
	}
}

// lookupPolicy asks the daemon at addr for domain's TLS policy, as Postfix
// does, and returns the reply as "<status> <data>" (the socketmap wire
// form, for example "OK dane-only" or "NOTFOUND ").
func lookupPolicy(t *testing.T, ctx context.Context, addr, domain string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	c, err := postfix.DialSocketmap(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("policy daemon at %s: %v", addr, err)
	}
	defer c.Close()
	r, err := c.Lookup(ctx, "postfix", domain)
	if err != nil {
		t.Fatalf("policy daemon at %s, lookup %s: %v", addr, domain, err)
	}
	return r.Status.String() + " " + r.Data
}
