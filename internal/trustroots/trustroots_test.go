package trustroots

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailsts/mailsts/internal/testca"
)

// The vendored set matches its selection: one self-signed CA per listed
// name, with the fingerprint the header comment states; and when this
// machine has the bundle it was made from, the file is what `make
// curated-roots` writes (run it after editing curated.list).
func TestCuratedCurrent(t *testing.T) {
	t.Parallel()
	certs, err := CuratedCerts()
	if err != nil {
		t.Fatal(err)
	}
	list, _ := os.ReadFile("curated.list")
	var names []string
	for _, l := range strings.Split(string(list), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			names = append(names, l)
		}
	}
	if len(certs) != len(names) || len(certs) < 20 {
		t.Fatalf("%d certificates for %d names", len(certs), len(names))
	}
	for i, c := range certs {
		sum := sha256.Sum256(c.Raw)
		if !c.IsCA || !bytes.Equal(c.RawIssuer, c.RawSubject) || !bytes.Contains(curatedPEM, []byte("# "+names[i]+"\n# subject: "+c.Subject.String()+"\n# sha256: "+hex.EncodeToString(sum[:]))) {
			t.Errorf("%s: %s", names[i], c.Subject)
		}
	}
	dir := "/usr/share/ca-certificates/mozilla"
	for i, n := range names {
		data, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Logf("no %s here (%v): the bundle comparison is skipped", dir, err)
			return
		}
		if got, err := parsePEM(data, n); err != nil || !got[0].Equal(certs[i]) {
			t.Errorf("%s differs from %s: run make curated-roots", n, dir)
		}
	}
}

// Zones: the longest suffix wins, add keeps the default roots, replace
// drops them; Describe names the root and its membership of the curated set.
func TestSet(t *testing.T) {
	t.Parallel()
	ca, err := testca.New("zone root")
	if err != nil {
		t.Fatal(err)
	}
	other, err := testca.New("default root")
	if err != nil {
		t.Fatal(err)
	}
	def := x509.NewCertPool()
	def.AddCert(other.Certificate())
	s, err := NewSet(def, []Zone{
		{Domains: []string{"example.org"}, Certs: []*x509.Certificate{ca.Certificate()}},
		{Domains: []string{".private.example.org"}, Certs: []*x509.Certificate{ca.Certificate()}, Replace: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	trusts := func(domain string, c *testca.CA) bool {
		_, err := c.Certificate().Verify(x509.VerifyOptions{Roots: s.For(domain)})
		return err == nil
	}
	for _, tc := range []struct {
		domain      string
		ca, otherCA bool
	}{
		{"example.com", false, true},
		{"example.org", true, true},
		{"mail.example.org", true, true},
		{"private.example.org", true, false},
		{"a.private.example.org", true, false},
		{"notexample.org", false, true},
	} {
		if trusts(tc.domain, ca) != tc.ca || trusts(tc.domain, other) != tc.otherCA {
			t.Errorf("%s: ca %v other %v", tc.domain, trusts(tc.domain, ca), trusts(tc.domain, other))
		}
	}
	if _, err := NewSet(def, []Zone{{Domains: []string{"bad..name"}}}); err == nil {
		t.Error("invalid domain accepted")
	}
	curated, _ := CuratedCerts()
	if r, ok := Describe([]*x509.Certificate{curated[0]}); !ok || !r.Curated || !strings.Contains(r.Subject, "ISRG Root X1") {
		t.Errorf("Describe(ISRG) = %+v", r)
	}
	if r, ok := Describe([]*x509.Certificate{ca.Certificate()}); !ok || r.Curated || len(r.SHA256) != 64 {
		t.Errorf("Describe(test CA) = %+v", r)
	}
	if _, err := BasePool("everything", ""); err == nil {
		t.Error("unknown base accepted")
	}
	if p, err := BasePool(Curated, ""); err != nil || p.Equal(x509.NewCertPool()) {
		t.Errorf("curated pool: %v", err)
	}
}
