package main

import (
	"context"
	"path/filepath"
	"testing"
)

// The benchmark runs end to end on a small set: every page renders
// with status 200 (run fails otherwise).
func TestRunSmall(t *testing.T) {
	t.Parallel()
	c := Config{N: 1500, Domains: 20, Days: 30, Orgs: 5, DB: filepath.Join(t.TempDir(), "d.db"), Batch: 500, Repeat: 1}
	if err := run(context.Background(), c); err != nil {
		t.Fatal(err)
	}
}
