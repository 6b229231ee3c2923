package cli

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

func TestServe(t *testing.T) { // RPT-HTTP-3
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := reports.OpenSQLite(ctx, filepath.Join(t.TempDir(), "r.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	in := &reports.Ingester{Store: st, DKIM: reports.DKIMOff}
	srv := newReportServer(in, st, "/reports", true, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- serveUntil(ctx, srv, ln, discardLog()) }()
	base := "http://" + ln.Addr().String()
	resp, err := http.Post(base+"/reports", tlsrpt.MediaTypeJSON, bytes.NewReader(testdataFile(t, "f10c.json")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("POST: %d", resp.StatusCode)
	}
	resp, err = http.Get(base + "/api/v1/summary")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"successful_sessions": 5326`) {
		t.Errorf("api: %s", b)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("shutdown: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("server did not stop")
	}
	if _, err := http.Get(base + "/api/v1/summary"); err == nil {
		t.Error("still serving after shutdown")
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

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }
