package sqlstore

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/ingest"
	"github.com/mailsts/mailsts/internal/reports/reportstest"
	"github.com/mailsts/mailsts/tlsrpt"
)

// loadCorpus ingests the same inputs into st: F-10a/b/c, every quirk
// sample, hostile inputs and 120 synthetic reports.
func loadCorpus(t *testing.T, st reports.Store) {
	t.Helper()
	ctx := context.Background()
	in := &ingest.Ingester{Store: st, DKIM: ingest.DKIMOff, Now: reportstest.FixedNow}
	for _, name := range []string{"f10a.json", "f10b.json", "f10c.json"} {
		raw := reportstest.ReadFile(t, "../../../tlsrpt/testdata/"+name)
		if _, err := in.Body(ctx, bytes.NewReader(raw), "", -1, reports.SourceFile, name); err != nil {
			t.Fatal(err)
		}
	}
	dir := "../../../tlsrpt/testdata/quirks"
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		raw := reportstest.ReadFile(t, filepath.Join(dir, e.Name()))
		var err error
		switch filepath.Ext(e.Name()) {
		case ".json":
			_, err = in.Body(ctx, bytes.NewReader(raw), "", -1, reports.SourceFile, e.Name())
		case ".eml":
			_, err = in.Message(ctx, bytes.NewReader(raw), reports.SourceFile, e.Name())
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, junk := range []string{"{", "x", "{\"policies\": 1}"} {
		if _, err := in.Body(ctx, bytes.NewReader([]byte(junk)), "", -1, reports.SourceHTTP, junk); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 120; i++ {
		gzBody, err := tlsrpt.MarshalGzip(reportstest.SynthReport(i))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := in.Body(ctx, bytes.NewReader(gzBody), tlsrpt.MediaTypeGzip, -1, reports.SourceHTTP, ""); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBackendsIdentical is the shared suite: SQLite and PostgreSQL must
// give identical results for every query on the same data.
func TestBackendsIdentical(t *testing.T) {
	t.Parallel()
	lite := openTestSQLite(t)
	pg := openTestPostgres(t)
	loadCorpus(t, lite)
	loadCorpus(t, pg)
	ctx := context.Background()
	d := func(s string) time.Time { t, _ := time.Parse(time.DateOnly, s); return t }
	filters := []reports.Filter{
		{},
		{GroupBy: []string{reports.GroupDay}},
		{GroupBy: []string{reports.GroupPolicyDomain, reports.GroupMXHost}},
		{GroupBy: []string{reports.GroupOrganization, reports.GroupPolicyType}},
		{GroupBy: []string{reports.GroupResultType}},
		{GroupBy: []string{reports.GroupDay, reports.GroupPolicyDomain, reports.GroupOrganization, reports.GroupMXHost, reports.GroupPolicyType, reports.GroupResultType}},
		{GroupBy: []string{reports.GroupPolicyDomain, reports.GroupResultType}, ResultType: "tlsa-invalid"},
		{GroupBy: []string{reports.GroupResultType}, ResultType: reports.ResultSuccess},
		{ResultType: "certificate-expired"},
		{PolicyDomain: "company-y.example"},
		{Organization: "Mail.Ru", Since: d("2025-01-03"), Until: d("2025-01-09")},
		{MXHost: "mx1.d2.example"},
		{MXHost: "mx2.d4.example", GroupBy: []string{reports.GroupResultType, reports.GroupMXHost}},
		{Limit: 7},
		{Limit: 50, ResultType: "sts-policy-invalid"},
		{Since: d("2024-01-01")},
	}
	for i, f := range filters {
		a, errA := lite.Summary(ctx, f)
		b, errB := pg.Summary(ctx, f)
		if errA != nil || errB != nil {
			t.Fatalf("filter %d: %v / %v", i, errA, errB)
		}
		if len(a) == 0 && f.Since.IsZero() {
			t.Errorf("filter %d: empty summary", i)
		}
		if !reflect.DeepEqual(a, b) {
			t.Errorf("filter %d %+v: Summary differs\nsqlite   %+v\npostgres %+v", i, f, a, b)
		}
		fa, errA := lite.Failures(ctx, f)
		fb, errB := pg.Failures(ctx, f)
		if errA != nil || errB != nil {
			t.Fatalf("filter %d: %v / %v", i, errA, errB)
		}
		if !reflect.DeepEqual(fa, fb) {
			t.Errorf("filter %d %+v: Failures differ\nsqlite   %+v\npostgres %+v", i, f, fa, fb)
		}
	}
	for _, id := range []string{"5065427c-23d3-47ca-b6e0-946ea0e8c4be", reportstest.SynthReport(42).ReportID} {
		a, errA := lite.Show(ctx, id)
		b, errB := pg.Show(ctx, id)
		if errA != nil || errB != nil {
			t.Fatalf("Show %s: %v / %v", id, errA, errB)
		}
		// Row ids are backend-specific (PostgreSQL sequences advance on
		// ON CONFLICT); everything else must match.
		for i := range a {
			a[i].ID = 0
		}
		for i := range b {
			b[i].ID = 0
		}
		if !reflect.DeepEqual(a, b) {
			t.Errorf("Show %s differs\nsqlite   %+v\npostgres %+v", id, a, b)
		}
	}
	ra, _ := lite.ListRejected(ctx, reports.Filter{})
	rb, _ := pg.ListRejected(ctx, reports.Filter{})
	if len(ra) != 3 || !reflect.DeepEqual(ra, rb) {
		t.Errorf("ListRejected differs or wrong count %d\n%+v\n%+v", len(ra), ra, rb)
	}
}
