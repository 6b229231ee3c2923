package mtasts

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

// Response headers are capped: a policy host sending more than 64 KiB of
// them fails the fetch instead of growing memory (rule 3: hostile input is
// bounded).
func TestFetch_HeaderCap(t *testing.T) {
	t.Parallel()
	env := newNetEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("X-Padding", strings.Repeat("a", maxHeaderBytes+1))
		_, _ = w.Write([]byte(policyF2))
	})
	_, err := env.client.Fetch(t.Context(), testDomain)
	if !errors.Is(err, ErrPolicyFetch) || !strings.Contains(err.Error(), "headers over") {
		t.Fatalf("err = %v, want ErrPolicyFetch for headers over the cap", err)
	}
}

// An interim 103 Early Hints response before the 200 is skipped, as a
// browser or net/http's Transport would.
func TestFetch_EarlyHintsSkipped(t *testing.T) {
	t.Parallel()
	env := newNetEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(policyF2))
	})
	p, err := env.client.Fetch(t.Context(), testDomain)
	if err != nil || p.Mode != ModeEnforce {
		t.Fatalf("Fetch = %v, %v; want the enforce policy after the 103", p, err)
	}
}

// The fetch result still reports the peer address and TLS state.
func TestFetchRaw_AddrAndTLS(t *testing.T) {
	t.Parallel()
	env := newNetEnv(t, policyHandler(policyF2))
	res, err := env.client.FetchRaw(t.Context(), testDomain)
	if err != nil {
		t.Fatal(err)
	}
	if res.Addr != env.host.srv.Listener.Addr().String() {
		t.Errorf("Addr = %q, want %q", res.Addr, env.host.srv.Listener.Addr())
	}
	if res.TLS == nil || !res.TLS.HandshakeComplete || res.TLS.ServerName != "mta-sts."+testDomain {
		t.Errorf("TLS = %+v", res.TLS)
	}
}
