package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mailsts/mailsts/internal/reports"
)

// TestTLSRPTIngestExitCodes: issue #11.6. Postfix pipe(8) retries on 75
// (and 71) and bounces on everything else: faults an administrator can
// fix must keep the report (75), inputs that can never succeed must not
// be retried forever (64, 65).
func TestTLSRPTIngestExitCodes(t *testing.T) {
	t.Parallel()
	report := testdataFile(t, "f10c.json")
	mail := testdataFile(t, "f9-with-f10c.eml")
	blocker := filepath.Join(t.TempDir(), "file")
	os.WriteFile(blocker, nil, 0o600)
	missing := filepath.Join(t.TempDir(), "missing")
	cases := []struct {
		name  string
		state string
		stdin []byte
		args  []string
		want  int
	}{
		// The state directory (default database) cannot be created: it
		// exited 2 and the report bounced.
		{"state dir unwritable", filepath.Join(blocker, "state"), mail, []string{"tlsrpt", "ingest", "--dkim", "off"}, ExitTempFail},
		{"db dir unwritable", "", mail, []string{"tlsrpt", "ingest", "--dkim", "off", "--db", "sqlite:" + filepath.Join(blocker, "x", "r.db")}, ExitTempFail},
		{"db is a directory", "", mail, []string{"tlsrpt", "ingest", "--dkim", "off", "--db", "sqlite:" + t.TempDir()}, ExitTempFail},
		{"config missing", t.TempDir(), mail, []string{"tlsrpt", "ingest", "--config", missing}, ExitTempFail},
		{"config broken", t.TempDir(), mail, []string{"tlsrpt", "ingest", "--config", blocker + "x"}, ExitTempFail},
		{"bad dns", t.TempDir(), mail, []string{"tlsrpt", "ingest", "--dns", "not an address:x:y"}, ExitTempFail},
		// Inputs that can never succeed: they exited 75 (retried forever).
		{"file missing", t.TempDir(), nil, []string{"tlsrpt", "ingest", "--dkim", "off", missing}, ExitUsage},
		{"maildir missing", t.TempDir(), nil, []string{"tlsrpt", "ingest", "--dkim", "off", "--maildir", missing}, ExitUsage},
		{"bad --db", t.TempDir(), mail, []string{"tlsrpt", "ingest", "--db", "mysql://x"}, ExitUsage},
		{"bad flag", t.TempDir(), mail, []string{"tlsrpt", "ingest", "--frobnicate"}, ExitUsage},
		{"junk", t.TempDir(), []byte("Subject: hi\r\n\r\nhello\r\n"), []string{"tlsrpt", "ingest", "--dkim", "off"}, ExitRejected},
		{"stored", t.TempDir(), report, []string{"tlsrpt", "ingest"}, ExitOK},
	}
	os.WriteFile(blocker+"x", []byte("db: [unclosed\n"), 0o600)
	for _, tc := range cases {
		code, out, errOut := runStdin(t, tc.stdin, tc.state, tc.args...)
		if code != tc.want {
			t.Errorf("%s: exit %d, want %d\n%s%s", tc.name, code, tc.want, out, errOut)
		}
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("the missing Maildir was created: %v", err)
	}
	// The help says so.
	_, _, help := runStdin(t, nil, t.TempDir(), "tlsrpt", "ingest", "--help")
	for _, s := range []string{"75 temporary failure", "state", "64 usage error", "does not exist", "65 rejected"} {
		if !strings.Contains(help, s) {
			t.Errorf("ingest --help lacks %q", s)
		}
	}
}

// TestTLSRPTPrune: issue #11.5, retention from the command line.
func TestTLSRPTPrune(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	if code, out, errOut := runStdin(t, testdataFile(t, "f10c.json"), state, "tlsrpt", "ingest"); code != ExitOK {
		t.Fatalf("ingest: %d %s %s", code, out, errOut)
	}
	runStdin(t, []byte("{junk"), state, "tlsrpt", "ingest")
	code, out, _ := runStdin(t, nil, state, "tlsrpt", "prune", "--before", "2016-04-01")
	if code != ExitOK || !strings.Contains(out, "deleted 0 reports") {
		t.Errorf("prune before the report's day: %d %s", code, out)
	}
	code, out, _ = runStdin(t, nil, state, "tlsrpt", "prune", "--before", "2016-04-02", "--dry-run", "--json")
	var res []reports.PruneResult
	if err := json.Unmarshal([]byte(out), &res); code != ExitOK || err != nil || len(res) != 1 || res[0].Reports != 1 || res[0].Rejected != 0 {
		t.Errorf("dry run: %d %v %s", code, err, out)
	}
	if _, out, _ = runStdin(t, nil, state, "tlsrpt", "summary", "--csv"); !strings.Contains(out, "company-y.example") {
		t.Errorf("dry run deleted: %s", out)
	}
	// Rejected input received now is older than a day only tomorrow.
	code, out, _ = runStdin(t, nil, state, "tlsrpt", "prune", "--older-than", "1d")
	if code != ExitOK || !strings.Contains(out, "deleted 1 report ") || !strings.Contains(out, "and 0 rejected") {
		t.Errorf("prune --older-than 1d: %d %s", code, out)
	}
	if _, out, _ = runStdin(t, nil, state, "tlsrpt", "summary", "--csv"); strings.Contains(out, "company-y.example") {
		t.Errorf("summary after prune: %s", out)
	}
	for _, args := range [][]string{
		{"tlsrpt", "prune"},
		{"tlsrpt", "prune", "--before", "yesterday"},
		{"tlsrpt", "prune", "--older-than", "-3d"},
		{"tlsrpt", "prune", "--before", "2025-01-01", "--older-than", "3d"},
	} {
		if code, _, _ := runStdin(t, nil, state, args...); code != ExitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, ExitUsage)
		}
	}
	if d := retentionDay(time.Date(2026, 3, 1, 5, 0, 0, 0, time.UTC), 400*24*time.Hour); d.Format(time.DateOnly) != "2025-01-25" {
		t.Errorf("retentionDay = %s", d)
	}
}

// TestLogLinesBounded: a value from hostile input cannot make a log line
// of megabytes (issue #11.3 saw one of 20 MB).
func TestLogLinesBounded(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := newLogger(&buf, "text", new(slog.LevelVar))
	huge := strings.Repeat("é", 1<<20)
	log.Info("x", "detail", huge, "error", errors.New(huge), "n", 5)
	if buf.Len() > 3*maxLogValue || !strings.Contains(buf.String(), "bytes)") || !utf8.Valid(buf.Bytes()) {
		t.Errorf("log line of %d bytes", buf.Len())
	}
}
