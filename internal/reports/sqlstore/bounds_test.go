package sqlstore

import (
	"context"
	"reflect"
	"testing"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/reportstest"
)

// TestCursorsBothBackends: the keyset cursors give the same pages on
// SQLite and PostgreSQL.
func TestCursorsBothBackends(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, st reports.Store) {
		ctx := context.Background()
		for i := range 30 {
			reportstest.Put(t, st, reportstest.SynthReport(i), nil)
		}
		want, _ := st.Failures(ctx, reports.Filter{Limit: reports.MaxPageSize})
		var all []reports.FailureRow
		f := reports.Filter{Limit: 4}
		for range 100 {
			page, err := st.Failures(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, page...)
			if len(page) < f.Limit {
				break
			}
			f.Cursor = reports.NextFailures(page)
		}
		if len(want) < 10 || !reflect.DeepEqual(all, want) {
			t.Errorf("paged %d rows, want %d", len(all), len(want))
		}
	})
}
