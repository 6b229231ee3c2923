//go:build unix

package sqlitedb

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestChownLikeDir(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED, NOT PASSED: giving files to another user needs root (TestChownTarget covers the decision)")
	}
	const uid, gid = 54321, 54320
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "cache.db")
	for _, p := range []string{path, path + "-wal"} {
		if err := os.WriteFile(p, []byte("x"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if err := ChownLikeDir(path); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != uid || st.Gid != gid {
			t.Errorf("%s owned by %d:%d, want %d:%d", p, st.Uid, st.Gid, uid, gid)
		}
	}
	// Root's own directory: files stay root's.
	own := filepath.Join(t.TempDir(), "c.db")
	if err := os.WriteFile(own, []byte("x"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := ChownLikeDir(own); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(own); fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Error("file in root's directory given away")
	}
}
