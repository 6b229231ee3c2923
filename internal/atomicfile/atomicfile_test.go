package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	for i, content := range []string{"first\n", "second, longer than the first\n", ""} {
		perm := []os.FileMode{0o600, 0o644, 0o640}[i]
		if err := Write(path, []byte(content), perm); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil || string(b) != content {
			t.Fatalf("write %d: read %q, %v; want %q", i, b, err, content)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != perm {
			t.Fatalf("write %d: mode %v, %v; want %v", i, fi.Mode().Perm(), err, perm)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("%d files in the directory, want only the state file: %v", len(ents), ents)
	}
}

// A write that fails leaves the old content and no temporary file.
func TestWriteFailureKeepsOld(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	if err := Write(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The rename fails: a directory stands where the target would be.
	blocked := filepath.Join(dir, "blocked")
	if err := os.MkdirAll(filepath.Join(blocked, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Write(blocked, []byte("new"), 0o600); err == nil {
		t.Fatal("Write over a non-empty directory succeeded")
	}
	if err := Write(filepath.Join(dir, "missing", "state.json"), []byte("new"), 0o600); err == nil {
		t.Fatal("Write into a missing directory succeeded")
	}
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Errorf("state file %q after failed writes", b)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.Name() != "state.json" && e.Name() != "blocked" {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}
