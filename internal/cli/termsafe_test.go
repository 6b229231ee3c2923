package cli

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mailsts/mailsts/tlsrpt"
)

func TestTermSafe(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"plain.example":                   "plain.example",
		"bücher.example — 100%":           "bücher.example — 100%",
		"evil\u202egro.elpmaxe":           `evil\u202egro.elpmaxe`,
		"\x1b[2Jcleared":                  `\x1b[2Jcleared`,
		"tab\there":                       `tab\x09here`,
		"bin\xff\xfe":                     `bin\xff\xfe`,
		"c1\u0085next":                    `c1\u0085next`,
		"line\u2028sep":                   `line\u2028sep`,
		"\u061c\u200e\u200f\u2066x\u2069": `\u061c\u200e\u200f\u2066x\u2069`,
	}
	for in, want := range cases {
		if got := termSafe(in); got != want {
			t.Errorf("termSafe(%q) = %q, want %q", in, got, want)
		}
	}
	// Every bidirectional control the issue lists is escaped.
	for _, r := range []rune{0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069, 0x200e, 0x200f, 0x061c} {
		if got := termSafe(string(r)); strings.ContainsRune(got, r) || !strings.HasPrefix(got, `\u`) {
			t.Errorf("U+%04X: %q", r, got)
		}
	}
}

// runTTY runs the command line with stdout taken for a terminal.
func runTTY(t *testing.T, state string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := Env{Stdout: &out, Stderr: &errb, IsTerminal: func(w io.Writer) bool { return w == io.Writer(&out) },
		Getenv: func(k string) string {
			if k == "STATE_DIRECTORY" {
				return state
			}
			return ""
		}}
	code := Main(context.Background(), args, env)
	return code, out.String(), errb.String()
}

// Issue 11 item 14: raw input never goes to a terminal unasked, ingest
// errors do not echo binary input, and bidirectional controls in report
// content are escaped in text output.
func TestTLSRPTTerminalSafety(t *testing.T) { // RPT-RECV-2
	t.Parallel()
	state, dir := t.TempDir(), t.TempDir()
	r, _, err := tlsrpt.Parse(testdataFile(t, "f10c.json"))
	if err != nil {
		t.Fatal(err)
	}
	r.OrganizationName = "Evil\u202eCorp"
	r.Policies[0].FailureDetails[0].AdditionalInformation = "see\x1b[31m red"
	gz, _ := tlsrpt.MarshalGzip(r)
	path := filepath.Join(dir, "report.json.gz")
	os.WriteFile(path, gz, 0o600)
	if code, out, _ := runStdin(t, nil, state, "tlsrpt", "ingest", "--dkim", "off", path); code != ExitOK {
		t.Fatalf("ingest: %d %s", code, out)
	}

	// --raw: refused on a terminal, written with --force or when redirected.
	if code, out, stderr := runTTY(t, state, "tlsrpt", "show", "--raw", r.ReportID); code != ExitUsage || out != "" || !strings.Contains(stderr, "--force") {
		t.Errorf("show --raw on a terminal: %d, %d bytes out, %q", code, len(out), stderr)
	}
	if code, out, _ := runTTY(t, state, "tlsrpt", "show", "--raw", "--force", r.ReportID); code != ExitOK || out != string(gz) {
		t.Errorf("show --raw --force: %d, %d bytes", code, len(out))
	}
	if code, out, _ := runStdin(t, nil, state, "tlsrpt", "show", "--raw", r.ReportID); code != ExitOK || out != string(gz) {
		t.Errorf("show --raw redirected: %d, %d bytes", code, len(out))
	}
	if code, _, _ := runStdin(t, nil, state, "tlsrpt", "show", "--force", r.ReportID); code != ExitUsage {
		t.Errorf("--force without --raw: %d", code)
	}

	// Binary input: the rejection message escapes what it quotes.
	bin := append([]byte("Subject: x\r\n\x1b]0;owned\x07\xff\xfe\x00\x01: y\r\n\r\n"), gz...)
	code, out, _ := runStdin(t, bin, state, "tlsrpt", "ingest", "--dkim", "off")
	if code != ExitRejected || !utf8.ValidString(out) || strings.ContainsAny(out, "\x1b\x07\x00\x01") {
		t.Errorf("ingest of binary input: %d %q", code, out)
	}
	if code, _, _ := runTTY(t, state, "tlsrpt", "rejected", "--raw", "1"); code != ExitUsage {
		t.Errorf("rejected --raw on a terminal: %d", code)
	}

	// Text output paths escape bidirectional and control characters.
	for _, args := range [][]string{
		{"tlsrpt", "show", r.ReportID},
		{"tlsrpt", "summary", "--group-by", "org"},
		{"tlsrpt", "failures"},
	} {
		code, out, _ := runStdin(t, nil, state, args...)
		if code != ExitOK || strings.ContainsAny(out, "\u202e\x1b") {
			t.Errorf("%v: %d %q", args, code, out)
		}
		if !strings.Contains(out, `Evil\u202eCorp`) {
			t.Errorf("%v: the organisation is not shown escaped:\n%s", args, out)
		}
	}
}
