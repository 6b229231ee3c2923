package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailsts/mailsts/tlsrpt"
)

// startServe prepares `mailsts serve` with args (plus a private
// database) and runs it until the test ends. It returns the base URLs of
// the report listener and, when there is one, of the API listener.
func startServe(t *testing.T, args ...string) (reportURL, apiURL string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var errb bytes.Buffer
	env := Env{Stdout: io.Discard, Stderr: &errb, Getenv: tempStateEnv(t)}
	args = append([]string{"--db", "sqlite:" + filepath.Join(t.TempDir(), "r.db"), "--log-level", "error"}, args...)
	sr, code := prepareServe(ctx, env, args)
	if sr == nil {
		cancel()
		t.Fatalf("prepareServe %v: exit %d: %s", args, code, errb.String())
	}
	done := make(chan error, 1)
	go func() { done <- sr.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop")
		}
		sr.close()
	})
	reportURL = "http://" + sr.servers[0].ln.Addr().String()
	if len(sr.servers) > 1 {
		apiURL = "http://" + sr.servers[1].ln.Addr().String()
	}
	return reportURL, apiURL
}

// tempStateEnv is a test's environment: nothing set but
// STATE_DIRECTORY, a directory of the test's own, so that serve's state
// (dashboard sessions, policyd's status, outbox, alert state) never
// lands in the machine's /var/lib/mailsts.
func tempStateEnv(t *testing.T) func(string) string {
	dir := t.TempDir()
	return func(k string) string {
		if k == "STATE_DIRECTORY" {
			return dir
		}
		return ""
	}
}

func httpDo(t *testing.T, method, url, token string, body []byte) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", tlsrpt.MediaTypeJSON)
	}
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, resp.Header, string(b)
}

// TestServeAPIOffReportListener: issue #11.1. The report listener serves
// the report POST path and /healthz only; the API is on its own loopback
// listener. RPT-HTTP-1, RPT-HTTP-3.
func TestServeAPIOffReportListener(t *testing.T) {
	t.Parallel()
	rep, api := startServe(t, "--listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0", "--path", "/reports")
	if api == "" {
		t.Fatal("no API listener")
	}
	if code, _, body := httpDo(t, http.MethodPost, rep+"/reports", "", testdataFile(t, "f10c.json")); code != http.StatusCreated {
		t.Fatalf("POST report: %d %s", code, body)
	}
	for _, path := range []string{"/api/v1/summary", "/api/v1/failures", "/api/v1/rejected", "/api/v1/reports/5065427c-23d3-47ca-b6e0-946ea0e8c4be"} {
		if code, _, body := httpDo(t, http.MethodGet, rep+path, "", nil); code != http.StatusNotFound || strings.Contains(body, "Company-X") {
			t.Errorf("report listener GET %s: %d %q, want 404 and no data", path, code, body)
		}
	}
	if code, _, _ := httpDo(t, http.MethodGet, rep+"/healthz", "", nil); code != http.StatusOK {
		t.Errorf("report listener /healthz: %d", code)
	}
	code, _, body := httpDo(t, http.MethodGet, api+"/api/v1/summary", "", nil)
	if code != http.StatusOK || !strings.Contains(body, `"successful_sessions": 5326`) {
		t.Errorf("API listener summary: %d %s", code, body)
	}
	// Reports are not received on the API listener.
	if code, _, _ := httpDo(t, http.MethodPost, api+"/reports", "", testdataFile(t, "f10c.json")); code != http.StatusNotFound {
		t.Errorf("API listener POST: %d", code)
	}
}

func writeToken(t *testing.T, tok string) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "api.token")
	if err := os.WriteFile(name, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

// TestServeAPIToken: issue #11.1. With a token file every API request
// needs the bearer token: 401 without it or with a wrong one, 200 with
// it; on the API listener and with --api-listen same.
func TestServeAPIToken(t *testing.T) {
	t.Parallel()
	const tok = "0123456789abcdef0123456789abcdef"
	file := writeToken(t, tok)
	check := func(t *testing.T, base string) {
		t.Helper()
		for _, h := range []string{"", "Bearer", "Bearer wrong-token-0123456789", "Basic " + tok, "Bearer " + tok + "x", "Bearer " + tok[:31]} {
			code, hdr, body := httpDo(t, http.MethodGet, base+"/api/v1/summary", h, nil)
			if code != http.StatusUnauthorized || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") || strings.Contains(body, "[") {
				t.Errorf("Authorization %q: %d %q", h, code, body)
			}
		}
		// Unknown API paths do not reveal themselves without the token.
		if code, _, _ := httpDo(t, http.MethodGet, base+"/api/v1/nope", "", nil); code != http.StatusUnauthorized {
			t.Errorf("unknown path without token: %d", code)
		}
		for _, h := range []string{"Bearer " + tok, "bearer " + tok} {
			if code, _, body := httpDo(t, http.MethodGet, base+"/api/v1/summary", h, nil); code != http.StatusOK {
				t.Errorf("Authorization %q: %d %s", h, code, body)
			}
		}
	}
	t.Run("own listener", func(t *testing.T) {
		t.Parallel()
		_, api := startServe(t, "--listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0", "--api-token-file", file)
		check(t, api)
	})
	t.Run("config file", func(t *testing.T) {
		t.Parallel()
		cfg := configFile(t, "serve: {listen: \"127.0.0.1:0\", api_listen: \"127.0.0.1:0\", api_token_file: "+file+"}\n")
		_, api := startServe(t, "--config", cfg)
		check(t, api)
	})
	t.Run("same", func(t *testing.T) {
		t.Parallel()
		rep, api := startServe(t, "--listen", "127.0.0.1:0", "--api-listen", "same", "--api-token-file", file)
		if api != "" {
			t.Errorf("a separate API listener with --api-listen same: %s", api)
		}
		check(t, rep)
		if code, _, _ := httpDo(t, http.MethodPost, rep+"/tlsrpt", "", testdataFile(t, "f10c.json")); code != http.StatusCreated {
			t.Errorf("POST report without token: %d", code)
		}
	})
}

// TestServeRefusesExposedAPI: issue #11.1. An API reachable from other
// hosts without a token is refused before anything listens.
func TestServeRefusesExposedAPI(t *testing.T) {
	t.Parallel()
	short := writeToken(t, "short")
	for _, args := range [][]string{
		{"--api-listen", "0.0.0.0:0"},
		{"--api-listen", ":0"},
		{"--api-listen", "[::]:0"},
		{"--api-listen", "192.0.2.1:8462"},
		{"--api-listen", "reports.example.org:8462"},
		{"--api-listen", "same"},
		{"--api-listen", "0.0.0.0:0", "--api-token-file", short},
		{"--api-listen", "0.0.0.0:0", "--api-token-file", filepath.Join(t.TempDir(), "missing")},
		{"--config", configFile(t, "serve: {api_listen: \"0.0.0.0:0\"}\n")},
		{"--config", configFile(t, "serve: {api_listen: same, api_token_file: "+short+"}\n")},
	} {
		args = append([]string{"serve", "--listen", "127.0.0.1:0", "--db", "sqlite:" + filepath.Join(t.TempDir(), "r.db")}, args...)
		if code, _, stderr := runStdin(t, nil, t.TempDir(), args...); code != ExitUsage {
			t.Errorf("%v: exit %d, want %d (%s)", args, code, ExitUsage, stderr)
		}
	}
}

// addrListener is a net.Listener that only reports an address.
type addrListener struct{ addr net.Addr }

func (l addrListener) Accept() (net.Conn, error) { return nil, net.ErrClosed }
func (l addrListener) Close() error              { return nil }
func (l addrListener) Addr() net.Addr            { return l.addr }

// TestWarnPlainReportListener: issue #11.1. A plain-HTTP report listener
// on a non-loopback address logs a warning; on loopback it does not.
func TestWarnPlainReportListener(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		ip   string
		warn bool
	}{{"0.0.0.0", true}, {"::", true}, {"192.0.2.1", true}, {"127.0.0.1", false}, {"::1", false}} {
		var buf bytes.Buffer
		log := slog.New(slog.NewTextHandler(&buf, nil))
		warnPlainReportListener(log, addrListener{&net.TCPAddr{IP: net.ParseIP(tc.ip), Port: 8460}})
		if got := strings.Contains(buf.String(), "level=WARN"); got != tc.warn {
			t.Errorf("%s: warned=%v, want %v (%s)", tc.ip, got, tc.warn, buf.String())
		}
	}
}

func configFile(t *testing.T, yaml string) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "reports.yml")
	if err := os.WriteFile(name, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

func TestCheckAPIExposure(t *testing.T) { // issue #11.1
	t.Parallel()
	for _, tc := range []struct {
		addr, token string
		ok          bool
	}{
		{"127.0.0.1:8462", "", true},
		{"[::1]:8462", "", true},
		{"localhost:8462", "", true},
		{"127.0.0.2:8462", "", true},
		{":8462", "", false},
		{"0.0.0.0:8462", "", false},
		{"[::]:8462", "", false},
		{"10.0.0.5:8462", "", false},
		{"api.example.org:8462", "", false},
		{"same", "", false},
		{"garbage", "", false},
		{"10.0.0.5:8462", "0123456789abcdef", true},
		{"same", "0123456789abcdef", true},
	} {
		err := checkAPIExposure(tc.addr, tc.token)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, errServeConfig)) {
			t.Errorf("checkAPIExposure(%q, token=%v) = %v, want ok=%v", tc.addr, tc.token != "", err, tc.ok)
		}
	}
}

func TestServeShutdown(t *testing.T) { // RPT-HTTP-3
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	env := Env{Stdout: io.Discard, Stderr: io.Discard, Getenv: tempStateEnv(t)}
	sr, code := prepareServe(ctx, env, []string{"--db", "sqlite:" + filepath.Join(t.TempDir(), "r.db"), "--listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0"})
	if sr == nil {
		t.Fatalf("exit %d", code)
	}
	defer sr.close()
	done := make(chan error, 1)
	go func() { done <- sr.run(ctx) }()
	rep := "http://" + sr.servers[0].ln.Addr().String()
	if code, _, _ := httpDo(t, http.MethodPost, rep+"/tlsrpt", "", testdataFile(t, "f10c.json")); code != http.StatusCreated {
		t.Errorf("POST: %d", code)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("shutdown: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("server did not stop")
	}
	for _, s := range sr.servers {
		if _, err := http.Get("http://" + s.ln.Addr().String() + "/healthz"); err == nil {
			t.Errorf("%s still serving after shutdown", s.name)
		}
	}
}
