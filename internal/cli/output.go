package cli

import (
	"encoding/csv"
	"fmt"
	"io"
	"regexp"
)

// column is one column of a command's table and CSV output of rows of T.
// key is its CSV header: the row's JSON key, lower snake_case; title is
// its table header for people. text gives the cell; csv, when set, gives
// the CSV cell instead (a plain number where text has a unit or a
// percentage). CSV numbers are plain: no thousands separators, no units.
type column[T any] struct {
	key, title string
	text       func(T) string
	csv        func(T) string
}

// csvKey is the spelling of a CSV header (and of a JSON key).
var csvKey = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// writeCSV writes a header of the columns' keys, then one record per row.
func writeCSV[T any](w io.Writer, rows []T, cols []column[T]) error {
	cw := csv.NewWriter(w)
	rec := make([]string, len(cols))
	for i, c := range cols {
		if !csvKey.MatchString(c.key) {
			// A programming error, caught by the tests of every CSV.
			return fmt.Errorf("CSV column %q is not lower snake_case", c.key)
		}
		rec[i] = c.key
	}
	cw.Write(rec)
	for _, r := range rows {
		for i, c := range cols {
			if c.csv != nil {
				rec[i] = c.csv(r)
			} else {
				rec[i] = c.text(r)
			}
		}
		cw.Write(rec)
	}
	cw.Flush()
	return cw.Error()
}
