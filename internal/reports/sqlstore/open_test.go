package sqlstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestOpenSpec(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	for _, spec := range []string{"mysql://x", "reports.db", "sqlite"} {
		if _, err := Open(ctx, spec, dir, nil); !errors.Is(err, ErrBadSpec) {
			t.Errorf("%q: %v, want ErrBadSpec", spec, err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("a bad spec created %v", entries)
	}
	st, err := Open(ctx, "", filepath.Join(dir, "state"), nil)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if _, err := os.Stat(filepath.Join(dir, "state", DefaultFile)); err != nil {
		t.Errorf("default file: %v", err)
	}
	st, err = Open(ctx, "sqlite:"+filepath.Join(dir, "sub", "r.db"), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if _, err := os.Stat(filepath.Join(dir, "sub", "r.db")); err != nil {
		t.Errorf("sqlite: spec: %v", err)
	}
	if !IsPostgres("postgresql://h/db") || !IsPostgres("postgres://h/db") || IsPostgres("sqlite:/x") {
		t.Error("IsPostgres")
	}
}
