package selftest

import (
	"context"
	"testing"
)

// TestSelftest runs every step of `mailsts selftest`; each step is a
// checklist scenario (see the step table), and every one must pass.
func TestSelftest(t *testing.T) {
	t.Parallel()
	results, err := Run(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != len(steps()) {
		t.Fatalf("%d results for %d steps", len(results), len(steps()))
	}
	for _, r := range results {
		if !r.Pass {
			t.Errorf("%s (%s): %s → %q, want %q", r.Name, r.Ref, r.Query, r.Got, r.Want)
		}
	}
}
