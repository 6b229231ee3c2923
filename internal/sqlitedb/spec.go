package sqlitedb

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ErrBadSpec: a database spec (a --db flag, a db: key) that is neither
// sqlite:PATH, a postgres:// (or postgresql://) URL, nor empty. The
// stores of mailsts (reports, the results of the sending side, the
// outbox) all take these specs and return errors wrapping this one.
var ErrBadSpec = errors.New("want sqlite:PATH or postgres://…")

// IsPostgres reports whether spec names a PostgreSQL database.
func IsPostgres(spec string) bool {
	return strings.HasPrefix(spec, "postgres://") || strings.HasPrefix(spec, "postgresql://")
}

// CheckSpec reports, without opening or creating anything, whether spec
// is a database spec: an error wrapping ErrBadSpec if not.
func CheckSpec(spec string) error {
	if spec == "" || IsPostgres(spec) || strings.HasPrefix(spec, "sqlite:") && spec != "sqlite:" {
		return nil
	}
	return fmt.Errorf("%q: %w", spec, ErrBadSpec)
}

// ResolveSpec returns what spec names: a PostgreSQL URL (postgres set), or
// the path of a SQLite file (path set): sqlite:PATH, or defaultFile in
// stateDir for an empty spec. For a SQLite file it creates the file's
// directory (mode 0750) when missing; an error doing so is returned as is
// (callers classify it as a storage fault). A bad spec wraps ErrBadSpec,
// before anything is created.
func ResolveSpec(spec, stateDir, defaultFile string) (postgres, path string, err error) {
	switch {
	case IsPostgres(spec):
		return spec, "", nil
	case strings.HasPrefix(spec, "sqlite:"):
		path = strings.TrimPrefix(spec, "sqlite:")
	case spec == "":
		path = filepath.Join(stateDir, defaultFile)
	default:
		return "", "", fmt.Errorf("%q: %w", spec, ErrBadSpec)
	}
	if path == "" {
		return "", "", fmt.Errorf("%q: %w", spec, ErrBadSpec)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return "", "", err
	}
	return "", path, nil
}
