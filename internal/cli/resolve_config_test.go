package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/policyd"
	"github.com/mailsts/mailsts/postfix"
)

// Issue #10 item 9, STS-DANE-4, PFX-STS-1: `resolve --explain --config F`
// uses F's DNS servers, CA file, HTTPS port and DANE settings, as policyd
// built from F does, so that it explains the answer the daemon gives: for
// a DANE domain "OK dane-only", not NOTFOUND from another resolver. No
// network flag is given: everything comes from the file.
func TestResolveExplainConfigMatchesPolicyd(t *testing.T) {
	t.Parallel()
	n := defaultNet(t)
	cfgFile := filepath.Join(t.TempDir(), "policyd.yml")
	yml := fmt.Sprintf(`listen: [{socketmap: "127.0.0.1:0"}]
dns: {servers: [%q], timeout: 2s}
fetch: {ca_file: %q, https_port: %d, timeout: 10s}
cache: {type: memory}
zones:
  nodane: {dane: "off"}
`, n.DNSAddr(), n.CAFile(), n.HTTPSPort())
	if err := os.WriteFile(cfgFile, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := policyd.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg.StateDir = t.TempDir() // its status file, not in /var/lib/mailsts
	ready := make(chan []net.Addr, 1)
	d := &policyd.Daemon{Config: cfg, Ready: func(a []net.Addr) { ready <- a }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, nil) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("policyd did not stop within 30s")
		}
	})
	var addr string
	select {
	case a := <-ready:
		addr = a[0].String()
	case err := <-done:
		t.Fatalf("policyd did not start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("policyd did not start within 30s")
	}
	lctx, lcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer lcancel()
	pc, err := postfix.DialSocketmap(lctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()

	for _, c := range []struct{ zone, domain, want string }{
		{"postfix", "dane.example", "OK dane-only"},
		{"postfix", "enforce.example", "OK secure match=.enforce.example servername=hostname"},
		{"nodane", "dane.example", "OK secure match=mx1.dane.example servername=hostname"}, // DANE off in this zone
	} {
		rep, err := pc.Lookup(lctx, c.zone, c.domain)
		if err != nil {
			t.Fatal(err)
		}
		daemon := rep.Status.String()
		if rep.Data != "" {
			daemon += " " + rep.Data
		}
		if daemon != c.want {
			t.Errorf("policyd %s %s: %q, want %q", c.zone, c.domain, daemon, c.want)
		}
		_, stdout, stderr := run(t, "resolve", "--json", "--explain", "--config", cfgFile, "--zone", c.zone, c.domain)
		var out resolveOutput
		if err := json.Unmarshal([]byte(stdout), &out); err != nil || out.Policyd == nil {
			t.Fatalf("%s %s: %v: %s %s", c.zone, c.domain, err, stdout, stderr)
		}
		if out.Policyd.Reply != daemon {
			t.Errorf("resolve --explain --config, map %s, %s: %q (%s), policyd answers %q",
				c.zone, c.domain, out.Policyd.Reply, out.Policyd.Decision.Reason, daemon)
		}
	}
}
