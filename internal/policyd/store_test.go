package policyd

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mailsts/mailsts/internal/stscache"
)

// syncLog returns a text logger into a buffer safe for concurrent use and
// a function returning what it wrote.
func syncLog() (*slog.Logger, func() string) {
	var mu sync.Mutex
	var b strings.Builder
	w := writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return b.Write(p)
	})
	return slog.New(slog.NewTextHandler(w, nil)), func() string {
		mu.Lock()
		defer mu.Unlock()
		return b.String()
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// metricsText returns the daemon's /metrics page.
func metricsText(t *testing.T, r *running) string {
	t.Helper()
	resp, err := http.Get("http://" + r.metricsAddr.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Issue #10 item 5: a cache file whose pages are garbage (all but the
// header page) does not stall mail: policyd sets it aside, rebuilds it,
// says so (ERROR line, metric, status file) and fetches the policy again.
func TestDaemonDamagedCacheFile(t *testing.T) {
	t.Parallel()
	n := startNet(t, f2Domain())
	state := t.TempDir()
	cfg := testConfig(t, n, "sqlite", state)
	cfg.Metrics.Listen = "127.0.0.1:0"
	r := startDaemon(t, &Daemon{Config: cfg}, nil)
	if got := lookup(t, r.addr, "postfix", "example.com"); got != f2Secure {
		t.Fatalf("online: %q", got)
	}
	r.shutdown(t)

	path := filepath.Join(state, CacheFileName)
	b, err := os.ReadFile(path)
	if err != nil || len(b) < 2*4096 {
		t.Fatalf("cache file: %d bytes, %v", len(b), err)
	}
	for i := 4096; i < len(b); i++ {
		b[i] = byte(i*7 + 3)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}

	logger, getLogs := syncLog()
	r = startDaemon(t, &Daemon{Config: cfg, Logger: logger}, nil)
	if got := lookup(t, r.addr, "postfix", "example.com"); got != f2Secure {
		t.Errorf("with a damaged cache file and the network up: %q, want the policy fetched again", got)
	}
	if !strings.Contains(getLogs(), "level=ERROR") {
		t.Errorf("no ERROR line about the damaged file; log:\n%s", getLogs())
	}
	if m := metricsText(t, r); !strings.Contains(m, "mailsts_policyd_cache_repairs_total 1") ||
		!strings.Contains(m, "mailsts_policyd_cache_durable 1") {
		t.Errorf("metrics do not show the repair:\n%s", m)
	}
	st, err := ReadStatus(filepath.Join(state, StatusFileName))
	if err != nil {
		t.Fatal(err)
	}
	if st.Kind != "sqlite" || st.Repair == nil || !strings.HasPrefix(st.Repair.SetAside, path+stscache.DamagedSuffix) {
		t.Errorf("status file: %+v", st)
	}
	if _, err := os.Stat(st.Repair.SetAside); err != nil {
		t.Errorf("damaged file not kept: %v", err)
	}
}

// Issue #10 item 6: --state-dir relstate (a relative path) keeps the cache
// in a file; it fell back to memory with "invalid uri authority".
func TestDaemonRelativeStateDir(t *testing.T) {
	t.Parallel()
	n := startNet(t, f2Domain())
	abs := filepath.Join(t.TempDir(), "relstate")
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(wd, abs)
	if err != nil || filepath.IsAbs(rel) {
		t.Fatalf("relative path: %q, %v", rel, err)
	}
	cfg := testConfig(t, n, "sqlite", rel)
	st, err := OpenCache(context.Background(), cfg, StoreOptions{NoFallback: true}, nil)
	if err != nil {
		t.Fatalf("OpenCache(state dir %q) = %v", rel, err)
	}
	if cs := st.Status(); cs.Kind != "sqlite" || !cs.Durable || cs.Where != filepath.Join(abs, CacheFileName) {
		t.Errorf("store: kind %s, durable %v, where %s", cs.Kind, cs.Durable, cs.Where)
	}
	st.Close(context.Background())

	r := startDaemon(t, &Daemon{Config: cfg}, nil)
	if got := lookup(t, r.addr, "postfix", "example.com"); got != f2Secure {
		t.Fatalf("lookup: %q", got)
	}
	if s := r.d.store.Status(); s.Kind != "sqlite" || s.FellBack != nil {
		t.Errorf("daemon store: %s, fell back %v", s.Kind, s.FellBack)
	}
}

// Issue #10 item 6: a fall back to memory is loud: an ERROR line, the
// cache_degraded metric, and Store.Degraded (the status file's "degraded").
func TestDaemonFallbackIsLoud(t *testing.T) {
	t.Parallel()
	n := startNet(t, f2Domain())
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// The state directory is under a regular file: it cannot be created,
	// whoever runs the test (root included).
	cfg := testConfig(t, n, "sqlite", filepath.Join(blocker, "state"))
	cfg.Metrics.Listen = "127.0.0.1:0"
	logger, getLogs := syncLog()
	r := startDaemon(t, &Daemon{Config: cfg, Logger: logger}, nil)
	if got := lookup(t, r.addr, "postfix", "example.com"); got != f2Secure {
		t.Fatalf("lookup on the memory fallback: %q", got)
	}
	if s := r.d.store.Status(); s.Kind != "memory" || s.FellBack == nil || s.Durable {
		t.Errorf("store: %s, fell back %v, durable %v", s.Kind, s.FellBack, s.Durable)
	}
	if !strings.Contains(getLogs(), "level=ERROR") || !strings.Contains(getLogs(), "FALLING BACK TO MEMORY") {
		t.Errorf("fall back not logged at ERROR; log:\n%s", getLogs())
	}
	if m := metricsText(t, r); !strings.Contains(m, "mailsts_policyd_cache_degraded 1") ||
		!strings.Contains(m, "mailsts_policyd_cache_durable 0") || !strings.Contains(m, "mailsts_policyd_cache_entries 1") {
		t.Errorf("metrics do not show the fall back:\n%s", m)
	}
}
