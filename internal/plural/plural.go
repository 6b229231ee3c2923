// Package plural spells counts for people: "0 repairs", "1 repair",
// "2 repairs". Every human message of mailsts that states a count uses it
// (machine output, JSON and CSV, has bare numbers).
package plural

import "strconv"

// Count returns n followed by one when n is 1, else by many:
// Count(1, "policy", "policies") is "1 policy".
func Count[N ~int | ~int32 | ~int64 | ~uint | ~uint32 | ~uint64](n N, one, many string) string {
	return strconv.FormatInt(int64(n), 10) + " " + Noun(n, one, many)
}

// Noun returns one when n is 1, else many, for a count written apart
// from its noun ("1 of 3 scenarios").
func Noun[N ~int | ~int32 | ~int64 | ~uint | ~uint32 | ~uint64](n N, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
