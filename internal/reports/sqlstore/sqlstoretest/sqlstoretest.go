// Package sqlstoretest opens fresh report stores for tests of the packages
// built on them (ingest, HTTP, mailboxes): a SQLite file in the test's
// temporary directory, a PostgreSQL schema of its own, or both in turn.
// Only tests import it.
package sqlstoretest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/reportstest"
	"github.com/mailsts/mailsts/internal/reports/sqlstore"
)

// OpenSQLite opens a store in a new SQLite file, closed at cleanup.
func OpenSQLite(t testing.TB) reports.Store {
	t.Helper()
	st, err := sqlstore.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "reports.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// OpenPostgres opens a store in a new schema of the PostgreSQL test server
// (reportstest.PostgresDSN), closed and dropped at cleanup; it skips when
// the server is unreachable.
func OpenPostgres(t testing.TB) reports.Store {
	t.Helper()
	dsn := reportstest.PostgresDSN(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := sqlstore.OpenPostgres(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// Backends runs f against a fresh SQLite and PostgreSQL store, in
// parallel subtests.
func Backends(t *testing.T, f func(t *testing.T, st reports.Store)) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		f(t, OpenSQLite(t))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		f(t, OpenPostgres(t))
	})
}
