package cli

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/caddyserver/certmagic"
	"github.com/redis/go-redis/v9"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/publish"
	"github.com/mailsts/mailsts/internal/publish/certs"
	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/mtasts"
)

// acmeTLSALPN is the ALPN protocol of TLS-ALPN-01 challenges (RFC 8737).
const acmeTLSALPN = "acme-tls/1"

// certPorts are the ports and address the policy host's listeners are
// bound to, for certmagic's solvers (0: that challenge is not served).
type certPorts struct {
	host              string
	httpPort, tlsPort int
}

// newCertManager builds the ACME certificate manager of publish.acme
// over the configured storage (opened here: a PostgreSQL storage
// connects and migrates its schema). close releases the storage.
func newCertManager(ctx context.Context, pc reports.PublishConfig, dns dnsresolve.Resolver, ports certPorts, log *slog.Logger) (m *certs.Manager, closeFn func(), err error) {
	a := pc.ACME
	c := certs.Config{CA: a.Directory, Email: a.Email, DisableHTTP01: !a.HTTP01On(), DisableTLSALPN01: !a.TLSALPN01On(),
		HTTPPort: ports.httpPort, TLSPort: ports.tlsPort, ListenHost: ports.host, Resolver: dns, Logger: log, Dir: pc.Certs.Dir}
	if a.CAFile != "" {
		if c.TrustedRoots, err = mtasts.LoadRootCAs(a.CAFile); err != nil {
			return nil, nil, fmt.Errorf("acme.ca_file: %w", err)
		}
	}
	if d := pc.Delegation; d != nil {
		cd := &certs.Delegation{Host: d.Host, STSName: d.STSName, Attempts: d.Attempts, Window: d.Window, MaxTracked: d.MaxTracked}
		for _, s := range d.Addresses {
			ip, err := netip.ParseAddr(s)
			if err != nil {
				return nil, nil, fmt.Errorf("delegation.addresses: %w", err)
			}
			cd.Addresses = append(cd.Addresses, ip)
		}
		c.Delegation = cd
	}
	closeFn = func() {}
	switch pc.Certs.Storage {
	case "postgres":
		st, err := certs.OpenPostgres(ctx, pc.Certs.Postgres, certs.PostgresOptions{Schema: pc.Certs.PostgresSchema, LockLease: pc.Certs.LockLease, Logger: log})
		if err != nil {
			return nil, nil, fmt.Errorf("certs.postgres: %w", err)
		}
		c.Storage, closeFn = st, st.Close
	case "redis":
		o := &redis.Options{Addr: pc.Certs.Redis}
		if strings.Contains(pc.Certs.Redis, "://") {
			if o, err = redis.ParseURL(pc.Certs.Redis); err != nil {
				return nil, nil, fmt.Errorf("certs.redis: %w", err)
			}
		}
		rdb := redis.NewClient(o)
		if err := rdb.Ping(ctx).Err(); err != nil {
			rdb.Close()
			return nil, nil, fmt.Errorf("certs.redis %s: %w", o.Addr, err)
		}
		st := certs.NewRedisStorage(rdb, certs.RedisOptions{Prefix: cmpOr(pc.Certs.RedisPrefix, "mailsts:certs:"), LockLease: pc.Certs.LockLease, Logger: log})
		c.Storage, closeFn = st, func() { st.Close(); rdb.Close() }
	default:
		if c.Dir != "" {
			c.Storage = &certmagic.FileStorage{Path: c.Dir}
		}
	}
	m, err = certs.New(c)
	if err != nil {
		closeFn()
		return nil, nil, err
	}
	closeStorage := closeFn
	return m, func() { m.Close(); closeStorage() }, nil
}

// acmeTLSConfig is the policy host's TLS configuration with ACME
// certificates: publish.TLSConfig, plus the TLS-ALPN-01 protocol when
// that challenge is on (certmagic answers it in GetCertificate).
func acmeTLSConfig(m *certs.Manager, alpn bool) *tls.Config {
	c := publish.TLSConfig(m.GetCertificate)
	if alpn {
		c.NextProtos = append(c.NextProtos, acmeTLSALPN)
	}
	return c
}

// challengeHandler is the plain-HTTP listener of publish.http_listen:
// ACME HTTP-01 challenges, and 404 for everything else (no redirect: a
// sender never fetches a policy over plain HTTP, RFC 8461 §3.3).
func challengeHandler(m *certs.Manager) http.Handler {
	return m.HTTPHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusNotFound)
		if r.Method != http.MethodHead {
			w.Write([]byte("not found\n"))
		}
	}))
}

// delegatedHost serves the policy of a hosted domain (the domain of
// delegation.sts_name) to delegated domains (RFC 8461 §8.2): a request
// for mta-sts.<customer> that is not hosted here, over a TLS connection
// whose server name is that same host. The handshake succeeded, so the
// certificate manager found the delegation in DNS (or had its
// certificate already); plain HTTP, or a Host header other than the
// server name, gets the 404 of publish.Host.
type delegatedHost struct {
	host *publish.Host
	// policyHost returns mta-sts.<the delegating-to domain>, or "".
	policyHost func() string
}

func (d *delegatedHost) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.TLS != nil && d.host.Lookup(r.Host) == nil {
		h := r.Host
		if hn, _, err := net.SplitHostPort(h); err == nil {
			h = hn
		}
		h = strings.ToLower(strings.TrimSuffix(h, "."))
		if strings.HasPrefix(h, "mta-sts.") && strings.EqualFold(h, strings.TrimSuffix(r.TLS.ServerName, ".")) {
			if ph := d.policyHost(); ph != "" {
				r2 := r.Clone(r.Context())
				r2.Host = ph
				d.host.ServeHTTP(w, r2)
				return
			}
		}
	}
	d.host.ServeHTTP(w, r)
}

// policyHosts returns the policy host names of set, sorted.
func policyHosts(set *publish.Set) []string {
	var out []string
	for _, d := range set.Domains {
		out = append(out, d.PolicyHost())
	}
	slices.Sort(out)
	return out
}

// listenHostPort splits a listener's bound address.
func listenHostPort(ln net.Listener) (string, int) {
	ta, ok := ln.Addr().(*net.TCPAddr)
	if !ok {
		return "", 0
	}
	host := ""
	if !ta.IP.IsUnspecified() {
		host = ta.IP.String()
	}
	return host, ta.Port
}

// checkPublishConfig validates the publish: section for --check-config
// as a start would (the live MX of its domains included, and the
// certificate files), and summarises it for the OK line ("" without a
// section). It opens no listener and contacts neither the CA nor the
// DNS primary.
func checkPublishConfig(ctx context.Context, cfg *reports.Config, log *slog.Logger) (string, error) {
	pc := cfg.Publish
	if !publishSection(pc) {
		return "", nil
	}
	dns, err := dnsresolve.NewClient(cfg.DNS...)
	if err != nil {
		return "", fmt.Errorf("dns: %w", err)
	}
	set, err := (&publish.Loader{DNS: dns, Logger: log}).Load(ctx, pc)
	if err != nil {
		return "", err
	}
	how := "plain http"
	switch {
	case pc.ACME != nil:
		how = "https, certificates from ACME"
		if pc.Delegation != nil {
			how += " and on demand for delegated domains"
		}
	case !pc.PlainHTTP:
		if _, err := publishCertificates(pc, set, log); err != nil {
			return "", fmt.Errorf("publish: %w", err)
		}
		how = "https, certificate files"
	}
	s := fmt.Sprintf("publish %s over %s", plural(len(set.Domains), "domain", "domains"), how)
	if pc.DNSUpdate != nil {
		s += ", DNS UPDATE to " + pc.DNSUpdate.Server
	}
	return s, nil
}

// storedCerts returns a function filling in a status's certificate from
// the ACME storage of publish.acme (a no-op without ACME) and the closer
// of that storage.
func storedCerts(ctx context.Context, cfg *reports.Config, dns dnsresolve.Resolver) (func(context.Context, *publish.Domain, *publish.Status), func(), error) {
	if cfg.Publish.ACME == nil {
		return func(context.Context, *publish.Domain, *publish.Status) {}, func() {}, nil
	}
	m, closeFn, err := newCertManager(ctx, cfg.Publish, dns, certPorts{}, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("publish: %w", err)
	}
	return func(ctx context.Context, d *publish.Domain, st *publish.Status) {
		cs, err := m.Status(ctx, d.PolicyHost())
		if err != nil {
			st.StoredCertError = err.Error()
			return
		}
		na := cs.NotAfter
		st.StoredCertNotAfter, st.StoredCertIssuer = &na, cs.Issuer
	}, closeFn, nil
}
