package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// longRunning are the commands that run until stopped (or may: ingest
// --poll): each has --log-level, a log: section and --check-config.
var longRunning = []string{"policyd", "serve", "tlsrpt ingest", "tlsrpt collect"}

// TestLongRunningFlags: the long-running commands, and any command with
// --log-level or --check-config, have both.
func TestLongRunningFlags(t *testing.T) {
	t.Parallel()
	docs, err := describe()
	if err != nil {
		t.Fatal(err)
	}
	has := map[string]map[string]bool{}
	for _, d := range docs {
		for _, x := range append([]cmdDoc{d}, d.subs...) {
			has[x.name] = map[string]bool{}
			for _, f := range x.flags {
				has[x.name][f.Name] = true
			}
		}
	}
	for _, name := range longRunning {
		if !has[name]["log-level"] || !has[name]["check-config"] {
			t.Errorf("mailsts %s lacks --log-level or --check-config", name)
		}
	}
	for name, fl := range has {
		if fl["log-level"] != fl["check-config"] {
			t.Errorf("mailsts %s has one of --log-level and --check-config, not both", name)
		}
	}
}

// TestCheckConfig: --check-config of every long-running command accepts a
// valid configuration (one OK line; policyd prints its effective
// configuration) and creates nothing; a bad --log-level is a usage error;
// a bad log: value fails with the exit code a start would have.
func TestCheckConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	goodReports := write("reports.yml", "log:\n  level: debug\n  format: json\n")
	badReports := write("bad-reports.yml", "log:\n  format: xml\n")
	goodPolicyd := write("policyd.yml", "log:\n  level: debug\n  format: json\n")
	badPolicyd := write("bad-policyd.yml", "log:\n  level: loud\n")
	for _, c := range []struct {
		cmd       []string
		good, bad string
		badExit   int
		okLine    string
	}{
		{[]string{"policyd"}, goodPolicyd, badPolicyd, ExitError, ""},
		{[]string{"serve"}, goodReports, badReports, ExitError, "mailsts serve: configuration OK: reports http://127.0.0.1:8460/tlsrpt, API http://127.0.0.1:8462/api/v1/, database sqlite:"},
		{[]string{"tlsrpt", "ingest"}, goodReports, badReports, ExitTempFail, "mailsts tlsrpt ingest: configuration OK: from stdin, DKIM require, database sqlite:"},
	} {
		name := strings.Join(c.cmd, " ")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			state := filepath.Join(t.TempDir(), "state")
			args := func(extra ...string) []string {
				a := append([]string{}, c.cmd...)
				if c.cmd[0] == "policyd" {
					a = append(a, "--state-dir", state)
				}
				return append(a, extra...)
			}
			code, out, errOut := runQuiet(t, state, args("--config", c.good, "--check-config")...)
			if code != ExitOK {
				t.Fatalf("valid: exit %d\n%s", code, errOut)
			}
			if c.okLine != "" {
				if !strings.HasPrefix(out, c.okLine) || strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "log debug/json\n") {
					t.Errorf("valid: stdout %q, want one line %q… ending in log debug/json", out, c.okLine)
				}
			} else {
				if !strings.Contains(out, "level: debug") || !strings.Contains(out, "format: json") {
					t.Errorf("policyd effective configuration lacks the log settings:\n%s", out)
				}
				if !strings.HasPrefix(errOut, "mailsts policyd: configuration OK: socketmap 127.0.0.1:8461, cache sqlite ") ||
					strings.Count(errOut, "\n") != 1 || !strings.HasSuffix(errOut, "log debug/json\n") {
					t.Errorf("policyd: stderr %q, want the one OK line", errOut)
				}
			}
			code, out, errOut = runQuiet(t, state, args("--config", c.good, "--check-config", "--log-level", "loud")...)
			checkUsageError(t, code, out, errOut, name)
			code, _, errOut = runQuiet(t, state, args("--config", c.bad, "--check-config")...)
			if code != c.badExit || !strings.Contains(errOut, "log.") {
				t.Errorf("bad log: exit %d, want %d\n%s", code, c.badExit, errOut)
			}
			if _, err := os.Stat(state); !os.IsNotExist(err) {
				t.Errorf("--check-config created %s", state)
			}
		})
	}
}

// TestLogSettingsApply: log.format json and --log-level reach the logger
// of serve and tlsrpt ingest.
func TestLogSettingsApply(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "reports.yml")
	os.WriteFile(cfg, []byte("log:\n  level: error\n  format: json\n"), 0o600)
	junk := filepath.Join(dir, "junk.json")
	os.WriteFile(junk, []byte(`{"policies": `), 0o600)
	state := t.TempDir()
	// log.level error hides the rejection warning; --log-level warn shows
	// it, as JSON.
	_, _, errOut := runStdin(t, nil, state, "tlsrpt", "ingest", "--config", cfg, "--dkim", "off", junk)
	if strings.Contains(errOut, "rejected and kept") {
		t.Errorf("log.level error: a warning was logged:\n%s", errOut)
	}
	_, _, errOut = runStdin(t, nil, state, "tlsrpt", "ingest", "--config", cfg, "--dkim", "off", "--log-level", "warn", junk)
	var line map[string]any
	if err := json.Unmarshal([]byte(strings.SplitN(errOut, "\n", 2)[0]), &line); err != nil || line["level"] != "WARN" {
		t.Errorf("--log-level warn with log.format json: %v\n%s", err, errOut)
	}
	// serve logs where it listens at info, as JSON.
	env, _, stderr := testEnv(state)
	sr, code := prepareServe(t.Context(), env, []string{"--config", cfg, "--log-level", "info", "--listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0"})
	if sr == nil {
		t.Fatalf("serve: exit %d\n%s", code, stderr)
	}
	sr.close()
	if err := json.Unmarshal([]byte(strings.SplitN(stderr.String(), "\n", 2)[0]), &line); err != nil || line["level"] != "INFO" {
		t.Errorf("serve log: %v\n%s", err, stderr)
	}
}

// testEnv is an Env with a state directory and captured output.
func testEnv(state string) (Env, *strings.Builder, *strings.Builder) {
	var out, errb strings.Builder
	return Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: func(k string) string {
		if k == "STATE_DIRECTORY" {
			return state
		}
		return ""
	}}, &out, &errb
}
