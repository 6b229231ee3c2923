package sqlstore

import (
	"context"
	"database/sql"
	"path/filepath"
	"reflect"
	"sync"
	"testing"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/reportstest"
	"github.com/mailsts/mailsts/tlsrpt"
)

func putAs(t *testing.T, st reports.Store, r *tlsrpt.Report, authenticated bool) reports.PutResult {
	t.Helper()
	in := reports.Incoming{Report: r, Raw: []byte("{}"), Source: reports.SourceHTTP, ReceivedAt: reportstest.FixedNow(), Authenticated: authenticated}
	if authenticated {
		in.Source, in.DKIMDomain = reports.SourceMail, "sender.example"
	}
	res, err := st.PutReport(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// checkSummaryConsistent: Summary (rollup) equals the direct aggregation
// for a few groupings, so moving the count kept the rollup exact.
func checkSummaryConsistent(t *testing.T, st reports.Store) {
	t.Helper()
	s := st.(*sqlStore)
	for _, f := range []reports.Filter{{}, {GroupBy: []string{reports.GroupResultType}}, {GroupBy: []string{reports.GroupPolicyDomain, reports.GroupMXHost, reports.GroupPolicyType}},
		{GroupBy: []string{reports.GroupOrganization, reports.GroupResultType}},
		{GroupBy: []string{reports.GroupDay, reports.GroupPolicyDomain}}} {
		got, want := summaryAndRaw(t, context.Background(), st, f)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%+v: rollup %+v, raw %+v", f.GroupBy, got, want)
		}
	}
	got, err := st.Reporters(context.Background(), reports.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if want := rawReporters(t, s, reports.Filter{}); !reflect.DeepEqual(got, want) {
		t.Errorf("Reporters %+v, raw %+v", got, want)
	}
}

// TestStoreForgedFirstThenGenuine: issue #11.2. An unauthenticated
// report with a sender's organisation and coming report-id does not
// suppress the genuine one: both are kept and flagged conflict, the
// genuine one is authenticated and is the one Summary counts; identical
// retries stay duplicates. RPT-RECV-4, RPT-RECV-1.
func TestStoreForgedFirstThenGenuine(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, st reports.Store) {
		ctx := context.Background()
		genuine := reportstest.SynthReport(3)
		forged := reportstest.Forged(genuine)
		if res := putAs(t, st, forged, false); res.Duplicate || res.Conflict {
			t.Fatalf("forged: %+v", res)
		}
		res := putAs(t, st, genuine, true)
		if res.Duplicate || !res.Conflict {
			t.Fatalf("genuine after forged: %+v, want stored with a conflict", res)
		}
		got, err := st.Show(ctx, genuine.ReportID)
		if err != nil || len(got) != 2 {
			t.Fatalf("Show: %d reports, %v; want both kept", len(got), err)
		}
		f, g := got[0], got[1]
		if !f.Conflict || !g.Conflict || f.Authenticated || !g.Authenticated || f.Counted || !g.Counted ||
			f.ContentHash == g.ContentHash || len(g.ContentHash) != 64 {
			t.Errorf("flags: forged %+v\ngenuine %+v", f, g)
		}
		if g.Report.Policies[0].Summary != genuine.Policies[0].Summary {
			t.Errorf("genuine content %+v", g.Report.Policies[0].Summary)
		}
		gs, gf := genuine.Totals()
		if n, s, fl := reportstest.OrgTotals(t, st, reports.Filter{}); n != 1 || s != gs || fl != gf {
			t.Errorf("summary %d reports %d/%d, want the genuine one: 1 %d/%d", n, s, fl, gs, gf)
		}
		checkSummaryConsistent(t, st)
		// Identical retries: duplicates, stored once, counted once.
		for _, tc := range []struct {
			r    *tlsrpt.Report
			auth bool
			id   int64
		}{{genuine, true, g.ID}, {genuine, false, g.ID}, {forged, false, f.ID}} {
			if res := putAs(t, st, tc.r, tc.auth); !res.Duplicate || res.ID != tc.id || !res.Conflict {
				t.Errorf("retry: %+v, want duplicate of %d", res, tc.id)
			}
		}
		if got, _ := st.Show(ctx, genuine.ReportID); len(got) != 2 {
			t.Errorf("after retries: %d reports", len(got))
		}
		if n, s, fl := reportstest.OrgTotals(t, st, reports.Filter{}); n != 1 || s != gs || fl != gf {
			t.Errorf("summary after retries %d %d/%d", n, s, fl)
		}
		// Queries tell them apart.
		fails, err := st.Failures(ctx, reports.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		var forgedRows int
		for _, x := range fails {
			if !x.Conflict {
				t.Errorf("failure row without conflict flag: %+v", x)
			}
			if x.ReceivingMXHostname == "mx1.attacker.example" {
				forgedRows++
				if x.Authenticated {
					t.Errorf("forged row authenticated: %+v", x)
				}
			}
		}
		if forgedRows != 1 {
			t.Errorf("forged failure rows %d, want 1 (listed, flagged)", forgedRows)
		}
		fails, _ = st.Failures(ctx, reports.Filter{AuthenticatedOnly: true})
		for _, x := range fails {
			if !x.Authenticated || x.ReceivingMXHostname == "mx1.attacker.example" {
				t.Errorf("authenticated-only failures: %+v", x)
			}
		}
		if n, s, fl := reportstest.OrgTotals(t, st, reports.Filter{AuthenticatedOnly: true}); n != 1 || s != gs || fl != gf {
			t.Errorf("authenticated-only summary %d %d/%d", n, s, fl)
		}
		if rs, err := reports.ShowFiltered(ctx, st, genuine.ReportID, reports.Filter{AuthenticatedOnly: true}); err != nil || len(rs) != 1 || rs[0].ID != g.ID {
			t.Errorf("ShowFiltered: %v %v", rs, err)
		}
	})
}

// TestStoreConflictCounting: issue #11.2. Without authentication the
// first report of a key counts; an authenticated copy of a later one
// (identical content) takes the count over; never two at once.
func TestStoreConflictCounting(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, st reports.Store) {
		ctx := context.Background()
		a := reportstest.SynthReport(6)
		b := reportstest.Forged(a)
		putAs(t, st, a, false)
		if res := putAs(t, st, b, false); res.Duplicate || !res.Conflict {
			t.Fatalf("second: %+v", res)
		}
		as, af := a.Totals()
		if n, s, f := reportstest.OrgTotals(t, st, reports.Filter{}); n != 1 || s != as || f != af {
			t.Errorf("first counts: %d %d/%d", n, s, f)
		}
		if n, _, _ := reportstest.OrgTotals(t, st, reports.Filter{AuthenticatedOnly: true}); n != 0 {
			t.Errorf("authenticated-only: %d reports", n)
		}
		// b arrives again, signed by its organisation: it counts now.
		if res := putAs(t, st, b, true); !res.Duplicate {
			t.Fatalf("authenticated copy of b: %+v", res)
		}
		bs, bf := b.Totals()
		if n, s, f := reportstest.OrgTotals(t, st, reports.Filter{}); n != 1 || s != bs || f != bf {
			t.Errorf("after authenticated b: %d %d/%d, want 1 %d/%d", n, s, f, bs, bf)
		}
		checkSummaryConsistent(t, st)
		got, _ := st.Show(ctx, a.ReportID)
		if len(got) != 2 || got[0].Counted || !got[1].Counted || !got[1].Authenticated || got[1].DKIMDomain == "" {
			t.Errorf("flags %+v", got)
		}
		// Both in one batch (group commit): the same outcome.
		c := reportstest.SynthReport(7)
		d := reportstest.Forged(c)
		res, err := st.PutReports(ctx, []reports.Incoming{
			{Report: d, Raw: []byte("{}"), Source: reports.SourceHTTP, ReceivedAt: reportstest.FixedNow()},
			{Report: c, Raw: []byte("{}"), Source: reports.SourceMail, ReceivedAt: reportstest.FixedNow(), Authenticated: true, DKIMDomain: "x.example"},
			{Report: d, Raw: []byte("{}"), Source: reports.SourceHTTP, ReceivedAt: reportstest.FixedNow()},
		})
		if err != nil {
			t.Fatal(err)
		}
		if res[0].Conflict || !res[1].Conflict || !res[2].Duplicate {
			t.Errorf("batch results %+v", res)
		}
		cs, cf := c.Totals()
		if n, s, f := reportstest.OrgTotals(t, st, reports.Filter{Organization: c.OrganizationName, Since: c.DateRange.Start, Until: c.DateRange.Start}); n != 1 || s != cs || f != cf {
			t.Errorf("batch: %d %d/%d, want 1 %d/%d", n, s, f, cs, cf)
		}
		checkSummaryConsistent(t, st)
	})
}

// TestStoreLegacyRows: reports stored before migration 3 have no content
// hash; it is computed when a report of the same key arrives, so an
// identical retry is still a duplicate and other content a conflict.
func TestStoreLegacyRows(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, st reports.Store) {
		ctx := context.Background()
		s := st.(*sqlStore)
		r := reportstest.SynthReport(9)
		r.Policies[0].Policy.Domain = "D9.Example." // stored lowercased
		first := putAs(t, st, r, false)
		// What migration 3 leaves in a row stored before it.
		if _, err := s.w.ExecContext(ctx, s.d.rebind(`UPDATE reports SET content_hash = 'legacy:' || report_id WHERE id = ?`), first.ID); err != nil {
			t.Fatal(err)
		}
		if got, _ := st.Show(ctx, r.ReportID); got[0].ContentHash != "" {
			t.Errorf("legacy hash shown: %q", got[0].ContentHash)
		}
		if res := putAs(t, st, r, false); !res.Duplicate || res.ID != first.ID {
			t.Errorf("identical retry of a legacy row: %+v", res)
		}
		if res := putAs(t, st, reportstest.Forged(r), false); res.Duplicate || !res.Conflict {
			t.Errorf("other content: %+v", res)
		}
		if got, _ := st.Show(ctx, r.ReportID); len(got) != 2 || got[0].ContentHash != contentHash(r) {
			t.Errorf("legacy row hash %q, want %q", got[0].ContentHash, contentHash(r))
		}
	})
}

// TestMigration3: a version-1 SQLite database keeps its reports through
// migrations 2 and 3: report-ids, authenticated from the DKIM domain, counted.
func TestMigration3(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v1.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	old := &sqlStore{d: sqliteDialect(), loc: path, logger: discardLogger(), w: db, r: db}
	old.d.migrations = old.d.migrations[:1] // migration 2 then builds the rollup
	if err := old.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for i, dkim := range []string{"", "sender.example"} {
		res, err := db.ExecContext(ctx, `INSERT INTO reports (organization, report_id, contact_info, start_time, end_time, day,
			received_at, source, origin, submitter, dkim_domain, repairs, problems, successful, failed, raw, raw_encoding, raw_size)
			VALUES ('Org', ?, 'a@sender.example', 1735689600, 1735775999, '2025-01-01', 0, 'mail', '', 'sender.example', ?, '[]', '[]', 5, 0, x'00', 'identity', 1)`,
			[]string{"r1", "r2"}[i], dkim)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := res.LastInsertId()
		if _, err := db.ExecContext(ctx, `INSERT INTO policies (report, seq, day, organization, policy_type, policy_domain,
			policy_string, mx_host, mx_hosts, successful, failed, details) VALUES (?, 0, '2025-01-01', 'Org', 'sts', 'example.org', '[]', '', '[]', 5, 0, 0)`, id); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	st, err := OpenSQLite(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i, id := range []string{"r1", "r2"} {
		got, err := st.Show(ctx, id)
		if err != nil || len(got) != 1 {
			t.Fatalf("Show(%s) after migration: %v %v", id, got, err)
		}
		if got[0].Authenticated != (i == 1) || !got[0].Counted || got[0].Conflict || len(got[0].Report.Policies) != 1 {
			t.Errorf("%s: %+v", id, got[0])
		}
	}
	if n, s, _ := reportstest.OrgTotals(t, st, reports.Filter{}); n != 2 || s != 10 {
		t.Errorf("summary after migration: %d reports, %d sessions", n, s)
	}
}

// TestStoreConflictConcurrent: concurrent writers of one key (PostgreSQL
// takes POSTs without group commit) still keep every variant, flag them
// all and count exactly one: the writers of a key are serialised.
func TestStoreConflictConcurrent(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, st reports.Store) {
		ctx := context.Background()
		base := reportstest.SynthReport(11)
		const n = 8
		// Open the connections first so that the writers overlap.
		st.(*sqlStore).w.SetMaxIdleConns(n)
		var warm sync.WaitGroup
		for range n {
			warm.Go(func() { st.(*sqlStore).w.ExecContext(ctx, "SELECT 1") })
		}
		warm.Wait()
		errs := make(chan error, n)
		start := make(chan struct{})
		for i := range n {
			go func() {
				<-start
				v := reportstest.Forged(base)
				v.Policies[0].Summary.TotalFailureSessionCount = int64(100 + i)
				_, err := st.PutReport(ctx, reports.Incoming{Report: v, Raw: []byte("{}"), Source: reports.SourceHTTP, ReceivedAt: reportstest.FixedNow()})
				errs <- err
			}()
		}
		close(start)
		for range n {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		got, err := st.Show(ctx, base.ReportID)
		if err != nil || len(got) != n {
			t.Fatalf("Show: %d reports, %v", len(got), err)
		}
		counted := 0
		for _, sr := range got {
			if !sr.Conflict {
				t.Errorf("report %d not flagged", sr.ID)
			}
			if sr.Counted {
				counted++
			}
		}
		if counted != 1 {
			t.Errorf("%d reports counted, want 1", counted)
		}
		if n, _, _ := reportstest.OrgTotals(t, st, reports.Filter{}); n != 1 {
			t.Errorf("summary counts %d reports", n)
		}
		checkSummaryConsistent(t, st)
	})
}
