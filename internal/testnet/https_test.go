package testnet

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

func policyURL(domain string) string {
	return "https://mta-sts." + domain + PolicyPath
}

// STS-FETCH-2: every certificate kind of a policy host, verified against
// RootCAs with the policy host name.
func TestHTTPSCertKinds(t *testing.T) {
	t.Parallel()
	sc := &Scenario{}
	for _, tc := range certCases {
		sc.Domains = append(sc.Domains, Domain{Name: string(tc.kind) + ".example", Policy: &PolicyHost{Body: "ok\n", Cert: tc.kind}})
	}
	n := startNet(t, sc)
	for _, tc := range certCases {
		t.Run(string(tc.kind), func(t *testing.T) {
			t.Parallel()
			resp, err := policyClient(t, n, nil).Get(policyURL(string(tc.kind) + ".example"))
			if err == nil {
				resp.Body.Close()
			}
			checkCertError(t, string(tc.kind), err, tc.want)
		})
	}
}

// STS-FETCH-13: the certificate follows the SNI; an unknown SNI gets the
// fallback certificate and so a name mismatch.
func TestHTTPSSNI(t *testing.T) {
	t.Parallel()
	n := startNet(t, DefaultScenario())
	for _, tc := range []struct {
		sni, want string
	}{
		{"mta-sts.enforce.example", "mta-sts.enforce.example"},
		{"MTA-STS.Testing.Example", "mta-sts.testing.example"},
		{"mta-sts.nosts.example", FallbackName}, // no policy host
		{"unknown.example", FallbackName},
		{"", FallbackName},
	} {
		conn, err := tls.Dial("tcp", n.HTTPSAddr(), &tls.Config{ServerName: tc.sni, InsecureSkipVerify: true})
		if err != nil {
			t.Fatalf("SNI %q: %v", tc.sni, err)
		}
		got := conn.ConnectionState().PeerCertificates[0].DNSNames
		conn.Close()
		if !slices.Equal(got, []string{tc.want}) {
			t.Errorf("SNI %q: certificate for %v, want %s", tc.sni, got, tc.want)
		}
	}
	_, err := tls.Dial("tcp", n.HTTPSAddr(), &tls.Config{ServerName: "unknown.example", RootCAs: n.RootCAs()})
	var he interface{ Error() string }
	if err == nil || !errors.As(err, &he) || !strings.Contains(err.Error(), "certificate is valid for "+FallbackName) {
		t.Errorf("unknown SNI verified: %v", err)
	}
	snis := n.SNIs()
	for _, want := range []string{"mta-sts.enforce.example", "mta-sts.testing.example", "unknown.example", ""} {
		if !slices.Contains(snis, want) {
			t.Errorf("SNIs() = %q lacks %q", snis, want)
		}
	}
}

func TestHTTPSResponses(t *testing.T) {
	t.Parallel()
	n := startNet(t, DefaultScenario())
	c := policyClient(t, n, nil)
	for _, tc := range []struct {
		domain, path string
		status       int
		ctype        []string // nil: header absent
		body         string   // prefix
		bodyLen      int
		location     string
	}{
		{domain: "enforce.example", status: 200, ctype: []string{"text/plain"}, body: "version: STSv1\nmode: enforce\nmx: *.enforce.example\nmax_age: 86400\n"},
		{domain: "crlf.example", status: 200, ctype: []string{"text/plain"}, body: "version: STSv1\r\nmode: enforce\r\n"},
		{domain: "redirect.example", status: 301, ctype: []string{"text/plain"}, location: "https://mta-sts.enforce.example/.well-known/mta-sts.txt"},
		{domain: "notfound.example", status: 404, ctype: []string{"text/plain"}, body: "not found"},
		{domain: "html.example", status: 200, ctype: []string{"text/html"}, body: "version: STSv1"},
		{domain: "no-ctype.example", status: 200, body: "version: STSv1"},
		{domain: "huge.example", status: 200, ctype: []string{"text/plain"}, body: "version: STSv1\nmode: enforce\n", bodyLen: 66560},
		{domain: "enforce.example", path: "/other", status: 404},
	} {
		path := tc.path
		if path == "" {
			path = PolicyPath
		}
		resp, err := c.Get("https://mta-sts." + tc.domain + path)
		if err != nil {
			t.Errorf("%s: %v", tc.domain, err)
			continue
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Errorf("%s: body: %v", tc.domain, err)
		}
		if resp.StatusCode != tc.status {
			t.Errorf("%s%s: status %d, want %d", tc.domain, path, resp.StatusCode, tc.status)
		}
		if tc.path != "" {
			continue
		}
		if got := resp.Header.Values("Content-Type"); !slices.Equal(got, tc.ctype) {
			t.Errorf("%s: Content-Type %q, want %q", tc.domain, got, tc.ctype)
		}
		if !strings.HasPrefix(string(body), tc.body) {
			t.Errorf("%s: body %.80q, want prefix %q", tc.domain, body, tc.body)
		}
		if tc.bodyLen != 0 && len(body) != tc.bodyLen {
			t.Errorf("%s: body of %d bytes, want %d", tc.domain, len(body), tc.bodyLen)
		}
		if got := resp.Header.Get("Location"); got != tc.location {
			t.Errorf("%s: Location %q, want %q", tc.domain, got, tc.location)
		}
	}
	if got := n.Requests("enforce.example"); got != 2 {
		t.Errorf("Requests(enforce.example) = %d, want 2", got)
	}
	if got := n.Requests("testing.example"); got != 0 {
		t.Errorf("Requests(testing.example) = %d, want 0", got)
	}
	// Extra headers and live body changes (STS-PUB-4).
	d, _ := n.Domain("testing.example")
	d.Policy.Body = "version: STSv1\nmode: none\nmax_age: 60\n"
	d.Policy.Headers = map[string]string{"Cache-Control": "max-age=60"}
	if err := n.Set(d); err != nil {
		t.Fatal(err)
	}
	resp, err := c.Get(policyURL("testing.example"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != d.Policy.Body || resp.Header.Get("Cache-Control") != "max-age=60" {
		t.Errorf("after Set: body %q, Cache-Control %q", body, resp.Header.Get("Cache-Control"))
	}
	if got := n.Requests("testing.example"); got != 1 {
		t.Errorf("Requests(testing.example) = %d, want 1", got)
	}
}

// STS-FETCH-14: a TLS 1.1-only policy host fails a TLS 1.2 client.
func TestHTTPSMaxTLS(t *testing.T) {
	t.Parallel()
	n := startNet(t, DefaultScenario())
	_, err := policyClient(t, n, nil).Get(policyURL("tls11.example"))
	if err == nil || !strings.Contains(err.Error(), "protocol version") {
		t.Errorf("TLS 1.2 client against TLS 1.1 host: %v", err)
	}
	resp, err := policyClient(t, n, &tls.Config{MinVersion: tls.VersionTLS10}).Get(policyURL("tls11.example"))
	if err != nil {
		t.Fatalf("TLS 1.0 client: %v", err)
	}
	resp.Body.Close()
	if resp.TLS.Version != tls.VersionTLS11 {
		t.Errorf("negotiated %x, want TLS 1.1", resp.TLS.Version)
	}
}

// STS-FETCH-8: Delay holds the headers back and Drip spreads the body.
func TestHTTPSDelayAndDrip(t *testing.T) {
	t.Parallel()
	n := startNet(t, &Scenario{Domains: []Domain{
		{Name: "delay.example", Policy: &PolicyHost{Body: "x\n", Delay: 200 * time.Millisecond}},
		{Name: "drip.example", Policy: &PolicyHost{Body: "0123456789", Drip: 300 * time.Millisecond}},
		{Name: "slow.example", Policy: &PolicyHost{Body: "0123456789", Drip: time.Hour}},
		{Name: "wait.example", Policy: &PolicyHost{Body: "x", Delay: time.Hour}},
	}})
	c := policyClient(t, n, nil)
	for _, domain := range []string{"delay.example", "drip.example"} {
		start := time.Now()
		resp, err := c.Get(policyURL(domain))
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		elapsed := time.Since(start)
		if err != nil || len(body) == 0 {
			t.Errorf("%s: %q, %v", domain, body, err)
		}
		// Lower bounds only: the server must not be early; slowness of a
		// loaded machine is not an error.
		if elapsed < 150*time.Millisecond {
			t.Errorf("%s took %v, want ≥ 150ms", domain, elapsed)
		}
	}
	// A client that gives up ends the drip. It gives up after the first
	// byte: a deadline counted from before the dial and TLS handshake
	// could expire before any byte on a loaded machine.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, policyURL("slow.example"), nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, 1)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatalf("slow drip: no first byte: %v", err)
	}
	cancel()
	rest, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !errors.Is(err, context.Canceled) || 1+len(rest) >= 10 {
		t.Errorf("slow drip: %d bytes, err %v; want some bytes then the cancellation", 1+len(rest), err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	req, _ = http.NewRequestWithContext(ctx2, http.MethodGet, policyURL("wait.example"), nil)
	if _, err := c.Do(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("delayed host: %v, want deadline", err)
	}
}

// Close ends Delay and Drip handlers promptly.
func TestHTTPSCloseStopsSlowHandlers(t *testing.T) {
	t.Parallel()
	n, err := Start(t.Context(), &Scenario{Domains: []Domain{
		{Name: "slow.example", Policy: &PolicyHost{Body: "0123456789", Drip: time.Hour}},
		{Name: "wait.example", Policy: &PolicyHost{Body: "x", Delay: time.Hour}},
	}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := policyClient(t, n, nil)
	errc := make(chan error, 2)
	for _, d := range []string{"slow.example", "wait.example"} {
		go func() {
			resp, err := c.Get(policyURL(d))
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			errc <- err
		}()
	}
	// Wait until both requests reached the server.
	deadline := time.Now().Add(10 * time.Second)
	for n.Requests("slow.example")+n.Requests("wait.example") < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	closed := make(chan struct{})
	go func() { n.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close blocked by slow handlers")
	}
	for range 2 {
		select {
		case err := <-errc:
			if err == nil {
				t.Error("a slow request completed although the Net closed")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("client still waiting after Close")
		}
	}
}
