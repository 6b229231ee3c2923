package policyd

import (
	"context"
	"encoding/pem"
	"errors"
	"github.com/mailsts/mailsts/dnsresolve"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/testnet"
	"github.com/mailsts/mailsts/internal/trustroots"
	"github.com/mailsts/mailsts/mtasts"
)

// Roots chosen per zone (fetch.zone_roots, STS-FETCH-2): a zone with its
// own root accepts a policy host that the default roots (system or
// curated) do not trust, and a zone whose roots replace the default ones
// refuses a policy host the default roots trust.
func TestZoneRoots(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := testnet.Start(ctx, testnet.DefaultScenario(), testnet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	dns := rootsTestDNS(t, n)
	fetch := func(f FetchConfig, domain string) error {
		t.Helper()
		f.Timeout, f.HTTPSPort = 10*time.Second, n.HTTPSPort()
		cfg := Default()
		cfg.Fetch = f
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		c, err := NewClient(cfg, dns)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Fetch(ctx, domain)
		return err
	}
	untrusted := func(err error) bool { return errors.Is(err, mtasts.ErrPolicyCertificate) }

	// The testnet's root in a zone of its own, over the curated set and
	// over the system pool: enforce.example is accepted, testing.example
	// (outside the zone) is not.
	for _, base := range []string{"curated", "system", ""} {
		f := FetchConfig{Roots: base, ZoneRoots: []ZoneRoots{{Domains: []string{"enforce.example"}, CAFile: n.CAFile()}}}
		if err := fetch(f, "enforce.example"); err != nil {
			t.Errorf("roots %q + zone: enforce.example: %v", base, err)
		}
		if err := fetch(f, "testing.example"); !untrusted(err) {
			t.Errorf("roots %q: testing.example outside the zone: %v, want a certificate error", base, err)
		}
	}
	// The reverse: the default roots trust the testnet (ca_file), a zone
	// replaces them with the curated set only: its policy host is refused.
	curated := filepath.Join(t.TempDir(), "curated.pem")
	certs, _ := trustroots.CuratedCerts()
	var pemData strings.Builder
	for _, c := range certs[:2] {
		pemData.WriteString(rootsPEM(c.Raw))
	}
	if err := os.WriteFile(curated, []byte(pemData.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	f := FetchConfig{CAFile: n.CAFile(), ZoneRoots: []ZoneRoots{{Domains: []string{"enforce.example"}, CAFile: curated, Replace: true}}}
	if err := fetch(f, "enforce.example"); !untrusted(err) {
		t.Errorf("replaced roots: enforce.example: %v, want a certificate error", err)
	}
	if err := fetch(f, "testing.example"); err != nil {
		t.Errorf("default roots with ca_file: testing.example: %v", err)
	}
	// Configuration mistakes.
	for _, bad := range []FetchConfig{
		{Roots: "everything", Timeout: time.Second},
		{ZoneRoots: []ZoneRoots{{Domains: []string{"x.example"}}}, Timeout: time.Second},
	} {
		cfg := Default()
		cfg.Fetch = bad
		if err := cfg.Validate(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	cfg := Default()
	cfg.Fetch.ZoneRoots = []ZoneRoots{{Domains: []string{"x.example"}, CAFile: filepath.Join(t.TempDir(), "missing.pem")}}
	if _, err := NewClient(cfg, dns); err == nil || !strings.Contains(err.Error(), "zone_roots[0].ca_file") {
		t.Errorf("missing zone file: %v", err)
	}
}

func rootsTestDNS(t *testing.T, n *testnet.Net) *dnsresolve.Client {
	t.Helper()
	dc, err := dnsresolve.NewClient(n.DNSAddr())
	if err != nil {
		t.Fatal(err)
	}
	return dc
}

func rootsPEM(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}
