package reports

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// TestRejectedCapped: issue #11.5. Every rejected POST of up to 15 MB was
// kept whole forever. Now the first 64 KiB are kept with the size and the
// SHA-256 of the whole input, and the rows stay within a byte budget,
// oldest deleted first.
func TestRejectedCapped(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, st Store) {
		ctx := context.Background()
		in := newIngester(st, DKIMOff, nil)
		junk := bytes.Repeat([]byte("{junk "), 200<<10/6) // 200 KB, not JSON
		res, err := in.Body(ctx, bytes.NewReader(junk), "application/json", -1, SourceHTTP, "192.0.2.1:1234")
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

			res, err := in.Body(ctx, bytes.NewReader(body), "application/json", -1, SourceHTTP, "192.0.2.1:1234")
			mustOutcome(t, res, err, OutcomeRejected)
			ids = append(ids, res.Rejections[0].ID)
		}
		list, err := st.ListRejected(ctx, Filter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 3 || list[0].ID != ids[5] || list[2].ID != ids[3] {
			t.Fatalf("after the budget: %d rows, newest %v", len(list), list)
		}
		if _, err := st.RejectedRaw(ctx, ids[0]); !errors.Is(err, ErrNotFound) {
			t.Errorf("oldest row still there: %v", err)
		}
		if n, err := st.TrimRejected(ctx, 0); err != nil || n != int64(len(list)) {
			t.Errorf("TrimRejected(0) = %d, %v, want all %d rows", n, err, len(list))
		}
	})
}

// TestMaildirCrashBeforeMove: issue #11.6. A kill -9 between storing a
// rejected message and moving it stored the rejection twice at the next
// pass. The rejection is now keyed by the file's unique name and hash.
func TestMaildirCrashBeforeMove(t *testing.T) { // RPT-RECV-4
	t.Parallel()
	backends(t, func(t *testing.T, st Store) {
		ctx := context.Background()
		dir := t.TempDir()
		for _, sub := range []string{"new", "cur", "tmp"} {
			os.MkdirAll(filepath.Join(dir, sub), 0o700)
		}
		files := map[string][]byte{
			"new/1.junk":        []byte("Subject: hi\r\n\r\nhello\r\n"),
			"new/2.f9":          readFile(t, "../../tlsrpt/testdata/f9-with-f10c.eml"),
			"cur/3.junk2:2,S":   []byte("Subject: other\r\n\r\n{\"policies\": [\r\n"),
			"new/4.also-junk-1": []byte("Subject: hi\r\n\r\nhello\r\n"), // same bytes, another message
		}
		for name, b := range files {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		// Each file's first move fails: the process "died" after storing
		// the message and before moving it.
		crash := errors.New("killed")
		moved := map[string]bool{}
		md := &Maildir{Dir: dir, Ingester: newIngester(st, DKIMOff, nil), rename: func(from, to string) error {
			if !moved[from] {
				moved[from] = true
				return crash
			}
			return os.Rename(from, to)
		}}
		crashes := 0
		for range 2*len(files) + 1 {
			_, err := md.Run(ctx)
			if err == nil {
				break
			}
			if !errors.Is(err, crash) {
				t.Fatal(err)
			}
			crashes++
		}
		if crashes != len(files) {
			t.Fatalf("%d crashes, want one per file", crashes)
		}
		if ents, _ := os.ReadDir(filepath.Join(dir, "new")); len(ents) != 0 {
			t.Errorf("%d files left in new/", len(ents))
		}
		rej, err := st.ListRejected(ctx, Filter{})
		if err != nil || len(rej) != 3 {
			t.Errorf("rejected rows: %d (%v), want 3: one per junk message, none twice", len(rej), err)
		}
		rows, _ := st.Summary(ctx, Filter{})
		if len(rows) != 1 || rows[0].Reports != 1 {
			t.Errorf("summary %+v", rows)
		}
	})
}

// TestPrune: issue #11.5. Reports before a day go with their policies,
// details and rollup rows; the summary afterwards equals the summary of
// the remaining reports loaded into a fresh store, for every grouping.
func TestPrune(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, st Store) {
		ctx := context.Background()
		s := st.(*sqlStore)
		before := time.Date(2025, 1, 11, 0, 0, 0, 0, time.UTC)
		var all, kept []Incoming
		for i := range 120 {
			r := synthReport(i)
			in := Incoming{Report: r, Raw: []byte("{}"), Source: SourceFile, ReceivedAt: fixedNow()}
			all = append(all, in)
			if !r.DateRange.Start.Before(before) {
				kept = append(kept, in)
			}
		}
		if _, err := st.PutReports(ctx, all); err != nil {
			t.Fatal(err)
		}
		// Rejected input on both sides of the day.
		for _, at := range []time.Time{before.Add(-time.Hour), before.Add(time.Hour)} {
			if _, err := st.PutRejected(ctx, Rejection{Raw: []byte("x"), Source: SourceHTTP, ReceivedAt: at, Reason: ReasonSyntax}); err != nil {
				t.Fatal(err)
			}
		}
		beforeRows, _ := st.Summary(ctx, Filter{})
		dry, err := st.Prune(ctx, Prune{Before: before, DryRun: true})
		if err != nil {
			t.Fatal(err)
		}
		if want := int64(len(all) - len(kept)); dry.Reports != want || dry.Rejected != 1 || dry.RollupRows == 0 {
			t.Errorf("dry run %+v, want %d reports and 1 rejected", dry, want)
		}
		if rows, _ := st.Summary(ctx, Filter{}); !reflect.DeepEqual(rows, beforeRows) {
			t.Error("dry run changed the data")
		}
		res, err := st.Prune(ctx, Prune{Before: before})
		if err != nil || res != dry {
			t.Fatalf("prune %+v %v, want %+v", res, err, dry)
		}
		fresh := openTestSQLite(t)
		if _, err := fresh.PutReports(ctx, kept); err != nil {
			t.Fatal(err)
		}
		for _, f := range rollupFilters() {
			got, err := st.Summary(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			want, err := fresh.Summary(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%+v: after prune\n%+v\nwant (remaining reports only)\n%+v", f, got, want)
			}
			raw, err := s.summaryRaw(ctx, f)
			if err != nil || !reflect.DeepEqual(got, raw) {
				t.Fatalf("%+v: rollup after prune differs from the rows: %v", f, err)
			}
		}
		if fs, _ := st.Failures(ctx, Filter{Until: before.AddDate(0, 0, -1)}); len(fs) != 0 {
			t.Errorf("%d failure details of pruned reports left", len(fs))
		}
		rej, _ := st.ListRejected(ctx, Filter{})
		if len(rej) != 1 || rej[0].ReceivedAt.Before(before) {
			t.Errorf("rejected after prune: %+v", rej)
		}
		if _, err := st.Prune(ctx, Prune{}); !errors.Is(err, ErrBadFilter) {
			t.Errorf("prune without a day: %v", err)
		}
	})
}
