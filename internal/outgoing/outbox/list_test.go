package outbox

import (
	"context"
	"testing"
)

// TestListPolicyDomains: List and CountStates keep the reports about the domains asked
// for (any case, a trailing dot ignored), with the state filter too.
func TestListPolicyDomains(t *testing.T) {
	t.Parallel()
	backends(t, testListPolicyDomains)
}

func testListPolicyDomains(t *testing.T, s *Store) {
	ctx := context.Background()
	o := &Outbox{Store: s, Now: newClock(t0).Now}
	for _, d := range []string{"a.example", "b.example", "c.example"} {
		if err := o.Enqueue(ctx, testReport(t, d)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.List(ctx, ListOptions{PolicyDomains: []string{"A.example.", "c.example"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].PolicyDomain != "a.example" || got[1].PolicyDomain != "c.example" {
		t.Errorf("List of a and c: %+v", got)
	}
	got, err = s.List(ctx, ListOptions{PolicyDomains: []string{"b.example"}, States: []State{StateSent}})
	if err != nil || len(got) != 0 {
		t.Errorf("b.example sent: %+v %v", got, err)
	}
	if got, _ = s.List(ctx, ListOptions{}); len(got) != 3 {
		t.Errorf("List of all: %d entries", len(got))
	}
	if err := s.Suppress(ctx, "mailto:x@b.example", "", t0); err != nil {
		t.Fatal(err)
	}
	counts, err := s.CountStates(ctx, nil)
	if err != nil || len(counts) != 1 || counts[StatePending] != 3 {
		t.Errorf("CountStates of all: %v %v", counts, err)
	}
	counts, err = s.CountStates(ctx, []string{"B.example"})
	if err != nil || len(counts) != 1 || counts[StatePending] != 1 {
		t.Errorf("CountStates of b.example: %v %v", counts, err)
	}
}
