package cli

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/jsonkeys"
	"github.com/mailsts/mailsts/internal/outgoing/outbox"
	"github.com/mailsts/mailsts/internal/testnet"
)

// TestJSONKeysSnakeCase runs every command that prints JSON (--json, and
// cache export's JSON Lines) on real data and checks that every key is
// lower snake_case, recursively. Exclusions are data, listed here on
// purpose: the embedded RFC 8460 report of `tlsrpt show --json` keeps the
// RFC's hyphenated member names. A command of the table with a --json flag
// and no case here fails the test.
func TestJSONKeysSnakeCase(t *testing.T) {
	t.Parallel()
	n := defaultNet(t)
	state := t.TempDir()
	netFlags := []string{"--dns", n.DNSAddr(), "--ca-file", n.CAFile(), "--https-port", strconv.Itoa(n.HTTPSPort())}
	cacheFlags := append([]string{"--state-dir", filepath.Join(state, "cache")}, netFlags...)

	// Data for the report tools: reports with repairs, and a rejected input.
	quirks, _ := filepath.Glob(filepath.Join("..", "..", "tlsrpt", "testdata", "quirks", "*.json"))
	junk := filepath.Join(t.TempDir(), "junk.json")
	os.WriteFile(junk, []byte(`{"policies": `), 0o600)
	if code, out, errOut := runStdin(t, nil, state, append([]string{"tlsrpt", "ingest", "--dkim", "off"}, append(quirks, junk)...)...); code != ExitRejected {
		t.Fatalf("ingest: %d\n%s%s", code, out, errOut)
	}
	// Data for the cache tools.
	list := filepath.Join(t.TempDir(), "domains.txt")
	os.WriteFile(list, []byte("enforce.example\ntesting.example\n"), 0o600)
	if code, out, errOut := runStdin(t, nil, state, append(append([]string{"cache", "warm"}, cacheFlags...), list)...); code != ExitOK {
		t.Fatalf("cache warm: %d\n%s%s", code, out, errOut)
	}

	// Hosted policies (their host is not running: status and publish
	// report findings and refusals, as JSON).
	pn := pubNet.Net(t)
	pubFlags := []string{"--config", pubConfig(t, pn, "testing", ""), "--dns", pn.DNSAddr(), "--ca-file", pn.CAFile(),
		"--https-port", strconv.Itoa(testnet.RefusedPortFor(t)), "--timeout", "5s"}
	pubProbe := append([]string{"--smtp-port", strconv.Itoa(pn.SMTPPort())}, pubFlags...)

	bulkList := filepath.Join(t.TempDir(), "bulk.txt")
	os.WriteFile(bulkList, []byte("enforce.example\nnosts.example\n"), 0o600)
	cases := []struct {
		args []string
		skip []string
		want string // in the output, when set: the case prints real data
	}{
		{args: append(append([]string{"resolve", "--json"}, netFlags...), "enforce.example")},
		{args: append(append([]string{"resolve", "--json"}, netFlags...), "nosts.example")},
		{args: append(append([]string{"resolve", "--json", "--explain"}, netFlags...), "enforce.example")},
		{args: append(append([]string{"check", "--json", "--smtp-port", strconv.Itoa(n.SMTPPort()), "--timeout", "3s", "--probe-timeout", "1s"}, netFlags...), "enforce.example")},
		{args: append(append([]string{"check", "--json", "--smtp-port", strconv.Itoa(n.SMTPPort()), "--timeout", "3s", "--probe-timeout", "1s"}, netFlags...), "mx-mismatch.example")},
		{args: append([]string{"check", "--bulk", bulkList, "--smtp-port", strconv.Itoa(n.SMTPPort()), "--timeout", "3s", "--probe-timeout", "1s"}, netFlags...)},
		{args: append([]string{"cache", "list", "--json"}, cacheFlags...)},
		{args: append(append([]string{"cache", "show", "--json"}, cacheFlags...), "enforce.example")},
		{args: append([]string{"cache", "status", "--json"}, cacheFlags...)},
		{args: append([]string{"cache", "export"}, cacheFlags...)},
		{args: append([]string{"policy", "records", "--json"}, pubFlags...)},
		{args: append([]string{"policy", "status", "--json"}, pubProbe...)},
		{args: append([]string{"policy", "publish", "--json", "--dry-run"}, pubProbe...)},
		{args: []string{"tlsrpt", "summary", "--json"}},
		{args: []string{"tlsrpt", "summary", "--json", "--group-by", "day,domain,org,mx,type,result"}},
		{args: []string{"tlsrpt", "failures", "--json"}},
		{args: []string{"tlsrpt", "rejected", "--json"}},
		{args: []string{"tlsrpt", "show", "--json", "133178592000000000+example.org"}, skip: []string{"[].report"}},
		{args: []string{"tlsrpt", "prune", "--json", "--dry-run", "--before", "2000-01-01"}},
		{args: []string{"tlsrpt", "outbox", "--json"}, want: "example.org"},
		{args: []string{"tlsrpt", "outbox", "suppressed", "--json"}, want: "reports.example.org"},
	}
	// A report in the outbox, and a suppressed destination.
	obs, err := outbox.Open(context.Background(), "", state)
	if err != nil {
		t.Fatal(err)
	}
	ob := &outbox.Outbox{Store: obs}
	day := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	if err := ob.Enqueue(context.Background(), outbox.Report{PolicyDomain: "example.org", Day: day, ReportID: "2026-12-05_example.org@example.net",
		Filename: "example.net!example.org!1764892800!1764979199.json.gz", Body: []byte{0x1f, 0x8b}, Submitter: "example.net"}); err != nil {
		t.Fatal(err)
	}
	if err := obs.Suppress(context.Background(), "https://reports.example.org/tlsrpt", "keeps failing", day); err != nil {
		t.Fatal(err)
	}
	obs.Close()
	covered := map[string]bool{}
	for _, c := range cases {
		covered[c.args[0]] = true
		covered[c.args[0]+" "+c.args[1]] = true
	}
	docs, err := describe()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		for _, x := range append([]cmdDoc{d}, d.subs...) {
			for _, f := range x.flags {
				if f.Name == "json" && !covered[x.name] {
					t.Errorf("mailsts %s has --json but no case in this test", x.name)
				}
			}
		}
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args[:2], " "), func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runStdin(t, nil, state, c.args...)
			if code != ExitOK && code != ExitFailure && !(c.args[0] == "check" && code == 2) {
				t.Fatalf("exit %d\n%s", code, errOut)
			}
			if !strings.Contains(out, c.want) {
				t.Errorf("output lacks %q:\n%s", c.want, out)
			}
			bad, err := jsonkeys.Check([]byte(out), c.skip...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if len(bad) > 0 {
				t.Errorf("%s", jsonkeys.Describe(bad))
			}
		})
	}
}
