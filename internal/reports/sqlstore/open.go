package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/sqlitedb"
)

// ErrBadSpec means a database spec is neither sqlite:PATH nor a
// postgres:// URL. Fix the flag or configuration.
var ErrBadSpec = sqlitedb.ErrBadSpec

// DefaultFile is the SQLite file Open uses in the state directory when
// the spec is empty.
const DefaultFile = "reports.db"

// IsPostgres reports whether spec names a PostgreSQL database
// (postgres:// or postgresql://).
func IsPostgres(spec string) bool { return sqlitedb.IsPostgres(spec) }

// CheckSpec reports, without opening anything, whether spec is a database
// spec Open takes: an error wrapping ErrBadSpec if not.
func CheckSpec(spec string) error { return sqlitedb.CheckSpec(spec) }

// Open opens the store a spec names: a postgres:// (or postgresql://) URL,
// sqlite:PATH, or "" for DefaultFile in stateDir; the directory of a
// SQLite file is created (mode 0750) when missing. Any other spec fails
// with an error wrapping ErrBadSpec, before anything is opened or created.
// An unwritable directory wraps reports.ErrStorage. A nil logger discards.
func Open(ctx context.Context, spec, stateDir string, logger *slog.Logger) (reports.Store, error) {
	pg, path, err := sqlitedb.ResolveSpec(spec, stateDir, DefaultFile)
	switch {
	case errors.Is(err, ErrBadSpec):
		return nil, err
	case err != nil:
		// An unwritable state directory is a storage fault: the mail
		// pipe must tempfail so the report is not bounced.
		return nil, fmt.Errorf("%w: %w", reports.ErrStorage, err)
	case pg != "":
		return OpenPostgres(ctx, pg, logger)
	}
	return OpenSQLite(ctx, path, logger)
}
