package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/mailsts/mailsts/internal/reports"
)

// ErrBadSpec means a database spec is neither sqlite:PATH nor a
// postgres:// URL. Fix the flag or configuration.
var ErrBadSpec = errors.New("want sqlite:PATH or postgres://…")

// DefaultFile is the SQLite file Open uses in the state directory when
// the spec is empty.
const DefaultFile = "reports.db"

// IsPostgres reports whether spec names a PostgreSQL database
// (postgres:// or postgresql://).
func IsPostgres(spec string) bool {
	return strings.HasPrefix(spec, "postgres://") || strings.HasPrefix(spec, "postgresql://")
}

// CheckSpec reports, without opening anything, whether spec is a database
// spec Open takes: an error wrapping ErrBadSpec if not.
func CheckSpec(spec string) error {
	if spec == "" || IsPostgres(spec) || strings.HasPrefix(spec, "sqlite:") {
		return nil
	}
	return fmt.Errorf("%q: %w", spec, ErrBadSpec)
}

// Open opens the store a spec names: a postgres:// (or postgresql://) URL,
// sqlite:PATH, or "" for DefaultFile in stateDir; the directory of a
// SQLite file is created (mode 0750) when missing. Any other spec fails
// with an error wrapping ErrBadSpec, before anything is opened or created.
// An unwritable directory wraps reports.ErrStorage. A nil logger discards.
func Open(ctx context.Context, spec, stateDir string, logger *slog.Logger) (reports.Store, error) {
	switch {
	case IsPostgres(spec):
		return OpenPostgres(ctx, spec, logger)
	case strings.HasPrefix(spec, "sqlite:"):
		spec = strings.TrimPrefix(spec, "sqlite:")
	case spec == "":
		spec = filepath.Join(stateDir, DefaultFile)
	default:
		return nil, fmt.Errorf("%q: %w", spec, ErrBadSpec)
	}
	if dir := filepath.Dir(spec); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			// An unwritable state directory is a storage fault: the
			// mail pipe must tempfail so the report is not bounced.
			return nil, fmt.Errorf("%w: %w", reports.ErrStorage, err)
		}
	}
	return OpenSQLite(ctx, spec, logger)
}
