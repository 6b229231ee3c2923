package testnet

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// PolicyPath is the only path policy hosts serve (RFC 8461 §3.2).
const PolicyPath = "/.well-known/mta-sts.txt"

// FallbackName is the name in the certificate sent when the SNI is missing
// or names no policy host, so that clients see a name mismatch.
const FallbackName = "testnet-fallback.invalid"

func (n *Net) startHTTPS(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort(n.opts.IP.String(), strconv.Itoa(n.opts.HTTPSPort)))
	if err != nil {
		return fmt.Errorf("testnet: HTTPS: %w", err)
	}
	n.httpsLn = ln
	n.httpsPort = ln.Addr().(*net.TCPAddr).Port
	cfg := &tls.Config{
		GetConfigForClient: n.policyTLSConfig,
		MinVersion:         tls.VersionTLS10,
	}
	n.https = &http.Server{
		Handler:           http.HandlerFunc(n.servePolicy),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelDebug),
		// Requests inherit the Net's lifetime, so Delay and Drip stop
		// at Close as well as when the client goes away.
		BaseContext: func(net.Listener) context.Context { return n.ctx },
	}
	srv, tlsLn := n.https, tls.NewListener(ln, cfg)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		_ = srv.Serve(tlsLn)
	}()
	return nil
}

// policyTLSConfig picks the certificate and TLS versions by SNI.
// RFC 8461 §7.1 (STS-FETCH-13): the client sends the Policy Host name as SNI.
func (n *Net) policyTLSConfig(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	sni := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	n.recordSNI(sni)
	name, kind, maxTLS := FallbackName, CertGood, ""
	if d, ok := strings.CutPrefix(sni, "mta-sts."); ok {
		if p := n.policy(d); p != nil {
			name, kind, maxTLS = sni, p.Cert, p.MaxTLS
		}
	}
	cert, err := n.ca.Leaf(name, kind, n.opts.CertValidity)
	if err != nil {
		return nil, err
	}
	cfg := tlsConfig(cert, maxTLS)
	cfg.NextProtos = []string{"http/1.1"}
	return cfg, nil
}

// policy returns the current policy host of a domain; the value is never
// modified after installation, so it may be read without the lock.
func (n *Net) policy(domain string) *PolicyHost {
	e, _ := n.policyEntry(domain)
	if e == nil {
		return nil
	}
	return e.d.Policy
}

func (n *Net) policyEntry(domain string) (*domainEntry, bool) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	e := n.domains[domain]
	if e == nil || e.d.Policy == nil {
		return nil, false
	}
	return e, true
}

// servePolicy plays the scripted policy host named by the Host header.
func (n *Net) servePolicy(w http.ResponseWriter, r *http.Request) {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "" && r.TLS != nil {
		host = strings.ToLower(r.TLS.ServerName)
	}
	d, _ := strings.CutPrefix(host, "mta-sts.")
	e, ok := n.policyEntry(d)
	if !ok || !strings.HasPrefix(host, "mta-sts.") {
		http.Error(w, "no such policy host", http.StatusMisdirectedRequest)
		return
	}
	n.stats.Lock()
	n.requests[d]++
	n.stats.Unlock()
	n.log.Debug("testnet: policy request", "host", host, "path", r.URL.Path, "remote", r.RemoteAddr)
	if r.URL.Path == DraftJSONPolicyPath && e.d.Policy.JSONBody != "" {
		// The JSON policy of the early MTA-STS drafts, still found on
		// some hosts.
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, e.d.Policy.JSONBody)
		return
	}
	if r.URL.Path != PolicyPath {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := e.d.Policy
	if p.Delay > 0 && !sleep(r.Context(), p.Delay) {
		abort(w)
		return
	}
	h := w.Header()
	switch p.ContentType {
	case "":
		h.Set("Content-Type", "text/plain")
	case "-":
		h["Content-Type"] = nil // suppresses net/http's sniffing
	default:
		h.Set("Content-Type", p.ContentType)
	}
	if p.Location != "" {
		h.Set("Location", p.Location)
	}
	for k, v := range p.Headers {
		h.Set(k, v)
	}
	status := p.Status
	if status == 0 {
		status = http.StatusOK
	}
	bodyAllowed := status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
	if bodyAllowed {
		h.Set("Content-Length", strconv.Itoa(len(e.body)))
	}
	w.WriteHeader(status)
	if r.Method == http.MethodHead || !bodyAllowed {
		return
	}
	if p.Drip > 0 {
		if !drip(r.Context(), w, e.body, p.Drip) {
			abort(w)
		}
		return
	}
	_, _ = w.Write(e.body)
}

// abort drops the connection so that the client sees a failure, not an
// empty or short response that looks complete.
func abort(w http.ResponseWriter) {
	if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
		conn.Close()
	}
}

// drip writes body spread evenly over total: one byte per step, or bigger
// chunks when a step would be shorter than a millisecond. It stops early,
// returning false, when ctx ends (client gone or Net closed).
func drip(ctx context.Context, w http.ResponseWriter, body []byte, total time.Duration) bool {
	if len(body) == 0 {
		return true
	}
	steps := len(body)
	if total/time.Duration(steps) < time.Millisecond {
		steps = max(1, int(total/time.Millisecond))
	}
	chunk := (len(body) + steps - 1) / steps
	interval := total / time.Duration(steps)
	rc := http.NewResponseController(w)
	for off := 0; off < len(body); off += chunk {
		if off > 0 && !sleep(ctx, interval) {
			return false
		}
		if _, err := w.Write(body[off:min(off+chunk, len(body))]); err != nil {
			return false
		}
		if err := rc.Flush(); err != nil {
			return false
		}
	}
	return true
}

// sleep waits for d or until ctx ends; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
