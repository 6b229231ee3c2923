package checker

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
)

// Groups is the report order and a copy callers cannot change.
func TestGroupsOrder(t *testing.T) {
	t.Parallel()
	g := Groups()
	want := []string{GroupSTSRecord, GroupSTSPolicy, GroupSTSMX, GroupMX, GroupDANE, GroupTLSRPT, GroupClients}
	if !slices.Equal(g, want) {
		t.Fatalf("Groups() = %v", g)
	}
	g[0] = "changed"
	if Groups()[0] != GroupSTSRecord {
		t.Error("Groups returns the package's own slice")
	}
}

// Findings and reports log as structured groups (JSON logs of bulk runs).
func TestLogValues(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	f := Finding{ID: "mx.cert-expired", Severity: SeverityFail, Host: "mx1.example.org", Message: "expired"}
	r := &Report{Domain: "example.org", Verdict: VerdictFail, Counts: Counts{Fail: 2, Warn: 1}, DurationMS: 42}
	log.Info("x", "finding", f, "report", r)
	var got struct {
		Finding map[string]any `json:"finding"`
		Report  map[string]any `json:"report"`
	}
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, buf.String())
	}
	if got.Finding["id"] != "mx.cert-expired" || got.Finding["severity"] != SeverityFail.String() || got.Finding["host"] != "mx1.example.org" {
		t.Errorf("finding logged as %v", got.Finding)
	}
	if got.Report["domain"] != "example.org" || got.Report["verdict"] != VerdictFail || got.Report["fail"] != 2.0 || got.Report["ms"] != 42.0 {
		t.Errorf("report logged as %v", got.Report)
	}
}

// A bulk run's exit verdict is its worst domain; an invalid domain name
// counts as a failure.
func TestExitVerdict(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		verdicts map[string]int
		want     string
	}{
		{map[string]int{VerdictPass: 3}, VerdictPass},
		{map[string]int{VerdictPass: 3, VerdictWarn: 1}, VerdictWarn},
		{map[string]int{VerdictWarn: 1, VerdictFail: 1}, VerdictFail},
		{map[string]int{VerdictPass: 1, VerdictError: 1}, VerdictFail},
		{map[string]int{}, VerdictPass},
	} {
		s := &Summary{Verdicts: tc.verdicts}
		if got := s.ExitVerdict(); got != tc.want {
			t.Errorf("%v: %s, want %s", tc.verdicts, got, tc.want)
		}
	}
}

// OpenResume reports a file it cannot open instead of starting a run that
// could not record its results.
func TestOpenResumeUnopenable(t *testing.T) {
	t.Parallel()
	f, done, err := OpenResume(filepath.Join(t.TempDir(), "missing-dir", "out.jsonl"))
	if err == nil || f != nil || done != nil {
		t.Fatalf("OpenResume in a missing directory = %v, %v, %v; want an error", f, done, err)
	}
	if _, _, err := OpenResume(t.TempDir()); err == nil {
		t.Error("OpenResume of a directory: no error")
	}
}

// A zero Checker uses the documented defaults; set fields win.
func TestCheckerDefaults(t *testing.T) {
	t.Parallel()
	var zero Checker
	if zero.smtpPort() != DefaultSMTPPort || zero.probeTimeout() != DefaultProbeTimeout || zero.timeout() != DefaultTimeout ||
		zero.maxMX() != DefaultMaxMX || zero.ehloName() != DefaultEHLOName || zero.logger() == nil {
		t.Error("a zero Checker does not use the defaults")
	}
	set := Checker{SMTPPort: 2525, ProbeTimeout: 3, Timeout: 4, MaxMX: 2, EHLOName: "probe.example", Logger: slog.Default()}
	if set.smtpPort() != 2525 || set.probeTimeout() != 3 || set.timeout() != 4 || set.maxMX() != 2 ||
		set.ehloName() != "probe.example" || set.logger() != slog.Default() {
		t.Error("set Checker fields are not used")
	}
}
