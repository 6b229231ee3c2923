package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/mailsts/mailsts/dnsresolve"
)

// Errors. Decide's refusals wrap exactly one of the first four.
var (
	// ErrNotPolicyHost: the name is not of the form mta-sts.<domain>; no
	// certificate is ever requested for it.
	ErrNotPolicyHost = errors.New("certs: not an MTA-STS policy host name")
	// ErrNotDelegated: DNS does not (or only half) delegate the domain to
	// us; the owner must fix its records.
	ErrNotDelegated = errors.New("certs: domain not delegated")
	// ErrDNS: a lookup failed (SERVFAIL, timeout); the decision is retried
	// on a later handshake, within the rate limit.
	ErrDNS = errors.New("certs: DNS lookup failed")
	// ErrRateLimited: the name used up its decisions for the window.
	ErrRateLimited = errors.New("certs: rate limited")
	// ErrNoCertificate: Status found no certificate for the name.
	ErrNoCertificate = errors.New("certs: no certificate")
	// ErrConfig: the Config is unusable.
	ErrConfig = errors.New("certs: invalid configuration")
)

// Config configures a Manager. Zero values mean the defaults named.
type Config struct {
	// CA is the ACME directory URL (default Let's Encrypt's production
	// directory).
	CA string
	// Email is the ACME account's contact address; required with
	// Delegation, optional otherwise.
	Email string
	// TrustedRoots verifies the ACME server's own TLS certificate (nil:
	// the system roots).
	TrustedRoots *x509.CertPool
	// Storage holds keys, certificates and accounts; nil means a
	// certmagic.FileStorage in Dir.
	Storage certmagic.Storage
	// Dir is the directory of the default file storage (default
	// "/var/lib/mailsts/certs").
	Dir string
	// HTTPPort and TLSPort are the ports the caller serves
	// [Manager.HTTPHandler] and [Manager.TLSConfig] on (default 80 and
	// 443). The CA validates HTTP-01 and TLS-ALPN-01 on 80 and 443, so
	// other ports only work when traffic is forwarded. certmagic's solvers
	// find these ports busy and leave the answering to those listeners.
	HTTPPort, TLSPort int
	// ListenHost is the address those listeners are bound to ("" for
	// every address).
	ListenHost string
	// DisableHTTP01 and DisableTLSALPN01 turn a challenge type off; at
	// least one must stay on.
	DisableHTTP01, DisableTLSALPN01 bool
	// Delegation enables on-demand certificates for delegated domains;
	// nil allows only the names passed to Manage.
	Delegation *Delegation
	// Resolver answers the delegation checks (nil: a dnsresolve.Client
	// with the system's resolvers).
	Resolver dnsresolve.Resolver
	// Logger receives refusals and certmagic's logs; nil discards.
	Logger *slog.Logger
	// Now is the clock of the rate limiter (nil: time.Now).
	Now func() time.Time
}

// Manager obtains, renews and serves policy host certificates. It is safe
// for concurrent use; Close stops its background maintenance.
type Manager struct {
	cfg        *certmagic.Config // serves handshakes; on-demand with delegation
	managedCfg *certmagic.Config // the names given to Manage
	cache      *certmagic.Cache
	issuer     *certmagic.ACMEIssuer
	deleg      *Delegation
	res        dnsresolve.Resolver
	log        *slog.Logger
	now        func() time.Time
	limit      *limiter

	mu      sync.RWMutex
	managed map[string]bool
}

// New validates c and builds a Manager. Nothing is requested from the CA
// until Manage or a handshake asks for a certificate.
func New(c Config) (*Manager, error) {
	if c.DisableHTTP01 && c.DisableTLSALPN01 {
		return nil, fmt.Errorf("%w: both challenge types are disabled", ErrConfig)
	}
	m := &Manager{log: c.Logger, now: c.Now, res: c.Resolver, managed: map[string]bool{}}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.now == nil {
		m.now = time.Now
	}
	if c.Delegation != nil && c.Email == "" {
		// certmagic registers the ACME account on first use; without an
		// email, concurrent first on-demand orders race and fail for a
		// minute. A provider serving other people's domains needs a
		// contact at the CA anyway.
		return nil, fmt.Errorf("%w: delegation needs an ACME account email", ErrConfig)
	}
	if c.Delegation != nil {
		d, err := c.Delegation.normalize()
		if err != nil {
			return nil, err
		}
		m.deleg = d
		m.limit = newLimiter(d.Attempts, d.Window, d.MaxTracked)
		if m.res == nil {
			m.res = &dnsresolve.Client{}
		}
	}
	storage := c.Storage
	if storage == nil {
		dir := c.Dir
		if dir == "" {
			dir = "/var/lib/mailsts/certs"
		}
		storage = &certmagic.FileStorage{Path: filepath.Clean(dir)}
	}
	zl := zapLogger(m.log)
	// Two configurations over one cache and one storage: managed (the
	// names given to Manage, renewed in the background) and, with
	// delegation, onDemand (certificates obtained and renewed during
	// handshakes after Decide allowed them; certmagic never renews those
	// in the background).
	var managed, onDemand *certmagic.Config
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(cert certmagic.Certificate) (*certmagic.Config, error) {
			for _, n := range cert.Names {
				if !m.isManaged(n) {
					return onDemand, nil
				}
			}
			return managed, nil
		},
		Logger: zl,
	})
	httpPort, tlsPort := c.HTTPPort, c.TLSPort
	if httpPort == 0 {
		httpPort = 80
	}
	if tlsPort == 0 {
		tlsPort = 443
	}
	build := func(od *certmagic.OnDemandConfig) (*certmagic.Config, *certmagic.ACMEIssuer) {
		// A non-nil Issuers keeps certmagic from building a default
		// issuer from its package-level defaults; ours is set below.
		cfg := certmagic.New(m.cache, certmagic.Config{Storage: storage, Logger: zl, Issuers: []certmagic.Issuer{}, OnDemand: od})
		tmpl := certmagic.ACMEIssuer{
			CA:                      c.CA,
			TestCA:                  c.CA, // never fall back to another CA
			Email:                   c.Email,
			Agreed:                  true,
			TrustedRoots:            c.TrustedRoots,
			DisableHTTPChallenge:    c.DisableHTTP01,
			DisableTLSALPNChallenge: c.DisableTLSALPN01,
			ListenHost:              c.ListenHost,
			AltHTTPPort:             httpPort,
			AltTLSALPNPort:          tlsPort,
			Logger:                  zl,
		}
		if c.CA == "" {
			tmpl.CA = certmagic.LetsEncryptProductionCA
			tmpl.TestCA = certmagic.LetsEncryptProductionCA
		}
		iss := certmagic.NewACMEIssuer(cfg, tmpl)
		cfg.Issuers = []certmagic.Issuer{iss}
		return cfg, iss
	}
	managed, m.issuer = build(nil)
	onDemand = managed
	if m.deleg != nil {
		// certmagic asks Decide before every on-demand obtain or renewal.
		onDemand, _ = build(&certmagic.OnDemandConfig{DecisionFunc: m.Decide})
	}
	m.cfg, m.managedCfg = onDemand, managed
	return m, nil
}

// Close stops renewal and OCSP maintenance. Certificates stay in storage.
func (m *Manager) Close() { m.cache.Stop() }

// TLSConfig returns a tls.Config serving the managed certificates and
// answering TLS-ALPN-01 challenges ("acme-tls/1" is among its NextProtos).
func (m *Manager) TLSConfig() *tls.Config { return m.cfg.TLSConfig() }

// GetCertificate is the tls.Config.GetCertificate of TLSConfig, for
// callers that build their own tls.Config (they must also offer the
// "acme-tls/1" protocol for TLS-ALPN-01).
func (m *Manager) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return m.cfg.GetCertificate(hello)
}

// HTTPHandler answers HTTP-01 challenges
// (/.well-known/acme-challenge/…) and passes every other request to next.
func (m *Manager) HTTPHandler(next http.Handler) http.Handler {
	return m.issuer.HTTPChallengeHandler(next)
}

// Manage obtains (or loads from storage) certificates for names and keeps
// them renewed; it returns once every name has one, or at the first
// failure. ctx bounds that first round (renewals run in the background
// until Close). The names are the policy hosts of hosted domains
// (mta-sts.<domain>); they need no delegation check.
func (m *Manager) Manage(ctx context.Context, names []string) error {
	norm := make([]string, 0, len(names))
	for _, n := range names {
		a, err := dnsresolve.Normalize(n)
		if err != nil {
			return fmt.Errorf("%w: %q: %w", ErrConfig, n, err)
		}
		norm = append(norm, strings.TrimSuffix(a, "."))
	}
	m.mu.Lock()
	for _, n := range norm {
		m.managed[n] = true
	}
	m.mu.Unlock()
	// certmagic's "sync" calls are its interactive ones: without an email
	// they prompt on stdin. Obtain non-interactively (a no-op when storage
	// has the certificate), then load each into the cache, where
	// maintenance renews it.
	for _, n := range norm {
		if err := m.managedCfg.ObtainCertAsync(ctx, n); err != nil {
			return fmt.Errorf("certs: obtain %s: %w", n, err)
		}
		if _, err := m.managedCfg.CacheManagedCertificate(ctx, n); err != nil {
			return fmt.Errorf("certs: load %s: %w", n, err)
		}
	}
	return nil
}

// Status describes the certificate served for a name.
type Status struct {
	Name     string    `json:"name"`
	Names    []string  `json:"names"`
	Issuer   string    `json:"issuer"`
	NotAfter time.Time `json:"not_after"`
}

// Status returns the certificate currently served for name (from memory,
// else from storage), or ErrNoCertificate.
func (m *Manager) Status(ctx context.Context, name string) (Status, error) {
	a, err := dnsresolve.Normalize(name)
	if err != nil {
		return Status{}, fmt.Errorf("%w: %q: %w", ErrNoCertificate, name, err)
	}
	a = strings.TrimSuffix(a, ".")
	certs := m.cache.AllMatchingCertificates(a)
	if len(certs) == 0 {
		c, err := m.cfg.CacheManagedCertificate(ctx, a)
		if err != nil {
			return Status{}, fmt.Errorf("%w for %s: %w", ErrNoCertificate, a, err)
		}
		certs = []certmagic.Certificate{c}
	}
	var best *x509.Certificate
	var names []string
	for _, c := range certs {
		if c.Leaf != nil && (best == nil || c.Leaf.NotAfter.After(best.NotAfter)) {
			best, names = c.Leaf, c.Names
		}
	}
	if best == nil {
		return Status{}, fmt.Errorf("%w for %s", ErrNoCertificate, a)
	}
	issuer := best.Issuer.CommonName
	if issuer == "" {
		issuer = best.Issuer.String()
	}
	return Status{Name: a, Names: append([]string(nil), names...), Issuer: issuer, NotAfter: best.NotAfter}, nil
}

func (m *Manager) isManaged(name string) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.managed[name]
}
