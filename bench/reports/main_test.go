package main

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
)

// TestRun1k is the small version of the benchmark that runs with go test.
// The 100,000-report run is `go run ./bench/reports` (README.md).
func TestRun1k(t *testing.T) {
	t.Parallel()
	res, err := Run(context.Background(), Config{N: 1000, DB: "sqlite:" + filepath.Join(t.TempDir(), "b.db"), Batch: 100})
	if err != nil {
		t.Fatal(err)
	}
	if res.Reports != 1000 || res.BytesPerReport <= 0 || res.SummaryRows == 0 || res.FailuresRows == 0 {
		t.Errorf("results %+v", res)
	}
	// Generous bound: the goal for 100k reports is under a second.
	if res.Summary > 5*time.Second {
		t.Errorf("summary over 1k reports took %v", res.Summary)
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
	res, err := Run(context.Background(), Config{N: 1000, DB: dsn, Batch: 100})
	if err != nil {
		t.Fatal(err)
	}
	if res.BytesOnDisk <= 0 || res.SummaryRows == 0 {
		t.Errorf("results %+v", res)
	}
	t.Logf("%+v", res)
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
