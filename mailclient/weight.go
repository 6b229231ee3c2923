package mailclient

import "math/rand/v2"

// weightedOrder returns eps (sorted by service and priority, as
// Discovery.For gives them) in the order RFC 2782 has a client try them:
// each run of endpoints of one service and priority in a weighted random
// order, so that a target of weight 60 comes first about six times as
// often as one of weight 10, and the load spreads as the domain asked.
// intN(n) returns a uniform integer in [0, n).
//
// RFC 2782 "Usage rules": the records not yet ordered, those of weight 0
// first; a uniform number between 0 and the sum of their weights
// (inclusive); the first record whose running sum reaches it is next.
// With every weight 0 the order stays as given.
func weightedOrder(eps []Endpoint, intN func(n int) int) []Endpoint {
	out := make([]Endpoint, 0, len(eps))
	for i := 0; i < len(eps); {
		j := i + 1
		for j < len(eps) && eps[j].Service == eps[i].Service && eps[j].Priority == eps[i].Priority {
			j++
		}
		out = append(out, weightedRun(eps[i:j], intN)...)
		i = j
	}
	return out
}

// weightedRun orders one run of equal service and priority.
func weightedRun(run []Endpoint, intN func(n int) int) []Endpoint {
	left := make([]Endpoint, 0, len(run))
	for _, e := range run { // weight 0 first, otherwise as given
		if e.Weight == 0 {
			left = append(left, e)
		}
	}
	for _, e := range run {
		if e.Weight != 0 {
			left = append(left, e)
		}
	}
	out := make([]Endpoint, 0, len(run))
	for len(left) > 0 {
		sum := 0
		for _, e := range left {
			sum += int(e.Weight)
		}
		pick, r, running := len(left)-1, intN(sum+1), 0
		for k, e := range left {
			running += int(e.Weight)
			if running >= r {
				pick = k
				break
			}
		}
		out = append(out, left[pick])
		left = append(left[:pick], left[pick+1:]...)
	}
	return out
}

// intN is the Dialer's random source for weightedOrder.
func (d *Dialer) intN(n int) int {
	if d.Rand != nil {
		return d.Rand(n)
	}
	return rand.IntN(n)
}
