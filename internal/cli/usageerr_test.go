package cli

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
)

// runQuiet runs a command line with a cancelled context (nothing may start
// for a usage error, and whatever did stops at once) and a private state
// directory.
func runQuiet(t *testing.T, state string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errb bytes.Buffer
	code := Main(ctx, args, Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb,
		Getenv: func(k string) string {
			if k == "STATE_DIRECTORY" {
				return state
			}
			return ""
		}})
	return code, out.String(), errb.String()
}

// checkUsageError asserts the one form of a usage error: exit 64, nothing
// on stdout, and on stderr "mailsts CMD: what is wrong" then "see 'mailsts
// CMD --help'", where CMD is one of names (a subcommand may report as its
// parent when they share flags).
func checkUsageError(t *testing.T, code int, stdout, stderr string, names ...string) {
	t.Helper()
	if code != ExitUsage {
		t.Errorf("exit %d, want %d\nstderr: %s", code, ExitUsage, stderr)
	}
	if stdout != "" {
		t.Errorf("stdout not empty: %q", stdout)
	}
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("stderr has %d lines, want 2 (the error and a pointer to --help):\n%s", len(lines), stderr)
	}
	for _, n := range names {
		prefix := strings.TrimSpace("mailsts " + n)
		if strings.HasPrefix(lines[0], prefix+": ") && len(lines[0]) > len(prefix)+2 &&
			lines[1] == "see '"+prefix+" --help'" {
			return
		}
	}
	t.Errorf("stderr is not \"mailsts CMD: message\" + \"see 'mailsts CMD --help'\" for CMD in %q:\n%s", names, stderr)
}

// requiresArgs reports whether a synopsis names something that must be
// given: what is left after the command name once every [optional] part
// is removed (DOMAIN, bash|zsh|fish, <subcommand>, (--before D | …)).
func requiresArgs(synopsis, name string) bool {
	s := strings.TrimPrefix(synopsis, "mailsts "+name)
	opt := regexp.MustCompile(`\[[^\[\]]*\]`)
	for i := 0; i < 10 && opt.MatchString(s); i++ {
		s = opt.ReplaceAllString(s, "")
	}
	return strings.TrimSpace(s) != ""
}

// TestUsageErrorsOneLine: every command and subcommand of the table
// answers a bogus flag, and a missing required argument, with the one-line
// usage error (not the help), exit 64. Commands added to the table or to a
// "Subcommands:" list are covered without changing this test.
func TestUsageErrorsOneLine(t *testing.T) {
	t.Parallel()
	docs, err := describe()
	if err != nil {
		t.Fatal(err)
	}
	type tc struct {
		args  []string
		names []string
	}
	var cases []tc
	add := func(d cmdDoc, parent string) {
		path := strings.Fields(d.name)
		names := []string{d.name}
		if parent != "" {
			names = append(names, parent)
		}
		cases = append(cases, tc{append(append([]string{}, path...), "--no-such-flag"), names})
		if requiresArgs(d.synopsis, d.name) {
			cases = append(cases, tc{path, names})
		}
	}
	for _, d := range docs {
		add(d, "")
		for _, s := range d.subs {
			if s.synopsis == "" { // shares the parent's flags and synopsis
				s.synopsis = "mailsts " + s.name
			}
			add(s, d.name)
		}
	}
	cases = append(cases, tc{nil, []string{""}}, tc{[]string{"no-such-command"}, []string{""}})
	if len(cases) < 25 {
		t.Fatalf("only %d cases: the command table was not read", len(cases))
	}
	state := t.TempDir()
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runQuiet(t, state, c.args...)
			checkUsageError(t, code, out, errOut, c.names...)
		})
	}
}

func TestRequiresArgs(t *testing.T) {
	t.Parallel()
	for syn, want := range map[string]bool{
		"mailsts resolve [--dns ADDR] [--json] DOMAIN":                     true,
		"mailsts policyd [--config F] [--cache memory|sqlite|redis]":       false,
		"mailsts tlsrpt ingest [flags] [FILE...]":                          false,
		"mailsts tlsrpt prune (--before YYYY-MM-DD | --older-than AGE)":    true,
		"mailsts testnet [--scenario FILE | --generate N [--seed S]] [-v]": false,
		"mailsts completion bash|zsh|fish":                                 true,
	} {
		name := strings.Fields(syn)[1]
		if strings.HasPrefix(syn, "mailsts tlsrpt ") {
			name = "tlsrpt " + strings.Fields(syn)[2]
		}
		if got := requiresArgs(syn, name); got != want {
			t.Errorf("requiresArgs(%q) = %v, want %v", syn, got, want)
		}
	}
}

func TestUsageErrorIsOneSafeLine(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	if code := usageError(&b, "resolve", "bad %q", "a\nb\x1b[31m"); code != ExitUsage {
		t.Errorf("exit %d", code)
	}
	checkUsageError(t, ExitUsage, "", b.String(), "resolve")
	if strings.Contains(b.String(), "\x1b") {
		t.Errorf("escape sequence passed: %q", b.String())
	}
}
