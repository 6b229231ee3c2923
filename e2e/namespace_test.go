//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/tailbuf"
)

// Environment variables of the test.
const (
	// envRequire makes missing prerequisites a failure instead of a skip.
	envRequire = "MAILSTS_REQUIRE_E2E"
	// envInside names the namespace the re-executed test runs in.
	envInside = "MAILSTS_E2E_NETNS"
	// envBinary is the path of the mailsts binary built by the outer test.
	envBinary = "MAILSTS_E2E_BINARY"
)

// tool returns the absolute path of a program, looking in PATH and then in
// the sbin directories a non-login root shell may lack.
func tool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/local/go/bin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH or sbin directories", name)
}

// mustTool is tool for programs checked by requirePrereqs.
func mustTool(t *testing.T, name string) string {
	t.Helper()
	p, err := tool(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// requirePrereqs skips the test (or fails it under MAILSTS_REQUIRE_E2E=1)
// when the machine cannot run it.
func requirePrereqs(t *testing.T) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (for ip netns and starting Postfix)")
	}
	for _, name := range []string{"ip", "postfix", "postconf", "postqueue", "sendmail", "go"} {
		if _, err := tool(name); err != nil {
			missing = append(missing, name)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := "e2e prerequisites missing: " + strings.Join(missing, ", ") +
		" (Debian: apt-get install postfix iproute2; run as root)"
	if os.Getenv(envRequire) == "1" {
		t.Fatal(msg + "; " + envRequire + "=1 makes this a failure")
	}
	t.Skip(msg + "; set " + envRequire + "=1 to fail instead")
}

// run runs a short command and fails the test with its output on error.
func run(t *testing.T, ctx context.Context, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newNamespace creates a network namespace with loopback up and a
// resolv.conf naming 127.0.0.1, and removes both when the test ends,
// killing whatever still runs inside (only this test's processes can be
// there: the name is fresh).
func newNamespace(t *testing.T, ctx context.Context) string {
	t.Helper()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := "mailsts-e2e-" + hex.EncodeToString(b[:])
	ip := mustTool(t, "ip")
	etc := filepath.Join("/etc/netns", name)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(etc) })
	// ip netns exec bind-mounts this file over /etc/resolv.conf for the
	// processes it starts, so every resolver inside (glibc in Postfix,
	// c-ares in mta-sts-daemon) asks the testnet DNS server.
	resolv := "nameserver 127.0.0.1\noptions timeout:2 attempts:2\n"
	if err := os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte(resolv), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, ip, "netns", "add", name)
	t.Cleanup(func() {
		killNamespace(t, ip, name)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if out, err := exec.CommandContext(ctx, ip, "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", name, err, out)
		}
	})
	run(t, ctx, ip, "netns", "exec", name, ip, "link", "set", "lo", "up")
	return name
}

// killNamespace kills every process left in the namespace (a crashed inner
// test can leave a Postfix master behind) and waits, bounded, for them to
// go.
func killNamespace(t *testing.T, ip, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	logged := false
	err := poll(ctx, 10*time.Second, 100*time.Millisecond, func() error {
		out, err := exec.CommandContext(ctx, ip, "netns", "pids", name).Output()
		if err != nil {
			return fmt.Errorf("%w: ip netns pids: %w", errGiveUp, err)
		}
		pids := strings.Fields(string(out))
		if len(pids) == 0 {
			return nil
		}
		if !logged {
			t.Logf("killing %d processes left in namespace %s", len(pids), name)
			logged = true
		}
		for _, p := range pids {
			if pid, err := strconv.Atoi(p); err == nil && pid > 1 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		return fmt.Errorf("%d processes left", len(pids))
	})
	if err != nil {
		t.Errorf("namespace %s: %v", name, err)
	}
}

// logWriter copies a child's output into the test log, line by line.
type logWriter struct {
	t      *testing.T
	prefix string
	mu     sync.Mutex
	buf    []byte
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			break
		}
		w.t.Log(w.prefix + string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

func (w *logWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.t.Log(w.prefix + string(w.buf))
		w.buf = nil
	}
}

// reexecInside runs this test again inside the namespace and fails when
// the inner run fails. The inner run's output goes to the test log.
func reexecInside(t *testing.T, ctx context.Context, ns, test string, env ...string) {
	t.Helper()
	ip := mustTool(t, "ip")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, ip, "netns", "exec", ns, self,
		"-test.run=^"+test+"$", "-test.v", "-test.timeout=170s")
	cmd.Env = append(os.Environ(), append(env, envInside+"="+ns)...)
	w := &logWriter{t: t, prefix: "inside: "}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGQUIT) } // dumps goroutines
	cmd.WaitDelay = 10 * time.Second
	err = cmd.Run()
	w.flush()
	if err != nil {
		t.Fatalf("test inside namespace %s failed: %v", ns, err)
	}
}

// moduleRoot finds the directory holding go.mod above the working directory.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	t.Fatal("go.mod not found above the working directory")
	return ""
}

// buildMailsts builds cmd/mailsts into dir.
func buildMailsts(t *testing.T, ctx context.Context, dir string) string {
	t.Helper()
	out := filepath.Join(dir, "mailsts")
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, mustTool(t, "go"), "build", "-o", out, "./cmd/mailsts")
	cmd.Dir = moduleRoot(t)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/mailsts: %v\n%s", err, b)
	}
	return out
}

// process is a long-running child whose output is kept for diagnostics.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *tailbuf.Buffer
	done chan struct{}
	err  error
}

// startProcess starts a child that is stopped (SIGTERM, then SIGKILL after
// 10 s) when the test ends.
func startProcess(t *testing.T, name string, env []string, bin string, args ...string) *process {
	t.Helper()
	p := &process{name: name, out: tailbuf.New(64 << 10), done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s output (last 64 KiB):\n%s", name, p.out.String())
		}
	})
	return p
}

// exited reports whether the process ended, with its error.
func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		if p.err == nil {
			return true, errors.New("exited with status 0")
		}
		return true, p.err
	default:
		return false, nil
	}
}

// errGiveUp, wrapped by a poll check's error, ends the poll at once: what
// it waits for can no longer happen.
var errGiveUp = errors.New("giving up")

// poll calls check until it returns nil, an error wrapping errGiveUp, or
// the deadline passes, and returns check's last error. Bounded in time and
// in count.
func poll(ctx context.Context, timeout, every time.Duration, check func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(every)
	defer tick.Stop()
	limit := int(timeout/every) + 2
	var err error
	for range limit {
		if err = check(); err == nil || errors.Is(err, errGiveUp) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %v: %w", timeout, err)
		case <-tick.C:
		}
	}
	return fmt.Errorf("after %d attempts: %w", limit, err)
}

// grepFile returns the lines of a file for which match is true.
func grepFile(path string, match func(line string) bool) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if match(sc.Text()) {
			out = append(out, sc.Text())
		}
	}
	return out, sc.Err()
}
