//go:build unix

package cli

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Issue #10 item 6: a cache file that `mailsts cache` creates as root in a
// state directory owned by the daemon's user belongs to that user, so the
// daemon is not locked out.
func TestCacheFilesOwnedByStateDirOwner(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED, NOT PASSED: needs root to create files for another user (sqlitedb.TestChownTarget covers the decision)")
	}
	const uid, gid = 54321, 54320
	state := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(state, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(state, uid, gid); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runCLI(t, "cache", "purge", "--all", "--state-dir", state); code != ExitOK {
		t.Fatalf("cache purge --all: %d %s", code, errs)
	}
	entries, err := os.ReadDir(state)
	if err != nil || len(entries) == 0 {
		t.Fatalf("state dir: %v %v", entries, err)
	}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != uid || st.Gid != gid {
			t.Errorf("%s owned by %d:%d, want the state directory's %d:%d", e.Name(), st.Uid, st.Gid, uid, gid)
		}
	}
}
