package cli

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/tlsrpt"
)

// runStdin runs the command line with stdin and a private state directory.
func runStdin(t *testing.T, stdin []byte, state string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := Env{Stdin: bytes.NewReader(stdin), Stdout: &out, Stderr: &errb, Getenv: func(k string) string {
		if k == "STATE_DIRECTORY" {
			return state
		}
		return ""
	}}
	code := Main(context.Background(), args, env)
	return code, out.String(), errb.String()
}

func testdataFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "tlsrpt", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTLSRPTIngestAndQuery(t *testing.T) { // RPT-RECV-4, RPT-MAIL-7, F-9, F-10
	t.Parallel()
	state := t.TempDir()
	dir := t.TempDir()
	c, _, err := tlsrpt.Parse(testdataFile(t, "f10c.json"))
	if err != nil {
		t.Fatal(err)
	}
	gz, _ := tlsrpt.MarshalGzip(c)
	gzPath := filepath.Join(dir, "company-x.example!company-y.example!1459468800!1459555199.json.gz")
	os.WriteFile(gzPath, gz, 0o600)
	junk := filepath.Join(dir, "junk.json")
	os.WriteFile(junk, []byte(`{"policies": `), 0o600)

	// Files: the default database is reports.db in $STATE_DIRECTORY.
	code, out, errOut := runStdin(t, nil, state, "tlsrpt", "ingest", "--dkim", "off", gzPath)
	if code != ExitOK || !strings.Contains(out, "stored") {
		t.Fatalf("ingest file: %d %s %s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(state, "reports.db")); err != nil {
		t.Errorf("default database: %v", err)
	}
	code, out, _ = runStdin(t, nil, state, "tlsrpt", "ingest", "--dkim", "off", gzPath, junk)
	if code != ExitRejected || !strings.Contains(out, "duplicate") || !strings.Contains(out, "rejected (syntax") {
		t.Errorf("duplicate + junk: %d %s", code, out)
	}
	// Stdin mail, DKIM required by default: F-9 is unsigned, so it is
	// rejected and kept (exit 65, or --reject-exit 0 for the MTA).
	f9 := testdataFile(t, "f9-with-f10c.eml")
	code, out, _ = runStdin(t, f9, state, "tlsrpt", "ingest", "--dns", "127.0.0.1:1")
	if code != ExitRejected || !strings.Contains(out, "rejected (dkim") {
		t.Errorf("unsigned F-9: %d %s", code, out)
	}
	if code, _, _ = runStdin(t, f9, state, "tlsrpt", "ingest", "--dns", "127.0.0.1:1", "--reject-exit", "0"); code != 0 {
		t.Errorf("--reject-exit 0: %d", code)
	}
	// JSON on stdin is a report body.
	if code, out, _ = runStdin(t, testdataFile(t, "f10b.json"), state, "tlsrpt", "ingest"); code != ExitOK || !strings.Contains(out, "duplicate") {
		t.Errorf("stdin JSON: %d %s", code, out)
	}

	code, out, _ = runStdin(t, nil, state, "tlsrpt", "summary")
	if code != 0 || !strings.Contains(out, "company-y.example") || !strings.Contains(out, "94.62%") {
		t.Errorf("summary table: %d\n%s", code, out)
	}
	code, out, _ = runStdin(t, nil, state, "tlsrpt", "summary", "--group-by", "result", "--json")
	var rows []reports.SummaryRow
	if err := json.Unmarshal([]byte(out), &rows); code != 0 || err != nil || len(rows) != 4 || rows[0].ResultType != reports.ResultSuccess {
		t.Errorf("summary json: %d %v %s", code, err, out)
	}
	code, out, _ = runStdin(t, nil, state, "tlsrpt", "failures", "--csv", "--result", "certificate-expired")
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if code != 0 || err != nil || len(recs) != 2 || recs[1][6] != "certificate-expired" {
		t.Errorf("failures csv: %d %v %q", code, err, out)
	}
	code, out, _ = runStdin(t, nil, state, "tlsrpt", "show", c.ReportID)
	if code != 0 || !strings.Contains(out, "Company-X") || !strings.Contains(out, "starttls-not-supported") {
		t.Errorf("show: %d %s", code, out)
	}
	code, out, _ = runStdin(t, nil, state, "tlsrpt", "show", "--raw", c.ReportID)
	if code != 0 || out != string(gz) {
		t.Errorf("show --raw: %d, %d bytes", code, len(out))
	}
	if code, _, _ = runStdin(t, nil, state, "tlsrpt", "show", "nope"); code != ExitFailure {
		t.Errorf("show nope: %d", code)
	}
	code, out, _ = runStdin(t, nil, state, "tlsrpt", "rejected", "--json")
	var rej []reports.Rejected
	if err := json.Unmarshal([]byte(out), &rej); code != 0 || err != nil || len(rej) != 3 {
		t.Fatalf("rejected: %d %v %s", code, err, out)
	}
	code, out, _ = runStdin(t, nil, state, "tlsrpt", "rejected", "--raw", "1")
	if code != 0 || out != `{"policies": ` {
		t.Errorf("rejected --raw: %d %q", code, out)
	}
	for _, args := range [][]string{
		{"tlsrpt", "summary", "--group-by", "colour"},
		{"tlsrpt", "summary", "--since", "yesterday"},
		{"tlsrpt", "show"},
		{"tlsrpt", "frobnicate"},
		{"tlsrpt", "ingest", "--dkim", "maybe"},
		// Issue 11 item 13: flags a subcommand does not honour, and
		// conflicting ones, are refused rather than ignored.
		{"tlsrpt", "show", "--csv", "x"},
		{"tlsrpt", "show", "--org", "Google", "x"},
		{"tlsrpt", "show", "--raw", "--json", "x"},
		{"tlsrpt", "summary", "--json", "--csv"},
		{"tlsrpt", "summary", "--limit", "5"},
		{"tlsrpt", "failures", "--group-by", "org"},
		{"tlsrpt", "rejected", "--domain", "example.org"},
		{"tlsrpt", "rejected", "--raw", "1", "--csv"},
		{"tlsrpt", "failures", "--limit", "-1"},
	} {
		if code, _, _ := runStdin(t, nil, state, args...); code != ExitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, ExitUsage)
		}
	}
}

func TestTLSRPTIngestStorageFailure(t *testing.T) {
	t.Parallel()
	// A database path that cannot be created: temp-fail (EX_TEMPFAIL) so
	// the MTA retries.
	blocker := filepath.Join(t.TempDir(), "file")
	os.WriteFile(blocker, nil, 0o600)
	code, _, errOut := runStdin(t, testdataFile(t, "f10c.json"), "", "tlsrpt", "ingest", "--db", "sqlite:"+filepath.Join(blocker, "x", "r.db"))
	if code != ExitTempFail {
		t.Errorf("exit %d %s", code, errOut)
	}
	code, _, errOut = runStdin(t, testdataFile(t, "f10c.json"), "", "tlsrpt", "ingest", "--dkim", "off", "--db", "postgres://nobody@127.0.0.1:1/none?connect_timeout=2")
	if code != ExitTempFail {
		t.Errorf("unreachable postgres: exit %d %s", code, errOut)
	}
}

func TestTLSRPTMaildirCLI(t *testing.T) {
	t.Parallel()
	md := t.TempDir()
	for _, s := range []string{"new", "cur", "tmp"} {
		os.MkdirAll(filepath.Join(md, s), 0o700)
	}
	os.WriteFile(filepath.Join(md, "new", "1"), testdataFile(t, "f9-with-f10c.eml"), 0o600)
	code, out, errOut := runStdin(t, nil, t.TempDir(), "tlsrpt", "ingest", "--dkim", "off", "--maildir", md)
	if code != 0 || !strings.Contains(out, "1 stored") {
		t.Errorf("maildir: %d %s %s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(md, ".Processed", "cur", "1:2,S")); err != nil {
		t.Error(err)
	}
}

func TestServeUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"serve", "--path", "/api/v1/x"},
		{"serve", "--tls-cert", "c.pem"},
		{"serve", "extra"},
	} {
		if code, _, _ := runStdin(t, nil, t.TempDir(), args...); code != ExitUsage {
			t.Errorf("%v: exit %d", args, code)
		}
	}
}

// TestTLSRPTConflictCLI: issue #11.2 through the command line. A second
// report with the organisation and report-id of a stored one but other
// content is stored and flagged, not acknowledged as a duplicate;
// --authenticated-only leaves out the unauthenticated (file) input.
func TestTLSRPTConflictCLI(t *testing.T) { // RPT-RECV-4
	t.Parallel()
	state := t.TempDir()
	dir := t.TempDir()
	c, _, err := tlsrpt.Parse(testdataFile(t, "f10c.json"))
	if err != nil {
		t.Fatal(err)
	}
	forged := *c
	forged.Policies = []tlsrpt.PolicyResult{{Policy: c.Policies[0].Policy, Summary: tlsrpt.Summary{TotalFailureSessionCount: 7},
		FailureDetails: []tlsrpt.FailureDetails{{ResultType: tlsrpt.ResultCertificateExpired, FailedSessionCount: 7}}}}
	fb, _ := tlsrpt.Marshal(&forged)
	forgedPath := filepath.Join(dir, "forged.json")
	os.WriteFile(forgedPath, fb, 0o600)
	genuinePath := filepath.Join(dir, "genuine.json")
	os.WriteFile(genuinePath, testdataFile(t, "f10c.json"), 0o600)
	if code, out, errOut := runStdin(t, nil, state, "tlsrpt", "ingest", "--dkim", "off", forgedPath); code != ExitOK || !strings.Contains(out, "stored") {
		t.Fatalf("forged: %d %s %s", code, out, errOut)
	}
	code, out, _ := runStdin(t, nil, state, "tlsrpt", "ingest", "--dkim", "off", genuinePath)
	if code != ExitOK || strings.Contains(out, "duplicate") || !strings.Contains(out, "conflict") {
		t.Fatalf("genuine after forged: %d %s", code, out)
	}
	if code, out, _ = runStdin(t, nil, state, "tlsrpt", "ingest", "--dkim", "off", genuinePath); code != ExitOK || !strings.Contains(out, "duplicate") {
		t.Errorf("identical retry: %d %s", code, out)
	}
	code, out, _ = runStdin(t, nil, state, "tlsrpt", "show", "--json", c.ReportID)
	var shown []map[string]any
	if err := json.Unmarshal([]byte(out), &shown); code != 0 || err != nil || len(shown) != 2 || shown[0]["conflict"] != true || shown[1]["authenticated"] != false {
		t.Errorf("show --json: %d %v %s", code, err, out)
	}
	if code, out, _ = runStdin(t, nil, state, "tlsrpt", "show", c.ReportID); code != 0 || strings.Count(out, "Conflict:") != 2 || !strings.Contains(out, "Authenticated: no") {
		t.Errorf("show: %d %s", code, out)
	}
	if code, _, _ = runStdin(t, nil, state, "tlsrpt", "show", "--authenticated-only", c.ReportID); code != ExitFailure {
		t.Errorf("show --authenticated-only: %d, want %d (none authenticated)", code, ExitFailure)
	}
	// The first stored counts; the copy is not added.
	code, out, _ = runStdin(t, nil, state, "tlsrpt", "summary", "--json")
	var rows []reports.SummaryRow
	if err := json.Unmarshal([]byte(out), &rows); code != 0 || err != nil || len(rows) != 1 || rows[0].Reports != 1 || rows[0].Failed != 7 {
		t.Errorf("summary: %d %v %s", code, err, out)
	}
	code, out, _ = runStdin(t, nil, state, "tlsrpt", "summary", "--authenticated-only", "--json")
	if err := json.Unmarshal([]byte(out), &rows); code != 0 || err != nil || len(rows) != 0 {
		t.Errorf("summary --authenticated-only: %d %v %s", code, err, out)
	}
	code, out, _ = runStdin(t, nil, state, "tlsrpt", "failures", "--csv")
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if code != 0 || err != nil || len(recs) != 5 || recs[0][14] != "authenticated" || recs[1][14] != "false" || recs[1][15] != "true" {
		t.Errorf("failures csv: %d %v %q", code, err, out)
	}
}
