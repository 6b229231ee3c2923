package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/testnet"
)

// shared is the testnet of this package's tests, the default scenario
// with certificates valid for 90 days (the default), so that good domains
// pass without expiry warnings.
var shared testnet.Shared

// defaultNet returns the shared testnet (read only: tests must not Set
// domains on it). It is never closed: it lives as long as the test binary.
func defaultNet(t *testing.T) *testnet.Net {
	t.Helper()
	return shared.Net(t)
}

// run runs the mailsts command line in-process.
func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(context.Background(), args, Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }})
	return code, out.String(), errb.String()
}

// netArgs are the plumbing flags that point a command at the testnet.
func netArgs(n *testnet.Net) []string {
	return []string{"--dns", n.DNSAddr(), "--ca-file", n.CAFile(), "--https-port", strconv.Itoa(n.HTTPSPort())}
}

// TestResolveScenarios runs `mailsts resolve --json` against every kind of
// domain the issue lists and checks the error category, the exit code and
// that the answer came within the configured time limit.
func TestResolveScenarios(t *testing.T) {
	t.Parallel()
	n := defaultNet(t)
	const limit = 3 * time.Second
	cases := []struct {
		domain string
		code   int
		errCat string
		mode   string
		id     string
		mx     []string
	}{
		{"enforce.example", 0, "", "enforce", "enforce20240101", []string{"*.enforce.example"}},
		{"testing.example", 0, "", "testing", "testing1", []string{"mx1.testing.example"}},
		{"none.example", 0, "", "none", "none1", []string{}},
		{"crlf.example", 0, "", "enforce", "crlf1", []string{"mx1.crlf.example"}}, // STS-POL-4
		{"multistring.example", 0, "", "", "20160831085700Z", nil},                // STS-TXT-9
		{"cname.example", 0, "", "", "provider1", nil},                            // STS-TXT-10, F-4
		{"two-records.example", 1, "no-policy", "", "", []string{}},               // STS-TXT-7
		{"nosts.example", 1, "no-policy", "", "", []string{}},                     // no record
		{"servfail.example", 2, "dns-error", "", "", []string{}},                  // STS-TXT-13
		{"timeout.example", 2, "dns-error", "", "", []string{}},                   // STS-TXT-13
		{"redirect.example", 2, "sts-policy-fetch-error", "", "", []string{}},     // STS-FETCH-5
		{"notfound.example", 2, "sts-policy-fetch-error", "", "", []string{}},     // STS-FETCH-4
		{"html.example", 2, "sts-policy-invalid", "", "", []string{}},             // STS-POL-2
		{"huge.example", 2, "sts-policy-fetch-error", "", "", []string{}},         // STS-POL-13
		{"drip.example", 2, "sts-policy-fetch-error", "", "", []string{}},         // STS-FETCH-8
		{"expired.example", 2, "sts-webpki-invalid", "", "", []string{}},          // STS-FETCH-2
		{"wrong-name.example", 2, "sts-webpki-invalid", "", "", []string{}},       // STS-FETCH-2
		{"self-signed.example", 2, "sts-webpki-invalid", "", "", []string{}},      // STS-FETCH-2
	}
	for _, c := range cases {
		t.Run(c.domain, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"resolve", "--json", "--timeout", limit.String()}, netArgs(n)...)
			start := time.Now()
			code, stdout, stderr := run(t, append(args, c.domain)...)
			elapsed := time.Since(start)
			if code != c.code {
				t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, c.code, stdout, stderr)
			}
			// A bound far from both the 3 s limit and the broken duration
			// (drip.example trickles its policy over 30 s), so that
			// scheduling on a loaded machine cannot reach it.
			if elapsed > 15*time.Second {
				t.Errorf("took %v with a %v time limit", elapsed, limit)
			}
			var out resolveOutput
			if err := json.Unmarshal([]byte(stdout), &out); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, stdout)
			}
			if out.Domain != c.domain || string(out.Error) != c.errCat {
				t.Errorf("domain %q error %q, want %q %q (detail %q)", out.Domain, out.Error, c.domain, c.errCat, out.Detail)
			}
			if c.mode != "" && out.Mode != c.mode {
				t.Errorf("mode %q, want %q", out.Mode, c.mode)
			}
			if c.id != "" && out.ID != c.id {
				t.Errorf("id %q, want %q", out.ID, c.id)
			}
			if c.mx != nil && strings.Join(out.MX, ",") != strings.Join(c.mx, ",") {
				t.Errorf("mx %q, want %q", out.MX, c.mx)
			}
			if out.MX == nil {
				t.Error(`"mx" must be an array, never null`)
			}
			if c.errCat != "" && out.Detail == "" {
				t.Error("detail is empty for an error")
			}
		})
	}
}

// The human output explains the decision in a few lines.
func TestResolveText(t *testing.T) {
	t.Parallel()
	n := defaultNet(t)
	code, stdout, _ := run(t, append(append([]string{"resolve"}, netArgs(n)...), "enforce.example")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stdout)
	}
	for _, want := range []string{"enforce.example: MTA-STS policy enforce (id enforce20240101)", "MX patterns: *.enforce.example", "1d"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	if lines := strings.Count(stdout, "\n"); lines < 2 || lines > 4 {
		t.Errorf("%d lines, want 2-4:\n%s", lines, stdout)
	}
	code, stdout, _ = run(t, append(append([]string{"resolve"}, netArgs(n)...), "notfound.example")...)
	if code != 2 || !strings.Contains(stdout, "sts-policy-fetch-error") || !strings.Contains(stdout, "404") {
		t.Errorf("notfound.example: exit %d, output:\n%s", code, stdout)
	}
}

func TestResolveUsage(t *testing.T) {
	t.Parallel()
	if code, _, stderr := run(t, "resolve"); code != ExitUsage || !strings.Contains(stderr, "DOMAIN") {
		t.Errorf("no domain: exit %d, stderr %q", code, stderr)
	}
	if code, _, _ := run(t, "resolve", "a..b"); code != ExitUsage {
		t.Errorf("invalid domain: exit %d", code)
	}
	if code, _, stderr := run(t, "resolve", "--help"); code != ExitOK || !strings.Contains(stderr, "Examples:") || !strings.Contains(stderr, "Exit codes:") {
		t.Errorf("--help: exit %d, %q", code, stderr)
	}
	if code, _, _ := run(t, "nosuchcommand"); code != ExitUsage {
		t.Errorf("unknown command: exit %d", code)
	}
	if code, stdout, _ := run(t, "version"); code != 0 || !strings.HasPrefix(stdout, "mailsts ") {
		t.Errorf("version: %d %q", code, stdout)
	}
}

// resolve --explain shows what policyd would answer (issue #3 item 6).
func TestResolveExplain(t *testing.T) {
	t.Parallel()
	n := defaultNet(t)
	cases := []struct{ domain, reply, answer string }{
		{"enforce.example", "OK secure match=.enforce.example servername=hostname", "ok_secure"},
		{"testing.example", "NOTFOUND", "notfound"},      // PFX-STS-1
		{"dane.example", "OK dane-only", "ok_dane_only"}, // STS-DANE-4
		{"nosts.example", "NOTFOUND", "notfound"},
	}
	for _, c := range cases {
		t.Run(c.domain, func(t *testing.T) {
			t.Parallel()
			args := append(append([]string{"resolve", "--json", "--explain"}, netArgs(n)...), c.domain)
			_, stdout, stderr := run(t, args...)
			var out resolveOutput
			if err := json.Unmarshal([]byte(stdout), &out); err != nil {
				t.Fatalf("%v: %s %s", err, stdout, stderr)
			}
			if out.Policyd == nil {
				t.Fatal("no policyd object in the output")
			}
			if out.Policyd.Reply != c.reply || out.Policyd.Decision.Answer != c.answer || out.Policyd.Decision.Reason == "" {
				t.Errorf("policyd = %+v, want reply %q answer %q", out.Policyd, c.reply, c.answer)
			}
		})
	}
}
