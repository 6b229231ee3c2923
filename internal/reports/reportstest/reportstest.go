// Package reportstest holds the fixtures the report packages' tests share:
// a fixed clock, a deterministic synthetic report set, DKIM-signed report
// mails with a DNS fake serving their keys, a PostgreSQL test schema and a
// store that fails every write. Only tests import it (it links testing);
// it does not import a store implementation, so the store's own tests can
// use it (sqlstoretest opens stores).
package reportstest

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver of the admin connection

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/tlsrpt"
)

// FixedNow is the test clock: well after every sample's dates.
func FixedNow() time.Time { return time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC) }

// ReadFile reads a file or fails the test.
func ReadFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Sample reads a file of tlsrpt/testdata (the RFC and real-world samples).
func Sample(t testing.TB, name string) []byte {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("reportstest: no caller information")
	}
	return ReadFile(t, filepath.Join(filepath.Dir(file), "..", "..", "..", "tlsrpt", "testdata", name))
}

// Gzip compresses b.
func Gzip(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// SynthReport builds report i of a deterministic synthetic set with the
// tlsrpt builders: varied organisations, days, domains, policy types and
// failure details.
func SynthReport(i int) *tlsrpt.Report {
	orgs := []string{"Google Inc.", "Microsoft Corporation", "Mail.Ru", "Yahoo", "Example Sender"}
	results := tlsrpt.ResultTypes()
	org := orgs[i%len(orgs)]
	dom := fmt.Sprintf("d%d.example", i%7)
	day := time.Date(2025, 1, 1+i%20, 0, 0, 0, 0, time.UTC)
	var a tlsrpt.Aggregator
	sts := tlsrpt.Policy{Type: tlsrpt.PolicyTypeSTS, String: []string{"version: STSv1", "mode: enforce", "mx: mx1." + dom, "max_age: 86400"},
		Domain: dom, MXHost: []string{"mx1." + dom}}
	a.AddSuccess(sts, int64(100+i%13))
	for j := 0; j < i%4; j++ {
		a.AddFailure(sts, tlsrpt.FailureDetails{ResultType: results[(i+j)%len(results)], SendingMTAIP: fmt.Sprintf("192.0.2.%d", 1+j),
			ReceivingMXHostname: "mx1." + dom, ReceivingIP: "198.51.100.7", FailureReasonCode: fmt.Sprintf("code-%d", j)})
	}
	if i%3 == 0 {
		tlsa := tlsrpt.Policy{Type: tlsrpt.PolicyTypeTLSA, String: []string{"3 1 1 " + fmt.Sprintf("%064x", i)}, Domain: "mx2." + dom}
		a.AddSuccess(tlsa, 7)
		a.AddFailure(tlsa, tlsrpt.FailureDetails{ResultType: tlsrpt.ResultTLSAInvalid, ReceivingMXHostname: "mx2." + dom})
	}
	if i%5 == 4 {
		a.AddFailure(tlsrpt.Policy{Type: tlsrpt.PolicyTypeNoPolicyFound, Domain: dom})
	}
	r := a.Report(tlsrpt.ReportParams{OrganizationName: org, ContactInfo: "tlsrpt@" + fmt.Sprintf("sender%d.example", i%len(orgs)), PolicyDomain: dom, Day: day})
	r.ReportID = fmt.Sprintf("%s-%d", r.ReportID, i)
	return r
}

// Forged returns a report with r's organisation and report-id but other
// content: what an attacker POSTs ahead of the genuine report.
func Forged(r *tlsrpt.Report) *tlsrpt.Report {
	f := *r
	f.Policies = []tlsrpt.PolicyResult{{
		Policy:  r.Policies[0].Policy,
		Summary: tlsrpt.Summary{TotalSuccessfulSessionCount: 0, TotalFailureSessionCount: 999},
		FailureDetails: []tlsrpt.FailureDetails{{ResultType: tlsrpt.ResultCertificateExpired, FailedSessionCount: 999,
			ReceivingMXHostname: "mx1.attacker.example"}},
	}}
	return &f
}

// BigReport is report i of one organisation and day, one STS policy with
// count successful and count failed sessions (one detail).
func BigReport(i int, count int64) *tlsrpt.Report {
	pol := tlsrpt.Policy{Type: tlsrpt.PolicyTypeSTS, String: []string{"version: STSv1", "mode: enforce", "mx: mx.example.org", "max_age: 86400"},
		Domain: "example.org", MXHost: []string{"mx.example.org"}}
	return &tlsrpt.Report{
		OrganizationName: "Overflow Inc.", ContactInfo: "tlsrpt@overflow.example", ReportID: fmt.Sprintf("overflow-%d", i),
		DateRange: tlsrpt.DayRange(time.Date(2025, 1, 10, 0, 0, 0, 0, time.UTC)),
		Policies: []tlsrpt.PolicyResult{{Policy: pol,
			Summary:        tlsrpt.Summary{TotalSuccessfulSessionCount: count, TotalFailureSessionCount: count},
			FailureDetails: []tlsrpt.FailureDetails{{ResultType: tlsrpt.ResultCertificateExpired, FailedSessionCount: count}}}},
	}
}

// OrgTotals sums Summary grouped by organisation over the reports
// matching f: reports, successful and failed sessions.
func OrgTotals(t testing.TB, st reports.Store, f reports.Filter) (n, succ, fail int64) {
	t.Helper()
	f.GroupBy = []string{reports.GroupOrganization}
	rows, err := st.Summary(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		n += r.Reports
		succ += r.Successful
		fail += r.Failed
	}
	return
}

// Put stores r (as gzip when raw is nil) as a file received at FixedNow
// with one repair, or fails the test.
func Put(t testing.TB, st reports.Store, r *tlsrpt.Report, raw []byte) reports.PutResult {
	t.Helper()
	if raw == nil {
		var err error
		if raw, err = tlsrpt.MarshalGzip(r); err != nil {
			t.Fatal(err)
		}
	}
	res, err := st.PutReport(context.Background(), reports.Incoming{Report: r, Raw: raw, Source: reports.SourceFile, Origin: "test",
		ReceivedAt: FixedNow(), Repairs: []tlsrpt.Repair{{Code: "x", Detail: "y"}}})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// SignF9 signs F-9 (with F-10c) as mail.sender.example.com with a fresh
// Ed25519 key and returns the message and a Fake serving the key.
func SignF9(t testing.TB) ([]byte, *dnsresolve.Fake) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f9 := Sample(t, "f9-with-f10c.eml")
	signed, err := tlsrpt.SignMessage(f9, dkim.SignOptions{Domain: "mail.sender.example.com", Selector: "s1", Signer: priv})
	if err != nil {
		t.Fatal(err)
	}
	fake := &dnsresolve.Fake{}
	fake.SetTXT("s1._domainkey.mail.sender.example.com", "v=DKIM1; k=ed25519; s=tlsrpt; p="+base64.StdEncoding.EncodeToString(pub))
	return signed, fake
}

// SignedReportMail composes a report mail for r (submitter: its
// contact-info domain) with From from, signed as d=domain, and a Fake
// serving the key.
func SignedReportMail(t testing.TB, r *tlsrpt.Report, from, domain string) ([]byte, *dnsresolve.Fake) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := tlsrpt.ComposeMessage(r, tlsrpt.MailOptions{From: from, To: []string{"tlsrpt@example.org"}, Date: FixedNow(), MessageID: "m@" + domain})
	if err != nil {
		t.Fatal(err)
	}
	signed, err := tlsrpt.SignMessage(msg, dkim.SignOptions{Domain: domain, Selector: "s1", Signer: priv})
	if err != nil {
		t.Fatal(err)
	}
	fake := &dnsresolve.Fake{}
	fake.SetTXT("s1._domainkey."+domain, "v=DKIM1; k=ed25519; p="+base64.StdEncoding.EncodeToString(pub))
	return signed, fake
}

// FailingStore fails every write, to test that storage errors surface.
type FailingStore struct{ reports.Store }

// PutReport fails with reports.ErrStorage.
func (FailingStore) PutReport(context.Context, reports.Incoming) (reports.PutResult, error) {
	return reports.PutResult{}, reports.ErrStorage
}

// PutRejected fails with reports.ErrStorage.
func (FailingStore) PutRejected(context.Context, reports.Rejection) (int64, error) {
	return 0, reports.ErrStorage
}

// PostgresServer is the test server: 127.0.0.1:5432, database test, trust
// auth. MAILSTS_TEST_POSTGRES overrides it.
func PostgresServer() string {
	if d := os.Getenv("MAILSTS_TEST_POSTGRES"); d != "" {
		return d
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// PostgresDSN creates schema mailsts_test_<random> on the test server,
// drops it at cleanup and returns a DSN whose search_path is that schema.
// It skips (with the reason) when the server is unreachable.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dsn := PostgresServer()
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.PingContext(ctx); err != nil {
		admin.Close()
		t.Skipf("PostgreSQL test server %s unreachable (set MAILSTS_TEST_POSTGRES): %v", redact(dsn), err)
	}
	var b [6]byte
	rand.Read(b[:])
	schema := "mailsts_test_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		admin.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
		admin.Close()
	})
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + "search_path=" + schema
}

// redact drops a password from a URL DSN for messages.
func redact(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" {
		return u.Redacted()
	}
	if strings.Contains(dsn, "password") {
		return "(dsn with password)"
	}
	return dsn
}
