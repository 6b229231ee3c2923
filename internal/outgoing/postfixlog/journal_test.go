package postfixlog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/outgoing"
)

// The fake journalctl is this test binary run again (through a small
// shell script that sets fakeJournalEnv to its directory). It prints the
// entries of DIR/entries.jsonl that the arguments select, like
// journalctl --output=json: SYSLOG_IDENTIFIER= matches, --after-cursor,
// --lines=0 (none of the stored ones), --no-tail. With DIR/stop-after
// holding N it prints at most N entries and exits with status 3 (as a
// journalctl that fails); otherwise it waits to be stopped (--follow).
// With DIR/fail-runs holding N, its first N runs fail at once. Each run
// appends its arguments to DIR/calls.
const fakeJournalEnv = "MAILSTS_TEST_FAKE_JOURNALCTL"

func TestMain(m *testing.M) {
	if dir := os.Getenv(fakeJournalEnv); dir != "" {
		os.Exit(fakeJournalctl(dir, os.Args[1:]))
	}
	os.Exit(m.Run())
}

func fakeJournalctl(dir string, args []string) int {
	calls, _ := os.OpenFile(filepath.Join(dir, "calls"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	fmt.Fprintln(calls, strings.Join(args, " "))
	calls.Close()
	ids := map[string]bool{}
	after, tail0, follow := "", false, false
	for _, a := range args {
		switch {
		case strings.HasPrefix(a, "SYSLOG_IDENTIFIER="):
			ids[strings.TrimPrefix(a, "SYSLOG_IDENTIFIER=")] = true
		case strings.HasPrefix(a, "--after-cursor="):
			after = strings.TrimPrefix(a, "--after-cursor=")
		case a == "--lines=0":
			tail0 = true
		case a == "--follow":
			follow = true
		case a == "--output=json", strings.HasPrefix(a, "--since="), a == "--all", a == "--no-pager", a == "--no-tail", strings.HasPrefix(a, "--output-fields="):
		default:
			fmt.Fprintf(os.Stderr, "fake journalctl: unexpected argument %q\n", a)
			return 1
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "fail-runs")); err == nil {
		runs, _ := os.ReadFile(filepath.Join(dir, "calls"))
		if n, _ := strconv.Atoi(strings.TrimSpace(string(b))); strings.Count(string(runs), "\n") <= n {
			fmt.Fprintln(os.Stderr, "fake journalctl: failing as told")
			return 4
		}
	}
	stopAfter := -1
	if b, err := os.ReadFile(filepath.Join(dir, "stop-after")); err == nil {
		stopAfter, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	data, err := os.ReadFile(filepath.Join(dir, "entries.jsonl"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	printing := after == "" && !tail0
	w := bufio.NewWriter(os.Stdout)
	n := 0
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		var m map[string]any
		_ = json.Unmarshal([]byte(line), &m) // hostile lines: printed when selected by cursor order only
		cursor, _ := m["__CURSOR"].(string)
		if !printing {
			printing = after != "" && cursor == after
			continue
		}
		if id, ok := m["SYSLOG_IDENTIFIER"].(string); m != nil && len(ids) > 0 && (!ok || !ids[id]) {
			continue
		}
		if n == stopAfter {
			w.Flush()
			fmt.Fprintln(os.Stderr, "fake journalctl: stopping as told")
			return 3
		}
		w.WriteString(line + "\n")
		n++
	}
	if after != "" && !printing {
		fmt.Fprintln(os.Stderr, "fake journalctl: cursor not found")
		return 1
	}
	w.Flush()
	if !follow {
		return 0
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	<-ch
	return 0
}

// fakeJournal writes the entries and the script that runs the fake, and
// returns the script's path and its directory.
func fakeJournal(t *testing.T, entries []string) (string, string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "entries.jsonl"), []byte(strings.Join(entries, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "journalctl")
	body := fmt.Sprintf("#!/bin/sh\n%s=%q exec %q \"$@\"\n", fakeJournalEnv, dir, self)
	if err := os.WriteFile(script, []byte(body), 0o700); err != nil {
		t.Fatal(err)
	}
	return script, dir
}

var syslogTimeRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z \S+ \S+\[\d+\]: `)

var syslogRE = regexp.MustCompile(`^(\w{3} +\d+ \d\d:\d\d:\d\d) (\S+) ([^\[\s]+)\[(\d+)\]: (.*)$`)

// journalEntries turns syslog lines into journalctl's JSON entries, as
// journald stores what Postfix logs: the identifier and pid apart, the
// time in microseconds (year 2026, UTC), a cursor per entry.
func journalEntries(t *testing.T, lines []string) []string {
	t.Helper()
	var out []string
	for i, l := range lines {
		m := syslogRE.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("not a syslog line: %q", l)
		}
		ts := parseTime(m[1], 2026, nil)
		e := map[string]any{
			"__CURSOR":              fmt.Sprintf("s=0123;i=%x;b=fake;m=%x;t=%x;x=0", i+1, i, ts.UnixMicro()),
			"__REALTIME_TIMESTAMP":  strconv.FormatInt(ts.UnixMicro(), 10),
			"__MONOTONIC_TIMESTAMP": strconv.Itoa(i),
			"_BOOT_ID":              "fake",
			"_HOSTNAME":             m[2],
			"SYSLOG_IDENTIFIER":     m[3],
			"SYSLOG_PID":            m[4],
			"_PID":                  m[4],
			"MESSAGE":               m[5],
		}
		b, _ := json.Marshal(e)
		out = append(out, string(b))
	}
	return out
}

func readLines(t *testing.T, name string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(data)), "\n")
}

// cursorRecorder keeps what a Journal passes on.
type cursorRecorder struct {
	mu      sync.Mutex
	got     []outgoing.Result
	cursors []string
}

func (c *cursorRecorder) RecordCursor(_ context.Context, source, cursor string, rs ...outgoing.Result) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, rs...)
	c.cursors = append(c.cursors, cursor)
	return nil
}

func (c *cursorRecorder) last() (position, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var p position
	if n := len(c.cursors); n > 0 {
		_ = json.Unmarshal([]byte(c.cursors[n-1]), &p)
	}
	return p, len(c.got)
}

func cursorOf(t *testing.T, entry string) string {
	var m map[string]any
	if err := json.Unmarshal([]byte(entry), &m); err != nil {
		t.Fatal(err)
	}
	return m["__CURSOR"].(string)
}

// runJournal runs j until cond holds (bounded), then stops it.
func runJournal(t *testing.T, j *Journal, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- j.Run(ctx) }()
	ok := false
	for range 4000 {
		if ok = cond(); ok {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Fatalf("condition not reached (stats %+v, journal %+v)", j.Stats(), j.JournalStats())
	}
}

// The journal gives the results the file gives for the same lines (the
// real Postfix 3.7.11 lines of the end-to-end test and the fixture), with
// other programs' entries filtered out, hostile entries skipped, and
// journalctl failing every few entries and run again after the last
// entry read.
func TestJournalEqualsFile(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"postfix-3.7.11-e2e.log", "smtp-3.7.log"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			lines := readLines(t, name)
			fileRec := &memRecorder{}
			ff := &Follower{Recorder: fileRec, Answers: answers(), Now: func() time.Time { return time.Date(2026, 12, 6, 15, 0, 0, 0, time.UTC) }}
			for _, l := range lines {
				ff.HandleLine(context.Background(), l)
			}
			want := fileRec.results()
			if len(want) < 5 {
				t.Fatalf("only %d results from the file", len(want))
			}

			entries := journalEntries(t, lines)
			// Hostile entries among them: skipped without harm.
			hostile := []string{
				`{"__CURSOR":"h1","__REALTIME_TIMESTAMP":"1","SYSLOG_IDENTIFIER":"postfix/smtp","SYSLOG_PID":"1","MESSAGE":"` + strings.Repeat("x", MaxEntry) + `"}`,
				`{"__CURSOR":"h2","__REALTIME_TIMESTAMP":"1","SYSLOG_IDENTIFIER":"postfix/smtp","SYSLOG_PID":"1","MESSAGE":[1,2,300]}`,
				`{"__CURSOR":"h3", broken`,
				`{"SYSLOG_IDENTIFIER":"postfix/smtp","SYSLOG_PID":"1","MESSAGE":"no cursor"}`,
				`{"__CURSOR":"h5","__REALTIME_TIMESTAMP":"1","SYSLOG_IDENTIFIER":"postfix/smtp","SYSLOG_PID":"1","MESSAGE":null}`,
				`{"__CURSOR":"h6","__REALTIME_TIMESTAMP":"1","SYSLOG_IDENTIFIER":["postfix/smtp","postfix/smtp"],"SYSLOG_PID":"1","MESSAGE":"x"}`,
			}
			mixed := append([]string{}, entries[:3]...)
			mixed = append(mixed, hostile...)
			mixed = append(mixed, entries[3:]...)
			script, dir := fakeJournal(t, mixed)
			if err := os.WriteFile(filepath.Join(dir, "stop-after"), []byte("7"), 0o600); err != nil {
				t.Fatal(err)
			}
			rec := &cursorRecorder{}
			j := &Journal{Journalctl: script, Recorder: rec, Answers: answers(), Since: "2026-12-06", Backoff: time.Millisecond, MaxBackoff: time.Millisecond}
			lastCursor := cursorOf(t, entries[len(entries)-1])
			runJournal(t, j, func() bool { p, _ := rec.last(); return p.Cursor == lastCursor })
			rec.mu.Lock()
			got := append([]outgoing.Result(nil), rec.got...)
			rec.mu.Unlock()
			if !reflect.DeepEqual(got, want) {
				t.Errorf("journal results differ from the file's:\n got %+v\nwant %+v", got, want)
			}
			js := j.JournalStats()
			if js.Restarts == 0 || js.Skipped < 3 {
				t.Errorf("journal stats %+v: want restarts and the 3 entries without a cursor or too long skipped", js)
			}
			if s := j.Stats(); s.Sessions != uint64(len(want)) {
				t.Errorf("stats %+v, want %d sessions", s, len(want))
			}
			calls, _ := os.ReadFile(filepath.Join(dir, "calls"))
			cl := strings.Split(strings.TrimSpace(string(calls)), "\n")
			if !strings.Contains(cl[0], "--since=2026-12-06") || !strings.Contains(cl[0], "SYSLOG_IDENTIFIER=postfix/smtp") ||
				!strings.Contains(cl[0], "SYSLOG_IDENTIFIER=postfix/cleanup") || !strings.Contains(cl[1], "--after-cursor=") {
				t.Errorf("journalctl runs:\n%s", calls)
			}
		})
	}
}

// Without a stored position the journal is read from its end, as the
// file follower reads the file.
func TestJournalStartsAtEnd(t *testing.T) {
	t.Parallel()
	script, dir := fakeJournal(t, journalEntries(t, readLines(t, "smtp-3.7.log")))
	rec := &cursorRecorder{}
	j := &Journal{Journalctl: script, Recorder: rec}
	runJournal(t, j, func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "calls"))
		return len(b) > 0
	})
	calls, _ := os.ReadFile(filepath.Join(dir, "calls"))
	if !strings.Contains(string(calls), "--lines=0") {
		t.Errorf("journalctl run as %s, want --lines=0", calls)
	}
	if _, n := rec.last(); n != 0 {
		t.Errorf("%d results from entries before the start", n)
	}
}

// journalctl failing before it printed anything, on a start from the
// end: the next run reads from the first run's start, missing nothing.
func TestJournalFailsAtStart(t *testing.T) {
	t.Parallel()
	script, dir := fakeJournal(t, journalEntries(t, readLines(t, "smtp-3.7.log")))
	if err := os.WriteFile(filepath.Join(dir, "fail-runs"), []byte("1"), 0o600); err != nil {
		t.Fatal(err)
	}
	started := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	rec := &cursorRecorder{}
	j := &Journal{Journalctl: script, Recorder: rec, Backoff: time.Millisecond, Now: func() time.Time { return started }}
	runJournal(t, j, func() bool { _, n := rec.last(); return n > 0 })
	calls, _ := os.ReadFile(filepath.Join(dir, "calls"))
	cl := strings.Split(strings.TrimSpace(string(calls)), "\n")
	if len(cl) < 2 || !strings.Contains(cl[0], "--lines=0") || !strings.Contains(cl[1], fmt.Sprintf("--since=@%d", started.Unix())) {
		t.Errorf("journalctl runs:\n%s\nwant from the end, then from the first run's start", calls)
	}
}

func TestJournalctlAbsent(t *testing.T) {
	t.Parallel()
	j := &Journal{Journalctl: filepath.Join(t.TempDir(), "journalctl"), Recorder: &cursorRecorder{}}
	if _, err := j.Check(); !errors.Is(err, ErrNoJournalctl) {
		t.Errorf("Check: %v, want ErrNoJournalctl", err)
	}
	if err := j.Run(context.Background()); !errors.Is(err, ErrNoJournalctl) || !strings.Contains(err.Error(), "journalctl") {
		t.Errorf("Run: %v, want ErrNoJournalctl", err)
	}
	bad := &Journal{Journalctl: "/bin/sh", Identifiers: []string{"postfix/smtp x"}}
	if _, err := bad.Check(); err == nil {
		t.Error("Check accepted an identifier with a space")
	}
}

// decodeCases are journalctl's field forms, for TestDecodeEntry and the
// seeds of FuzzDecodeEntry.
const decodeBase = `"__CURSOR":"c","__REALTIME_TIMESTAMP":"1796551201000000"`

var decodeCases = []struct {
	json, line string
	ok         bool
}{
	{`{` + decodeBase + `,"_HOSTNAME":"mail","SYSLOG_IDENTIFIER":"postfix/smtp","SYSLOG_PID":"12","MESSAGE":"hello"}`, "2026-12-06T10:00:01Z mail postfix/smtp[12]: hello", true},
	// MESSAGE as bytes (not UTF-8), no SYSLOG_PID (then _PID), no host.
	{`{` + decodeBase + `,"SYSLOG_IDENTIFIER":"postfix/smtp","_PID":"7","MESSAGE":[104,105,255]}`, "2026-12-06T10:00:01Z - postfix/smtp[7]: hi\xff", true},
	// A host name with a space does not shift the fields.
	{`{` + decodeBase + `,"_HOSTNAME":"a b","SYSLOG_IDENTIFIER":"postfix/smtp","SYSLOG_PID":"7","MESSAGE":"m"}`, "2026-12-06T10:00:01Z - postfix/smtp[7]: m", true},
	// Not lines: null (too large), several values, no pid, a bad pid,
	// an identifier with a bracket, no time.
	{`{` + decodeBase + `,"SYSLOG_IDENTIFIER":"postfix/smtp","SYSLOG_PID":"7","MESSAGE":null}`, "", true},
	{`{` + decodeBase + `,"SYSLOG_IDENTIFIER":"postfix/smtp","SYSLOG_PID":"7","MESSAGE":["a","b"]}`, "", true},
	{`{` + decodeBase + `,"SYSLOG_IDENTIFIER":"postfix/smtp","MESSAGE":"m"}`, "", true},
	{`{` + decodeBase + `,"SYSLOG_IDENTIFIER":"postfix/smtp","SYSLOG_PID":"7x","MESSAGE":"m"}`, "", true},
	{`{` + decodeBase + `,"SYSLOG_IDENTIFIER":"postfix/smtp[1]","SYSLOG_PID":"7","MESSAGE":"m"}`, "", true},
	{`{"__CURSOR":"c","SYSLOG_IDENTIFIER":"postfix/smtp","SYSLOG_PID":"7","MESSAGE":"m"}`, "", true},
	{`{` + decodeBase + `,"SYSLOG_IDENTIFIER":"postfix/smtp","SYSLOG_PID":"7","MESSAGE":"` + strings.Repeat("x", MaxLine+1) + `"}`, "", true},
	// No cursor, or not JSON: skipped.
	{`{"MESSAGE":"m"}`, "", false},
	{`{"__CURSOR":7}`, "", false},
	{`[1,2]`, "", false},
	{``, "", false},
}

// embeddedLine is an entry whose MESSAGE holds a line break and a line.
const embeddedLine = `{` + decodeBase + `,"SYSLOG_IDENTIFIER":"x","SYSLOG_PID":"7","MESSAGE":"a\nDec  6 10:00:02 mail postfix/smtp[1]: Verified TLS connection established to mx.a.example[192.0.2.1]:25: x"}`

// decodeEntry: journalctl's field forms.
func TestDecodeEntry(t *testing.T) {
	t.Parallel()
	for _, c := range decodeCases {
		e, ok := decodeEntry([]byte(c.json))
		if ok != c.ok || e.line != c.line {
			t.Errorf("decodeEntry(%.80s) = %q, %v; want %q, %v", c.json, e.line, ok, c.line, c.ok)
		}
	}
	// A message with a line break is one line: what follows the break
	// cannot pass for a line of its own.
	e, _ := decodeEntry([]byte(embeddedLine))
	if l, ok := Parse(e.line, 2026, nil); ok {
		t.Errorf("an embedded line parsed: %+v", l)
	}
}

func FuzzDecodeEntry(f *testing.F) {
	for _, c := range decodeCases {
		f.Add([]byte(c.json))
	}
	f.Add([]byte(embeddedLine))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, ok := decodeEntry(b)
		if !ok && e.line != "" {
			t.Fatal("a line without a cursor")
		}
		if e.line != "" && !syslogTimeRE.MatchString(e.line) {
			t.Fatalf("line %q does not start with its time", e.line)
		}
		(&Follower{Recorder: &memRecorder{}}).HandleLine(context.Background(), e.line)
	})
}

// forwardRecorder passes on to a Recorder and remembers the last cursor.
type forwardRecorder struct {
	next   CursorRecorder
	mu     sync.Mutex
	cursor string
}

func (f *forwardRecorder) RecordCursor(ctx context.Context, source, cursor string, rs ...outgoing.Result) error {
	if err := f.next.RecordCursor(ctx, source, cursor, rs...); err != nil {
		return err
	}
	var p position
	_ = json.Unmarshal([]byte(cursor), &p)
	f.mu.Lock()
	f.cursor = p.Cursor
	f.mu.Unlock()
	return nil
}

func (f *forwardRecorder) last() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cursor
}

// storeTotals is everything a store would report, for comparing stores.
func storeTotals(t *testing.T, st *outgoing.Store) string {
	t.Helper()
	ctx := context.Background()
	dds, err := st.Pending(ctx, time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), 0)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, dd := range dds {
		ps, err := st.Policies(ctx, dd)
		if err != nil {
			t.Fatal(err)
		}
		j, _ := json.Marshal(ps)
		fmt.Fprintf(&b, "%s %s %s\n", dd.Day.Format(time.DateOnly), dd.Domain, j)
	}
	return b.String()
}

func openStore(t *testing.T) *outgoing.Store {
	t.Helper()
	st, err := outgoing.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "send.db"), outgoing.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// The journal's cursor is stored in the transaction that stores the
// results of the entries before it: a crash before the commit replays
// them, a restart after it counts nothing twice, and a session cut by the
// restart (its TLS line before the stored cursor, its delivery after) is
// joined as in one run, from the entries re-read without recording.
func TestJournalCursorCommitted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	lines := readLines(t, "smtp-3.7.log")
	now := func() time.Time { return time.Date(2026, 12, 6, 15, 0, 0, 0, time.UTC) }
	fileRec := &memRecorder{}
	ff := &Follower{Recorder: fileRec, Answers: answers(), Now: now}
	for _, l := range lines {
		ff.HandleLine(ctx, l)
	}
	wantStore := openStore(t)
	if err := wantStore.Add(ctx, fileRec.results()...); err != nil {
		t.Fatal(err)
	}
	want := storeTotals(t, wantStore)

	entries := journalEntries(t, lines)
	cut := -1 // just after the TLS line of plain.example's session
	for i, l := range lines {
		if strings.Contains(l, "Trusted TLS connection established to mx.plain.example") {
			cut = i + 1
		}
	}
	if cut < 0 || !strings.Contains(lines[cut], "to=<carol@plain.example>") {
		t.Fatal("fixture changed: no session to cut")
	}
	// A later entry without a result, for a run that has nothing new.
	more := append(append([]string{}, entries...), journalEntries(t, []string{
		"Dec  6 11:00:00 mail postfix/smtp[2200]: connect to mx.down.example[192.0.2.77]:25: Connection timed out"})[0])
	more[len(more)-1] = strings.Replace(more[len(more)-1], "i=1;", "i=ff;", 1)

	// run reads entries until the last one's position is passed on,
	// then stops; crash leaves the Recorder unflushed and unclosed.
	run := func(st *outgoing.Store, entries []string, window time.Duration, crash bool) {
		t.Helper()
		script, _ := fakeJournal(t, entries)
		rec := outgoing.NewRecorder(st, outgoing.RecorderOptions{FlushEvery: time.Hour, Idle: time.Hour})
		fw := &forwardRecorder{next: rec}
		j := &Journal{Journalctl: script, Recorder: fw, Cursors: st, Answers: answers(), Since: "2026-12-06", PrimeWindow: window}
		last := cursorOf(t, entries[len(entries)-1])
		runJournal(t, j, func() bool { return fw.last() == last })
		if crash {
			return
		}
		if err := rec.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	stored := func(st *outgoing.Store) string {
		t.Helper()
		s, _, err := st.Cursor(ctx, "postfix-journal")
		if err != nil {
			t.Fatal(err)
		}
		var p position
		_ = json.Unmarshal([]byte(s), &p)
		return p.Cursor
	}

	st := openStore(t)
	run(st, entries[:cut], time.Second, true)
	if c := stored(st); c != "" || storeTotals(t, st) != "" {
		t.Fatalf("crashed before the commit: cursor %q stored, results %q", c, storeTotals(t, st))
	}
	run(st, entries[:cut], time.Second, false) // replayed, committed
	if c := stored(st); c != cursorOf(t, entries[cut-1]) {
		t.Fatalf("stored cursor %q, want the last entry's", c)
	}
	// The rest, after the cursor; a longer window from here on, so that
	// the next start re-reads sessions that were counted.
	run(st, entries, 5*time.Minute, false)
	if got := storeTotals(t, st); got != want {
		t.Errorf("after a crash and a restart:\n%s\nwant (the file's):\n%s", got, want)
	}
	run(st, more, 5*time.Minute, false) // nothing new
	if got := storeTotals(t, st); got != want {
		t.Errorf("restart counted again:\n%s\nwant:\n%s", got, want)
	}
	if c := stored(st); c != cursorOf(t, more[len(more)-1]) {
		t.Errorf("stored cursor %q, want the newest entry's", c)
	}

	// Without re-reading, the cut session's delivery has no TLS line:
	// lost. (This is what the re-reading is for.)
	ctl := openStore(t)
	run(ctl, entries[:cut], -1, false)
	run(ctl, entries, -1, false)
	if got := storeTotals(t, ctl); got == want || strings.Contains(got, "plain.example") {
		t.Errorf("without re-reading the cut session still counted:\n%s", got)
	}
}

type fixedCursor string

func (c fixedCursor) Cursor(context.Context, string) (string, bool, error) {
	return string(c), true, nil
}

// A stored cursor journalctl keeps refusing (the journal was replaced):
// after a few failed runs the journal is read from the cursor's time,
// entries up to it rebuilding sessions without recording, and the
// sessions after it recorded as the file gives them.
func TestJournalRefusedCursor(t *testing.T) {
	t.Parallel()
	lines := readLines(t, "smtp-3.7.log")
	fileRec := &memRecorder{}
	ff := &Follower{Recorder: fileRec, Answers: answers(), Now: func() time.Time { return time.Date(2026, 12, 6, 15, 0, 0, 0, time.UTC) }}
	for _, l := range lines {
		ff.HandleLine(context.Background(), l)
	}
	cutAt := time.Date(2026, 12, 6, 10, 5, 0, 0, time.UTC)
	var want []outgoing.Result
	for _, r := range fileRec.results() {
		if r.Time.After(cutAt) {
			want = append(want, r)
		}
	}
	if len(want) < 3 || len(want) == len(fileRec.results()) {
		t.Fatalf("fixture changed: %d of %d results after the cut", len(want), len(fileRec.results()))
	}
	entries := journalEntries(t, lines)
	script, dir := fakeJournal(t, entries)
	stored, _ := json.Marshal(position{Cursor: "s=another-journal;i=9", Realtime: cutAt.UnixMicro()})
	rec := &cursorRecorder{}
	j := &Journal{Journalctl: script, Recorder: rec, Cursors: fixedCursor(stored), Answers: answers(), Backoff: time.Millisecond, MaxBackoff: time.Millisecond}
	last := cursorOf(t, entries[len(entries)-1])
	runJournal(t, j, func() bool { p, _ := rec.last(); return p.Cursor == last })
	rec.mu.Lock()
	got := append([]outgoing.Result(nil), rec.got...)
	rec.mu.Unlock()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("results after the refused cursor:\n got %+v\nwant %+v", got, want)
	}
	if s := j.Stats(); s.Sessions != uint64(len(want)) {
		t.Errorf("stats %+v: sessions re-read before the cursor counted", s)
	}
	calls, _ := os.ReadFile(filepath.Join(dir, "calls"))
	cl := strings.Split(strings.TrimSpace(string(calls)), "\n")
	if len(cl) != maxCursorFailures+1 || !strings.Contains(cl[0], "--after-cursor=s=another-journal;i=9") ||
		!strings.Contains(cl[maxCursorFailures], fmt.Sprintf("--since=@%d", cutAt.Add(-15*time.Minute).Unix())) {
		t.Errorf("journalctl runs:\n%s", calls)
	}
}

// The real journalctl, on a journal file systemd-journal-remote writes
// from the fixture's entries (journald itself need not run): the results
// are the file's, and journalctl resumes after the cursor it printed.
func TestRealJournalctl(t *testing.T) {
	t.Parallel()
	journalctl, err := exec.LookPath("journalctl")
	if err != nil {
		t.Skip("journalctl not installed (Debian package systemd)")
	}
	remote := "/lib/systemd/systemd-journal-remote"
	if _, err := os.Stat(remote); err != nil {
		t.Skip("systemd-journal-remote not installed (Debian package systemd-journal-remote): it writes the test's journal file")
	}
	lines := readLines(t, "smtp-3.7.log")
	fileRec := &memRecorder{}
	ff := &Follower{Recorder: fileRec, Answers: answers(), Now: func() time.Time { return time.Date(2026, 12, 6, 15, 0, 0, 0, time.UTC) }}
	for _, l := range lines {
		ff.HandleLine(context.Background(), l)
	}
	want := fileRec.results()

	dir := t.TempDir()
	writeJournal(t, remote, filepath.Join(dir, "postfix.journal"), lines, 0)
	rec := &cursorRecorder{}
	j := &Journal{Journalctl: journalctl, Directory: dir, Since: "@1", Recorder: rec, Answers: answers(), PrimeWindow: 5 * time.Minute}
	var postfix uint64 // entries journalctl selects
	for _, l := range lines {
		if id := syslogRE.FindStringSubmatch(l)[3]; id == "postfix/smtp" || id == "postfix/cleanup" {
			postfix++
		}
	}
	runJournal(t, j, func() bool { _, n := rec.last(); return n == len(want) && j.JournalStats().Entries == postfix })
	rec.mu.Lock()
	got := append([]outgoing.Result(nil), rec.got...)
	last := rec.cursors[len(rec.cursors)-1]
	rec.mu.Unlock()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("results from journalctl:\n got %+v\nwant %+v", got, want)
	}
	// Resumed from the stored position, with a later session in another
	// journal file: journalctl accepts the cursor; the entries from the
	// prime cursor up to it are re-read without counting, and only the
	// new session is recorded.
	var p position
	if err := json.Unmarshal([]byte(last), &p); err != nil || p.Prime == "" {
		t.Fatalf("stored position %s: want a prime cursor", last)
	}
	writeJournal(t, remote, filepath.Join(dir, "later.journal"), []string{
		"Dec  6 10:30:00 mail postfix/smtp[2301]: Verified TLS connection established to mx1.sts.example[192.0.2.10]:25: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)",
		"Dec  6 10:30:01 mail postfix/smtp[2301]: 5LATE1: to=<zoe@sts.example>, relay=mx1.sts.example[192.0.2.10]:25, delay=0.4, delays=0/0/0.2/0.2, dsn=2.0.0, status=sent (250 2.0.0 Ok)",
	}, 100)
	rec2 := &cursorRecorder{}
	j2 := &Journal{Journalctl: journalctl, Directory: dir, Recorder: rec2, Cursors: fixedCursor(last), Answers: answers()}
	runJournal(t, j2, func() bool {
		p2, _ := rec2.last()
		return p2.Realtime == time.Date(2026, 12, 6, 10, 30, 1, 0, time.UTC).UnixMicro()
	})
	rec2.mu.Lock()
	got2 := append([]outgoing.Result(nil), rec2.got...)
	rec2.mu.Unlock()
	if len(got2) != 1 || got2[0].PolicyDomain != "sts.example" || len(got2[0].Failures) != 0 || j2.JournalStats().Restarts != 0 {
		t.Errorf("resumed: %+v (stats %+v); want the one new session", got2, j2.JournalStats())
	}
	if j2.Stats().Lines < 3 {
		t.Errorf("resumed: %d lines read; want the entries after the prime cursor re-read", j2.Stats().Lines)
	}
}

// writeJournal writes syslog lines as a journal file, through the
// journal export format (MESSAGE in its binary-safe form).
func writeJournal(t *testing.T, remote, path string, lines []string, mono int) {
	t.Helper()
	var exp bytes.Buffer
	for i, l := range lines {
		m := syslogRE.FindStringSubmatch(l)
		ts := parseTime(m[1], 2026, nil)
		fmt.Fprintf(&exp, "__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n_BOOT_ID=0123456789abcdef0123456789abcdef\n_HOSTNAME=%s\nSYSLOG_IDENTIFIER=%s\nSYSLOG_PID=%s\nMESSAGE\n",
			ts.UnixMicro(), mono+i+1, m[2], m[3], m[4])
		binary.Write(&exp, binary.LittleEndian, uint64(len(m[5])))
		exp.WriteString(m[5] + "\n\n")
	}
	cmd := exec.Command(remote, "--output="+path, "-")
	cmd.Stdin = &exp
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("systemd-journal-remote: %v\n%s", err, out)
	}
}
