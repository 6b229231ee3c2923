package cli

import (
	"bytes"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/mailsts/mailsts/internal/dashboard"
)

// With dashboard users, the API listener serves the dashboard, and both
// it and the API refuse requests without a sign-in or a token; the
// report listener serves neither.
func TestServeDashboardNeedsSignIn(t *testing.T) {
	t.Parallel()
	hash, err := dashboard.HashPassword("a long password", 4)
	if err != nil {
		t.Fatal(err)
	}
	tok := dashboard.NewToken()
	cfg := configFile(t, "dashboard:\n  users:\n    - name: alice\n      password_hash: \""+hash+"\"\n    - name: bot\n      token_hash: "+dashboard.HashToken(tok)+"\n      domains: [example.org]\n")
	reportURL, apiURL := startServe(t, "--config", cfg, "--listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0")
	for _, p := range []string{"/api/v1/summary", "/api/v1/rejected"} {
		if code, _, _ := httpDo(t, "GET", apiURL+p, "", nil); code != http.StatusUnauthorized {
			t.Errorf("GET %s without credentials: %d", p, code)
		}
	}
	if code, _, _ := httpDo(t, "GET", apiURL+"/api/v1/summary", "Bearer "+tok, nil); code != http.StatusOK {
		t.Errorf("API with a user token: %d", code)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(apiURL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Errorf("dashboard without sign-in: %s %s", resp.Status, resp.Header.Get("Location"))
	}
	for _, p := range []string{"/", "/login", "/api/v1/summary"} {
		if code, _, _ := httpDo(t, "GET", reportURL+p, "", nil); code != http.StatusNotFound {
			t.Errorf("report listener GET %s: %d, want 404", p, code)
		}
	}
	// Sign in and read the overview.
	jar, _ := cookiejar.New(nil)
	c.Jar = jar
	resp, err = c.Get(apiURL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no CSRF field: %s", b)
	}
	resp, err = c.PostForm(apiURL+"/login", url.Values{"csrf": {string(m[1])}, "name": {"alice"}, "password": {"a long password"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: %s", resp.Status)
	}
	resp, err = c.Get(apiURL + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(b, []byte("Overview")) {
		t.Errorf("overview after sign-in: %s", resp.Status)
	}
}

// A bad user entry stops serve with a usage error.
func TestServeDashboardBadUser(t *testing.T) {
	t.Parallel()
	cfg := configFile(t, "dashboard:\n  users:\n    - name: alice\n      password_hash: plain-text\n")
	var errb bytes.Buffer
	env := Env{Stdout: io.Discard, Stderr: &errb, Getenv: tempStateEnv(t)}
	sr, code := prepareServe(t.Context(), env, []string{"--db", "sqlite:" + t.TempDir() + "/r.db", "--config", cfg, "--listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0"})
	if sr != nil || code != ExitUsage || !strings.Contains(errb.String(), "bcrypt") {
		t.Errorf("bad password_hash: exit %d: %s", code, errb.String())
	}
}

func TestDashboardCommand(t *testing.T) {
	t.Parallel()
	var out, errb bytes.Buffer
	env := Env{Stdin: strings.NewReader("a long password\n"), Stdout: &out, Stderr: &errb}
	if code := Main(t.Context(), []string{"dashboard", "hash-password", "--cost", "4"}, env); code != ExitOK {
		t.Fatalf("hash-password: %d %s", code, errb.String())
	}
	if err := dashboard.CheckUsers([]dashboard.User{{Name: "a", PasswordHash: strings.TrimSpace(out.String())}}); err != nil {
		t.Errorf("hash-password printed %q: %v", out.String(), err)
	}
	env.Stdin = strings.NewReader("short\n")
	if code := Main(t.Context(), []string{"dashboard", "hash-password", "--cost", "4"}, env); code != ExitError {
		t.Errorf("short password: exit %d", code)
	}
	out.Reset()
	if code := Main(t.Context(), []string{"dashboard", "new-token"}, env); code != ExitOK {
		t.Fatal(code)
	}
	m := regexp.MustCompile(`token: ([0-9a-f]{64})\ntoken_hash: (sha256:[0-9a-f]{64})\n`).FindStringSubmatch(out.String())
	if m == nil || dashboard.HashToken(m[1]) != m[2] {
		t.Errorf("new-token printed %q", out.String())
	}
	if code := Main(t.Context(), []string{"dashboard", "nope"}, env); code != ExitUsage {
		t.Errorf("unknown subcommand: %d", code)
	}
}

// dashboard.alerts: the engine runs, its metrics are on the API listener
// for a token of every domain, and a bad rule name stops serve.
func TestServeAlerts(t *testing.T) {
	t.Parallel()
	tok := dashboard.NewToken()
	state := t.TempDir() + "/alerts.json"
	cfg := configFile(t, "dashboard:\n  users:\n    - name: prom\n      token_hash: "+dashboard.HashToken(tok)+
		"\n  alerts:\n    enabled: true\n    state_file: "+state+"\n    digest_hour: -1\n")
	_, apiURL := startServe(t, "--config", cfg, "--listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0")
	code, _, body := httpDo(t, "GET", apiURL+"/metrics", "Bearer "+tok, nil)
	if code != http.StatusOK || !strings.Contains(body, "mailsts_alerts_open") {
		t.Errorf("metrics: %d\n%s", code, body)
	}
	if code, _, _ := httpDo(t, "GET", apiURL+"/metrics", "", nil); code != http.StatusUnauthorized {
		t.Errorf("metrics without a token: %d", code)
	}
	bad := configFile(t, "dashboard:\n  alerts:\n    enabled: true\n    rules: [nope]\n")
	var errb bytes.Buffer
	env := Env{Stdout: io.Discard, Stderr: &errb, Getenv: tempStateEnv(t)}
	sr, c := prepareServe(t.Context(), env, []string{"--db", "sqlite:" + t.TempDir() + "/r.db", "--config", bad, "--listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0"})
	if sr != nil || c != ExitUsage || !strings.Contains(errb.String(), "unknown rule") {
		t.Errorf("bad rule: exit %d: %s", c, errb.String())
	}
}
