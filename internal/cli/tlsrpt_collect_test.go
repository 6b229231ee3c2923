package cli

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/outgoing"
	"github.com/mailsts/mailsts/tlsrpt"
)

func TestTLSRPTCollectUsage(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	if code, _, help := runStdin(t, nil, state, "tlsrpt", "collect", "--help"); code != ExitOK || !strings.Contains(help, "smtp_tlsrpt_socket_name") {
		t.Errorf("--help: %d", code)
	}
	badDelivery := filepath.Join(t.TempDir(), "bad.yml")
	if err := os.WriteFile(badDelivery, []byte("delivery:\n  mail:\n    starttls: sometimes\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, args := range map[string][]string{
		"bad mode":          {"--socket-mode", "999", "--no-build"},
		"argument":          {"--no-build", "extra"},
		"bad db":            {"--db", "mysql://x", "--no-build"},
		"bad delivery":      {"--config", badDelivery, "--org", "O", "--contact", "a@b.example"},
		"bad log level":     {"--no-build", "--log-level", "loud"},
		"no organisation":   {"--report-dir", t.TempDir(), "--contact", "a@b.example", "--socket", filepath.Join(t.TempDir(), "s")},
		"bad contact":       {"--report-dir", t.TempDir(), "--org", "O", "--contact", "nobody", "--once"},
		"unreadable config": {"--config", filepath.Join(state, "missing.yml")},
		"nothing to do":     {"--no-socket", "--no-build", "--no-deliver"},
	} {
		code, _, errOut := runStdin(t, nil, state, append([]string{"tlsrpt", "collect"}, args...)...)
		if code != ExitUsage {
			t.Errorf("%s: exit %d, want %d (%s)", name, code, ExitUsage, errOut)
		}
	}
}

// The command end to end: libtlsrpt datagrams over its socket land in
// the store; --once builds a finished day into the report directory.
func TestTLSRPTCollectEndToEnd(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	sockDir, err := os.MkdirTemp("", "trc")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(sockDir)
	sock := filepath.Join(sockDir, "tlsrpt.sock")
	outDir := filepath.Join(state, "out")
	cfg := filepath.Join(state, "reports.yml")
	os.WriteFile(cfg, []byte("send:\n  organization_name: Example Sender\n  contact_info: tlsrpt@sender.example\n  report_dir: "+outDir+"\n"), 0o600)

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
		done <- Main(ctx, []string{"tlsrpt", "collect", "--config", cfg, "--socket", sock, "--stats-interval", "0"}, env)
	}()
	for i := 0; ; i++ {
		if fi, err := os.Stat(sock); err == nil && fi.Mode()&os.ModeSocket != 0 {
			break
		}
		if i > 1000 {
			t.Fatalf("socket never appeared: %s", errb.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{
		`{"dpv": "1","d": "company-y.example","pr": "v=TLSRPTv1; rua=mailto:r@company-y.example","policies":[{"policy-type":9,"t":0,"f":0}]}`,
		`{"dpv": "1","d": "company-y.example","pr": "v=TLSRPTv1; rua=mailto:r@company-y.example","policies":[{"policy-type":9,"failure-details":[{"c":201,"n": "mx.company-y.example"}],"t":1,"f":1}]}`,
		`not a datagram`,
	} {
		if _, err := c.Write([]byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	// The recorder writes within a second; read the store meanwhile.
	st, err := outgoing.Open(context.Background(), "", state, outgoing.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	today := outgoing.DomainDay{Domain: "company-y.example", Day: tlsrpt.DayRange(time.Now()).Start}
	for i := 0; ; i++ {
		ps, err := st.Policies(context.Background(), today)
		if err == nil && len(ps) == 1 && ps[0].Summary.TotalSuccessfulSessionCount == 1 && ps[0].Summary.TotalFailureSessionCount == 1 {
			break
		}
		if i > 1000 {
			t.Fatalf("results not stored: %+v %v\n%s", ps, err, errb.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != ExitOK {
		t.Fatalf("collect exit %d: %s", code, errb.String())
	}
	if log := errb.String(); !strings.Contains(log, "malformed=1") || !strings.Contains(log, "sessions=2") {
		t.Errorf("final counters not logged:\n%s", log)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}

	// A finished day, built by --once into the report directory.
	old := time.Now().AddDate(0, 0, -2)
	if err := st.Add(context.Background(), outgoing.Result{Time: old, PolicyDomain: "company-y.example", Policy: outgoing.Policy{Type: "no-policy-found"}}); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runStdin(t, nil, state, "tlsrpt", "collect", "--config", cfg, "--once")
	if code != ExitOK || !strings.Contains(out, "built 1,") {
		t.Fatalf("--once: %d %s %s", code, out, errOut)
	}
	day := tlsrpt.DayRange(old)
	name := tlsrpt.Filename{Sender: "sender.example", PolicyDomain: "company-y.example", Begin: day.Start, End: day.End, Gzip: true}.String()
	body, err := os.ReadFile(filepath.Join(outDir, name))
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	js, _ := io.ReadAll(zr)
	r, err := tlsrpt.ParseStrict(js)
	if err != nil || r.OrganizationName != "Example Sender" {
		t.Errorf("report: %v %+v", err, r)
	}
	// Nothing is left: a second run builds nothing.
	if code, out, _ := runStdin(t, nil, state, "tlsrpt", "collect", "--config", cfg, "--once"); code != ExitOK || !strings.Contains(out, "built 0,") {
		t.Errorf("second --once: %d %s", code, out)
	}
}

// --postfix-log: smtp(8) lines appended to the mail log become results.
func TestTLSRPTCollectPostfixLog(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	logPath := filepath.Join(state, "mail.log")
	os.WriteFile(logPath, nil, 0o600)
	fixture, err := os.ReadFile(filepath.Join("..", "outgoing", "postfixlog", "testdata", "smtp-3.7.log"))
	if err != nil {
		t.Fatal(err)
	}
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
		done <- Main(ctx, []string{"tlsrpt", "collect", "--no-build", "--no-socket", "--postfix-log", logPath, "--stats-interval", "0",
			"--metrics", "127.0.0.1:0"}, env)
	}()
	st, err := outgoing.Open(context.Background(), "", state, outgoing.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	day := outgoing.DomainDay{Domain: "sts.example", Day: time.Date(time.Now().Year(), 12, 6, 0, 0, 0, 0, time.UTC)}
	// The follower starts at the end of the file: append until it has
	// opened it and the lines come through.
	var ps []tlsrpt.PolicyResult
	for i := 0; ; i++ {
		if i%50 == 0 {
			f, _ := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0o600)
			f.Write(fixture)
			f.Close()
		}
		ps, _ = st.Policies(context.Background(), day)
		if len(ps) == 1 && ps[0].Summary.TotalFailureSessionCount >= 4 {
			break
		}
		if i > 2000 {
			t.Fatalf("no results from the log: %+v\n%s", ps, errb.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != ExitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	types := map[string]bool{}
	for _, d := range ps[0].FailureDetails {
		types[string(d.ResultType)] = true
	}
	for _, rt := range []string{"certificate-expired", "certificate-host-mismatch", "certificate-not-trusted"} {
		if !types[rt] {
			t.Errorf("no %s detail in %+v", rt, ps[0].FailureDetails)
		}
	}
	if ps[0].Policy.Type != "no-policy-found" {
		t.Errorf("without policyd's answers the policy is %q", ps[0].Policy.Type)
	}
	if !strings.Contains(errb.String(), "log_sessions=") {
		t.Errorf("follower counters not logged: %s", errb.String())
	}
}

// --check-config of collect: a configuration that can build reports is
// OK (exit 0, one line, nothing created in the state directory); one
// without an organisation name is a usage error.
func TestTLSRPTCollectCheckConfig(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	code, out, errOut := runStdin(t, nil, state, "tlsrpt", "collect", "--check-config", "--org", "Example Mail", "--contact", "tlsrpt@example.net")
	if code != ExitOK || !strings.Contains(out, "configuration OK") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if ents, _ := os.ReadDir(state); len(ents) != 0 {
		t.Errorf("--check-config created %v in the state directory", ents)
	}
	if code, _, errOut := runStdin(t, nil, state, "tlsrpt", "collect", "--check-config", "--contact", "tlsrpt@example.net"); code != ExitUsage {
		t.Errorf("without an organisation: exit %d, want %d (%s)", code, ExitUsage, errOut)
	}
}
