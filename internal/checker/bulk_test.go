package checker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/watchdog"
)

var readerCases = []struct {
	name, in, column string
	want             []string
	err              bool
}{
	{"lines", "a.example\n\n# comment\n  b.example  \r\nc.example", "", []string{"a.example", "b.example", "c.example"}, false},
	{"csv by name", "rank,domain\n1,a.example\n2, b.example\n3,\n", "domain", []string{"a.example", "b.example"}, false},
	{"csv by number", "1,a.example\n2,b.example\n", "2", []string{"a.example", "b.example"}, false},
	{"csv short row", "x,domain\nonly\n1,c.example\n", "domain", []string{"c.example"}, false},
	{"csv missing column", "x,y\n1,2\n", "domain", nil, true},
	{"csv bad quote", "domain\n\"a.example\n", "domain", nil, true},
	{"long line", strings.Repeat("a", maxInputLine+1) + "\n", "", nil, true},
}

func readAll(dr *DomainReader) ([]string, error) {
	var out []string
	for range 1000 {
		d, err := dr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, d)
	}
	return out, errors.New("too many domains")
}

func TestDomainReader(t *testing.T) {
	t.Parallel()
	for _, c := range readerCases {
		got, err := readAll(NewDomainReader(strings.NewReader(c.in), c.column))
		if (err != nil) != c.err {
			t.Errorf("%s: err %v", c.name, err)
			continue
		}
		if err != nil && !errors.Is(err, ErrInput) {
			t.Errorf("%s: %v does not wrap ErrInput", c.name, err)
		}
		if !c.err && strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

// FuzzDomainReader: any input yields trimmed, non-empty names or an error,
// never a panic.
func FuzzDomainReader(f *testing.F) {
	for _, c := range readerCases {
		f.Add(c.in, c.column)
	}
	f.Fuzz(func(t *testing.T, in, column string) {
		got, _ := readAll(NewDomainReader(strings.NewReader(in), column))
		for _, d := range got {
			if d == "" || d != strings.TrimSpace(d) {
				t.Fatalf("bad name %q", d)
			}
		}
	})
}

// bulkDomains are default-scenario domains with quick outcomes.
var bulkDomains = []string{
	"enforce.example", "testing.example", "none.example", "crlf.example", "multistring.example",
	"two-records.example", "cname.example", "provider.example", "servfail.example", "redirect.example",
	"notfound.example", "html.example", "expired.example", "wrong-name.example", "self-signed.example",
	"cn-only.example", "nostarttls.example", "badmxcert.example", "testing-badcert.example", "dane.example",
	"dane-ta.example", "dane-wrong.example", "nosts.example", "nullmx.example", "mxdown.example",
	"mxhandshake.example", "no-ctype.example", "mx-mismatch.example", "perfect.test", "bücher.test",
}

// readResults decodes a JSON Lines file and counts reports per domain.
func readResults(t *testing.T, path string) map[string]int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r Report
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("bad line %q: %v", sc.Text(), err)
		}
		counts[r.Domain]++
	}
	return counts
}

// Bulk resumption: run, cut the output mid-way (leaving a partial line),
// run again: only the missing domains are checked, and every domain ends up
// in the file exactly once.
func TestBulkResume(t *testing.T) {
	t.Parallel()
	n := defaultNet(t)
	c := newChecker(t, n, false)
	path := filepath.Join(t.TempDir(), "out.jsonl")
	input := strings.Join(bulkDomains, "\n") + "\n"

	run := func() *Summary {
		f, done, err := OpenResume(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b := &Bulk{Checker: c, Concurrency: 8, Out: f, Done: done}
		sum, err := b.Run(context.Background(), NewDomainReader(strings.NewReader(input), ""))
		if err != nil {
			t.Fatal(err)
		}
		return sum
	}
	first := run()
	if first.Checked != len(bulkDomains) || first.Skipped != 0 {
		t.Fatalf("first run: checked %d skipped %d", first.Checked, first.Skipped)
	}
	// Keep 12 full lines and half of the 13th.
	data, _ := os.ReadFile(path)
	lines := bytes.SplitAfter(data, []byte("\n"))
	cut := append(bytes.Join(lines[:12], nil), lines[12][:len(lines[12])/2]...)
	if err := os.WriteFile(path, cut, 0o644); err != nil {
		t.Fatal(err)
	}
	second := run()
	if second.Skipped != 12 || second.Checked != len(bulkDomains)-12 {
		t.Errorf("second run: checked %d skipped %d, want %d and 12", second.Checked, second.Skipped, len(bulkDomains)-12)
	}
	counts := readResults(t, path)
	if len(counts) != len(bulkDomains) {
		t.Errorf("%d domains in the file, want %d", len(counts), len(bulkDomains))
	}
	for d, k := range counts {
		if k != 1 {
			t.Errorf("%s appears %d times", d, k)
		}
	}
	third := run()
	if third.Checked != 0 || third.Skipped != len(bulkDomains) {
		t.Errorf("third run: checked %d skipped %d", third.Checked, third.Skipped)
	}
	// Issue 11 item 13: a run that resumes everything reports the results
	// already in its output (not "0 fail") and exits on them.
	if third.Earlier != len(bulkDomains) || !maps.Equal(third.Verdicts, first.Verdicts) || !maps.Equal(third.Findings, first.Findings) ||
		third.ExitVerdict() != VerdictFail {
		t.Errorf("third run: earlier %d verdicts %v findings %v, want %d, %v, %v", third.Earlier, third.Verdicts, third.Findings,
			len(bulkDomains), first.Verdicts, first.Findings)
	}
	total := 0
	for _, n := range second.Verdicts {
		total += n
	}
	if second.Earlier != 12 || total != len(bulkDomains) {
		t.Errorf("second run: earlier %d, %d verdicts counted, want 12 and %d", second.Earlier, total, len(bulkDomains))
	}
	var resumed strings.Builder
	third.WriteTable(&resumed, 5)
	if !strings.Contains(resumed.String(), "from earlier runs") {
		t.Errorf("resumed summary:\n%s", resumed.String())
	}
	if first.ExitVerdict() != VerdictFail || first.Verdicts[VerdictFail] == 0 {
		t.Errorf("verdicts %v", first.Verdicts)
	}
	var table strings.Builder
	first.WriteTable(&table, 5)
	for _, w := range []string{"pass", "fail", "top problems", "domains/s"} {
		if !strings.Contains(table.String(), w) {
			t.Errorf("summary lacks %q:\n%s", w, table.String())
		}
	}
}

// A domain whose MX hangs finishes within the per-domain bound, and does
// not hold up the others.
func TestBulkHangBounded(t *testing.T) {
	t.Parallel()
	n := defaultNet(t)
	c := newChecker(t, n, false)
	c.ProbeTimeout = time.Hour
	c.Timeout = 2 * time.Second
	var out bytes.Buffer
	var order []string
	b := &Bulk{Checker: c, Concurrency: 4, Out: &out, OnReport: func(r *Report) { order = append(order, r.Domain) }}
	// Bounds on work, not on time: the run ends through the per-domain
	// Timeout (a watchdog far below the hour-long probe timeout tells), and
	// the hanging domain's report says its banner never came. Completion
	// order is not asserted: on a loaded machine a healthy check can take
	// longer than the hanging one's bound.
	type result struct {
		sum *Summary
		err error
	}
	res := watchdog.Within(t, 2*time.Minute, func() result {
		sum, err := b.Run(context.Background(), NewDomainReader(strings.NewReader("mxhang.example\nenforce.example\nnosts.example\n"), ""))
		return result{sum, err}
	})
	if res.err != nil {
		t.Fatal(res.err)
	}
	if res.sum.Checked != 3 || len(order) != 3 {
		t.Errorf("checked %d, reports %v", res.sum.Checked, order)
	}
	if !strings.Contains(out.String(), `"mx.banner"`) {
		t.Errorf("the hanging MX has no banner finding:\n%s", out.String())
	}
	if strings.Count(out.String(), "\n") != 3 {
		t.Errorf("output:\n%s", out.String())
	}
}

// Cancelling a bulk run stops it promptly and records no cut-short check.
func TestBulkCancel(t *testing.T) {
	t.Parallel()
	n := defaultNet(t)
	c := newChecker(t, n, false)
	c.ProbeTimeout = time.Hour
	c.Timeout = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	b := &Bulk{Checker: c, Concurrency: 2, Out: &out, OnReport: func(*Report) { cancel() }}
	// Every timeout is an hour: only the cancellation can end the run.
	err := watchdog.Within(t, 2*time.Minute, func() error {
		_, err := b.Run(ctx, NewDomainReader(strings.NewReader("nosts.example\nmxhang.example\nmxhang.example\n"), ""))
		return err
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err %v", err)
	}
	if strings.Contains(out.String(), "mxhang") {
		t.Errorf("a cut-short check was recorded:\n%s", out.String())
	}
}

// ReadDone keeps one 8-byte hash per distinct domain, finds names in any
// form (case, trailing dot, U-labels for an A-label domain, the input
// form), and ignores lines that are not complete reports.
func TestReadDone(t *testing.T) {
	t.Parallel()
	in := `{"schema":1,"domain":"a.example","verdict":"pass"}
{"schema":1,"domain":"xn--bcher-kva.example","input":"Bücher.example.","verdict":"warn"}
{"schema":1,"domain":"a.example","verdict":"fail"}
{"domain":"noschema.example","verdict":"pass"}
{"schema":1,"domain":"noverdict.example"}
not json
{"schema":1,"domain":"cut.example","verd`
	d, err := ReadDone(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a.example", "A.Example.", "xn--bcher-kva.example", "bücher.example", "Bücher.example."} {
		if !d.Has(name) {
			t.Errorf("Has(%q) = false", name)
		}
	}
	for _, name := range []string{"b.example", "noschema.example", "noverdict.example", "cut.example", ""} {
		if d.Has(name) {
			t.Errorf("Has(%q) = true", name)
		}
	}
	// a.example twice, the IDN domain and its input form (the same name
	// once normalized).
	if d.Len() != 2 {
		t.Errorf("Len %d, want 2", d.Len())
	}
	var empty *DoneSet
	if empty.Has("a.example") || empty.Len() != 0 || (&DoneSet{}).Has("a.example") {
		t.Error("empty sets must hold nothing")
	}
}

// The resume set of many domains finds every one of them and none of
// the others, at 8 bytes a domain.
func TestDoneSetLarge(t *testing.T) {
	t.Parallel()
	const n = 50_000
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "{\"schema\":1,\"domain\":\"d%06d.gen.example\",\"verdict\":\"pass\"}\n", i)
	}
	d, err := ReadDone(strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() != n || cap(d.h) != n {
		t.Fatalf("Len %d cap %d, want %d", d.Len(), cap(d.h), n)
	}
	for i := range n {
		if !d.Has(fmt.Sprintf("d%06d.gen.example", i)) {
			t.Fatalf("d%06d missing", i)
		}
		if d.Has(fmt.Sprintf("e%06d.gen.example", i)) {
			t.Fatalf("e%06d found", i)
		}
	}
}

// ReadDone reads untrusted files: it never fails on their content, and
// every name it reports done is one a complete line holds.
func FuzzReadDone(f *testing.F) {
	f.Add(`{"schema":1,"domain":"a.example","verdict":"pass"}` + "\n")
	f.Add(`{"schema":1,"domain":"xn--bcher-kva.example","input":"Bücher.example.","verdict":"warn"}` + "\nnot json\n{")
	f.Add("")
	f.Add("\n\n\x00")
	f.Fuzz(func(t *testing.T, in string) {
		d, err := ReadDone(strings.NewReader(in))
		if err != nil {
			if !strings.Contains(err.Error(), "reading earlier results") {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if !slices.IsSorted(d.h) || len(slices.Compact(slices.Clone(d.h))) != len(d.h) {
			t.Fatalf("hashes not sorted and distinct: %v", d.h)
		}
		if d.Len() > 2*strings.Count(in+"\n", "\n") {
			t.Fatalf("%d names from %d lines", d.Len(), strings.Count(in, "\n")+1)
		}
	})
}

// A domain named on several lines, in any case or with the final dot, is
// checked once and counted as duplicate lines; the table says so.
func TestBulkDuplicates(t *testing.T) {
	t.Parallel()
	n := defaultNet(t)
	c := newChecker(t, n, false)
	d0, d1 := bulkDomains[0], bulkDomains[1]
	input := strings.Join([]string{d0, d1, strings.ToUpper(d0), d0 + ".", d1, bulkDomains[2]}, "\n") + "\n"
	var out bytes.Buffer
	b := &Bulk{Checker: c, Concurrency: 4, Out: &out}
	sum, err := b.Run(context.Background(), NewDomainReader(strings.NewReader(input), ""))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Checked != 3 || sum.Duplicates != 3 {
		t.Errorf("checked %d, duplicates %d; want 3 and 3", sum.Checked, sum.Duplicates)
	}
	if lines := bytes.Count(out.Bytes(), []byte("\n")); lines != 3 {
		t.Errorf("%d result lines, want 3", lines)
	}
	var table bytes.Buffer
	sum.WriteTable(&table, 5)
	if !regexp.MustCompile(`skipped \(duplicate lines\) +3\n`).MatchString(table.String()) {
		t.Errorf("table:\n%s", table.String())
	}
}
