package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/sqlstore"
)

// TestRun1k is the small version of the benchmark that runs with go test.
// The 100,000-report run is `go run ./bench/reports` (README.md).
func TestRun1k(t *testing.T) {
	t.Parallel()
	db := "sqlite:" + filepath.Join(t.TempDir(), "b.db")
	res, err := Run(context.Background(), Config{N: 1000, DB: db, Batch: 100, Repeat: 1})
	if err != nil {
		t.Fatal(err)
	}
	checkResults(t, res)
	// -reuse queries the same file again without ingesting.
	again, err := Run(context.Background(), Config{N: 1000, DB: db, Reuse: true, Repeat: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Queries) != len(res.Queries) {
		t.Fatalf("reuse ran %d queries, want %d", len(again.Queries), len(res.Queries))
	}
	for i, q := range again.Queries {
		if q.Rows != res.Queries[i].Rows {
			t.Errorf("%s: %d rows on reuse, %d first", q.Name, q.Rows, res.Queries[i].Rows)
		}
	}
}

// TestRunWriters: the concurrent single-report ingest, through
// GroupCommit, stores every report.
func TestRunWriters(t *testing.T) {
	t.Parallel()
	db := "sqlite:" + filepath.Join(t.TempDir(), "w.db")
	res, err := Run(context.Background(), Config{N: 300, DB: db, Writers: 8, Group: true, Repeat: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.ReportsPerSec <= 0 {
		t.Errorf("results %+v", res)
	}
	for _, q := range res.Queries {
		if q.Name == "summary (org)" && q.Rows != 40 {
			t.Errorf("summary (org): %d rows, want 40 organisations", q.Rows)
		}
	}
}

// checkResults: every query returned rows (the filters select existing
// data) and the sizes are plausible.
func checkResults(t *testing.T, res Results) {
	t.Helper()
	if res.Reports != 1000 || res.BytesPerReport <= 0 || res.ReportsPerSec <= 0 || len(res.Queries) < 10 {
		t.Errorf("results %+v", res)
	}
	for _, q := range res.Queries {
		if q.Rows == 0 || q.Best <= 0 || q.Best > q.First {
			t.Errorf("%s: %+v", q.Name, q)
		}
	}
	t.Logf("%+v", res)
}

func TestRun1kPostgres(t *testing.T) {
	t.Parallel()
	dsn := "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	db, _ := sql.Open("pgx", dsn)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		t.Skipf("PostgreSQL test server unreachable: %v", err)
	}
	// Its own schema name, so parallel runs of the benchmark do not clash.
	var b [6]byte
	rand.Read(b[:])
	schema := "bench_reports_test_" + hex.EncodeToString(b[:])
	res, err := Run(context.Background(), Config{N: 1000, DB: dsn, Batch: 100, Schema: schema, Repeat: 1})
	if err != nil {
		t.Fatal(err)
	}
	checkResults(t, res)
	// The schema is dropped after the run.
	var n int
	if err := db.QueryRowContext(context.Background(), `SELECT count(*) FROM pg_namespace WHERE nspname = $1`, schema).Scan(&n); err != nil || n != 0 {
		t.Errorf("schema %s left behind (%d, %v)", schema, n, err)
	}
}

func TestSynthVaried(t *testing.T) {
	t.Parallel()
	orgs, domains, types := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for i := 0; i < 1000; i++ {
		r := Synth(i)
		if err := r.Validate(); err != nil {
			t.Fatalf("report %d: %v", i, err)
		}
		orgs[r.OrganizationName] = true
		for _, p := range r.Policies {
			domains[p.Policy.Domain] = true
			for _, d := range p.FailureDetails {
				types[string(d.ResultType)] = true
			}
		}
	}
	if len(orgs) != 40 || len(domains) < 400 || len(types) < 11 {
		t.Errorf("not varied: %d orgs, %d domains, %d result types", len(orgs), len(domains), len(types))
	}
}

// TestCompare: the side-by-side mode stores every report on both paths
// (each in its own fresh database) and reports both rates.
func TestCompare(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "c.db")
	var out strings.Builder
	rs, err := Compare(context.Background(), Config{N: 200, DB: "sqlite:" + path, Batch: 50, HTTP: 8}, 1, &out)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || rs[0].Batch <= 0 || rs[0].HTTP <= 0 || rs[0].BatchCPU <= 0 || rs[0].HTTPCPU <= 0 {
		t.Fatalf("rounds %+v", rs)
	}
	if !strings.Contains(out.String(), "round 1: batch ") {
		t.Errorf("output %q", out.String())
	}
	for _, p := range []string{path, path + "_http"} {
		st, err := sqlstore.OpenSQLite(context.Background(), p, nil)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := st.Summary(context.Background(), reports.Filter{GroupBy: []string{reports.GroupOrganization}})
		st.Close()
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, r := range rows {
			n += r.Reports
		}
		if n != 200 {
			t.Errorf("%s: %d reports stored, want 200", filepath.Base(p), n)
		}
	}
}
