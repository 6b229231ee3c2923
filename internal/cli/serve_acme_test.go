package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/publish"
	"github.com/mailsts/mailsts/internal/publish/certs/certstest"
	"github.com/mailsts/mailsts/internal/reports/reportstest"
	"github.com/mailsts/mailsts/internal/testnet"
	"github.com/mailsts/mailsts/internal/watchdog"
	"github.com/mailsts/mailsts/mtasts"
)

var pebbleEnvOnce sync.Once

// startTestACME runs pebble validating through forwarders (the CA must
// know its validation ports before serve has bound its listeners); point
// them at serve's listeners with setTargets.
func startTestACME(t *testing.T, n *testnet.Net) (ca *certstest.CA, caFile string, setTargets func(httpAddr, tlsAddr string)) {
	t.Helper()
	pebbleEnvOnce.Do(func() {
		// Read by pebble when it is built: no random sleeps before
		// validations, no artificially rejected nonces.
		os.Setenv("PEBBLE_VA_NOSLEEP", "1")
		os.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	})
	fh, ft := newForwarder(t), newForwarder(t)
	ca = certstest.Start(certstest.Options{DNSAddr: n.DNSAddr(), HTTPPort: fh.port(), TLSPort: ft.port()})
	t.Cleanup(ca.Close)
	caFile = filepath.Join(t.TempDir(), "acme-api.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.APICert().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return ca, caFile, func(h, s string) { fh.set(h); ft.set(s) }
}

// forwarder relays TCP connections from its loopback port to a target
// known later.
type forwarder struct {
	ln     net.Listener
	once   sync.Once
	ready  chan struct{}
	target string
}

func newForwarder(t *testing.T) *forwarder {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &forwarder{ln: ln, ready: make(chan struct{})}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				select {
				case <-f.ready:
				case <-time.After(time.Minute):
					return
				}
				d, err := net.DialTimeout("tcp", f.target, 10*time.Second)
				if err != nil {
					return
				}
				defer d.Close()
				go func() { io.Copy(d, c); d.(*net.TCPConn).CloseWrite() }()
				io.Copy(c, d)
			}()
		}
	}()
	return f
}

func (f *forwarder) port() int { return f.ln.Addr().(*net.TCPAddr).Port }

func (f *forwarder) set(target string) {
	f.once.Do(func() { f.target = target; close(f.ready) })
}

// TestServePublishACME: serve obtains the certificate of a hosted
// domain's policy host from an ACME CA (pebble) at start, and a sender
// (mtasts.Client, trusting the CA's root) fetches the policy through the
// fake Internet (STS-PUB-3, STS-FETCH-15). A delegated domain (RFC 8461
// §8.2) gets its certificate on its first handshake and is served the
// hosted domain's policy; a half-delegated one gets no certificate and
// the CA never sees an order for it. The plain-HTTP challenge listener
// serves nothing else. policy status reports the stored certificate.
func TestServePublishACME(t *testing.T) {
	t.Parallel()
	n := pubNet.Net(t)
	ca, caFile, setTargets := startTestACME(t, n)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "mailsts.yml")
	y := fmt.Sprintf(`dns: [%q]
publish:
  listen: 127.0.0.1:0
  http_listen: 127.0.0.1:0
  state_file: %q
  check_interval: -1s
  acme:
    directory: %s
    email: hostmaster@hosted.example
    ca_file: %q
  certs:
    storage: file
    dir: %q
  delegation:
    host: mta-sts.hosted.example
    addresses: [127.0.0.1]
  domains:
    - domain: %s
      mode: testing
      mx: %s
      max_age: 86400
`, n.DNSAddr(), filepath.Join(dir, "state.json"), ca.URL, caFile, filepath.Join(dir, "certs"), pubDomain, pubMXConfig)
	if err := os.WriteFile(cfg, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	// --check-config validates the section, ACME keys included.
	code, out, errOut := runStdin(t, nil, filepath.Join(dir, "state"), "serve", "--config", cfg, "--check-config", "--db", "sqlite:"+filepath.Join(dir, "r.db"))
	if code != 0 || !bytes.Contains([]byte(out), []byte("publish 1 domain over https, certificates from ACME and on demand for delegated domains")) {
		t.Errorf("--check-config: exit %d: %s%s", code, out, errOut)
	}

	sr, port := startPublishRunWith(t, cfg, func(sr *serveRun) {
		var httpAddr, tlsAddr string
		for _, s := range sr.servers {
			switch s.name {
			case "ACME HTTP-01":
				httpAddr = s.ln.Addr().String()
			case "policy host":
				tlsAddr = s.ln.Addr().String()
			}
		}
		if httpAddr == "" || tlsAddr == "" {
			t.Fatalf("listeners: %+v", sr.servers)
		}
		setTargets(httpAddr, tlsAddr)
	})
	pr := sr.publish
	watchdog.Within(t, 3*time.Minute, func() struct{} { <-pr.firstRound; return struct{}{} })
	if !ca.Ordered("mta-sts." + pubDomain) {
		t.Fatalf("no order for the hosted policy host: %v", ca.Orders())
	}

	dns, err := dnsresolve.NewClient(n.DNSAddr())
	if err != nil {
		t.Fatal(err)
	}
	c := &mtasts.Client{DNS: dns, RootCAs: ca.CertRoots, HTTPSPort: port, Timeout: time.Minute}
	ctx := context.Background()
	want := pubPolicy(t, mtasts.ModeTesting)
	rec, pol, err := c.Get(ctx, pubDomain)
	if err != nil {
		t.Fatalf("sender fetch of the hosted policy: %v", err)
	}
	if rec.ID != want.ID || pol.String() != want.Policy.String() {
		t.Errorf("hosted: id %s policy %q", rec.ID, pol)
	}
	raw, err := c.FetchRaw(ctx, pubDomain)
	if err != nil {
		t.Fatal(err)
	}
	leaf := raw.TLS.PeerCertificates[0]

	// Delegated: certificate on the first handshake, the hosted policy.
	rec, pol, err = c.Get(ctx, "deleg.example")
	if err != nil {
		t.Fatalf("sender fetch of the delegated policy: %v", err)
	}
	if rec.ID != want.ID || pol.String() != want.Policy.String() {
		t.Errorf("delegated: id %s policy %q", rec.ID, pol)
	}
	if !ca.Ordered("mta-sts.deleg.example") {
		t.Errorf("no order for the delegated name: %v", ca.Orders())
	}
	// Half delegated: no certificate, no order.
	if _, err := c.FetchRaw(ctx, "halfdeleg.example"); err == nil {
		t.Error("half-delegated domain served")
	}
	if ca.Ordered("mta-sts.halfdeleg.example") {
		t.Error("the CA saw an order for a half-delegated name")
	}

	// The challenge listener answers nothing but challenges.
	var httpAddr string
	for _, s := range sr.servers {
		if s.name == "ACME HTTP-01" {
			httpAddr = s.ln.Addr().String()
		}
	}
	req, _ := http.NewRequest("GET", "http://"+httpAddr+publish.WellKnownPath, nil)
	req.Host = "mta-sts." + pubDomain
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound || res.Header.Get("Location") != "" {
		t.Errorf("plain HTTP policy request: %d %q", res.StatusCode, res.Header.Get("Location"))
	}

	// policy status shows the certificate in the ACME storage.
	code, out, errOut = runStdin(t, nil, filepath.Join(dir, "state"), "policy", "status", "--json", "--config", cfg,
		"--https-port", fmt.Sprint(port), "--smtp-port", fmt.Sprint(n.SMTPPort()), pubDomain)
	var sts []struct {
		StoredCertNotAfter *time.Time `json:"stored_cert_not_after"`
		StoredCertIssuer   string     `json:"stored_cert_issuer"`
	}
	if err := json.Unmarshal([]byte(out), &sts); err != nil || len(sts) != 1 {
		t.Fatalf("policy status: exit %d, %v: %s %s", code, err, out, errOut)
	}
	if sts[0].StoredCertNotAfter == nil || !sts[0].StoredCertNotAfter.Equal(leaf.NotAfter) || sts[0].StoredCertIssuer == "" {
		t.Errorf("stored certificate %v %q, served %v", sts[0].StoredCertNotAfter, sts[0].StoredCertIssuer, leaf.NotAfter)
	}
}

// TestServePublishACMESharedStorage: with certs.storage postgres or
// redis, serve keeps the ACME certificate in the shared store, where
// another process (here `policy status`) finds it; with HTTP-01 off, the
// certificate comes over TLS-ALPN-01 alone and no plain-HTTP listener is
// opened. Each case hosts a domain of its own (certmagic keeps pending
// challenges per name, process-wide).
func TestServePublishACMESharedStorage(t *testing.T) {
	t.Parallel()
	for backend, domain := range map[string]string{"postgres": "nolive.example", "redis": "stale.example", "tls-alpn-only": "badmx.example"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			var certsYAML string
			switch backend {
			case "postgres":
				dsn := reportstest.PostgresServer()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				admin, err := pgx.Connect(ctx, dsn)
				if err != nil {
					t.Skipf("PostgreSQL test server unreachable (set MAILSTS_TEST_POSTGRES): %v", err)
				}
				schema := fmt.Sprintf("mailsts_certs_cli_%d", time.Now().UnixNano())
				t.Cleanup(func() {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					if _, err := admin.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE"); err != nil {
						t.Errorf("drop schema %s: %v", schema, err)
					}
					admin.Close(ctx)
				})
				certsYAML = fmt.Sprintf("storage: postgres, postgres: %q, postgres_schema: %s", dsn, schema)
			case "redis":
				c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", DialTimeout: 2 * time.Second})
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if err := c.Ping(ctx).Err(); err != nil {
					c.Close()
					t.Skipf("Redis at 127.0.0.1:6379 unreachable: %v", err)
				}
				prefix := fmt.Sprintf("mailsts-test:cli-certs:%d:", time.Now().UnixNano())
				t.Cleanup(func() {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					iter := c.Scan(ctx, 0, prefix+"*", 100).Iterator()
					for iter.Next(ctx) {
						c.Del(ctx, iter.Val())
					}
					c.Close()
				})
				certsYAML = fmt.Sprintf("storage: redis, redis: 127.0.0.1:6379, redis_prefix: %q", prefix)
			case "tls-alpn-only":
				certsYAML = fmt.Sprintf("dir: %q", t.TempDir())
			}
			acmeExtra, httpListen := "", "\n  http_listen: 127.0.0.1:0"
			if backend == "tls-alpn-only" {
				acmeExtra, httpListen = ", http_01: false", ""
			}
			n := pubNet.Net(t)
			ca, caFile, setTargets := startTestACME(t, n)
			dir := t.TempDir()
			cfg := filepath.Join(dir, "mailsts.yml")
			y := fmt.Sprintf(`dns: [%q]
publish:
  listen: 127.0.0.1:0%s
  state_file: %q
  check_interval: -1s
  acme: {directory: %s, email: hostmaster@%s, ca_file: %q%s}
  certs: {%s}
  domains:
    - {domain: %s, mode: testing, mx: auto}
`, n.DNSAddr(), httpListen, filepath.Join(dir, "state.json"), ca.URL, domain, caFile, acmeExtra, certsYAML, domain)
			if err := os.WriteFile(cfg, []byte(y), 0o600); err != nil {
				t.Fatal(err)
			}
			sr, port := startPublishRunWith(t, cfg, func(sr *serveRun) {
				addr := map[string]string{}
				for _, s := range sr.servers {
					addr[s.name] = s.ln.Addr().String()
				}
				if _, ok := addr["ACME HTTP-01"]; ok == (backend == "tls-alpn-only") {
					t.Errorf("listeners %v", addr)
				}
				setTargets(addr["ACME HTTP-01"], addr["policy host"])
			})
			watchdog.Within(t, 3*time.Minute, func() struct{} { <-sr.publish.firstRound; return struct{}{} })
			if n := ca.OrderCount("mta-sts." + domain); n != 1 {
				t.Fatalf("%d orders for mta-sts.%s: %v", n, domain, ca.Orders())
			}
			code, out, errOut := runStdin(t, nil, filepath.Join(dir, "state"), "policy", "status", "--json", "--config", cfg,
				"--https-port", fmt.Sprint(port), "--smtp-port", fmt.Sprint(n.SMTPPort()), "--timeout", "5s", domain)
			var sts []struct {
				StoredCertNotAfter *time.Time `json:"stored_cert_not_after"`
				StoredCertError    string     `json:"stored_cert_error"`
			}
			if err := json.Unmarshal([]byte(out), &sts); err != nil || len(sts) != 1 {
				t.Fatalf("policy status: exit %d, %v: %s %s", code, err, out, errOut)
			}
			if sts[0].StoredCertNotAfter == nil || sts[0].StoredCertNotAfter.Before(time.Now().Add(24*time.Hour)) {
				t.Errorf("stored certificate: %+v", sts[0])
			}
		})
	}
}

// TestServeCheckConfigPublish: --check-config refuses an invalid publish
// section (here acme next to certificate files, and a dns_update zone
// that does not hold the domain) with one line per problem, exit 2, and
// creates nothing.
func TestServeCheckConfigPublish(t *testing.T) {
	t.Parallel()
	n := pubNet.Net(t)
	cfg := pubConfig(t, n, "testing", "  acme: {email: hostmaster@hosted.example}\n  dns_update: {server: \"127.0.0.1:53\", zone: other.example, key_file: /nonexistent}")
	state := filepath.Join(t.TempDir(), "state")
	code, out, errOut := runStdin(t, nil, state, "serve", "--config", cfg, "--check-config")
	if code != ExitError || out != "" {
		t.Errorf("exit %d, stdout %q", code, out)
	}
	for _, w := range []string{"publish: acme: excludes tls_cert and cert_dir", "publish: dns_update.zone other.example does not hold _mta-sts.hosted.example", "publish: dns_update.key_file:"} {
		if !strings.Contains(errOut, w) {
			t.Errorf("stderr lacks %q:\n%s", w, errOut)
		}
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("--check-config created %s", state)
	}
}
