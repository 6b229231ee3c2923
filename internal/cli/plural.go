package cli

import "strconv"

// plural spells a count with its noun for people: "0 repairs", "1 repair",
// "2 repairs", "1 policy", "3 policies". Machine output (JSON, CSV) has
// bare numbers instead.
func plural[N ~int | ~int64 | ~uint64](n N, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.FormatInt(int64(n), 10) + " " + many
}
