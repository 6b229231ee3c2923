package cli

import pluralpkg "github.com/mailsts/mailsts/internal/plural"

// plural spells a count with its noun for people: "0 repairs", "1 repair",
// "2 repairs" (plural.Count).
func plural[N ~int | ~int64](n N, one, many string) string {
	return pluralpkg.Count(n, one, many)
}
