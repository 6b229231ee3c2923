package policyd

import (
	"strings"
	"testing"
	"time"
)

// fetch.policy_host_aaaa: always never skips AAAA; auto follows the route
// probe, decided at start and asked again only after ipv6RouteInterval.
func TestPolicyHostIPv6(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		name    string
		setting string
		routes  []bool // probe answers, in order
		want    []bool // reachable at t0, t0+1m, t0+10m, t0+11m
		probes  int
		log     string
	}{
		{"always", AAAAAlways, nil, nil, 0, "always"},
		{"auto, route", AAAAAuto, []bool{true, true}, []bool{true, true, true, true}, 2, "IPv6 route found"},
		{"auto, no route", AAAAAuto, []bool{false, false}, []bool{false, false, false, false}, 2, "no route to the IPv6 Internet"},
		{"auto, route appears", AAAAAuto, []bool{false, true}, []bool{false, false, true, true}, 2, "no route"},
		{"auto, route lost", AAAAAuto, []bool{true, false}, []bool{true, true, false, false}, 2, "IPv6 route found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			now := t0
			probes := 0
			probe := func() bool {
				probes++
				if probes > len(tc.routes) {
					t.Fatalf("probe %d: more than %d", probes, len(tc.routes))
				}
				return tc.routes[probes-1]
			}
			hook, log := policyHostIPv6(tc.setting, probe, func() time.Time { return now })
			if !strings.Contains(log, tc.log) {
				t.Errorf("log %q, want %q in it", log, tc.log)
			}
			if tc.want == nil {
				if hook != nil {
					t.Fatal("always: the hook must be nil (AAAA asked with A)")
				}
				return
			}
			for i, d := range []time.Duration{0, time.Minute, 10 * time.Minute, 11 * time.Minute} {
				now = t0.Add(d)
				if got := hook(); got != tc.want[i] {
					t.Errorf("at +%v: reachable %v, want %v", d, got, tc.want[i])
				}
			}
			if probes != tc.probes {
				t.Errorf("%d probes, want %d (at start, then after %v)", probes, tc.probes, ipv6RouteInterval)
			}
		})
	}
}

func TestConfigPolicyHostAAAA(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"", AAAAAuto, AAAAAlways} {
		c := Default()
		c.Fetch.PolicyHostAAAA = v
		if err := c.Validate(); err != nil {
			t.Errorf("%q: %v", v, err)
		}
	}
	c := Default()
	c.Fetch.PolicyHostAAAA = "never"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "policy_host_aaaa") {
		t.Errorf("never: %v, want an error naming fetch.policy_host_aaaa", err)
	}
}
