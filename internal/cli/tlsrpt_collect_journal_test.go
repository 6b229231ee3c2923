package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/outgoing"
	"github.com/mailsts/mailsts/tlsrpt"
)

// --postfix-journal: the fixture's smtp(8) lines, as journalctl prints
// them, become results; the journal cursor is stored with them, and the
// next start resumes after it (nothing counted twice). The fake
// journalctl is a shell script: it prints the entries unless asked to
// resume (--after-cursor), then waits like journalctl --follow.
func TestTLSRPTCollectPostfixJournal(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	fixture, err := os.ReadFile(filepath.Join("..", "outgoing", "postfixlog", "testdata", "smtp-3.7.log"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`^(\w{3} +\d+ \d\d:\d\d:\d\d) (\S+) ([^\[\s]+)\[(\d+)\]: (.*)$`)
	var entries []string
	for i, l := range strings.Split(strings.TrimSpace(string(fixture)), "\n") {
		m := re.FindStringSubmatch(l)
		ts, err := time.Parse("Jan _2 15:04:05 2006", m[1]+" 2026")
		if m == nil || err != nil {
			t.Fatalf("fixture line %q: %v", l, err)
		}
		b, _ := json.Marshal(map[string]string{"__CURSOR": fmt.Sprintf("s=1;i=%x", i+1), "__REALTIME_TIMESTAMP": strconv.FormatInt(ts.UnixMicro(), 10),
			"_HOSTNAME": m[2], "SYSLOG_IDENTIFIER": m[3], "SYSLOG_PID": m[4], "MESSAGE": m[5]})
		entries = append(entries, string(b))
	}
	dir := t.TempDir()
	entriesPath, calls := filepath.Join(dir, "entries.jsonl"), filepath.Join(dir, "calls")
	os.WriteFile(entriesPath, []byte(strings.Join(entries, "\n")+"\n"), 0o600)
	script := filepath.Join(dir, "journalctl")
	os.WriteFile(script, []byte(fmt.Sprintf("#!/bin/sh\necho \"$@\" >> %q\ncase \"$*\" in *--after-cursor=*) ;; *) cat %q ;; esac\nexec sleep 3600\n",
		calls, entriesPath)), 0o700)
	cfg := filepath.Join(dir, "reports.yml")
	os.WriteFile(cfg, []byte("send:\n  postfix_journal: true\n  journalctl: "+script+"\n"), 0o600)

	run := func(until func() bool) string {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var errb syncBuffer
		done := make(chan int, 1)
		go func() {
			env := Env{Stdout: io.Discard, Stderr: &errb, Getenv: func(k string) string {
				if k == "STATE_DIRECTORY" {
					return state
				}
				return ""
			}}
			done <- Main(ctx, []string{"tlsrpt", "collect", "--no-build", "--no-socket", "--config", cfg, "--stats-interval", "0"}, env)
		}()
		for i := 0; !until(); i++ {
			if i > 2000 {
				cancel()
				<-done
				t.Fatalf("condition not reached:\n%s", errb.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		if code := <-done; code != ExitOK {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		return errb.String()
	}
	st, err := outgoing.Open(context.Background(), "", state, outgoing.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	day := outgoing.DomainDay{Domain: "sts.example", Day: time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)}
	policies := func() []tlsrpt.PolicyResult {
		ps, _ := st.Policies(context.Background(), day)
		return ps
	}
	// Written once the collector has stored what it read: at the latest
	// when it stops.
	logged := run(func() bool { ps := policies(); return len(ps) == 1 && ps[0].Summary.TotalFailureSessionCount >= 4 })
	if !strings.Contains(logged, "journal_entries=") || !strings.Contains(logged, "postfix_journal=true") {
		t.Errorf("journal counters not logged: %s", logged)
	}
	first := policies()
	host, _ := os.Hostname()
	cursor, ok, err := st.Cursor(context.Background(), "postfix-journal "+host)
	if !ok || err != nil || !strings.Contains(cursor, "s=1;i=") {
		t.Fatalf("stored cursor %q, %v, %v", cursor, ok, err)
	}
	var pos struct {
		Cursor string `json:"cursor"`
	}
	json.Unmarshal([]byte(cursor), &pos)

	// Restarted: journalctl is asked for what follows the stored cursor.
	run(func() bool { b, _ := os.ReadFile(calls); return strings.Count(string(b), "\n") >= 2 })
	b, _ := os.ReadFile(calls)
	runs := strings.Split(strings.TrimSpace(string(b)), "\n")
	if !strings.Contains(runs[0], "--lines=0") || !strings.Contains(runs[1], "--after-cursor="+pos.Cursor) ||
		!strings.Contains(runs[1], "SYSLOG_IDENTIFIER=postfix/smtp") {
		t.Errorf("journalctl runs:\n%s\nwant from the end, then after cursor %s", b, pos.Cursor)
	}
	if again := policies(); again[0].Summary != first[0].Summary {
		t.Errorf("after a restart %+v, before %+v", again[0].Summary, first[0].Summary)
	}
}

// Without journalctl --postfix-journal fails at start and in
// --check-config, saying so; with --postfix-log it is a usage error.
func TestTLSRPTCollectNoJournalctl(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "reports.yml")
	os.WriteFile(cfg, []byte("send:\n  journalctl: "+filepath.Join(state, "no-journalctl")+"\n"), 0o600)
	for _, extra := range [][]string{{"--check-config"}, {}} {
		args := append([]string{"tlsrpt", "collect", "--no-build", "--no-socket", "--postfix-journal", "--config", cfg}, extra...)
		code, _, errOut := runQuiet(t, state, args...)
		if code != ExitError || !strings.Contains(errOut, "journalctl not found") {
			t.Errorf("%v: exit %d, %q; want %d and journalctl not found", extra, code, errOut, ExitError)
		}
	}
	if ents, _ := os.ReadDir(state); len(ents) != 0 {
		t.Errorf("created %v in the state directory", ents)
	}
	code, out, errOut := runQuiet(t, state, "tlsrpt", "collect", "--postfix-journal", "--postfix-log", "/var/log/mail.log")
	checkUsageError(t, code, out, errOut, "tlsrpt collect")
}
