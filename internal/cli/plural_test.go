package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// countNouns are the nouns mailsts counts in human output, and their plurals.
const (
	countNouns   = `repair|report|domain|entry|record|byte|row|input|scenario|file|policy|pattern|day|host|character|detail|session`
	countPlurals = `repairs|reports|domains|entries|records|bytes|rows|inputs|scenarios|files|policies|patterns|days|hosts|characters|details|sessions`
)

var (
	// "(s)" and friends instead of the right form.
	hedgedPlural = regexp.MustCompile(`\w\((s|es|ies)\)`)
	// "1 repairs", "1 rejected inputs": 1 with a plural noun.
	oneWithPlural = regexp.MustCompile(`(?:^|[^\w.,:/-])1 (?:[a-z]+ )?(?:` + countPlurals + `)\b`)
	// "0 repair", "2 report": another count with a singular noun.
	otherWithSingular = regexp.MustCompile(`(?:^|[^\w.,:/-])(?:0|[2-9]|\d{2,}) (?:[a-z]+ )?(?:` + countNouns + `)\b`)
)

// badCounts returns the ungrammatical counts in human output.
func badCounts(s string) []string {
	var bad []string
	for _, re := range []*regexp.Regexp{hedgedPlural, oneWithPlural, otherWithSingular} {
		bad = append(bad, re.FindAllString(s, -1)...)
	}
	return bad
}

func TestBadCounts(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"(1 repairs)", "deleted 1 reports (40 rollup rows)", "and 1 rejected inputs", "2 repair",
		"0 entry", "12 domain:", "1 mx pattern(s)", "purged 1 entries", "1 policies"} {
		if len(badCounts(s)) == 0 {
			t.Errorf("%q passed", s)
		}
	}
	for _, s := range []string{"(1 repair)", "(0 repairs)", "deleted 1 report (1 rollup row) and 2 rejected inputs", "2024-06-01  example.org",
		"2 domains: 1 with a policy, 0 without, 1 failed", "purged 1 entry", "10 entries", "v1 record", "mx:1 domain"} {
		if bad := badCounts(s); len(bad) > 0 {
			t.Errorf("%q: %q", s, bad)
		}
	}
}

// TestGrammaticalCounts runs the commands that count things for people
// at counts 0, 1 and 2 and checks the counts in what they print: "1
// repair", "2 repairs", never "1 repairs" or "repair(s)".
func TestGrammaticalCounts(t *testing.T) {
	t.Parallel()
	n := defaultNet(t)
	state := t.TempDir()
	quirk := func(name string) string {
		return filepath.Join("..", "..", "tlsrpt", "testdata", "quirks", name)
	}
	var outputs []string
	run := func(want string, args ...string) {
		t.Helper()
		code, out, errOut := runStdin(t, nil, state, args...)
		if code != ExitOK && code != ExitFailure {
			t.Errorf("%s: exit %d\n%s", strings.Join(args, " "), code, errOut)
		}
		if want != "" && !strings.Contains(out+errOut, want) {
			t.Errorf("%s: %q not in\n%s%s", strings.Join(args, " "), want, out, errOut)
		}
		outputs = append(outputs, out, errOut)
	}
	// Reports with 0, 1 and 2 repairs; days 2023-01-10, 2023-02-01, 2024-09-15.
	run("(0 repairs)", "tlsrpt", "ingest", "--dkim", "off", quirk("q02-mx-host-array.json"))
	run("(1 repair)", "tlsrpt", "ingest", "--dkim", "off", quirk("q03-mx-host-omitted.json"))
	run("(2 repairs)", "tlsrpt", "ingest", "--dkim", "off", quirk("q01-time-without-zone.json"))
	run("would delete 0 reports (0 rollup rows) and 0 rejected inputs", "tlsrpt", "prune", "--dry-run", "--before", "2000-01-01")
	run("would delete 1 report (", "tlsrpt", "prune", "--dry-run", "--before", "2023-01-11")
	run("would delete 2 reports (", "tlsrpt", "prune", "--dry-run", "--before", "2023-02-02")
	run("", "tlsrpt", "show", "133197600000000000+example.org")
	run("", "tlsrpt", "summary")
	run("", "tlsrpt", "failures")
	run("", "tlsrpt", "rejected")

	cache := append([]string{"--state-dir", filepath.Join(state, "cache")}, "--dns", n.DNSAddr(), "--ca-file", n.CAFile(), "--https-port", strconv.Itoa(n.HTTPSPort()))
	one := filepath.Join(t.TempDir(), "one.txt")
	two := filepath.Join(t.TempDir(), "two.txt")
	os.WriteFile(one, []byte("enforce.example\n"), 0o600)
	os.WriteFile(two, []byte("enforce.example\ntesting.example\n"), 0o600)
	run("1 domain: 1 with a policy", append(append([]string{"cache", "warm"}, cache...), one)...)
	run("2 domains: 2 with a policy", append(append([]string{"cache", "warm"}, cache...), two)...)
	run("purged 0 entries", append(append([]string{"cache", "purge"}, cache...), "never-cached.example")...)
	run("purged 1 entry\n", append(append([]string{"cache", "purge"}, cache...), "enforce.example")...)
	run("", append(append([]string{"cache", "warm"}, cache...), two)...)
	run("purged 2 entries", append(append([]string{"cache", "purge"}, cache...), "enforce.example", "testing.example")...)
	run("", append([]string{"cache", "status"}, cache...)...)

	// The checker's findings: one mx pattern, certificates valid for days.
	run("with 1 mx pattern,", append([]string{"check", "--smtp-port", strconv.Itoa(n.SMTPPort()), "--timeout", "3s", "--probe-timeout", "1s",
		"--dns", n.DNSAddr(), "--ca-file", n.CAFile(), "--https-port", strconv.Itoa(n.HTTPSPort())}, "enforce.example")...)

	for _, out := range outputs {
		if bad := badCounts(out); len(bad) > 0 {
			t.Errorf("ungrammatical counts %q in:\n%s", bad, out)
		}
	}
}
