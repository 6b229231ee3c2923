package mtaststest_test

import (
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/mailsts/mailsts/mtasts"
	"github.com/mailsts/mailsts/mtasts/mtaststest"
)

func TestPolicyServer(t *testing.T) { // STS-POL-1, STS-FETCH-2
	t.Parallel()
	srv := mtaststest.NewPolicyServer()
	t.Cleanup(srv.Close)
	const body = "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 604800\n"
	srv.SetPolicy("Example.COM.", "a1", body)
	c := srv.Client()
	ctx := t.Context()

	rec, p, err := c.Get(ctx, "example.com")
	if err != nil || rec.ID != "a1" || p.Mode != mtasts.ModeEnforce || len(p.MX) != 1 {
		t.Fatalf("Get = %+v, %+v, %v", rec, p, err)
	}
	res, err := c.FetchRaw(ctx, "example.com")
	if err != nil || res.ContentType != "text/plain" || string(res.Body) != body || res.TLS == nil {
		t.Fatalf("FetchRaw = %+v, %v", res, err)
	}

	// A new policy replaces the old one, with its id.
	srv.SetPolicy("example.com", "a2", "version: STSv1\nmode: testing\nmx: mx.example.com\nmax_age: 604800\n")
	if rec, p, err := c.Get(ctx, "example.com"); err != nil || rec.ID != "a2" || p.Mode != mtasts.ModeTesting {
		t.Errorf("Get after SetPolicy = %+v, %+v, %v", rec, p, err)
	}

	// A failing policy host, a domain with no policy.
	srv.Handle("example.com", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	if _, err := c.Fetch(ctx, "example.com"); !errors.Is(err, mtasts.ErrPolicyFetch) {
		t.Errorf("Fetch from a failing host = %v, want ErrPolicyFetch", err)
	}
	if _, _, err := c.Get(ctx, "nopolicy.example"); !errors.Is(err, mtasts.ErrNoRecord) {
		t.Errorf("Get(no policy) = %v, want ErrNoRecord", err)
	}
}

// The client trusts only the server's CA: another CA's pool fails
// certificate verification, and so does a server name the CA never
// issued for.
func TestPolicyServerCertificates(t *testing.T) { // STS-FETCH-2
	t.Parallel()
	srv := mtaststest.NewPolicyServer()
	t.Cleanup(srv.Close)
	srv.SetPolicy("example.com", "1", "version: STSv1\nmode: none\nmax_age: 86400\n")
	other, err := mtaststest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	c := srv.Client()
	c.RootCAs = other.Pool()
	if _, err := c.Fetch(t.Context(), "example.com"); !errors.Is(err, mtasts.ErrPolicyCertificate) {
		t.Errorf("Fetch trusting another CA = %v, want ErrPolicyCertificate", err)
	}
	c = srv.Client()
	srv.DNS.SetIP("mta-sts.unknown.example", netip.MustParseAddr("127.0.0.1"))
	srv.DNS.SetTXT("_mta-sts.unknown.example", "v=STSv1; id=1")
	if _, err := c.Fetch(t.Context(), "unknown.example"); !errors.Is(err, mtasts.ErrPolicyFetch) {
		t.Errorf("Fetch from a host the server does not play = %v, want ErrPolicyFetch", err)
	}

	// The CA serves other test servers too.
	cert, err := srv.CA.Issue("mx.example.com")
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	hs.TLS = &tls.Config{Certificates: []tls.Certificate{*cert}}
	hs.StartTLS()
	t.Cleanup(hs.Close)
	conn, err := tls.Dial("tcp", hs.Listener.Addr().String(), &tls.Config{RootCAs: srv.CA.Pool(), ServerName: "mx.example.com"})
	if err != nil {
		t.Fatalf("dial with a certificate from srv.CA: %v", err)
	}
	conn.Close()
}
