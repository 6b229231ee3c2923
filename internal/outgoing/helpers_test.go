package outgoing

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/reports/reportstest"
)

// opener opens another Store on the same database (another node).
type opener func(t *testing.T, o Options) *Store

// backends runs f against a fresh SQLite file and a fresh PostgreSQL
// schema (skipped, saying why, when the server is absent).
func backends(t *testing.T, f func(t *testing.T, open opener)) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "send.db")
		f(t, func(t *testing.T, o Options) *Store {
			st, err := OpenSQLite(context.Background(), path, o)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		})
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		dsn := reportstest.PostgresDSN(t)
		f(t, func(t *testing.T, o Options) *Store {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			st, err := OpenPostgres(ctx, dsn, o)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		})
	})
}

var day1 = time.Date(2026, 3, 14, 10, 0, 0, 0, time.UTC)

func stsPolicy() Policy {
	return Policy{Type: "sts", Strings: []string{"version: STSv1", "mode: enforce", "mx: *.mail.example.com", "max_age: 86400"},
		MXHosts: []string{"*.mail.example.com"}}
}

func ok(domain string, t time.Time) Result {
	return Result{Time: t, PolicyDomain: domain, Policy: stsPolicy()}
}

func fail(domain string, t time.Time, fs ...Failure) Result {
	return Result{Time: t, PolicyDomain: domain, Policy: stsPolicy(), Failures: fs}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
