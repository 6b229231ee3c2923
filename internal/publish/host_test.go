package publish

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/mailsts/mailsts/internal/reports"
)

func testHost(t *testing.T) (*Host, *Set) {
	t.Helper()
	s, err := load(t, reports.PublishDomain{Domain: "example.org", Mode: "enforce", MX: mx("*.example.org")})
	if err != nil {
		t.Fatal(err)
	}
	h := &Host{}
	h.Set(s)
	return h, s
}

// TestHostServes covers RFC 8461 §3.3 as the policy host (STS-PUB-2):
// 200, text/plain, the CRLF text, no redirect, 404 and 405 elsewhere.
func TestHostServes(t *testing.T) {
	t.Parallel()
	h, s := testHost(t)
	want := string(s.Domain("example.org").Policy().Text)
	cases := []struct {
		method, host, path string
		status             int
		body               string
	}{
		{"GET", "mta-sts.example.org", WellKnownPath, 200, want},
		{"GET", "MTA-STS.Example.ORG:443", WellKnownPath, 200, want},
		{"GET", "mta-sts.example.org.", WellKnownPath, 200, want},
		{"GET", "mta-sts.example.org:8443", WellKnownPath + "?x=1", 200, want},
		{"HEAD", "mta-sts.example.org", WellKnownPath, 200, ""},
		{"POST", "mta-sts.example.org", WellKnownPath, 405, "method not allowed\n"},
		{"PUT", "mta-sts.example.org", WellKnownPath, 405, "method not allowed\n"},
		{"GET", "mta-sts.example.org", "/", 404, "not found\n"},
		{"GET", "mta-sts.example.org", "/.well-known/mta-sts.txt/", 404, "not found\n"},
		{"GET", "mta-sts.example.org", "/.well-known/MTA-STS.txt", 404, "not found\n"},
		{"GET", "example.org", WellKnownPath, 404, "not found\n"},
		{"GET", "mta-sts.other.example", WellKnownPath, 404, "not found\n"},
		{"GET", "", WellKnownPath, 404, "not found\n"},
	}
	for _, c := range cases {
		req := httptest.NewRequest(c.method, "http://x"+c.path, nil)
		req.Host = c.host
		req.Header.Set("Accept-Encoding", "gzip")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		res := rec.Result()
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != c.status || string(body) != c.body {
			t.Errorf("%s %s%s: %d %q, want %d %q", c.method, c.host, c.path, res.StatusCode, body, c.status, c.body)
		}
		if res.Header.Get("Location") != "" || res.Header.Get("Content-Encoding") != "" {
			t.Errorf("%s %s%s: Location %q, Content-Encoding %q", c.method, c.host, c.path, res.Header.Get("Location"), res.Header.Get("Content-Encoding"))
		}
		if c.status == 200 {
			if ct := res.Header.Get("Content-Type"); ct != "text/plain" {
				t.Errorf("Content-Type %q", ct)
			}
			if cl := res.Header.Get("Content-Length"); cl != fmt.Sprint(len(want)) {
				t.Errorf("Content-Length %q, want %d", cl, len(want))
			}
		}
		if c.status == 405 && res.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("405 without Allow: %v", res.Header)
		}
	}
	if !strings.HasSuffix(want, "\r\n") || strings.Count(want, "\n") != strings.Count(want, "\r\n") {
		t.Errorf("not CRLF: %q", want)
	}
}

// TestHostSwap: Set replaces every policy at once; the zero Host serves
// nothing.
func TestHostSwap(t *testing.T) {
	t.Parallel()
	var zero Host
	if zero.Lookup("mta-sts.example.org") != nil {
		t.Fatal("zero Host serves")
	}
	h, _ := testHost(t)
	h.Set(nil)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "http://mta-sts.example.org"+WellKnownPath, nil)
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotFound {
		t.Errorf("after Set(nil): %d", rec.Code)
	}
}

// FuzzHost: any method, Host header and path; the handler never panics,
// answers 200 only with the policy of a hosted name on the policy path,
// and never redirects (STS-PUB-2).
func FuzzHost(f *testing.F) {
	for _, s := range [][3]string{
		{"GET", "mta-sts.example.org", WellKnownPath},
		{"HEAD", "MTA-STS.EXAMPLE.ORG:443", WellKnownPath},
		{"POST", "mta-sts.example.org.", "/"},
		{"GET", "[::1]:443", WellKnownPath},
		{"GET", "mta-sts.example.org:", "//.well-known/mta-sts.txt"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	s, err := (&Loader{DNS: fakeDNS()}).Load(context.Background(), reports.PublishConfig{Domains: []reports.PublishDomain{
		{Domain: "example.org", Mode: "enforce", MX: reports.PublishMX{"*.example.org"}}}})
	if err != nil {
		f.Fatal(err)
	}
	h := &Host{}
	h.Set(s)
	want := s.Domains[0].Policy().Text
	f.Fuzz(func(t *testing.T, method, host, path string) {
		req := &http.Request{Method: method, Host: host, URL: &url.URL{Path: path}, Header: http.Header{}}
		req = req.WithContext(context.Background())
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK:
			if path != WellKnownPath || canonicalHost(host) != "mta-sts.example.org" || (method != "GET" && method != "HEAD") {
				t.Fatalf("200 for %q %q %q", method, host, path)
			}
			if method == "GET" && !bytes.Equal(rec.Body.Bytes(), want) {
				t.Fatalf("body %q", rec.Body.Bytes())
			}
		case http.StatusNotFound, http.StatusMethodNotAllowed:
		default:
			t.Fatalf("status %d for %q %q %q", rec.Code, method, host, path)
		}
		if rec.Header().Get("Location") != "" {
			t.Fatal("Location header")
		}
	})
}
