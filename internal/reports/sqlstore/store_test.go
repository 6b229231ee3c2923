package sqlstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/reportstest"
	"github.com/mailsts/mailsts/tlsrpt"
)

func TestStorePutShowDuplicate(t *testing.T) { // RPT-RECV-4, F-10c
	t.Parallel()
	backends(t, func(t *testing.T, st reports.Store) {
		ctx := context.Background()
		raw := reportstest.ReadFile(t, "../../../tlsrpt/testdata/f10c.json")
		r, _, err := tlsrpt.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		first := reportstest.Put(t, st, r, raw)
		if first.Duplicate || first.ID == 0 {
			t.Fatalf("first put: %+v", first)
		}
		second := reportstest.Put(t, st, r, raw)
		if !second.Duplicate || second.ID != first.ID {
			t.Fatalf("duplicate put: %+v, want duplicate of %d", second, first.ID)
		}
		got, err := st.Show(ctx, r.ReportID)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 {
			t.Fatalf("Show: %d reports, want 1 (stored once)", len(got))
		}
		if !reflect.DeepEqual(got[0].Report, r) {
			t.Errorf("Show rebuilt\n%+v\nwant\n%+v", got[0].Report, r)
		}
		if string(got[0].Raw) != string(raw) || got[0].RawSize != int64(len(raw)) {
			t.Errorf("raw not kept: %d bytes, size %d", len(got[0].Raw), got[0].RawSize)
		}
		if len(got[0].Repairs) != 1 || got[0].Repairs[0].Code != "x" || got[0].Source != reports.SourceFile || !got[0].ReceivedAt.Equal(reportstest.FixedNow()) {
			t.Errorf("metadata: %+v", got[0])
		}
		// The same report-id from another organisation is another report.
		r2 := *r
		r2.OrganizationName = "Company-Z"
		if res := reportstest.Put(t, st, &r2, nil); res.Duplicate {
			t.Error("other organisation counted as duplicate")
		}
		if got, _ := st.Show(ctx, r.ReportID); len(got) != 2 || got[0].Report.OrganizationName != "Company-X" {
			t.Errorf("Show after second org: %d", len(got))
		}
		if _, err := st.Show(ctx, "nope"); !errors.Is(err, reports.ErrNotFound) {
			t.Errorf("Show(nope) = %v, want ErrNotFound", err)
		}
		// Summary counts the report once.
		rows, err := st.Summary(ctx, reports.Filter{Organization: "Company-X"})
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || rows[0].Reports != 1 || rows[0].Successful != 5326 || rows[0].Failed != 303 || rows[0].Day != "2016-04-01" {
			t.Errorf("summary %+v", rows)
		}
		if rows[0].SuccessRate == nil || *rows[0].SuccessRate != 5326.0/5629.0 {
			t.Errorf("success rate %v", rows[0].SuccessRate)
		}
	})
}

func TestStoreRejected(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, st reports.Store) {
		ctx := context.Background()
		bomb := []byte{0x1f, 0x8b, 1, 2, 3}
		id1, err := st.PutRejected(ctx, reports.Rejection{Raw: bomb, Source: reports.SourceHTTP, Origin: "127.0.0.1", ReceivedAt: reportstest.FixedNow(), Reason: reports.ReasonTooLarge, Detail: "big"})
		if err != nil {
			t.Fatal(err)
		}
		id2, err := st.PutRejected(ctx, reports.Rejection{Raw: []byte("head"), Truncated: true, Size: 100 << 20, Source: reports.SourceHTTP, ReceivedAt: reportstest.FixedNow().Add(time.Hour), Reason: reports.ReasonTooLarge})
		if err != nil {
			t.Fatal(err)
		}
		list, err := st.ListRejected(ctx, reports.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 2 || list[0].ID != id2 || list[1].ID != id1 || !list[0].Truncated || list[0].Size != 100<<20 || list[1].Size != 5 {
			t.Fatalf("ListRejected %+v", list)
		}
		got, err := st.RejectedRaw(ctx, id1)
		if err != nil || string(got.Raw) != string(bomb) || got.Reason != reports.ReasonTooLarge || got.Detail != "big" {
			t.Errorf("RejectedRaw = %+v, %v", got, err)
		}
		if _, err := st.RejectedRaw(ctx, 999); !errors.Is(err, reports.ErrNotFound) {
			t.Errorf("RejectedRaw(999) = %v", err)
		}
		if l, _ := st.ListRejected(ctx, reports.Filter{Since: reportstest.FixedNow().AddDate(0, 0, 1)}); len(l) != 0 {
			t.Errorf("since tomorrow: %d", len(l))
		}
	})
}

func TestStoreQueries(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, st reports.Store) {
		ctx := context.Background()
		const n = 60
		var want struct{ success, failure, details int64 }
		for i := 0; i < n; i++ {
			r := reportstest.SynthReport(i)
			reportstest.Put(t, st, r, nil)
			s, f := r.Totals()
			if r.Policies[0].Policy.Domain == "d3.example" {
				want.success += s
				want.failure += f
				for _, p := range r.Policies {
					for _, d := range p.FailureDetails {
						want.details += d.FailedSessionCount
					}
				}
			}
		}
		rows, err := st.Summary(ctx, reports.Filter{PolicyDomain: "D3.example.", GroupBy: []string{reports.GroupPolicyDomain}})
		if err != nil {
			t.Fatal(err)
		}
		// TLSA policies have domain mx2.d3.example: count only d3.example
		// policies' totals via the policies themselves.
		var s, f int64
		for i := 0; i < n; i++ {
			for _, p := range reportstest.SynthReport(i).Policies {
				if p.Policy.Domain == "d3.example" {
					s += p.Summary.TotalSuccessfulSessionCount
					f += p.Summary.TotalFailureSessionCount
				}
			}
		}
		if len(rows) != 1 || rows[0].PolicyDomain != "d3.example" || rows[0].Successful != s || rows[0].Failed != f {
			t.Errorf("summary for d3 = %+v, want success %d failure %d", rows, s, f)
		}
		// By result: the failure rows add up to the detail counts.
		byRes, err := st.Summary(ctx, reports.Filter{GroupBy: []string{reports.GroupResultType}})
		if err != nil {
			t.Fatal(err)
		}
		var det, succ int64
		for _, r := range byRes {
			if r.SuccessRate != nil {
				t.Errorf("success rate set when grouping by result: %+v", r)
			}
			switch r.ResultType {
			case reports.ResultSuccess:
				succ += r.Successful
			default:
				det += r.Failed
			}
		}
		var wantSucc, wantDet int64
		for i := 0; i < n; i++ {
			r := reportstest.SynthReport(i)
			ss, _ := r.Totals()
			wantSucc += ss
			for _, p := range r.Policies {
				for _, d := range p.FailureDetails {
					wantDet += d.FailedSessionCount
				}
				if len(p.FailureDetails) == 0 {
					wantDet += p.Summary.TotalFailureSessionCount
				}
			}
		}
		if succ != wantSucc || det != wantDet {
			t.Errorf("by result: success %d failures %d, want %d %d", succ, det, wantSucc, wantDet)
		}
		// Failures: filter by result type and MX.
		fails, err := st.Failures(ctx, reports.Filter{ResultType: string(tlsrpt.ResultTLSAInvalid), MXHost: "mx2.d3.example"})
		if err != nil {
			t.Fatal(err)
		}
		if len(fails) == 0 {
			t.Fatal("no tlsa-invalid failures for mx2.d3.example")
		}
		for _, fr := range fails {
			if fr.ResultType != string(tlsrpt.ResultTLSAInvalid) || fr.ReceivingMXHostname != "mx2.d3.example" {
				t.Errorf("filtered failure %+v", fr)
			}
		}
		if !slices.IsSortedFunc(fails, func(a, b reports.FailureRow) int {
			if a.Day != b.Day {
				if a.Day > b.Day {
					return -1
				}
				return 1
			}
			return 0
		}) {
			t.Error("failures not newest day first")
		}
		if l, _ := st.Failures(ctx, reports.Filter{Limit: 3}); len(l) != 3 {
			t.Errorf("limit 3: %d rows", len(l))
		}
		// Day bounds are inclusive.
		d := time.Date(2025, 1, 5, 15, 0, 0, 0, time.UTC)
		rows, _ = st.Summary(ctx, reports.Filter{Since: d, Until: d, GroupBy: []string{reports.GroupDay}})
		if len(rows) != 1 || rows[0].Day != "2025-01-05" {
			t.Errorf("one day: %+v", rows)
		}
		if _, err := st.Summary(ctx, reports.Filter{GroupBy: []string{"color"}}); !errors.Is(err, reports.ErrBadFilter) {
			t.Errorf("bad group-by: %v", err)
		}
		if _, err := st.Failures(ctx, reports.Filter{Since: d, Until: d.AddDate(0, 0, -1)}); !errors.Is(err, reports.ErrBadFilter) {
			t.Errorf("until before since: %v", err)
		}
	})
}

func TestSQLiteReopenAndSchemaTooNew(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "r.db")
	st, err := OpenSQLite(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	reportstest.Put(t, st, reportstest.SynthReport(1), nil)
	st.Close()
	st, err = OpenSQLite(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := st.Show(ctx, reportstest.SynthReport(1).ReportID); err != nil || len(got) != 1 {
		t.Fatalf("after reopen: %v %v", got, err)
	}
	s := st.(*sqlStore)
	if _, err := s.w.Exec(`PRAGMA user_version = 99`); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if _, err := OpenSQLite(ctx, path, nil); !errors.Is(err, reports.ErrSchemaTooNew) {
		t.Errorf("version 99: %v, want ErrSchemaTooNew", err)
	}
}

// Issue #11 item 11: --db sqlite:reports.db (a relative path) opens the
// file it names; it failed with "invalid uri authority".
func TestSQLiteRelativePath(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	abs := filepath.Join(t.TempDir(), "reports.db")
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(wd, abs)
	if err != nil || filepath.IsAbs(rel) {
		t.Fatalf("relative path: %q, %v", rel, err)
	}
	st, err := OpenSQLite(ctx, rel, nil)
	if err != nil {
		t.Fatalf("OpenSQLite(%q) = %v", rel, err)
	}
	reportstest.Put(t, st, reportstest.SynthReport(1), nil)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = OpenSQLite(ctx, abs, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if got, err := st.Show(ctx, reportstest.SynthReport(1).ReportID); err != nil || len(got) != 1 {
		t.Fatalf("report stored through the relative path not found at %s: %v %v", abs, got, err)
	}
}

// TestCompressRawReused checks that the reused compressors of the raw
// column give, one input after another, streams that decompress to
// each input: nothing of an earlier input leaks into the next.
func TestCompressRawReused(t *testing.T) {
	t.Parallel()
	for i := range 20 {
		in := []byte(strings.Repeat(fmt.Sprintf("{\"report-id\": \"%d\"}", i), 1+i*50))
		b, enc := compressRaw(in)
		if enc != rawGzip {
			t.Fatalf("input %d: encoding %q", i, enc)
		}
		out, err := decompressRaw(b, enc)
		if err != nil {
			t.Fatalf("input %d: %v", i, err)
		}
		if !bytes.Equal(out, in) {
			t.Fatalf("input %d: %d bytes back, want %d", i, len(out), len(in))
		}
	}
}
