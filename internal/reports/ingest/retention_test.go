package ingest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/sqlstore/sqlstoretest"
)

// TestRejectedCapped: issue #11.5. Every rejected POST of up to 15 MB was
// kept whole forever. Now the first 64 KiB are kept with the size and the
// SHA-256 of the whole input, and the rows stay within a byte budget,
// oldest deleted first.
func TestRejectedCapped(t *testing.T) {
	t.Parallel()
	sqlstoretest.Backends(t, func(t *testing.T, st reports.Store) {
		ctx := context.Background()
		in := newIngester(st, DKIMOff, nil)
		junk := bytes.Repeat([]byte("{junk "), 200<<10/6) // 200 KB, not JSON
		res, err := in.Body(ctx, bytes.NewReader(junk), "application/json", -1, reports.SourceHTTP, "192.0.2.1:1234")
		mustOutcome(t, res, err, OutcomeRejected)
		got, err := st.RejectedRaw(ctx, res.Rejections[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(junk)
		if len(got.Raw) != rejectedPrefix || !bytes.Equal(got.Raw, junk[:rejectedPrefix]) || !got.Truncated ||
			got.Size != int64(len(junk)) || got.SHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("kept %d bytes, truncated %v, size %d, sha256 %q; want the first %d bytes, the size %d and the hash",
				len(got.Raw), got.Truncated, got.Size, got.SHA256, rejectedPrefix, len(junk))
		}

		// Budget: room for about three rows of incompressible junk
		// (64 KiB kept of each).
		in.RejectedBudget = 3*rejectedPrefix + rejectedPrefix/2
		var ids []int64
		for range 6 {
			body := make([]byte, 100<<10)
			rand.Read(body)
			body[0] = 'x'

			res, err := in.Body(ctx, bytes.NewReader(body), "application/json", -1, reports.SourceHTTP, "192.0.2.1:1234")
			mustOutcome(t, res, err, OutcomeRejected)
			ids = append(ids, res.Rejections[0].ID)
		}
		list, err := st.ListRejected(ctx, reports.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 3 || list[0].ID != ids[5] || list[2].ID != ids[3] {
			t.Fatalf("after the budget: %d rows, newest %v", len(list), list)
		}
		if _, err := st.RejectedRaw(ctx, ids[0]); !errors.Is(err, reports.ErrNotFound) {
			t.Errorf("oldest row still there: %v", err)
		}
		if n, err := st.TrimRejected(ctx, 0); err != nil || n != int64(len(list)) {
			t.Errorf("TrimRejected(0) = %d, %v, want all %d rows", n, err, len(list))
		}
	})
}
