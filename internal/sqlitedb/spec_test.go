package sqlitedb

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestResolveSpec(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		spec, postgres, path string
		bad                  bool
	}{
		{spec: "postgres://u@h/db", postgres: "postgres://u@h/db"},
		{spec: "postgresql://u@h/db?search_path=x", postgres: "postgresql://u@h/db?search_path=x"},
		{spec: "sqlite:" + filepath.Join(dir, "a", "b.db"), path: filepath.Join(dir, "a", "b.db")},
		{spec: "", path: filepath.Join(dir, "state", "default.db")},
		{spec: "mysql://u@h/db", bad: true},
		{spec: "/var/lib/x.db", bad: true}, // a bare path: say sqlite: to mean SQLite
		{spec: "sqlite:", bad: true},
	} {
		pg, path, err := ResolveSpec(c.spec, filepath.Join(dir, "state"), "default.db")
		if c.bad {
			if !errors.Is(err, ErrBadSpec) || !errors.Is(CheckSpec(c.spec), ErrBadSpec) {
				t.Errorf("%q: %v, %v; want ErrBadSpec from both", c.spec, err, CheckSpec(c.spec))
			}
			continue
		}
		if err != nil || pg != c.postgres || path != c.path {
			t.Errorf("%q = %q, %q, %v; want %q, %q", c.spec, pg, path, err, c.postgres, c.path)
		}
		if err := CheckSpec(c.spec); err != nil {
			t.Errorf("CheckSpec(%q) = %v", c.spec, err)
		}
		if path != "" {
			if fi, err := os.Stat(filepath.Dir(path)); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o750 {
				t.Errorf("%q: directory of the file not created 0750: %v %v", c.spec, fi, err)
			}
		}
	}
	// A directory that cannot be created is an error of its own, not a bad spec.
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	if _, _, err := ResolveSpec("sqlite:"+filepath.Join(file, "x.db"), dir, "d.db"); err == nil || errors.Is(err, ErrBadSpec) {
		t.Errorf("unwritable directory: %v", err)
	}
}
