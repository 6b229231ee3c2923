package cli

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mailsts/mailsts/internal/dashboard"
	"github.com/mailsts/mailsts/mtasts"
)

// signIn signs name in to the dashboard at base with a password.
func signIn(t *testing.T, base, name, password string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(base + "/login")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no CSRF field: %s", b)
	}
	resp, err = c.PostForm(base+"/login", url.Values{"csrf": {string(m[1])}, "name": {name}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in of %s: %s", name, resp.Status)
	}
	return c
}

// TestServeDashboardPolicies: with a publish section, the dashboard lists
// the hosted policies with their mode and id, only those a user may see,
// and only to signed-in users.
func TestServeDashboardPolicies(t *testing.T) {
	t.Parallel()
	n := pubNet.Net(t)
	hash, err := dashboard.HashPassword("a long password", 4)
	if err != nil {
		t.Fatal(err)
	}
	cfg := pubConfigDomains(t, n, fourDomains, "")
	b, _ := os.ReadFile(cfg)
	b = append(b, []byte("dashboard:\n  users:\n    - name: alice\n      password_hash: \""+hash+"\"\n    - name: bob\n      password_hash: \""+hash+"\"\n      domains: [stale.example]\n")...)
	os.WriteFile(cfg, b, 0o600)
	_, apiURL := startServe(t, "--config", cfg, "--listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0",
		"--db", "sqlite:"+filepath.Join(t.TempDir(), "r.db"))
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(apiURL + "/policies")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("policies page without sign-in: %s", resp.Status)
	}
	get := func(c *http.Client) string {
		resp, err := c.Get(apiURL + "/policies")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("policies page: %s", resp.Status)
		}
		return string(b)
	}
	page := get(signIn(t, apiURL, "alice", "a long password"))
	want := pubPolicy(t, mtasts.ModeTesting)
	for _, w := range []string{`<a href="/policies" aria-current="page">Hosted policies</a>`, `<tr data-domain="hosted.example"><td>hosted.example</td><td>testing</td><td><code>` + want.ID + `</code>`,
		`data-domain="stale.example"`, `data-domain="badmx.example"`, "not checked yet"} {
		if !strings.Contains(page, w) {
			t.Errorf("alice's page lacks %s:\n%s", w, page)
		}
	}
	page = get(signIn(t, apiURL, "bob", "a long password"))
	if !strings.Contains(page, `data-domain="stale.example"`) || strings.Contains(page, `data-domain="hosted.example"`) {
		t.Errorf("bob (stale.example only) sees:\n%s", page)
	}
}
