package publish

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/testca"
)

// BenchmarkHostTLSKeepAlive: policy requests over one kept-alive TLS
// connection per goroutine, server and client in this process.
func BenchmarkHostTLSKeepAlive(b *testing.B) {
	s, err := (&Loader{DNS: fakeDNS()}).Load(b.Context(), reports.PublishConfig{Domains: []reports.PublishDomain{
		{Domain: "example.org", Mode: "enforce", MX: reports.PublishMX{"*.example.org"}}}})
	if err != nil {
		b.Fatal(err)
	}
	h := &Host{}
	h.Set(s)
	ca, err := testca.New("bench")
	if err != nil {
		b.Fatal(err)
	}
	leaf, err := ca.Issue(testca.Leaf{DNSNames: []string{"mta-sts.example.org"}})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = TLSConfig(func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return leaf, nil })
	srv.StartTLS()
	defer srv.Close()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), ServerName: "mta-sts.example.org"}, MaxIdleConnsPerHost: 64}
	hc := &http.Client{Transport: tr}
	url := srv.URL + WellKnownPath
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("GET", url, nil)
			req.Host = "mta-sts.example.org"
			resp, err := hc.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}
