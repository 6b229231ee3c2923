package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/policyd"
	"github.com/mailsts/mailsts/internal/stscache"
	"github.com/mailsts/mailsts/mtasts"
)

// relPath returns abs relative to the working directory (tests run in
// parallel and cannot change directory).
func relPath(t *testing.T, abs string) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(wd, abs)
	if err != nil || filepath.IsAbs(rel) {
		t.Fatalf("relative path of %s: %q, %v", abs, rel, err)
	}
	return rel
}

func statusJSON(t *testing.T, args ...string) (int, cacheStatusReport) {
	t.Helper()
	code, out, errs := runCLI(t, append([]string{"cache", "status", "--json"}, args...)...)
	var rep cacheStatusReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("cache status --json: %v\nstdout: %s\nstderr: %s", err, out, errs)
	}
	return code, rep
}

// Issue #10 item 6: `mailsts cache status` says which store is configured
// and in use, where, how many entries, whether it is durable and writable,
// and what the running policyd recorded; it changes nothing.
func TestCacheStatus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	state := t.TempDir()
	path := filepath.Join(state, policyd.CacheFileName)

	code, rep := statusJSON(t, "--state-dir", state)
	if code != ExitOK || rep.Configured != "sqlite" || rep.Path != path || rep.Exists || !rep.Writable || !rep.Durable {
		t.Errorf("before any file: %d %+v", code, rep)
	}
	if _, err := os.Stat(path); err == nil {
		t.Error("cache status created the file")
	}

	s, err := stscache.Open(ctx, stscache.Config{Path: path, NoFallback: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"a.example", "b.example"} {
		s.Put(ctx, &mtasts.Entry{Domain: d, FetchedAt: time.Now(), NoPolicyUntil: time.Now().Add(time.Hour)})
	}
	s.Close(ctx)
	code, rep = statusJSON(t, "--state-dir", state)
	if code != ExitOK || !rep.Exists || rep.Entries == nil || *rep.Entries != 2 || len(rep.Problems) != 0 {
		t.Errorf("with two entries: %d %+v", code, rep)
	}
	code, out, _ := runCLI(t, "cache", "status", "--state-dir", state)
	for _, want := range []string{"configured store: sqlite", "file:             " + path, "entries:          2", "durable:          yes", "no status file"} {
		if code != ExitOK || !strings.Contains(out, want) {
			t.Errorf("cache status: %d, no %q in\n%s", code, want, out)
		}
	}

	// A running policyd (this process stands in for it) that fell back to
	// memory: a problem.
	err = policyd.WriteStatus(filepath.Join(state, policyd.StatusFileName), policyd.StoreStatus{
		PID: os.Getpid(), Started: time.Now(), Kind: "memory", Where: "memory (fallback)", Degraded: "permission denied",
		ResolverValidates: policyd.ValidatesNo,
	})
	if err != nil {
		t.Fatal(err)
	}
	code, rep = statusJSON(t, "--state-dir", state)
	if code != ExitFailure || rep.Daemon == nil || !rep.Daemon.Running || rep.Daemon.Degraded == "" || len(rep.Problems) != 1 || rep.Daemon.ResolverValidates != "no" {
		t.Errorf("degraded daemon: %d %+v", code, rep)
	}
	code, out, _ = runCLI(t, "cache", "status", "--state-dir", state)
	if code != ExitFailure || !strings.Contains(out, "FELL BACK TO MEMORY") || !strings.Contains(out, "PROBLEM:") ||
		!strings.Contains(out, "resolver validates DNSSEC: no") {
		t.Errorf("degraded daemon, text: %d\n%s", code, out)
	}

	code, rep = statusJSON(t, "--cache", "memory", "--state-dir", t.TempDir())
	if code != ExitFailure || rep.Configured != "memory" || rep.Durable {
		t.Errorf("memory: %d %+v", code, rep)
	}
}

// Issue #10 item 5: status reports a damaged file and leaves it alone
// (policyd, or another cache command, sets it aside).
func TestCacheStatusDamaged(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	path := filepath.Join(state, policyd.CacheFileName)
	if err := os.WriteFile(path, []byte(strings.Repeat("garbage ", 2000)), 0o600); err != nil {
		t.Fatal(err)
	}
	code, rep := statusJSON(t, "--state-dir", state)
	if code != ExitFailure || rep.Damaged == "" {
		t.Errorf("damaged file: %d %+v", code, rep)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != strings.Repeat("garbage ", 2000) {
		t.Errorf("cache status changed the damaged file: %v", err)
	}
	// While a running policyd uses the file (this process stands in for
	// it), the other cache commands refuse to set it aside under it.
	status := filepath.Join(state, policyd.StatusFileName)
	if err := policyd.WriteStatus(status, policyd.StoreStatus{PID: os.Getpid(), Kind: "sqlite", Where: path, Durable: true}); err != nil {
		t.Fatal(err)
	}
	code, _, errs := runCLI(t, "cache", "list", "--state-dir", state)
	if code != ExitError || !strings.Contains(errs, "restart policyd") {
		t.Errorf("cache list on a damaged file policyd uses: %d %s", code, errs)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != strings.Repeat("garbage ", 2000) {
		t.Errorf("cache list changed the damaged file under policyd: %v", err)
	}
	os.Remove(status)
	// With no policyd on it, any other cache command repairs it, saying so.
	code, _, errs = runCLI(t, "cache", "list", "--state-dir", state)
	if code != ExitOK || !strings.Contains(errs, "level=ERROR") {
		t.Errorf("cache list on a damaged file: %d %s", code, errs)
	}
	code, rep = statusJSON(t, "--state-dir", state)
	if code != ExitOK || len(rep.SetAside) != 1 || !strings.HasPrefix(rep.SetAside[0], path+stscache.DamagedSuffix) {
		t.Errorf("after the repair: %d %+v", code, rep)
	}
}

// Issue #10 item 6: --state-dir relstate (a relative path) works for the
// cache commands; it failed with "invalid uri authority".
func TestCacheRelativeStateDir(t *testing.T) {
	t.Parallel()
	abs := filepath.Join(t.TempDir(), "relstate")
	code, out, errs := runCLI(t, "cache", "list", "--state-dir", relPath(t, abs))
	if code != ExitOK || !strings.HasPrefix(out, "DOMAIN") {
		t.Fatalf("cache list --state-dir relative: %d %q %q", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(abs, policyd.CacheFileName)); err != nil {
		t.Errorf("no cache file under the relative state dir: %v", err)
	}
}

// Issue #11 item 11: --db sqlite:reports.db (a relative path) works; it
// failed with "invalid uri authority".
func TestTLSRPTRelativeDB(t *testing.T) {
	t.Parallel()
	abs := filepath.Join(t.TempDir(), "reports.db")
	code, _, errOut := runStdin(t, testdataFile(t, "f10c.json"), "", "tlsrpt", "ingest", "--dkim", "off", "--db", "sqlite:"+relPath(t, abs))
	if code != ExitOK {
		t.Fatalf("ingest --db sqlite:RELATIVE: exit %d %s", code, errOut)
	}
	if fi, err := os.Stat(abs); err != nil || fi.Size() == 0 {
		t.Errorf("no report database at %s: %v", abs, err)
	}
}
