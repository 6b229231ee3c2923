package metrics

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// serve runs Serve on a port-0 loopback listener until the test ends and
// returns the address read back from the listener.
func serve(t *testing.T, pprof bool) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	if _, err := New(reg); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, reg, pprof, 10*time.Second, nil) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve after shutdown: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Serve did not stop within 30s")
		}
		if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
			c.Close()
			t.Error("metrics listener still accepting after shutdown")
		}
	})
	return ln.Addr().String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// The metrics listener serves the registry at /metrics, and no profiler
// unless asked to.
func TestServe(t *testing.T) {
	t.Parallel()
	addr := serve(t, false)
	code, body := get(t, "http://"+addr+"/metrics")
	if code != http.StatusOK || !strings.Contains(body, "mailsts_policyd_cache_durable 0") {
		t.Errorf("/metrics: status %d, body lacks mailsts_policyd_cache_durable:\n%s", code, body)
	}
	if code, _ := get(t, "http://"+addr+"/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("profiler served without pprof: status %d", code)
	}
}

// metrics.pprof (--pprof) adds Go's profiler to the metrics listener.
func TestServePprof(t *testing.T) {
	t.Parallel()
	addr := serve(t, true)
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap?debug=1", "/metrics"} {
		if code, _ := get(t, "http://"+addr+path); code != http.StatusOK {
			t.Errorf("%s: status %d", path, code)
		}
	}
}

// A listener that fails makes Serve return why.
func TestServeListenerFails(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	err = Serve(context.Background(), ln, prometheus.NewRegistry(), false, time.Second, nil)
	if err == nil || !strings.Contains(err.Error(), "metrics listener") {
		t.Errorf("Serve on a closed listener: %v", err)
	}
}
