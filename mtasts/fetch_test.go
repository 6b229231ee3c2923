package mtasts

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/watchdog"
)

// STS-POL-1: the policy URL, path, Host header and SNI.
func TestFetch_STS_POL_1_URL(t *testing.T) {
	t.Parallel()
	env := newNetEnv(t, policyHandler(policyF2))
	res, err := env.client.FetchRaw(t.Context(), "Example.COM.")
	if err != nil {
		t.Fatal(err)
	}
	if want := "https://mta-sts.example.com/.well-known/mta-sts.txt"; res.URL != want {
		t.Errorf("URL = %q, want %q", res.URL, want)
	}
	reqs := env.host.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Method != http.MethodGet || r.URL.Path != "/.well-known/mta-sts.txt" || r.Host != "mta-sts.example.com" {
		t.Errorf("request %s %s Host %q", r.Method, r.URL.Path, r.Host)
	}
	if !strings.HasPrefix(r.Header.Get("User-Agent"), "mailsts/") {
		t.Errorf("User-Agent = %q", r.Header.Get("User-Agent"))
	}
	if res.StatusCode != 200 || string(res.Body) != policyF2 || res.TLS == nil {
		t.Errorf("result %+v", res)
	}
	if want := fmt.Sprintf("127.0.0.1:%d", env.host.port()); res.Addr != want {
		t.Errorf("Addr = %q, want %q", res.Addr, want)
	}
}

// STS-FETCH-13, GO-5: the SNI is the policy host name.
func TestFetch_STS_FETCH_13_SNI(t *testing.T) {
	t.Parallel()
	env := newNetEnv(t, policyHandler(policyF2))
	if _, err := env.client.Fetch(t.Context(), testDomain); err != nil {
		t.Fatal(err)
	}
	if got := env.host.snis(); len(got) != 1 || got[0] != "mta-sts.example.com" {
		t.Errorf("SNI = %q, want [mta-sts.example.com]", got)
	}
}

// The fetch offers classical key exchange only (the policy is public; see
// fetchCurves), and still reaches a host that accepts only P-256 (through a
// HelloRetryRequest).
func TestFetch_Curves(t *testing.T) {
	t.Parallel()
	env := newNetEnv(t, policyHandler(policyF2))
	if _, err := env.client.Fetch(t.Context(), testDomain); err != nil {
		t.Fatal(err)
	}
	got := env.host.lastCurves()
	if len(got) == 0 || got[0] != tls.X25519 || slices.Contains(got, tls.X25519MLKEM768) {
		t.Errorf("offered groups %v, want X25519 first and no ML-KEM hybrid", got)
	}
	cert := env.ca.issue(certOpts{dnsNames: []string{"mta-sts." + testDomain}})
	host := startHost(t, cert, policyHandler(policyF2), func(c *tls.Config) { c.CurvePreferences = []tls.CurveID{tls.CurveP256} })
	c := &Client{DNS: env.dns, RootCAs: env.ca.pool, HTTPSPort: host.port(), Timeout: 10 * time.Second}
	if _, err := c.Fetch(t.Context(), testDomain); err != nil {
		t.Errorf("P-256-only host: %v", err)
	}
}

// STS-FETCH-4: only 200 produces a policy.
func TestFetch_STS_FETCH_4_Status(t *testing.T) {
	t.Parallel()
	for _, code := range []int{200, 201, 203, 204, 206, 404, 500} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			t.Parallel()
			env := newNetEnv(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				w.WriteHeader(code)
				if code != 204 {
					_, _ = w.Write([]byte(policyF2))
				}
			})
			p, err := env.client.Fetch(t.Context(), testDomain)
			if code == 200 {
				if err != nil || p.Mode != ModeEnforce {
					t.Fatalf("Fetch = %v, %v", p, err)
				}
				return
			}
			if !errors.Is(err, ErrPolicyFetch) || ResultType(err) != ResultFetchError {
				t.Fatalf("Fetch err = %v, want ErrPolicyFetch", err)
			}
			if !strings.Contains(err.Error(), fmt.Sprint(code)) {
				t.Errorf("error %q does not name the status", err)
			}
		})
	}
}

// STS-FETCH-5, GO-2: redirects are not followed; exactly one request.
func TestFetch_STS_FETCH_5_NoRedirect(t *testing.T) {
	t.Parallel()
	for _, code := range []int{301, 302, 303, 307, 308} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			t.Parallel()
			env := newNetEnv(t, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/x" {
					policyHandler(policyF2)(w, r)
					return
				}
				http.Redirect(w, r, "https://mta-sts.example.com/x", code)
			})
			res, err := env.client.FetchRaw(t.Context(), testDomain)
			if !errors.Is(err, ErrPolicyFetch) {
				t.Fatalf("err = %v, want ErrPolicyFetch", err)
			}
			if !strings.Contains(err.Error(), "redirect to https://mta-sts.example.com/x") ||
				!strings.Contains(err.Error(), "RFC 8461 §3.3") {
				t.Errorf("error message %q", err)
			}
			if res == nil || res.StatusCode != code {
				t.Errorf("result %+v", res)
			}
			if n := len(env.host.requests()); n != 1 {
				t.Errorf("server saw %d requests, want 1", n)
			}
		})
	}
}

// STS-FETCH-6, GO-3: no validators, no Accept-Encoding; caching headers of
// the server do not stop the next fetch from being a full GET.
func TestFetch_STS_FETCH_6_NoHTTPCaching(t *testing.T) {
	t.Parallel()
	env := newNetEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=31536000")
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Last-Modified", "Mon, 01 Jan 2018 00:00:00 GMT")
		policyHandler(policyF2)(w, r)
	})
	for range 2 {
		if _, err := env.client.Fetch(t.Context(), testDomain); err != nil {
			t.Fatal(err)
		}
	}
	reqs := env.host.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	for _, r := range reqs {
		for _, h := range []string{"If-None-Match", "If-Modified-Since", "Accept-Encoding", "Cache-Control"} {
			if v := r.Header.Get(h); v != "" {
				t.Errorf("request sent %s: %q", h, v)
			}
		}
	}
}

// GO-3: a body gzip-encoded without being asked is not decoded: the policy
// is invalid.
func TestFetch_GO_3_NoTransparentGzip(t *testing.T) {
	t.Parallel()
	env := newNetEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Encoding", "gzip")
		_, _ = w.Write([]byte("\x1f\x8b\x08\x00garbage"))
	})
	_, err := env.client.Fetch(t.Context(), testDomain)
	if !errors.Is(err, ErrPolicySyntax) {
		t.Fatalf("err = %v, want ErrPolicySyntax", err)
	}
}

// STS-POL-2, GO-6: the media type must be text/plain; parameters ignored.
func TestFetch_STS_POL_2_ContentType(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ct      string // "-" means no header
		lenient bool
		ok      bool
	}{
		{"text/plain", false, true},
		{"text/plain; charset=utf-8", false, true},
		{`Text/Plain; Charset="UTF-8"`, false, true},
		{"text/plain; charset=iso-8859-1", false, true},
		{"text/plain; format=flowed", false, true},
		{"TEXT/PLAIN", false, true},
		{"text/html", false, false},
		{"application/octet-stream", false, false},
		{"text/plain-ish", false, false},
		{"text/plain; charset", false, false}, // malformed parameter
		{"-", false, false},
		{"-", true, true},
		{"text/html", true, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/lenient=%v", tt.ct, tt.lenient), func(t *testing.T) {
			t.Parallel()
			env := newNetEnv(t, func(w http.ResponseWriter, r *http.Request) {
				if tt.ct == "-" {
					w.Header()["Content-Type"] = nil // suppress sniffing
				} else {
					w.Header().Set("Content-Type", tt.ct)
				}
				_, _ = w.Write([]byte(policyF2))
			})
			env.client.LenientContentType = tt.lenient
			p, err := env.client.Fetch(t.Context(), testDomain)
			if tt.ok {
				if err != nil || p == nil {
					t.Fatalf("Fetch = %v, %v", p, err)
				}
				return
			}
			if !errors.Is(err, ErrPolicySyntax) || ResultType(err) != ResultPolicyInvalid {
				t.Fatalf("err = %v, want ErrPolicySyntax", err)
			}
			// The raw result still carries the body for diagnostics.
			res, err := env.client.FetchRaw(t.Context(), testDomain)
			if err == nil || res == nil || string(res.Body) != policyF2 {
				t.Errorf("FetchRaw = %+v, %v", res, err)
			}
		})
	}
}

// STS-POL-13, STS-FETCH-8: 64 KiB body ok, one byte more fails, 1 MiB fails.
func TestFetch_STS_POL_13_BodyCap(t *testing.T) {
	t.Parallel()
	for _, n := range []int{65536, 65537, 1 << 20} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			t.Parallel()
			body := strings.Repeat("a", n)
			env := newNetEnv(t, policyHandler(body))
			res, err := env.client.FetchRaw(t.Context(), testDomain)
			if n <= DefaultMaxBodySize {
				if err != nil || len(res.Body) != n {
					t.Fatalf("FetchRaw: %d bytes, %v", len(res.Body), err)
				}
				return
			}
			if !errors.Is(err, ErrPolicyFetch) || !strings.Contains(err.Error(), "65536") {
				t.Fatalf("err = %v, want ErrPolicyFetch over 65536 bytes", err)
			}
		})
	}
	t.Run("custom", func(t *testing.T) {
		t.Parallel()
		env := newNetEnv(t, policyHandler(policyF2))
		env.client.MaxBodySize = int64(len(policyF2)) - 1
		if _, err := env.client.Fetch(t.Context(), testDomain); !errors.Is(err, ErrPolicyFetch) {
			t.Fatalf("err = %v, want ErrPolicyFetch", err)
		}
	})
}

// STS-FETCH-8: a body that drips forever ends at the timeout.
func TestFetch_STS_FETCH_8_DripTimeout(t *testing.T) {
	t.Parallel()
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	env := newNetEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(200)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for range 100_000 { // bounded: half an hour at most
			select {
			case <-r.Context().Done():
				return
			case <-done:
				return
			case <-tick.C:
				_, _ = w.Write([]byte("v"))
				w.(http.Flusher).Flush()
			}
		}
	})
	env.client.Timeout = 300 * time.Millisecond
	// The drip lasts half an hour: a watchdog of two minutes tells the
	// 300 ms timeout from none, whatever the machine load.
	err := watchdog.Within(t, 2*time.Minute, func() error {
		_, err := env.client.FetchRaw(t.Context(), testDomain)
		return err
	})
	if !errors.Is(err, ErrPolicyFetch) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrPolicyFetch and DeadlineExceeded", err)
	}
	if !strings.Contains(err.Error(), "within 300ms") {
		t.Errorf("error %q does not name the timeout", err)
	}
}

// STS-FETCH-8: a server that never answers the request ends at the timeout.
func TestFetch_STS_FETCH_8_SilentServer(t *testing.T) {
	t.Parallel()
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	env := newNetEnv(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-done:
		}
	})
	env.client.Timeout = 200 * time.Millisecond
	_, err := env.client.FetchRaw(t.Context(), testDomain)
	if !errors.Is(err, ErrPolicyFetch) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrPolicyFetch and DeadlineExceeded", err)
	}
}

// A cancelled caller context is reported as such, not as a timeout.
func TestFetch_CallerCancel(t *testing.T) {
	t.Parallel()
	env := newNetEnv(t, policyHandler(policyF2))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := env.client.FetchRaw(ctx, testDomain)
	if !errors.Is(err, ErrPolicyFetch) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want ErrPolicyFetch and Canceled", err)
	}
}

// STS-FETCH-14: a server limited to TLS 1.0 (or 1.1) fails.
func TestFetch_STS_FETCH_14_OldTLS(t *testing.T) {
	t.Parallel()
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			t.Parallel()
			ca := newTestCA(t)
			host := startHost(t, ca.issue(certOpts{dnsNames: []string{"mta-sts." + testDomain}}), policyHandler(policyF2),
				func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS10, v })
			env := newNetEnvWith(t, ca, host)
			_, err := env.client.Fetch(t.Context(), testDomain)
			if !errors.Is(err, ErrPolicyFetch) || errors.Is(err, ErrPolicyCertificate) {
				t.Fatalf("err = %v, want ErrPolicyFetch", err)
			}
			if n := len(host.requests()); n != 0 {
				t.Errorf("server saw %d requests", n)
			}
		})
	}
	t.Run("TLS 1.2 ok", func(t *testing.T) {
		t.Parallel()
		ca := newTestCA(t)
		host := startHost(t, ca.issue(certOpts{dnsNames: []string{"mta-sts." + testDomain}}), policyHandler(policyF2),
			func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 })
		env := newNetEnvWith(t, ca, host)
		res, err := env.client.FetchRaw(t.Context(), testDomain)
		if err != nil || res.TLS.Version != tls.VersionTLS12 {
			t.Fatalf("FetchRaw = %+v, %v", res, err)
		}
	})
}

// STS-FETCH-2, STS-FETCH-15, GO-4: PKIX validation for mta-sts.<domain>.
func TestFetch_STS_FETCH_2_Certificate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		cert  certOpts
		cname bool // mta-sts.example.com is a CNAME to mta-sts.provider.example
		ok    bool
	}{
		{"san exact", certOpts{dnsNames: []string{"mta-sts.example.com"}}, false, true},
		{"san wildcard", certOpts{dnsNames: []string{"*.example.com"}}, false, true},
		{"san upper case", certOpts{dnsNames: []string{"MTA-STS.Example.COM"}}, false, true},
		{"wildcard one level too deep", certOpts{dnsNames: []string{"*.mta-sts.example.com"}}, false, false},
		{"cn only", certOpts{cn: "mta-sts.example.com"}, false, false},
		{"other name", certOpts{dnsNames: []string{"www.example.com"}}, false, false},
		{"expired", certOpts{dnsNames: []string{"mta-sts.example.com"}, expired: true}, false, false},
		{"self-signed", certOpts{dnsNames: []string{"mta-sts.example.com"}, self: true}, false, false},
		{"cname target only (STS-FETCH-15, F-4)", certOpts{dnsNames: []string{"mta-sts.provider.example"}}, true, false},
		{"cname, cert for policy host (F-4)", certOpts{dnsNames: []string{"mta-sts.example.com"}}, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ca := newTestCA(t)
			host := startHost(t, ca.issue(tt.cert), policyHandler(policyF2), nil)
			env := newNetEnvWith(t, ca, host)
			if tt.cname {
				env.dns.IP = nil
				env.dns.SetIP("mta-sts.provider.example", loopback)
				env.dns.SetCNAME("mta-sts.example.com", "mta-sts.provider.example")
			}
			p, err := env.client.Fetch(t.Context(), testDomain)
			if tt.ok {
				if err != nil || p == nil {
					t.Fatalf("Fetch = %v, %v", p, err)
				}
				return
			}
			if !errors.Is(err, ErrPolicyCertificate) || ResultType(err) != ResultWebPKIInvalid {
				t.Fatalf("err = %v, want ErrPolicyCertificate", err)
			}
			if errors.Is(err, ErrPolicyFetch) || errors.Is(err, ErrPolicySyntax) {
				t.Errorf("err %v matches more than one sentinel", err)
			}
			if n := len(host.requests()); n != 0 {
				t.Errorf("the request was sent over an unverified connection (%d)", n)
			}
			var verr *tls.CertificateVerificationError
			if !errors.As(err, &verr) || len(verr.UnverifiedCertificates) == 0 {
				t.Errorf("err %v does not carry the presented chain", err)
			}
		})
	}
}

// RootCAs nil means the system pool, which does not trust the test CA.
func TestFetch_SystemRootsRejectTestCA(t *testing.T) {
	t.Parallel()
	env := newNetEnv(t, policyHandler(policyF2))
	env.client.RootCAs = nil
	if _, err := env.client.Fetch(t.Context(), testDomain); !errors.Is(err, ErrPolicyCertificate) {
		t.Fatalf("err = %v, want ErrPolicyCertificate", err)
	}
}

// STS-FETCH-1: never plain HTTP; a plaintext server gets no request.
func TestFetch_STS_FETCH_1_HTTPSOnly(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		policyHandler(policyF2)(w, r)
	}))
	t.Cleanup(srv.Close)
	fake := &dnsresolve.Fake{}
	fake.SetIP("mta-sts."+testDomain, loopback)
	c := &Client{DNS: fake, HTTPSPort: int(netip.MustParseAddrPort(srv.Listener.Addr().String()).Port()), Timeout: 10 * time.Second}
	_, err := c.Fetch(t.Context(), testDomain)
	if !errors.Is(err, ErrPolicyFetch) {
		t.Fatalf("err = %v, want ErrPolicyFetch", err)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("plaintext server saw %d requests", n)
	}
}

// The policy host's address comes from our DNS layer; its failures are
// fetch errors; addresses are tried in turn.
func TestFetch_PolicyHostDNS(t *testing.T) {
	t.Parallel()
	t.Run("no address", func(t *testing.T) {
		t.Parallel()
		env := newNetEnv(t, policyHandler(policyF2))
		env.dns.SetIP("mta-sts." + testDomain)
		_, err := env.client.Fetch(t.Context(), testDomain)
		if !errors.Is(err, ErrPolicyFetch) || !errors.Is(err, dnsresolve.ErrNotFound) || errors.Is(err, ErrDNS) {
			t.Fatalf("err = %v, want ErrPolicyFetch wrapping dnsresolve.ErrNotFound", err)
		}
		if !strings.Contains(err.Error(), "no A or AAAA") {
			t.Errorf("message %q", err)
		}
	})
	t.Run("servfail", func(t *testing.T) {
		t.Parallel()
		env := newNetEnv(t, policyHandler(policyF2))
		env.dns.SetError("mta-sts."+testDomain, dnsresolve.ErrLookupFailed)
		_, err := env.client.Fetch(t.Context(), testDomain)
		if !errors.Is(err, ErrPolicyFetch) || !errors.Is(err, dnsresolve.ErrLookupFailed) {
			t.Fatalf("err = %v, want ErrPolicyFetch wrapping ErrLookupFailed", err)
		}
	})
	t.Run("second address", func(t *testing.T) {
		t.Parallel()
		env := newNetEnv(t, policyHandler(policyF2))
		// Nothing listens on 127.0.0.2 (the host listens on 127.0.0.1
		// only), nor on ::1 at this port.
		env.dns.SetIP("mta-sts."+testDomain, netip.MustParseAddr("127.0.0.2"), netip.IPv6Loopback(), loopback)
		res, err := env.client.FetchRaw(t.Context(), testDomain)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("127.0.0.1:%d", env.host.port()); res.Addr != want {
			t.Errorf("Addr = %q, want %q", res.Addr, want)
		}
	})
	t.Run("none reachable", func(t *testing.T) {
		t.Parallel()
		env := newNetEnv(t, policyHandler(policyF2))
		env.dns.SetIP("mta-sts."+testDomain, netip.MustParseAddr("127.0.0.2"))
		_, err := env.client.Fetch(t.Context(), testDomain)
		if !errors.Is(err, ErrPolicyFetch) || !strings.Contains(err.Error(), "connecting to policy host mta-sts.example.com") {
			t.Fatalf("err = %v", err)
		}
	})
}

// STS-SEL-6: the domain is normalized; invalid domains are rejected before
// any network traffic.
func TestFetch_STS_SEL_6_Domain(t *testing.T) {
	t.Parallel()
	env := newNetEnv(t, policyHandler(policyF2))
	for _, d := range []string{"", "a..example", ".", "exa mple.com", "example.com..", strings.Repeat("a", 64) + ".com"} {
		if _, err := env.client.Fetch(t.Context(), d); !errors.Is(err, ErrInvalidDomain) {
			t.Errorf("Fetch(%q) err = %v, want ErrInvalidDomain", d, err)
		}
		if _, _, err := env.client.LookupRecord(t.Context(), d); !errors.Is(err, ErrInvalidDomain) {
			t.Errorf("LookupRecord(%q) err = %v, want ErrInvalidDomain", d, err)
		}
	}
	if q := env.dns.Queries(); len(q) != 0 {
		t.Errorf("queries for invalid domains: %q", q)
	}
	if n := len(env.host.requests()); n != 0 {
		t.Errorf("%d requests for invalid domains", n)
	}
}

// A malformed policy body is ErrPolicySyntax, with the parser's detail.
func TestFetch_PolicySyntax(t *testing.T) {
	t.Parallel()
	env := newNetEnv(t, policyHandler("version: STSv1\nmode: enforce\nmax_age: 86400\n"))
	_, err := env.client.Fetch(t.Context(), testDomain)
	var se *SyntaxError
	if !errors.Is(err, ErrPolicySyntax) || !errors.As(err, &se) || ResultType(err) != ResultPolicyInvalid {
		t.Fatalf("err = %v, want *SyntaxError", err)
	}
}

func TestLoadRootCAs(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(good, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(empty, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pool, err := LoadRootCAs(good)
	if err != nil {
		t.Fatal(err)
	}
	host := startHost(t, ca.issue(certOpts{dnsNames: []string{"mta-sts." + testDomain}}), policyHandler(policyF2), nil)
	env := newNetEnvWith(t, ca, host)
	env.client.RootCAs = pool
	if _, err := env.client.Fetch(t.Context(), testDomain); err != nil {
		t.Errorf("Fetch with loaded pool: %v", err)
	}
	if _, err := LoadRootCAs(empty); err == nil {
		t.Error("LoadRootCAs(file without certificates) succeeded")
	}
	if _, err := LoadRootCAs(filepath.Join(dir, "missing.pem")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadRootCAs(missing) err = %v", err)
	}
	if p, err := LoadRootCAs(""); err != nil || p == nil {
		t.Errorf("LoadRootCAs(\"\") = %v, %v", p, err)
	}
}

// FuzzCheckContentType: any header value is accepted or rejected without
// panic, and accepted values are text/plain.
func FuzzCheckContentType(f *testing.F) {
	for _, s := range []string{"text/plain", "text/plain; charset=utf-8", `Text/Plain; Charset="UTF-8"`,
		"text/plain; charset=iso-8859-1", "text/plain; format=flowed", "text/html", "application/octet-stream", "",
		"text/plain; charset", "text/plain;;", "\x00"} {
		f.Add(s)
	}
	c := &Client{}
	f.Fuzz(func(t *testing.T, ct string) {
		err := c.checkContentType(ct)
		if err == nil && !strings.EqualFold(strings.TrimSpace(strings.SplitN(ct, ";", 2)[0]), "text/plain") {
			t.Errorf("accepted %q", ct)
		}
	})
}

// The zero Client creates its default DNS client once, safely under
// concurrency (no query is made here).
func TestClient_DefaultResolverOnce(t *testing.T) {
	t.Parallel()
	c := &Client{}
	got := make(chan dnsresolve.Resolver, 8)
	for range 8 {
		go func() {
			r, err := c.resolver()
			if err != nil {
				// Without a usable /etc/resolv.conf the error must be ErrDNS.
				if !errors.Is(err, ErrDNS) {
					t.Errorf("resolver err = %v", err)
				}
			}
			got <- r
		}()
	}
	first := <-got
	for range 7 {
		if r := <-got; r != first {
			t.Error("resolver created more than once")
		}
	}
}

// STS-POL-2: a charset parameter is ignored: the body is read as UTF-8
// whatever it says, so a UTF-8 extension value comes through unchanged
// even when the header claims ISO-8859-1.
func TestFetch_STS_POL_2_CharsetIgnored(t *testing.T) {
	t.Parallel()
	body := policyF2 + "note: ünïcödé\n"
	for _, ct := range []string{"text/plain; charset=iso-8859-1", "text/plain; charset=us-ascii", "text/plain; charset=utf-16"} {
		t.Run(ct, func(t *testing.T) {
			t.Parallel()
			env := newNetEnv(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", ct)
				_, _ = w.Write([]byte(body))
			})
			p, err := env.client.Fetch(t.Context(), testDomain)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Extensions) != 1 || p.Extensions[0] != (Extension{"note", "ünïcödé"}) {
				t.Errorf("extensions %q", p.Extensions)
			}
		})
	}
}

// STS-POL-1: without HTTPSPort the policy host is reached on port 443 (the
// URL carries no port). Nothing in the test listens there, so the dial
// error names the address.
func TestFetch_STS_POL_1_DefaultPort(t *testing.T) {
	t.Parallel()
	fake := &dnsresolve.Fake{}
	fake.SetIP("mta-sts."+testDomain, loopback)
	c := &Client{DNS: fake, Timeout: 10 * time.Second}
	res, err := c.FetchRaw(t.Context(), testDomain)
	switch {
	case err == nil:
		t.Fatalf("FetchRaw = %+v from a local port 443", res)
	case res != nil:
		// Something does listen on 443 here; it must be where we went.
		if !strings.HasSuffix(res.Addr, ":443") {
			t.Errorf("Addr = %q, want port 443", res.Addr)
		}
	case !strings.Contains(err.Error(), "127.0.0.1:443"):
		t.Errorf("err = %v, want a connection to 127.0.0.1:443", err)
	}
}
