package reports

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailsts/mailsts/tlsrpt"
)

// testPostgresDSN is the test server: 127.0.0.1:5432, database test, trust
// auth. MAILSTS_TEST_POSTGRES overrides it.
func testPostgresDSN() string {
	if d := os.Getenv("MAILSTS_TEST_POSTGRES"); d != "" {
		return d
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

func openTestSQLite(t testing.TB) Store {
	t.Helper()
	st, err := OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "reports.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// openTestPostgres creates schema mailsts_test_<random>, opens a store in
// it and drops it at cleanup. It skips (with the reason) when the server
// is unreachable.
func openTestPostgres(t testing.TB) Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dsn := testPostgresDSN()
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.PingContext(ctx); err != nil {
		admin.Close()
		t.Skipf("PostgreSQL test server %s unreachable (set MAILSTS_TEST_POSTGRES): %v", redactDSN(dsn), err)
	}
	var b [6]byte
	rand.Read(b[:])
	schema := "mailsts_test_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		admin.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
		admin.Close()
	})
	sep := "?"
	if containsQuery(dsn) {
		sep = "&"
	}
	st, err := OpenPostgres(ctx, dsn+sep+"search_path="+schema, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func containsQuery(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '?' {
			return true
		}
	}
	return false
}

// backends runs f against a fresh SQLite and PostgreSQL store.
func backends(t *testing.T, f func(t *testing.T, st Store)) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		f(t, openTestSQLite(t))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		f(t, openTestPostgres(t))
	})
}

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fixedNow is the test clock: well after every sample's dates.
func fixedNow() time.Time { return time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC) }

// synthReport builds report i of a deterministic synthetic set with the
// tlsrpt builders: varied organisations, days, domains, policy types and
// failure details.
func synthReport(i int) *tlsrpt.Report {
	orgs := []string{"Google Inc.", "Microsoft Corporation", "Mail.Ru", "Yahoo", "Example Sender"}
	results := tlsrpt.ResultTypes()
	org := orgs[i%len(orgs)]
	dom := fmt.Sprintf("d%d.example", i%7)
	day := time.Date(2025, 1, 1+i%20, 0, 0, 0, 0, time.UTC)
	var a tlsrpt.Aggregator
	sts := tlsrpt.Policy{Type: tlsrpt.PolicyTypeSTS, String: []string{"version: STSv1", "mode: enforce", "mx: mx1." + dom, "max_age: 86400"},
		Domain: dom, MXHost: []string{"mx1." + dom}}
	a.AddSuccess(sts, int64(100+i%13))
	for j := 0; j < i%4; j++ {
		a.AddFailure(sts, tlsrpt.FailureDetails{ResultType: results[(i+j)%len(results)], SendingMTAIP: fmt.Sprintf("192.0.2.%d", 1+j),
			ReceivingMXHostname: "mx1." + dom, ReceivingIP: "198.51.100.7", FailureReasonCode: fmt.Sprintf("code-%d", j)})
	}
	if i%3 == 0 {
		tlsa := tlsrpt.Policy{Type: tlsrpt.PolicyTypeTLSA, String: []string{"3 1 1 " + fmt.Sprintf("%064x", i)}, Domain: "mx2." + dom}
		a.AddSuccess(tlsa, 7)
		a.AddFailure(tlsa, tlsrpt.FailureDetails{ResultType: tlsrpt.ResultTLSAInvalid, ReceivingMXHostname: "mx2." + dom})
	}
	if i%5 == 4 {
		a.AddFailure(tlsrpt.Policy{Type: tlsrpt.PolicyTypeNoPolicyFound, Domain: dom})
	}
	r := a.Report(tlsrpt.ReportParams{OrganizationName: org, ContactInfo: "tlsrpt@" + fmt.Sprintf("sender%d.example", i%len(orgs)), PolicyDomain: dom, Day: day})
	r.ReportID = fmt.Sprintf("%s-%d", r.ReportID, i)
	return r
}
