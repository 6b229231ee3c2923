package ingest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/reportstest"
	"github.com/mailsts/mailsts/internal/reports/sqlstore/sqlstoretest"
	"github.com/mailsts/mailsts/tlsrpt"
)

func newIngester(st reports.Store, mode DKIMMode, r dnsresolve.Resolver) *Ingester {
	return &Ingester{Store: st, DKIM: mode, Resolver: r, Now: reportstest.FixedNow}
}

func mustOutcome(t *testing.T, res Result, err error, want Outcome) {
	t.Helper()
	if err != nil {
		t.Fatalf("ingest: %v", err)
	}
	if res.Outcome != want {
		t.Fatalf("outcome %s, want %s (%+v)", res.Outcome, want, res)
	}
}

func hasRepair(rs []tlsrpt.Repair, code string) bool {
	return slices.ContainsFunc(rs, func(r tlsrpt.Repair) bool { return r.Code == code })
}

func TestIngestF10(t *testing.T) { // F-10a, F-10b, F-10c, RPT-ERRATA-1, RPT-RECV-4
	t.Parallel()
	st := sqlstoretest.OpenSQLite(t)
	in := newIngester(st, DKIMOff, nil)
	ctx := context.Background()
	// F-10a (as printed, a raw line break inside a string) is repaired
	// by tlsrpt.Parse and stored with the repair; b and c are the same
	// report, so they are duplicates.
	for i, name := range []string{"f10a.json", "f10b.json", "f10c.json"} {
		raw := reportstest.ReadFile(t, "../../../tlsrpt/testdata/"+name)
		res, err := in.Body(ctx, bytes.NewReader(raw), tlsrpt.MediaTypeJSON, int64(len(raw)), reports.SourceFile, name)
		want := OutcomeDuplicate
		if i == 0 {
			want = OutcomeStored
		}
		mustOutcome(t, res, err, want)
	}
	got, err := st.Show(ctx, "5065427c-23d3-47ca-b6e0-946ea0e8c4be")
	if err != nil || len(got) != 1 {
		t.Fatalf("Show: %v %v", got, err)
	}
	if !hasRepair(got[0].Repairs, "control-character-in-string") || !hasRepair(got[0].Repairs, "mx-host-string") {
		t.Errorf("F-10a repairs not stored: %v", got[0].Repairs)
	}
	c, _, _ := tlsrpt.Parse(reportstest.ReadFile(t, "../../../tlsrpt/testdata/f10c.json"))
	if got[0].Report.Policies[0].Summary != c.Policies[0].Summary || len(got[0].Report.Policies[0].FailureDetails) != len(c.Policies[0].FailureDetails) {
		t.Errorf("stored F-10a differs from F-10c: %+v", got[0].Report.Policies[0])
	}
}

func TestIngestF9DKIM(t *testing.T) { // F-9, RPT-MAIL-5, RPT-MAIL-7, RPT-RECV-1
	t.Parallel()
	ctx := context.Background()
	signed, fake := reportstest.SignF9(t)
	unsigned := reportstest.ReadFile(t, "../../../tlsrpt/testdata/f9-with-f10c.eml")

	t.Run("signed", func(t *testing.T) {
		t.Parallel()
		st := sqlstoretest.OpenSQLite(t)
		res, err := newIngester(st, DKIMRequire, fake).Message(ctx, bytes.NewReader(signed), reports.SourceMail, "")
		mustOutcome(t, res, err, OutcomeStored)
		got, err := st.Show(ctx, "5065427c-23d3-47ca-b6e0-946ea0e8c4be")
		if err != nil {
			t.Fatal(err)
		}
		if got[0].DKIMDomain != "mail.sender.example.com" || got[0].Submitter != "mail.sender.example.com" || !bytes.Equal(got[0].Raw, signed) {
			t.Errorf("stored %+v", got[0])
		}
		// F-9's Subject and headers disagree with F-10c's body: flagged,
		// the body wins (RPT-DELIV-6).
		if !slices.ContainsFunc(got[0].Problems, func(p tlsrpt.Problem) bool { return p.Code == "header-domain-mismatch" }) {
			t.Errorf("problems %v", got[0].Problems)
		}
	})
	t.Run("unsigned", func(t *testing.T) {
		t.Parallel()
		st := sqlstoretest.OpenSQLite(t)
		res, err := newIngester(st, DKIMRequire, fake).Message(ctx, bytes.NewReader(unsigned), reports.SourceMail, "")
		mustOutcome(t, res, err, OutcomeRejected)
		if res.Rejections[0].Reason != reports.ReasonDKIM {
			t.Errorf("reason %s", res.Rejections[0].Reason)
		}
		rj, err := st.RejectedRaw(ctx, res.Rejections[0].ID)
		if err != nil || !bytes.Equal(rj.Raw, unsigned) || !strings.Contains(rj.Detail, "no DKIM signature") {
			t.Errorf("rejected kept: %+v %v", rj.Detail, err)
		}
		if _, err := st.Show(ctx, "5065427c-23d3-47ca-b6e0-946ea0e8c4be"); !errors.Is(err, reports.ErrNotFound) {
			t.Errorf("unsigned report stored: %v", err)
		}
		// With DKIM off (the MTA verified), the same message is stored.
		res, err = newIngester(st, DKIMOff, nil).Message(ctx, bytes.NewReader(unsigned), reports.SourceMail, "")
		mustOutcome(t, res, err, OutcomeStored)
	})
	t.Run("tampered", func(t *testing.T) {
		t.Parallel()
		st := sqlstoretest.OpenSQLite(t)
		bad := bytes.Replace(signed, []byte("This is an aggregate"), []byte("This is a forged"), 1)
		res, err := newIngester(st, DKIMRequire, fake).Message(ctx, bytes.NewReader(bad), reports.SourceMail, "")
		mustOutcome(t, res, err, OutcomeRejected)
		if res.Rejections[0].Reason != reports.ReasonDKIM {
			t.Errorf("reason %s", res.Rejections[0].Reason)
		}
	})
	t.Run("key lookup fails", func(t *testing.T) {
		t.Parallel()
		st := sqlstoretest.OpenSQLite(t)
		failing := &dnsresolve.Fake{}
		failing.SetError("s1._domainkey.mail.sender.example.com", dnsresolve.ErrLookupFailed)
		_, err := newIngester(st, DKIMRequire, failing).Message(ctx, bytes.NewReader(signed), reports.SourceMail, "")
		if !errors.Is(err, ErrTemporary) {
			t.Fatalf("err %v, want ErrTemporary", err)
		}
		if l, _ := st.ListRejected(ctx, reports.Filter{}); len(l) != 0 {
			t.Errorf("temporary failure stored a rejection: %+v", l)
		}
	})
}

func TestIngestQuirkSamples(t *testing.T) { // TLSRPT-QUIRKS rows 1-32
	t.Parallel()
	st := sqlstoretest.OpenSQLite(t)
	in := newIngester(st, DKIMOff, nil)
	ctx := context.Background()
	dir := "../../../tlsrpt/testdata/quirks"
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		name := e.Name()
		raw := reportstest.ReadFile(t, filepath.Join(dir, name))
		var res Result
		switch filepath.Ext(name) {
		case ".json":
			res, err = in.Body(ctx, bytes.NewReader(raw), "", -1, reports.SourceFile, name)
		case ".eml":
			res, err = in.Message(ctx, bytes.NewReader(raw), reports.SourceFile, name)
		default:
			continue
		}
		n++
		if err != nil || res.Outcome == OutcomeRejected {
			t.Errorf("%s: %s %v %+v", name, res.Outcome, err, res.Rejections)
		}
	}
	if n < 30 {
		t.Errorf("only %d samples", n)
	}
	if l, _ := st.ListRejected(ctx, reports.Filter{}); len(l) != 0 {
		t.Errorf("rejections: %+v", l)
	}
}

// countingReader yields n bytes of '{' then spaces and counts reads.
type countingReader struct {
	left, read int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.left == 0 {
		return 0, io.EOF
	}
	n := int64(len(p))
	if n > c.left {
		n = c.left
	}
	for i := range p[:n] {
		p[i] = ' '
	}
	if c.read == 0 && n > 0 {
		p[0] = '{'
	}
	c.left -= n
	c.read += n
	return int(n), nil
}

func TestIngestHostile(t *testing.T) { // RPT-RECV-2, RPT-RECV-3
	t.Parallel()
	ctx := context.Background()
	st := sqlstoretest.OpenSQLite(t)
	in := newIngester(st, DKIMOff, nil)
	in.Limits = tlsrpt.Limits{MaxInput: 1 << 20, MaxOutput: 2 << 20}
	future := reportstest.SynthReport(1)
	future.DateRange = tlsrpt.DayRange(reportstest.FixedNow().Add(48 * time.Hour))
	futureJSON, _ := tlsrpt.Marshal(future)
	bomb := reportstest.Gzip(t, append([]byte("{"), bytes.Repeat([]byte(" "), 3<<20)...))
	cases := []struct {
		name, ctype string
		body        []byte
		reason      string
		sentinel    error
	}{
		{"gzip bomb", tlsrpt.MediaTypeGzip, bomb, reports.ReasonTooLarge, tlsrpt.ErrTooLarge},
		{"invalid JSON", tlsrpt.MediaTypeJSON, []byte(`{"organization-name": "x", `), reports.ReasonSyntax, tlsrpt.ErrSyntax},
		{"not JSON", tlsrpt.MediaTypeJSON, []byte("hello"), reports.ReasonSyntax, tlsrpt.ErrSyntax},
		{"wrong content type", "text/html", []byte("<html>"), reports.ReasonBadType, tlsrpt.ErrUnsupportedType},
		{"future date", tlsrpt.MediaTypeJSON, futureJSON, reports.ReasonFutureDate, tlsrpt.ErrInvalid},
		{"no report-id", tlsrpt.MediaTypeJSON, bytes.Replace(futureJSON, []byte(future.ReportID), nil, 1), reports.ReasonFutureDate, tlsrpt.ErrInvalid},
	}
	for _, tc := range cases {
		res, err := in.Body(ctx, bytes.NewReader(tc.body), tc.ctype, int64(len(tc.body)), reports.SourceHTTP, tc.name)
		mustOutcome(t, res, err, OutcomeRejected)
		rj := res.Rejections[0]
		if rj.Reason != tc.reason || !errors.Is(rj.Err, tc.sentinel) {
			t.Errorf("%s: reason %s err %v", tc.name, rj.Reason, rj.Err)
		}
		kept, err := st.RejectedRaw(ctx, rj.ID)
		if err != nil || !bytes.Equal(kept.Raw, tc.body) || kept.Origin != tc.name {
			t.Errorf("%s: raw not kept (%d bytes) %v", tc.name, len(kept.Raw), err)
		}
	}
	// No report-id, valid date.
	noID := reportstest.SynthReport(2)
	noID.ReportID = ""
	js, _ := tlsrpt.Marshal(noID)
	res, err := in.Body(ctx, bytes.NewReader(js), "", -1, reports.SourceFile, "noid")
	mustOutcome(t, res, err, OutcomeRejected)
	if res.Rejections[0].Reason != reports.ReasonNoReportID {
		t.Errorf("no report-id: %s", res.Rejections[0].Reason)
	}
	// 100 MB body: only the cap is read, a prefix is kept, flagged.
	cr := &countingReader{left: 100 << 20}
	res, err = in.Body(ctx, cr, tlsrpt.MediaTypeJSON, 100<<20, reports.SourceHTTP, "huge")
	mustOutcome(t, res, err, OutcomeRejected)
	if cr.read > in.Limits.MaxInput+64<<10 {
		t.Errorf("read %d bytes of a 100 MB body, cap %d", cr.read, in.Limits.MaxInput)
	}
	kept, _ := st.RejectedRaw(ctx, res.Rejections[0].ID)
	if !kept.Truncated || kept.Size != 100<<20 || len(kept.Raw) != rejectedPrefix || res.Rejections[0].Reason != reports.ReasonTooLarge {
		t.Errorf("huge: %+v (%d bytes)", kept, len(kept.Raw))
	}
	// A mail above the cap.
	cr = &countingReader{left: 100 << 20}
	res, err = in.Message(ctx, cr, reports.SourceMail, "huge mail")
	mustOutcome(t, res, err, OutcomeRejected)
	// A mail with no report.
	res, err = in.Message(ctx, strings.NewReader("From: a@example.org\r\nSubject: hi\r\n\r\nhello\r\n"), reports.SourceMail, "")
	mustOutcome(t, res, err, OutcomeRejected)
	if res.Rejections[0].Reason != reports.ReasonNoReport {
		t.Errorf("no report: %s", res.Rejections[0].Reason)
	}
	// Read failure: nothing stored, ErrRead.
	before, _ := st.ListRejected(ctx, reports.Filter{})
	_, err = in.Body(ctx, io.MultiReader(strings.NewReader("{"), errReader{}), "", -1, reports.SourceHTTP, "")
	if !errors.Is(err, ErrRead) {
		t.Errorf("read failure: %v", err)
	}
	if after, _ := st.ListRejected(ctx, reports.Filter{}); len(after) != len(before) {
		t.Error("read failure stored a rejection")
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

func TestIngestStorageFailure(t *testing.T) {
	t.Parallel()
	in := newIngester(reportstest.FailingStore{}, DKIMOff, nil)
	raw := reportstest.ReadFile(t, "../../../tlsrpt/testdata/f10c.json")
	if _, err := in.Body(context.Background(), bytes.NewReader(raw), "", -1, reports.SourceFile, ""); !errors.Is(err, reports.ErrStorage) {
		t.Errorf("report: %v", err)
	}
	if _, err := in.Body(context.Background(), strings.NewReader("junk"), "", -1, reports.SourceFile, ""); !errors.Is(err, reports.ErrStorage) {
		t.Errorf("rejection: %v", err)
	}
}

// TestIngestSenderQuirks: a last MIME part without its closing boundary,
// a missing policy-domain and a missing failure total, through the
// ingester and the store's queries.
func TestIngestSenderQuirks(t *testing.T) { // RPT-MAIL-1, RPT-AGG-4, RPT-DELIV-6
	t.Parallel()
	ctx := context.Background()
	q := func(name string) []byte { return reportstest.ReadFile(t, "../../../tlsrpt/testdata/quirks/"+name) }
	storedRepairs := func(t *testing.T, st reports.Store, reportID string) []tlsrpt.Repair {
		t.Helper()
		got, err := st.Show(ctx, reportID)
		if err != nil || len(got) != 1 {
			t.Fatalf("Show %s: %v %v", reportID, got, err)
		}
		return got[0].Repairs
	}

	t.Run("8 no closing boundary", func(t *testing.T) {
		t.Parallel()
		st := sqlstoretest.OpenSQLite(t)
		res, err := newIngester(st, DKIMOff, nil).Message(ctx, bytes.NewReader(q("i11-8-no-closing-boundary.eml")), reports.SourceMail, "")
		mustOutcome(t, res, err, OutcomeStored)
		if reps := storedRepairs(t, st, "2024-09-15T00:00:00Z_example.org"); !hasRepair(reps, "multipart-unterminated") {
			t.Errorf("repairs %v", reps)
		}
	})
	t.Run("9 policy-domain from the mail", func(t *testing.T) {
		t.Parallel()
		st := sqlstoretest.OpenSQLite(t)
		res, err := newIngester(st, DKIMOff, nil).Message(ctx, bytes.NewReader(q("i11-9-no-policy-domain.eml")), reports.SourceMail, "")
		mustOutcome(t, res, err, OutcomeStored)
		if reps := storedRepairs(t, st, "2024-06-01_example.org"); !hasRepair(reps, "policy-domain-from-mail") {
			t.Errorf("repairs %v", reps)
		}
		rows, err := st.Summary(ctx, reports.Filter{PolicyDomain: "example.org", GroupBy: []string{reports.GroupPolicyDomain}})
		if err != nil || len(rows) != 1 || rows[0].Reports != 1 || rows[0].Successful != 10 {
			t.Errorf("summary --domain example.org: %+v %v", rows, err)
		}
	})
	t.Run("9 policy-domain from a file name", func(t *testing.T) {
		t.Parallel()
		st := sqlstoretest.OpenSQLite(t)
		raw := q("q13-no-policy-found-no-domain.json")
		name := "/spool/reporter.example!example.org!1717200000!1717286399!001.json"
		res, err := newIngester(st, DKIMOff, nil).Body(ctx, bytes.NewReader(raw), "", int64(len(raw)), reports.SourceFile, name)
		mustOutcome(t, res, err, OutcomeStored)
		rows, err := st.Summary(ctx, reports.Filter{PolicyDomain: "example.org", GroupBy: []string{reports.GroupPolicyDomain}})
		if err != nil || len(rows) != 1 || rows[0].Reports != 1 {
			t.Errorf("summary --domain example.org: %+v %v", rows, err)
		}
	})
	t.Run("10 failure total from the details", func(t *testing.T) {
		t.Parallel()
		st := sqlstoretest.OpenSQLite(t)
		raw := q("i11-10-failures-only-in-details.json")
		res, err := newIngester(st, DKIMOff, nil).Body(ctx, bytes.NewReader(raw), tlsrpt.MediaTypeJSON, int64(len(raw)), reports.SourceHTTP, "192.0.2.9")
		mustOutcome(t, res, err, OutcomeStored)
		if reps := storedRepairs(t, st, "2024-06-01_example.org_i11-10"); !hasRepair(reps, "failure-count-from-details") {
			t.Errorf("repairs %v", reps)
		}
		rows, err := st.Summary(ctx, reports.Filter{GroupBy: []string{reports.GroupPolicyDomain}})
		if err != nil || len(rows) != 1 || rows[0].Successful != 97 || rows[0].Failed != 303 || rows[0].SuccessRate == nil || *rows[0].SuccessRate >= 0.5 {
			t.Errorf("summary %+v %v: want 97 successful, 303 failed", rows, err)
		}
	})
}

// TestIngestDKIMOrganisation: issue #11.7 and #11.2. Mail.ru signs with
// d=corp.mail.ru for submitter mail.ru: stored. A valid signature of an
// unrelated domain for submitter google.com is no signature: rejected
// (reason dkim), as unsigned mail is. RPT-MAIL-5, RPT-MAIL-7, RPT-RECV-1.
func TestIngestDKIMOrganisation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name, contact, from, d string
		stored                 bool
	}{
		{"Mail.ru", "tlsrpt@mail.ru", "tlsrpt@corp.mail.ru", "corp.mail.ru", true},
		{"Google", "smtp-tls-reporting@google.com", "noreply-smtp-tls-reporting@google.com", "google.com", true},
		{"Microsoft", "tlsrpt-noreply@microsoft.com", "tlsrpt-noreply@microsoft.com", "microsoft.com", true},
		{"attacker", "smtp-tls-reporting@google.com", "x@evil.example", "evil.example", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := sqlstoretest.OpenSQLite(t)
			r := reportstest.SynthReport(1)
			r.ContactInfo = tc.contact
			msg, fake := reportstest.SignedReportMail(t, r, tc.from, tc.d)
			res, err := newIngester(st, DKIMRequire, fake).Message(ctx, bytes.NewReader(msg), reports.SourceMail, "")
			if !tc.stored {
				mustOutcome(t, res, err, OutcomeRejected)
				if res.Rejections[0].Reason != reports.ReasonDKIM {
					t.Errorf("reason %s", res.Rejections[0].Reason)
				}
				return
			}
			mustOutcome(t, res, err, OutcomeStored)
			got, err := st.Show(ctx, r.ReportID)
			if err != nil {
				t.Fatal(err)
			}
			if got[0].DKIMDomain != tc.d {
				t.Errorf("DKIM domain %q, want %q", got[0].DKIMDomain, tc.d)
			}
			if slices.ContainsFunc(got[0].Problems, func(p tlsrpt.Problem) bool { return strings.HasSuffix(p.Code, "-mismatch") }) {
				t.Errorf("same-organisation domains flagged: %v", got[0].Problems)
			}
		})
	}
}
