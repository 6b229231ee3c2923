package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/sqlstore"
)

// TestRun1k is the small version of the benchmark that runs with go test.
// The 100,000-report run is `go run ./bench/reports` (README.md).
func TestRun1k(t *testing.T) {
	t.Parallel()
	db := "sqlite:" + filepath.Join(t.TempDir(), "b.db")
	res, err := Run(context.Background(), Config{N: 1000, DB: db, Batch: 100, Repeat: 1})
	if err != nil {
		t.Fatal(err)
	}
	checkResults(t, res)
	// -reuse queries the same file again without ingesting.
	again, err := Run(context.Background(), Config{N: 1000, DB: db, Reuse: true, Repeat: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Queries) != len(res.Queries) {
		t.Fatalf("reuse ran %d queries, want %d", len(again.Queries), len(res.Queries))
	}
	for i, q := range again.Queries {
		if q.Rows != res.Queries[i].Rows {
			t.Errorf("%s: %d rows on reuse, %d first", q.Name, q.Rows, res.Queries[i].Rows)
		}
	}
}

// TestRunWriters: the concurrent single-report ingest, through
// GroupCommit, stores every report.
func TestRunWriters(t *testing.T) {
	t.Parallel()
	db := "sqlite:" + filepath.Join(t.TempDir(), "w.db")
	res, err := Run(context.Background(), Config{N: 300, DB: db, Writers: 8, Group: true, Repeat: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.ReportsPerSec <= 0 {
		t.Errorf("results %+v", res)
	}
	for _, q := range res.Queries {
		if q.Name == "summary (org)" && q.Rows != 40 {
			t.Errorf("summary (org): %d rows, want 40 organisations", q.Rows)
		}
	}
}

// checkResults: every query returned rows (the filters select existing
// data) and the sizes are plausible.
func checkResults(t *testing.T, res Results) {
	t.Helper()
	if res.Reports != 1000 || res.BytesPerReport <= 0 || res.ReportsPerSec <= 0 || len(res.Queries) < 10 {
		t.Errorf("results %+v", res)
	}
	for _, q := range res.Queries {
		if q.Rows == 0 || q.Best <= 0 || q.Best > q.First {
			t.Errorf("%s: %+v", q.Name, q)
		}
	}
	t.Logf("%+v", res)
}

func TestRun1kPostgres(t *testing.T) {
	t.Parallel()
	dsn := "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	db, _ := sql.Open("pgx", dsn)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		t.Skipf("PostgreSQL test server unreachable: %v", err)
	}
	// Its own schema name, so parallel runs of the benchmark do not clash.
	var b [6]byte
	rand.Read(b[:])
	schema := "bench_reports_test_" + hex.EncodeToString(b[:])
	res, err := Run(context.Background(), Config{N: 1000, DB: dsn, Batch: 100, Schema: schema, Repeat: 1})
	if err != nil {
		t.Fatal(err)
	}
	checkResults(t, res)
	// The schema is dropped after the run.
	var n int
	if err := db.QueryRowContext(context.Background(), `SELECT count(*) FROM pg_namespace WHERE nspname = $1`, schema).Scan(&n); err != nil || n != 0 {
		t.Errorf("schema %s left behind (%d, %v)", schema, n, err)
	}
}

func TestSynthVaried(t *testing.T) {
	t.Parallel()
	orgs, domains, types := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for i := 0; i < 1000; i++ {
		r := Synth(i)
		if err := r.Validate(); err != nil {
			t.Fatalf("report %d: %v", i, err)
		}
		orgs[r.OrganizationName] = true
		for _, p := range r.Policies {
			domains[p.Policy.Domain] = true
			for _, d := range p.FailureDetails {
				types[string(d.ResultType)] = true
			}
		}
	}
	if len(orgs) != 40 || len(domains) < 400 || len(types) < 11 {
		t.Errorf("not varied: %d orgs, %d domains, %d result types", len(orgs), len(domains), len(types))
	}
}

// TestCompare: the side-by-side mode stores every report on both paths
// (each in its own fresh database) and reports both rates.
// Both kinds of HTTP client (the lean writer and net/http's) must give
// every report to the receiver.
func TestCompare(t *testing.T) {
	t.Parallel()
	for _, std := range []bool{false, true} {
		t.Run(fmt.Sprintf("stdclient=%v", std), func(t *testing.T) {
			t.Parallel()
			testCompare(t, std)
		})
	}
}

func testCompare(t *testing.T, std bool) {
	path := filepath.Join(t.TempDir(), "c.db")
	var out strings.Builder
	rs, err := Compare(context.Background(), Config{N: 200, DB: "sqlite:" + path, Batch: 50, HTTP: 8, StdClient: std}, 1, &out)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || rs[0].Batch <= 0 || rs[0].HTTP <= 0 || rs[0].BatchCPU <= 0 || rs[0].HTTPCPU <= 0 {
		t.Fatalf("rounds %+v", rs)
	}
	if !strings.Contains(out.String(), "round 1: batch ") {
		t.Errorf("output %q", out.String())
	}
	for _, p := range []string{path, path + "_http"} {
		st, err := sqlstore.OpenSQLite(context.Background(), p, nil)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := st.Summary(context.Background(), reports.Filter{GroupBy: []string{reports.GroupOrganization}})
		st.Close()
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, r := range rows {
			n += r.Reports
		}
		if n != 200 {
			t.Errorf("%s: %d reports stored, want 200", filepath.Base(p), n)
		}
	}
}

// TestMain doubles as a fake mox peer: with MAILSTS_FAKE_MOXPARSE set,
// the test binary prints that line as moxparse would and exits.
func TestMain(m *testing.M) {
	if line := os.Getenv("MAILSTS_FAKE_MOXPARSE"); line != "" {
		fmt.Println(line)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// synthSums sums the counts of Synth(0..n-1) straight from the reports.
func synthSums(n int) (policies int, sessions, details int64) {
	for i := range n {
		for _, p := range Synth(i).Policies {
			policies++
			sessions += p.Summary.TotalSuccessfulSessionCount + p.Summary.TotalFailureSessionCount
			for _, d := range p.FailureDetails {
				details += d.FailedSessionCount
			}
		}
	}
	return policies, sessions, details
}

// TestParseMails: the mail mode's mailsts side parses every composed
// mail, and its sums are those of the Synth reports the mails carry.
func TestParseMails(t *testing.T) {
	t.Parallel()
	const n = 40
	dir := t.TempDir()
	want, size, err := writeMails(dir, n)
	if err != nil {
		t.Fatal(err)
	}
	mails, err := readMails(dir)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, m := range mails {
		total += int64(len(m))
	}
	if len(mails) != n || total != size {
		t.Fatalf("%d mails of %d bytes read, want %d of %d", len(mails), total, n, size)
	}
	p := parseMails(mails)
	if p.Mails != n || p.Failures != 0 {
		t.Fatalf("pass %+v", p)
	}
	policies, sessions, details := synthSums(n)
	if p.Policies != policies || p.Sessions != sessions || p.Details != details || p.Sums != want {
		t.Errorf("parsed %v, the reports have policies=%d sessions=%d detail_sessions=%d (writeMails: %v)",
			p.Sums, policies, sessions, details, want)
	}
	if p.Elapsed <= 0 || details == 0 {
		t.Errorf("pass %+v", p)
	}
	// A mail that is not a report counts as a failure, not as parsed.
	p = parseMails(append(mails, []byte("Subject: hello\r\n\r\nno report\r\n")))
	if p.Failures != 1 || !strings.Contains(p.FirstError, fmt.Sprintf("mail %d:", n)) {
		t.Errorf("with a mail without report: %+v", p)
	}
}

// TestCompareMailsPeer: the side-by-side mode takes the peer's line,
// and fails when the peer's sums or counts are not the reports'. The
// peer is this test binary (TestMain), printing a line made here.
func TestCompareMailsPeer(t *testing.T) {
	t.Parallel()
	const n = 20
	policies, sessions, details := synthSums(n)
	line := func(mails, failures int, sessions int64) string {
		return fmt.Sprintf(`{"mails":%d,"failures":%d,"elapsed_ns":2000000,"cpu_ns":1000000,"policies":%d,"sessions":%d,"detail_sessions":%d}`,
			mails, failures, policies, sessions, details)
	}
	fake := func(peerLine string) MailConfig {
		return MailConfig{N: n, Rounds: 2, Peers: []MailPeer{{Name: "mox", Cmd: []string{os.Args[0]}, Env: []string{"MAILSTS_FAKE_MOXPARSE=" + peerLine, "GORACE=atexit_sleep_ms=0"}}}}
	}
	good := func(name, peerLine string) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var out strings.Builder
			rs, err := CompareMails(context.Background(), fake(peerLine), &out)
			if err != nil {
				t.Fatal(err)
			}
			if len(rs) != 2 || len(rs[1].Peers) != 1 || rs[1].Peers[0].PerSec() != 10000 || rs[1].Peers[0].CPUPerMail() != 50*time.Microsecond || rs[1].Mailsts.Failures != 0 {
				t.Fatalf("rounds %+v", rs)
			}
			printMails(&out, rs, fake(peerLine).Peers)
			for _, s := range []string{"round 2: mailsts ", ", mox 10000 mails/s (CPU 50µs/mail)", "mailsts/mox ", "sums agree in every round: policies="} {
				if !strings.Contains(out.String(), s) {
					t.Errorf("output lacks %q:\n%s", s, out.String())
				}
			}
		})
	}
	bad := func(name, peerLine, wantErr string) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := CompareMails(context.Background(), fake(peerLine), io.Discard)
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Fatalf("error %v, want one with %q", err, wantErr)
			}
		})
	}
	good("agree", line(n, 0, sessions))
	bad("sessions differ", line(n, 0, sessions+1), "mox: sums disagree")
	bad("mails failed", line(n, 3, sessions), "mox: 3 of 20 mails failed")
	bad("mails missing", line(n-1, 0, sessions), "(19 read)")
	bad("not JSON", "ok", "output \"ok\\n\"")
}

// TestCompareMailsMox runs the real peer, mox's parser, on a few mails.
// Building it needs mox v0.0.15 in the module cache (GOPROXY=off: the
// test never downloads); it skips when the build fails.
func TestCompareMailsMox(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the mox peer (-short)")
	}
	t.Parallel()
	bin, err := BuildMox(context.Background(), t.TempDir(), "GOPROXY=off")
	if err != nil {
		t.Skipf("mox peer not built (needs github.com/mjl-/mox@v0.0.15 in the module cache): %v", err)
	}
	var out strings.Builder
	rs, err := CompareMails(context.Background(), MailConfig{N: 60, Rounds: 1, Peers: []MailPeer{MoxPeer(bin)}}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || rs[0].Peers[0].Mails != 60 || rs[0].Peers[0].Sums != rs[0].Mailsts.Sums {
		t.Fatalf("rounds %+v", rs)
	}
	t.Log(out.String())
}

// fakeParsedmarc is a parsedmarc package for TestParsedmarcDriver:
// parse_report_email reads the gzipped report of a mail with Python's
// own modules, fails, or calls a name of mailsuite (which the driver
// replaces by a placeholder where it is absent), as FAKE_MODE says.
const fakeParsedmarc = `import email, gzip, json, os
from mailsuite.smtp import send_email

def parse_report_email(m, offline=False, always_use_local_files=False):
    if not offline or not always_use_local_files:
        raise ValueError("asked to go online")
    mode = os.environ["FAKE_MODE"]
    if mode == "fail":
        raise ValueError("cannot parse")
    if mode == "placeholder":
        send_email()
    for part in email.message_from_bytes(m).walk():
        if part.get_content_type() == "application/tlsrpt+gzip":
            r = json.loads(gzip.decompress(part.get_payload(decode=True)))
            return {"report_type": "smtp_tls", "report": {"policies": [{
                "successful_session_count": p["summary"]["total-successful-session-count"],
                "failed_session_count": p["summary"]["total-failure-session-count"] + (1 if mode == "miscount" else 0),
                "failure_details": [{"failed_session_count": d["failed-session-count"]} for d in p.get("failure-details", [])],
            } for p in r["policies"]]}}
    raise ValueError("no report")
`

// TestParsedmarcDriver runs parsedmarcparse.py on a fake parsedmarc:
// the driver's line is taken, every mail counted, the sums checked, and
// a placeholder that is called fails the pass.
func TestParsedmarcDriver(t *testing.T) {
	t.Parallel()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "parsedmarc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "parsedmarc", "__init__.py"), []byte(fakeParsedmarc), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(mode string) ([]MailRound, error) {
		peer := ParsedmarcPeer(python, dir)
		peer.Env = append(peer.Env, "FAKE_MODE="+mode)
		return CompareMails(context.Background(), MailConfig{N: 20, Rounds: 1, Peers: []MailPeer{peer}}, io.Discard)
	}
	rs, err := run("ok")
	if err != nil {
		t.Fatal(err)
	}
	if p := rs[0].Peers[0]; p.Mails != 20 || p.Failures != 0 || p.Sums != rs[0].Mailsts.Sums || p.Elapsed <= 0 {
		t.Errorf("pass %+v, mailsts %+v", p, rs[0].Mailsts)
	}
	for mode, want := range map[string]string{
		"fail":     "parsedmarc: 20 of 20 mails failed to parse (20 read); first: mail 0: ValueError: cannot parse",
		"miscount": "parsedmarc: sums disagree",
	} {
		if _, err := run(mode); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one with %q", mode, err, want)
		}
	}
	if exec.Command(python, "-c", "import mailsuite").Run() == nil {
		t.Log("mailsuite is installed: no placeholder to check")
	} else if _, err := run("placeholder"); err == nil || !strings.Contains(err.Error(), "placeholder mailsuite.smtp.send_email called") {
		t.Errorf("placeholder: error %v", err)
	}
}

// TestCompareMailsParsedmarc runs the real parsedmarc on a few mails
// when it can be imported: installed, or from source with
// MAILSTS_PARSEDMARC_PATH as its PYTHONPATH, by MAILSTS_PYTHON or
// python3 (bench/reports/README.md).
func TestCompareMailsParsedmarc(t *testing.T) {
	t.Parallel()
	python := os.Getenv("MAILSTS_PYTHON")
	if python == "" {
		python = "python3"
	}
	if _, err := exec.LookPath(python); err != nil {
		t.Skipf("%s not installed", python)
	}
	peer := ParsedmarcPeer(python, os.Getenv("MAILSTS_PARSEDMARC_PATH"))
	check := exec.Command(python, parsedmarcSource(), "-check")
	check.Env = append(os.Environ(), peer.Env...)
	if out, err := check.CombinedOutput(); err != nil {
		t.Skipf("parsedmarc cannot be imported by %s (install it, or set MAILSTS_PARSEDMARC_PATH and MAILSTS_PYTHON): %s", python, bytes.TrimSpace(out))
	}
	rs, err := CompareMails(context.Background(), MailConfig{N: 60, Rounds: 1, Peers: []MailPeer{peer}}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if p := rs[0].Peers[0]; p.Mails != 60 || p.Sums != rs[0].Mailsts.Sums {
		t.Fatalf("pass %+v", p)
	}
}
