//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/publish"
	"github.com/mailsts/mailsts/internal/testnet"
	"github.com/mailsts/mailsts/mtasts"
)

// The domain mailsts serve hosts in TestPublishPeer, and where its policy
// host listens inside the namespace (the testnet's own policy hosts have
// 127.0.0.1:443).
const (
	peerDomain   = "hosted.example"
	peerHostAddr = "127.0.0.2"
)

// peerPolicy is the policy serve derives from the configuration below.
func peerPolicy(t testing.TB) *publish.Served {
	t.Helper()
	sv, err := publish.Render(peerDomain, mtasts.ModeTesting, []string{"mx1." + peerDomain}, 86400)
	if err != nil {
		t.Fatal(err)
	}
	return sv
}

// TestPublishPeer: a client nobody here wrote, postfix-mta-sts-resolver's
// mta-sts-query, looks up the policy `mailsts serve` hosts, through the
// fake Internet's DNS on port 53 and HTTPS on port 443 inside a network
// namespace, and accepts it: the id of the TXT record and the policy's
// mode, mx and max_age (STS-PUB-1, STS-PUB-2, STS-PUB-3).
func TestPublishPeer(t *testing.T) {
	if ns := os.Getenv(envInside); ns != "" {
		publishInside(t, ns)
		return
	}
	t.Parallel()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (for ip netns and port 443)")
	}
	for _, name := range []string{"ip", "go", "mta-sts-query"} {
		if _, err := tool(name); err != nil {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		msg := "publish e2e prerequisites missing: " + strings.Join(missing, ", ") +
			" (Debian: apt-get install iproute2 postfix-mta-sts-resolver; run as root)"
		if os.Getenv(envRequire) == "1" {
			t.Fatal(msg + "; " + envRequire + "=1 makes this a failure")
		}
		t.Skip(msg)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	bin := buildMailsts(t, ctx, t.TempDir())
	ns := newNamespace(t, ctx)
	reexecInside(t, ctx, ns, "TestPublishPeer", envBinary+"="+bin)
}

func publishInside(t *testing.T, ns string) {
	ctx, cancel := context.WithTimeout(t.Context(), 120*time.Second)
	defer cancel()
	want := peerPolicy(t)
	sc := &testnet.Scenario{Domains: []testnet.Domain{{
		Name:    peerDomain,
		STSTXT:  [][]string{{want.Record()}},
		MX:      []testnet.MXHost{{Name: "mx1." + peerDomain, Pref: 10}},
		Records: []string{"mta-sts." + peerDomain + ". 300 IN A " + peerHostAddr},
	}}}
	n, err := testnet.Start(ctx, sc, testnet.Options{IP: netip.MustParseAddr("127.0.0.1"), DNSPort: 53, HTTPSPort: 443, SMTPPort: 25})
	if err != nil {
		t.Fatalf("testnet in namespace %s: %v", ns, err)
	}
	t.Cleanup(n.Close)

	dir := t.TempDir()
	certs := filepath.Join(dir, "certs")
	if err := os.Mkdir(certs, 0o700); err != nil {
		t.Fatal(err)
	}
	host := "mta-sts." + peerDomain
	leaf, err := n.CA().Leaf(host, testnet.CertGood, 0)
	if err != nil {
		t.Fatal(err)
	}
	var cb bytes.Buffer
	for _, der := range leaf.Certificate {
		pem.Encode(&cb, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	k, err := x509.MarshalPKCS8PrivateKey(leaf.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(certs, host+".crt"), cb.Bytes(), 0o600)
	os.WriteFile(filepath.Join(certs, host+".key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: k}), 0o600)
	cfg := filepath.Join(dir, "reports.yml")
	y := fmt.Sprintf(`dns: [%q]
publish:
  listen: %s:443
  cert_dir: %q
  state_file: %q
  check_interval: -1s
  domains:
    - domain: %s
      mode: testing
      mx: [mx1.%s]
      max_age: 86400
`, n.DNSAddr(), peerHostAddr, certs, filepath.Join(dir, "state.json"), peerDomain, peerDomain)
	if err := os.WriteFile(cfg, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	serve := startProcess(t, "mailsts serve", []string{"STATE_DIRECTORY=" + dir}, os.Getenv(envBinary), "serve", "--config", cfg,
		"--listen", "127.0.0.1:0", "--api=false", "--db", "sqlite:"+filepath.Join(dir, "reports.db"))
	err = poll(ctx, 30*time.Second, 100*time.Millisecond, func() error {
		if done, err := serve.exited(); done {
			return fmt.Errorf("serve exited: %v\n%s", err, serve.out.String())
		}
		c, err := net.DialTimeout("tcp", peerHostAddr+":443", time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
	if err != nil {
		t.Fatalf("policy host not listening: %v", err)
	}

	query := mustTool(t, "mta-sts-query")
	cmd := exec.CommandContext(ctx, query, peerDomain)
	cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+n.CAFile())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mta-sts-query: %v\n%s", err, out)
	}
	t.Logf("mta-sts-query %s: %s", peerDomain, out)
	// mta-sts-query prints (<STSFetchResult.VALID: …>, ('ID', {policy})).
	got := string(out)
	for _, w := range []string{"VALID", "'" + want.ID + "'", "'mode': 'testing'", "'mx1." + peerDomain + "'", "'max_age': 86400"} {
		if !strings.Contains(got, w) {
			t.Errorf("mta-sts-query output lacks %s:\n%s", w, got)
		}
	}
	// The control: a domain whose policy host is not ours is no VALID policy.
	cmd = exec.CommandContext(ctx, query, "nosuch."+peerDomain)
	cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+n.CAFile())
	if out, _ := cmd.CombinedOutput(); strings.Contains(string(out), "VALID") {
		t.Errorf("mta-sts-query found a policy for a domain without one:\n%s", out)
	}
}
