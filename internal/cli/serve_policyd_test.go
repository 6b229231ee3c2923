package cli

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailsts/mailsts/internal/dashboard"
	"github.com/mailsts/mailsts/internal/metrics"
)

// TestServeDashboardPolicyd: dashboard.policyd_metrics adds the policy
// daemon page, read from the metrics listener; a URL that is not one is
// a usage error.
func TestServeDashboardPolicyd(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.CacheOpened(true, false)
	m.CacheSize(func() int { return 12 })
	pd := httptest.NewServer(metrics.Handler(reg))
	defer pd.Close()
	hash, err := dashboard.HashPassword("a long password", 4)
	if err != nil {
		t.Fatal(err)
	}
	users := "dashboard:\n  users:\n    - name: alice\n      password_hash: \"" + hash + "\"\n"
	_, apiURL := startServe(t, "--config", configFile(t, users+"  policyd_metrics: "+pd.URL+"/metrics\n"), "--listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0")
	c := signIn(t, apiURL, "alice", "a long password")
	resp, err := c.Get(apiURL + "/policyd")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `data-k="entries">12<`) || !strings.Contains(string(b), `data-k="durable">yes<`) {
		t.Errorf("/policyd: %s\n%s", resp.Status, b)
	}

	for _, bad := range []string{"ftp://127.0.0.1/metrics", "127.0.0.1:9461", "http:///metrics"} {
		var errb bytes.Buffer
		env := Env{Stdout: io.Discard, Stderr: &errb, Getenv: tempStateEnv(t)}
		cfg := configFile(t, users+"  policyd_metrics: \""+bad+"\"\n")
		sr, code := prepareServe(t.Context(), env, []string{"--db", "sqlite:" + t.TempDir() + "/r.db", "--config", cfg, "--listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0"})
		if sr != nil || code != ExitUsage || !strings.Contains(errb.String(), "policyd_metrics") {
			if sr != nil {
				sr.close()
			}
			t.Errorf("policyd_metrics %q: exit %d: %s", bad, code, errb.String())
		}
	}
}
