package plural

import "testing"

func TestCount(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		n    int64
		want string
	}{{0, "0 policies"}, {1, "1 policy"}, {2, "2 policies"}, {-1, "-1 policies"}, {1000000, "1000000 policies"}} {
		if got := Count(c.n, "policy", "policies"); got != c.want {
			t.Errorf("Count(%d) = %q, want %q", c.n, got, c.want)
		}
	}
	if Noun(uint(1), "entry", "entries") != "entry" || Noun(3, "entry", "entries") != "entries" {
		t.Error("Noun")
	}
}
