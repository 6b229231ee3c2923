// Package certstest runs an ACME CA for tests and benchmarks of ACME
// clients: pebble (github.com/letsencrypt/pebble/v2) in-process behind an
// httptest TLS server, its validation authority resolving names through a
// given DNS server (the fake Internet of internal/testnet) and validating
// HTTP-01 and TLS-ALPN-01 on given loopback ports. Every new-order request
// is recorded, so a test can prove which names were (never) ordered.
//
// Pebble reads its knobs from the environment when Start builds it: set
// PEBBLE_VA_NOSLEEP=1 (no random sleep before each validation) and
// PEBBLE_WFE_NONCEREJECT=0 (no artificially rejected nonces) first, in
// TestMain or main.
package certstest

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"sync"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
)

// Options configure Start.
type Options struct {
	// DNSAddr is the host:port the validation authority resolves through
	// (over TCP).
	DNSAddr string
	// HTTPPort and TLSPort are where HTTP-01 and TLS-ALPN-01 are validated.
	HTTPPort, TLSPort int
	// Log receives pebble's log; nil discards it.
	Log *log.Logger
}

// CA is a running pebble.
type CA struct {
	// URL is the ACME directory.
	URL string
	// APIRoots trusts the ACME API's TLS certificate.
	APIRoots *x509.CertPool
	// CertRoots trusts the certificates the CA issues.
	CertRoots *x509.CertPool

	srv    *httptest.Server
	mu     sync.Mutex
	orders [][]string
}

// Start runs a CA until Close.
func Start(o Options) *CA {
	logger := o.Log
	if logger == nil {
		logger = log.New(io.Discard, "", 0)
	}
	store := db.NewMemoryStore()
	profiles := map[string]ca.Profile{"default": {Description: "default"}}
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, profiles)
	validator := va.New(logger, o.HTTPPort, o.TLSPort, false, o.DNSAddr, store)
	// No Retry-After: clients poll at their own pace.
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)
	c := &CA{CertRoots: x509.NewCertPool()}
	c.CertRoots.AddCert(authority.GetRootCert(0).Cert)
	api := front.Handler()
	c.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/order-plz" {
			body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			c.recordOrder(body)
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		api.ServeHTTP(w, r)
	}))
	c.srv.Config.ErrorLog = logger
	c.srv.StartTLS()
	c.APIRoots = x509.NewCertPool()
	c.APIRoots.AddCert(c.srv.Certificate())
	c.URL = c.srv.URL + wfe.DirectoryPath
	return c
}

// APICert returns the self-signed certificate of the ACME API, for
// clients in other processes (APIRoots holds it).
func (c *CA) APICert() *x509.Certificate { return c.srv.Certificate() }

// Close stops the ACME API.
func (c *CA) Close() { c.srv.Close() }

// Orders returns the identifiers of every new-order request so far, in
// order, whether or not the order was then fulfilled.
func (c *CA) Orders() [][]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]string(nil), c.orders...)
}

// OrderCount returns how many orders named name.
func (c *CA) OrderCount(name string) int {
	n := 0
	for _, o := range c.Orders() {
		for _, id := range o {
			if id == name {
				n++
			}
		}
	}
	return n
}

// Ordered reports whether any order named name.
func (c *CA) Ordered(name string) bool { return c.OrderCount(name) > 0 }

// recordOrder decodes the JWS payload of a new-order request (RFC 8555
// §7.4: {"identifiers": [{"type": "dns", "value": …}]}).
func (c *CA) recordOrder(body []byte) {
	var jws struct {
		Payload string `json:"payload"`
	}
	var order struct {
		Identifiers []struct {
			Value string `json:"value"`
		} `json:"identifiers"`
	}
	if json.Unmarshal(body, &jws) != nil {
		return
	}
	p, err := base64.RawURLEncoding.DecodeString(jws.Payload)
	if err != nil || json.Unmarshal(p, &order) != nil {
		return
	}
	names := make([]string, 0, len(order.Identifiers))
	for _, id := range order.Identifiers {
		names = append(names, id.Value)
	}
	c.mu.Lock()
	c.orders = append(c.orders, names)
	c.mu.Unlock()
}
