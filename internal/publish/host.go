package publish

import (
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
)

// WellKnownPath is the policy path of RFC 8461 §3.2 (STS-POL-1).
const WellKnownPath = "/.well-known/mta-sts.txt"

// Host serves the hosted policies: GET or HEAD
// https://mta-sts.<domain>/.well-known/mta-sts.txt for every domain of
// its Set, as RFC 8461 §3.3 asks: status 200, Content-Type text/plain
// (STS-POL-2), the exact CRLF text, no redirect (STS-FETCH-5) and no
// content coding. Another host, or another path on a hosted one, is 404;
// a method other than GET and HEAD on the policy is 405. The Host header
// is matched case-insensitively, without its port or a trailing dot.
//
// The zero Host serves nothing (404 everywhere); Set swaps the policies
// atomically, so a reload never serves a mix. Host is safe for concurrent
// use.
type Host struct {
	// Logger receives a debug line per request; nil discards.
	Logger *slog.Logger

	hosts atomic.Pointer[map[string]*Served]
}

// Set replaces the served policies with those of s (nil: none).
func (h *Host) Set(s *Set) {
	m := map[string]*Served{}
	if s != nil {
		for _, d := range s.Domains {
			m[d.PolicyHost()] = d.Policy()
		}
	}
	h.hosts.Store(&m)
}

// Lookup returns the policy served at host ("mta-sts.<domain>", any case,
// with or without a port), or nil.
func (h *Host) Lookup(host string) *Served {
	m := h.hosts.Load()
	if m == nil {
		return nil
	}
	return (*m)[canonicalHost(host)]
}

// canonicalHost lowercases host and strips a port and one trailing dot.
func canonicalHost(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(host, ".")
	for i := 0; i < len(host); i++ {
		if c := host[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(host)
		}
	}
	return host
}

// ServeHTTP implements http.Handler.
func (h *Host) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sv := h.Lookup(r.Host)
	hdr := w.Header()
	if sv == nil || r.URL.Path != WellKnownPath {
		h.debug(r, http.StatusNotFound)
		hdr.Set("Content-Type", "text/plain; charset=utf-8")
		hdr.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusNotFound)
		if r.Method != http.MethodHead {
			w.Write([]byte("not found\n"))
		}
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.debug(r, http.StatusMethodNotAllowed)
		hdr.Set("Allow", "GET, HEAD")
		hdr.Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusMethodNotAllowed)
		w.Write([]byte("method not allowed\n"))
		return
	}
	// RFC 8461 §3.2: the media type is text/plain; the text is ASCII.
	hdr["Content-Type"] = []string{"text/plain"}
	hdr["Content-Length"] = []string{strconv.Itoa(len(sv.Text))}
	hdr["X-Content-Type-Options"] = []string{"nosniff"}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(sv.Text)
	}
	h.debug(r, http.StatusOK)
}

func (h *Host) debug(r *http.Request, status int) {
	// Checked first: the arguments would cost allocations per request.
	if h.Logger == nil || !h.Logger.Enabled(r.Context(), slog.LevelDebug) {
		return
	}
	h.Logger.Debug("publish: policy request", "host", r.Host, "path", r.URL.Path, "method", r.Method, "status", status, "remote", r.RemoteAddr)
}
