package sqlstore

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/reportstest"
)

// The openers of sqlstoretest, which this package's own tests cannot
// import (it imports sqlstore).

func openTestSQLite(t testing.TB) reports.Store {
	t.Helper()
	st, err := OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "reports.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// openTestPostgres opens a store in a schema of its own
// (reportstest.PostgresDSN); it skips when the server is unreachable.
func openTestPostgres(t testing.TB) reports.Store {
	t.Helper()
	dsn := reportstest.PostgresDSN(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := OpenPostgres(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// backends runs f against a fresh SQLite and PostgreSQL store.
func backends(t *testing.T, f func(t *testing.T, st reports.Store)) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		f(t, openTestSQLite(t))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		f(t, openTestPostgres(t))
	})
}

// summaryAndRaw returns Summary's answer for f (through the rollup where
// it can) and the direct aggregation over the stored rows, which must be
// equal.
func summaryAndRaw(t *testing.T, ctx context.Context, st reports.Store, f reports.Filter) (got, raw []reports.SummaryRow) {
	t.Helper()
	got, err := st.Summary(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	raw, err = st.(*sqlStore).summaryRaw(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	return got, raw
}
