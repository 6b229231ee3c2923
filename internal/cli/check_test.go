package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/checker"
	"github.com/mailsts/mailsts/internal/testnet"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/check")

func checkArgs(n *testnet.Net, extra ...string) []string {
	args := append([]string{"check"}, netArgs(n)...)
	args = append(args, "--smtp-port", strconv.Itoa(n.SMTPPort()), "--timeout", "3s", "--probe-timeout", "1s")
	return append(args, extra...)
}

// Exit codes: 0 pass, 1 warnings, 2 failures, 3 could not run, 64 usage.
func TestCheckExitCodes(t *testing.T) {
	t.Parallel()
	n := defaultNet(t)
	cases := []struct {
		args []string
		code int
	}{
		{[]string{"enforce.example"}, 0},
		{[]string{"nosts.example"}, 1},              // no MTA-STS, no TLSRPT: warnings
		{[]string{"mx-mismatch.example"}, 2},        // STS-MX-1
		{[]string{"--strict", "mxhang.example"}, 2}, // strict: an unreachable MX fails
		{[]string{"mxhang.example"}, 1},
		// Issue 11 item 13: usage errors exit 64 as in every command;
		// 3 is left for "could not run".
		{[]string{"a..b"}, ExitUsage},
		{[]string{}, ExitUsage},
		{[]string{"a.example", "b.example"}, ExitUsage},
		{[]string{"--no-such-flag", "a.example"}, ExitUsage},
		{[]string{"--timeout", "soon", "a.example"}, ExitUsage},
		{[]string{"--out", "x.jsonl", "a.example"}, ExitUsage},
		{[]string{"--concurrency", "8", "a.example"}, ExitUsage},
		{[]string{"--concurrency", "0", "--bulk", "x"}, ExitUsage},
		{[]string{"--smtp-port", "0", "a.example"}, ExitUsage},
		{[]string{"--bulk", "/nonexistent/list.txt"}, 3},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := run(t, checkArgs(n, c.args...)...)
			if code != c.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, c.code, stdout, stderr)
			}
		})
	}
	if code, _, stderr := run(t, "check", "--help"); code != 0 || !strings.Contains(stderr, "Exit codes:") || !strings.Contains(stderr, "3  could not run") {
		t.Errorf("--help: exit %d\n%s", code, stderr)
	}
}

// The terminal report is grouped, shows fixes, and has no colour when the
// output is not a terminal.
func TestCheckText(t *testing.T) {
	t.Parallel()
	n := defaultNet(t)
	code, stdout, _ := run(t, checkArgs(n, "nostarttls.example")...)
	if code != 2 {
		t.Errorf("exit %d", code)
	}
	for _, want := range []string{
		"mailsts check nostarttls.example", "MTA-STS record", "MX hosts (SMTP STARTTLS probe)",
		"✗ mx1.nostarttls.example: STARTTLS is not offered", "fix: offer STARTTLS", "[mx.starttls STS-CERT-1]",
		"Verdict: FAIL",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "\x1b[") {
		t.Errorf("colour codes in non-terminal output:\n%q", stdout)
	}
	if useColor(Env{Getenv: func(k string) string { return map[string]string{"NO_COLOR": "1"}[k] }}, os.Stdout) {
		t.Error("NO_COLOR is not respected")
	}
	var b bytes.Buffer
	if useColor(Env{Getenv: func(string) string { return "" }}, &b) {
		t.Error("colour on a buffer")
	}
}

var (
	reIP     = regexp.MustCompile(`127\.\d+\.\d+\.\d+(:\d+)?`)
	reDate   = regexp.MustCompile(`\d{4}-\d{2}-\d{2}`)
	reDays   = regexp.MustCompile(`\b\d+ (more days|day\(s\))`)
	reCAName = regexp.MustCompile(`testnet CA [a-z0-9]+`)
)

// reRootSum matches the fingerprint of the test CA in sts.policy.root.
var reRootSum = regexp.MustCompile(`\(SHA-256 [0-9a-f]{16}…\)`)

// normalizeReport blanks what changes between runs: times, durations,
// addresses, ports, certificate dates and the random test CA name.
func normalizeReport(t *testing.T, data []byte) []byte {
	t.Helper()
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, data)
	}
	var walk func(any)
	walk = func(x any) {
		switch x := x.(type) {
		case map[string]any:
			for k, val := range x {
				switch k {
				case "started", "not_after":
					x[k] = "TIME"
				case "duration_ms", "elapsed_ms", "days_left":
					x[k] = 0
				case "sha256":
					x[k] = "SHA256"
				case "message":
					if m, ok := val.(string); ok {
						x[k] = reRootSum.ReplaceAllString(m, "(SHA-256 FINGERPRINT…)")
					}
				case "addrs":
					x[k] = []any{"ADDR"}
				default:
					walk(val)
				}
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	out = reIP.ReplaceAll(out, []byte("ADDR"))
	out = reDate.ReplaceAll(out, []byte("DATE"))
	out = reDays.ReplaceAll(out, []byte("N $1"))
	out = reCAName.ReplaceAll(out, []byte("testnet CA X"))
	return append(out, '\n')
}

// TestCheckGolden pins the JSON schema: the reports of a few domains,
// normalized, must equal testdata/check/<domain>.json (go test -update
// rewrites them).
func TestCheckGolden(t *testing.T) {
	t.Parallel()
	n := defaultNet(t)
	// An entry is the arguments after --json; the domain comes last. The
	// strict run of a testing-mode domain shows how --strict changes
	// severities (every MX problem fails).
	for _, entry := range []string{"enforce.example", "mx-mismatch.example", "nostarttls.example", "nosts.example", "dane.example", "two-records.example",
		"testing-badcert.example", "--strict testing-badcert.example"} {
		args := strings.Fields(entry)
		d := args[len(args)-1]
		t.Run(entry, func(t *testing.T) {
			t.Parallel()
			_, stdout, stderr := run(t, checkArgs(n, append([]string{"--json"}, args...)...)...)
			got := normalizeReport(t, []byte(stdout))
			path := filepath.Join("testdata", "check", strings.ReplaceAll(strings.TrimPrefix(entry, "--"), " ", "-")+".json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)\nstderr: %s", err, stderr)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("report differs from %s (run with -update after checking the change)\ngot:\n%s", path, got)
			}
			// The schema decodes into the public type without loss of
			// the fields tools rely on.
			var r checker.Report
			if err := json.Unmarshal([]byte(stdout), &r); err != nil || r.Schema != checker.SchemaVersion || r.Domain != d || len(r.Findings) == 0 {
				t.Errorf("decode: %v %+v", err, r)
			}
		})
	}
}

// A policy that parses but that senders do not use says so in the
// header (STS-POL-2: served as text/html).
func TestCheckTextPolicyNotApplied(t *testing.T) {
	t.Parallel()
	n := defaultNet(t)
	_, stdout, _ := run(t, checkArgs(n, "html.example")...)
	if !strings.Contains(stdout, "  policy: mode enforce") || !strings.Contains(stdout, "  not applied by senders: sts-policy-invalid\n") {
		t.Errorf("header:\n%s", stdout)
	}
	_, stdout, _ = run(t, checkArgs(n, "enforce.example")...)
	if strings.Contains(stdout, "not applied") {
		t.Errorf("a usable policy is reported as not applied:\n%s", stdout)
	}
}

// Bulk through the command line: JSON Lines to --out, summary on stderr,
// exit code of the worst domain, and a rerun skips everything but still
// reports what its output holds.
func TestCheckBulk(t *testing.T) {
	t.Parallel()
	n := defaultNet(t)
	dir := t.TempDir()
	list := filepath.Join(dir, "list.csv")
	csv := "rank,domain\n1,enforce.example\n2,nostarttls.example\n3,Bücher.example\n4,testing.example\n"
	if err := os.WriteFile(list, []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.jsonl")
	code, _, stderr := run(t, checkArgs(n, "--bulk", list, "--column", "domain", "--out", out, "--concurrency", "3")...)
	firstFail := regexp.MustCompile(`(?m)^fail +[1-9][0-9]* .*$`).FindString(stderr)
	if code != 2 {
		t.Errorf("exit %d, want 2\n%s", code, stderr)
	}
	for _, want := range []string{"verdict", "top problems", "mx.starttls", "4 checked"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("summary lacks %q:\n%s", want, stderr)
		}
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(data), "\n"); got != 4 {
		t.Errorf("%d lines in --out:\n%s", got, data)
	}
	code, _, stderr = run(t, checkArgs(n, "--bulk", list, "--column", "domain", "--out", out)...)
	// Issue 11 item 13: the rerun checks nothing, yet reports (and exits
	// on) the failures already in its output.
	if code != 2 || !strings.Contains(stderr, "4 domains already in") || !strings.Contains(stderr, "0 checked") ||
		firstFail == "" || !strings.Contains(stderr, firstFail+"\n") || !regexp.MustCompile(`(?m)^of which from earlier runs +4$`).MatchString(stderr) {
		t.Errorf("rerun: exit %d, want 2 and the first run's %q\n%s", code, firstFail, stderr)
	}
	// Without --out, JSON Lines go to stdout. A numbered column means
	// there is no header row.
	if err := os.WriteFile(list, []byte(strings.SplitN(csv, "\n", 2)[1]), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, _ := run(t, checkArgs(n, "--bulk", list, "--column", "2")...)
	if code != 2 || strings.Count(stdout, "\n") != 4 || !strings.Contains(stdout, `"domain":"xn--bcher-kva.example"`) {
		t.Errorf("stdout bulk: exit %d\n%s", code, stdout)
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader; Wrote
// tells the reader when there is more to read.
type syncBuffer struct {
	mu    sync.Mutex
	b     bytes.Buffer
	wrote chan struct{}
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.b.Write(p)
	select {
	case s.wroteLocked() <- struct{}{}:
	default: // a signal is pending already
	}
	return n, err
}

// Wrote receives after writes: one value for any number of writes since
// the last receive.
func (s *syncBuffer) Wrote() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wroteLocked()
}

func (s *syncBuffer) wroteLocked() chan struct{} {
	if s.wrote == nil {
		s.wrote = make(chan struct{}, 1)
	}
	return s.wrote
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// `mailsts testnet --generate N` serves testnet.Generate(N, seed) in its
// own process in the benchmark (bench/check); here it runs in a goroutine,
// and `mailsts check --bulk` with the flags it prints checks every
// generated domain.
func TestCheckGeneratedTestnet(t *testing.T) {
	t.Parallel()
	const n = 20
	ctx, cancel := context.WithCancel(context.Background())
	var tnOut, tnErr syncBuffer
	exited := make(chan int, 1)
	go func() {
		exited <- Main(ctx, []string{"testnet", "--generate", strconv.Itoa(n), "--seed", "7"}, Env{Stdout: &tnOut, Stderr: &tnErr})
	}()
	defer func() {
		cancel()
		if code := <-exited; code != ExitOK {
			t.Errorf("testnet exit %d: %s", code, tnErr.String())
		}
	}()
	var flags []string
	timeout := time.After(30 * time.Second)
	for flags == nil {
		select {
		case <-tnOut.Wrote():
		case code := <-exited:
			exited <- code // for the deferred check
			t.Fatalf("testnet exited (%d) before printing its flags: %s %s", code, tnOut.String(), tnErr.String())
		case <-timeout:
			t.Fatalf("testnet printed no flags: %s %s", tnOut.String(), tnErr.String())
		}
		for l := range strings.Lines(tnOut.String()) {
			if rest, ok := strings.CutPrefix(l, "check flags: "); ok && strings.HasSuffix(rest, "\n") {
				flags = strings.Fields(rest)
			}
		}
	}
	if !strings.Contains(tnOut.String(), "testnet running: 20 domains (d000000.gen.example d000001.gen.example") {
		t.Errorf("testnet output: %s", tnOut.String())
	}
	dir := t.TempDir()
	list := filepath.Join(dir, "list.txt")
	var names []string
	for _, d := range testnet.Generate(n, 7).Domains {
		names = append(names, d.Name)
	}
	if err := os.WriteFile(list, []byte(strings.Join(names, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"check", "--bulk", list, "--probe-timeout", "2s", "--timeout", "5s"}, flags...)
	code, stdout, stderr := run(t, args...)
	if code != 1 && code != 2 { // generated scenarios include broken domains
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	got := map[string]bool{}
	delivered := 0
	for l := range strings.Lines(stdout) {
		var r checker.Report
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		if r.Verdict == checker.VerdictError {
			t.Errorf("%s: %s", r.Domain, r.Error)
		}
		got[r.Domain] = true
		for _, m := range r.MX {
			if m.STSDecision == "deliver" && m.Probe.Stage == "done" {
				delivered++
			}
		}
	}
	for _, name := range names {
		if !got[name] {
			t.Errorf("no result for %s", name)
		}
	}
	if delivered == 0 {
		t.Errorf("no MX host passed a full STARTTLS probe under an enforce or testing policy:\n%s", stdout)
	}
	if code, _, stderr := run(t, "testnet", "--generate", "3", "--scenario", "x.yaml"); code != ExitUsage || !strings.Contains(stderr, "not both") {
		t.Errorf("--generate with --scenario: exit %d %s", code, stderr)
	}
}

// clientPortsArg is the --client-ports value for n, as `mailsts testnet`
// prints it.
func clientPortsArg(n *testnet.Net) string {
	var ports []string
	for _, s := range testnet.ClientServices() {
		ports = append(ports, string(s)+"="+strconv.Itoa(n.ClientPort(s)))
	}
	return strings.Join(ports, ",")
}

// check --clients against the testnet's client hosts with --client-ports:
// a host whose six endpoints pass (TLS8314-1, TLS8314-2, TLS8314-3), and
// one with an expired certificate on imaps (TLS8314-4) and submission
// without STARTTLS (TLS8314-2).
func TestCheckClients(t *testing.T) {
	t.Parallel()
	n := defaultNet(t)
	ports := clientPortsArg(n)
	code, stdout, stderr := run(t, checkArgs(n, "--client-ports", ports, "--clients", "mail.clients.example", "clients.example")...)
	if code != 0 || strings.Count(stdout, "[clients.ok TLS8314-1]") != 6 || !strings.Contains(stdout, "Mail client endpoints (RFC 8314)") {
		t.Errorf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	imap := fmt.Sprintf("mail.clients.example:%d (imap): STARTTLS with TLS 1.3", n.ClientPort(testnet.ServiceIMAP))
	if !strings.Contains(stdout, imap) {
		t.Errorf("output lacks %q:\n%s", imap, stdout)
	}

	code, stdout, stderr = run(t, checkArgs(n, "--json", "--client-ports", ports, "--clients", "mail.badclients.example", "badclients.example")...)
	var r checker.Report
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("%v\n%s\n%s", err, stdout, stderr)
	}
	got := map[string]string{}
	for _, f := range r.Findings {
		if f.Group == checker.GroupClients {
			got[f.ID+" "+f.Severity.String()] += f.Message + "\n"
		}
	}
	if code != 2 || len(r.Clients) != 6 ||
		!strings.Contains(got["clients.cert fail"], fmt.Sprintf(":%d (imaps): certificate expired", n.ClientPort(testnet.ServiceIMAPS))) ||
		!strings.Contains(got["clients.starttls fail"], fmt.Sprintf(":%d (submission): STARTTLS is not offered", n.ClientPort(testnet.ServiceSubmission))) ||
		strings.Count(got["clients.ok ok"], "\n") != 4 {
		t.Errorf("exit %d, findings %q", code, got)
	}
}

func TestCheckClientPortsFlag(t *testing.T) {
	t.Parallel()
	got, err := parseClientPorts("submissions=1, imap=143,pop3=65535")
	if err != nil || len(got) != 3 || got["submissions"] != 1 || got["imap"] != 143 || got["pop3"] != 65535 {
		t.Errorf("%v %v", got, err)
	}
	for _, bad := range []string{"imap", "smtp=25", "imap=0", "imap=65536", "imap=x", "imap=1,imap=2", ","} {
		code, _, stderr := run(t, "check", "--client-ports", bad, "a.example")
		if code != ExitUsage || !strings.Contains(stderr, "--client-ports") {
			t.Errorf("%q: exit %d %s", bad, code, stderr)
		}
	}
}

// The README's demo: `mailsts testnet` prints check flags that include
// --client-ports, and `check --clients` with exactly those flags passes
// for the default scenario's good client host.
func TestCheckClientsWithTestnetFlags(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	var tnOut, tnErr syncBuffer
	exited := make(chan int, 1)
	go func() { exited <- Main(ctx, []string{"testnet"}, Env{Stdout: &tnOut, Stderr: &tnErr}) }()
	defer func() {
		cancel()
		if code := <-exited; code != ExitOK {
			t.Errorf("testnet exit %d: %s", code, tnErr.String())
		}
	}()
	var flags []string
	timeout := time.After(30 * time.Second)
	for flags == nil {
		select {
		case <-tnOut.Wrote():
		case code := <-exited:
			exited <- code
			t.Fatalf("testnet exited (%d): %s %s", code, tnOut.String(), tnErr.String())
		case <-timeout:
			t.Fatalf("testnet printed no flags: %s %s", tnOut.String(), tnErr.String())
		}
		for l := range strings.Lines(tnOut.String()) {
			if rest, ok := strings.CutPrefix(l, "check flags: "); ok && strings.HasSuffix(rest, "\n") {
				flags = strings.Fields(rest)
			}
		}
	}
	if !strings.Contains(strings.Join(flags, " "), "--client-ports submissions=") {
		t.Fatalf("check flags lack --client-ports: %q", flags)
	}
	args := append(append([]string{"check"}, flags...), "--probe-timeout", "2s", "--clients", "mail.clients.example", "clients.example")
	code, stdout, stderr := run(t, args...)
	if code != 0 || strings.Count(stdout, "[clients.ok TLS8314-1]") != 6 {
		t.Errorf("exit %d\n%s\n%s", code, stdout, stderr)
	}
}
