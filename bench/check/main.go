// Command check benchmarks `mailsts check --bulk` with the testnet and the
// checker in two separate processes, so that the checker's CPU time and
// memory are measured alone.
//
// For each n it starts `mailsts testnet --generate n --seed S` (DNS, HTTPS
// policy hosts and SMTP MX hosts of n generated domains on loopback), writes
// the n domain names to a file, and runs `mailsts check --bulk FILE --out
// OUT.jsonl` against it: full checks (TXT, policy fetch, MX lookup, A and
// TLSA lookups and a STARTTLS probe of every MX, TLSRPT TXT). It reports
// domains/s, the checker process's CPU time per domain (wait4's rusage),
// its peak RSS (VmHWM) and its resident set at 10 %, 50 % and 90 % of the
// run (both sampled from /proc/PID/status every 200 ms), to show whether
// memory grows with the number of domains done.
//
//	go run ./bench/check -n 1000,10000,100000 -runs 3
//
// See README.md for the figures and how they were measured.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mailsts/mailsts/internal/testnet"
)

func main() {
	ns := flag.String("n", "1000,10000", "comma-separated numbers of generated domains")
	runs := flag.Int("runs", 1, "runs per n (the machine is shared: report the spread)")
	seed := flag.Int64("seed", 1, "scenario seed")
	conc := flag.Int("concurrency", 64, "domains checked at once (mailsts check --concurrency)")
	bin := flag.String("mailsts", "", "mailsts `binary` (default: built from ./cmd/mailsts into a temporary directory)")
	probeTimeout := flag.Duration("probe-timeout", 5*time.Second, "mailsts check --probe-timeout")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *ns, *runs, *seed, *conc, *bin, *probeTimeout); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, nlist string, runs int, seed int64, conc int, bin string, probeTimeout time.Duration) error {
	dir, err := os.MkdirTemp("", "mailsts-bench-check")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if bin == "" {
		bin = filepath.Join(dir, "mailsts")
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/mailsts")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("building mailsts (run from the repository root): %w", err)
		}
	}
	fmt.Printf("%8s %4s %10s %10s %9s %9s %22s %9s\n", "domains", "run", "elapsed", "domains/s", "cpu ms/d", "VmHWM", "RSS at 10/50/90 %", "tn cpu/d")
	for f := range strings.SplitSeq(nlist, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("-n: bad number %q", f)
		}
		for i := range runs {
			m, err := measure(ctx, bin, dir, n, seed, conc, probeTimeout)
			if err != nil {
				return fmt.Errorf("n=%d run %d: %w", n, i+1, err)
			}
			fmt.Printf("%8d %4d %10s %10.0f %9.2f %6d MiB %6d/%d/%d MiB %9.2f\n", n, i+1, m.elapsed.Round(100*time.Millisecond),
				float64(n)/m.elapsed.Seconds(), ms(m.cpu)/float64(n), m.hwmKiB>>10,
				m.rss[0]>>10, m.rss[1]>>10, m.rss[2]>>10, ms(m.testnetCPU)/float64(n))
			fmt.Printf("         largest sampled RSS %d MiB with %d domains done; verdicts: %s\n", m.rssMax>>10, m.rssMaxAt, m.summary)
		}
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// measurement is one bulk run of the checker process.
type measurement struct {
	elapsed    time.Duration
	cpu        time.Duration // user+system of the checker process
	hwmKiB     int64         // peak RSS of the checker process (VmHWM, last sample)
	rss        [3]int64      // KiB resident when 10, 50 and 90 % of the domains were written
	rssMax     int64         // largest sampled VmRSS, KiB…
	rssMaxAt   int64         // …and how many domains were written then
	testnetCPU time.Duration // user+system of the testnet process during the run
	summary    string        // the checker's verdict lines
}

func measure(ctx context.Context, bin, dir string, n int, seed int64, conc int, probeTimeout time.Duration) (*measurement, error) {
	tn, flags, err := startTestnet(ctx, bin, n, seed)
	if err != nil {
		return nil, err
	}
	defer func() {
		_ = tn.Process.Signal(os.Interrupt)
		_ = tn.Wait()
	}()

	list := filepath.Join(dir, "domains.txt")
	if err := writeList(list, n, seed); err != nil {
		return nil, err
	}
	out := filepath.Join(dir, "out.jsonl")
	if err := os.Remove(out); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	args := append([]string{"check", "--bulk", list, "--out", out, "--concurrency", strconv.Itoa(conc),
		"--probe-timeout", probeTimeout.String()}, flags...)
	var stderr bytes.Buffer
	ck := exec.CommandContext(ctx, bin, args...)
	ck.Stderr = &stderr
	tnCPU0 := procCPU(tn.Process.Pid)
	start := time.Now()
	if err := ck.Start(); err != nil {
		return nil, err
	}
	m := &measurement{}
	done := make(chan error, 1)
	go func() { done <- ck.Wait() }()
	// Sample the checker's resident set against its progress (lines in
	// the output file) until it exits.
	var lines, offset int64
	marks := [3]int64{int64(n) / 10, int64(n) / 2, int64(n) * 9 / 10}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var werr error
wait:
	for {
		select {
		case werr = <-done:
			break wait
		case <-tick.C:
			lines, offset = countNewLines(out, lines, offset)
			rss := statusKiB(ck.Process.Pid, "VmRSS:")
			if hwm := statusKiB(ck.Process.Pid, "VmHWM:"); hwm > 0 {
				m.hwmKiB = hwm
			}
			if rss > m.rssMax {
				m.rssMax, m.rssMaxAt = rss, lines
			}
			for i, mk := range marks {
				if m.rss[i] == 0 && lines >= mk {
					m.rss[i] = rss
				}
			}
		}
	}
	m.elapsed = time.Since(start)
	m.testnetCPU = procCPU(tn.Process.Pid) - tnCPU0
	var ee *exec.ExitError
	if werr != nil && !(errors.As(werr, &ee) && ee.ExitCode() >= 0 && ee.ExitCode() <= 2) {
		// 0, 1 and 2 are verdicts (generated domains include broken
		// ones); 3 or a signal means the run did not complete.
		return nil, fmt.Errorf("mailsts check: %w\n%s", werr, stderr.String())
	}
	ru, ok := ck.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return nil, errors.New("no rusage")
	}
	m.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	// Not ru.Maxrss: os/exec starts the child with vfork semantics
	// (CLONE_VM), and Linux counts the parent's resident high-water mark
	// into the child's ru_maxrss when it execs. With this driver holding
	// testnet.Generate(100000) that reported ~90 MiB for a checker whose
	// own VmHWM was 40 MiB. VmHWM of /proc/PID/status is the checker's
	// own peak; the last sample is at most 200 ms before it exited.
	if lines, _ = countNewLines(out, 0, 0); lines != int64(n) {
		return nil, fmt.Errorf("%d result lines for %d domains\n%s", lines, n, stderr.String())
	}
	var vs []string
	for l := range strings.Lines(stderr.String()) {
		f := strings.Fields(l)
		if len(f) == 3 && (f[0] == "pass" || f[0] == "warn" || f[0] == "fail" || f[0] == "error") {
			vs = append(vs, f[0]+"="+f[1])
		}
	}
	m.summary = strings.Join(vs, " ")
	return m, nil
}

// startTestnet starts `mailsts testnet --generate n` and returns it with
// the flags it printed for mailsts check.
func startTestnet(ctx context.Context, bin string, n int, seed int64) (*exec.Cmd, []string, error) {
	tn := exec.CommandContext(ctx, bin, "testnet", "--generate", strconv.Itoa(n), "--seed", strconv.FormatInt(seed, 10))
	tn.Stderr = os.Stderr
	stdout, err := tn.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := tn.Start(); err != nil {
		return nil, nil, err
	}
	type result struct {
		flags []string
		err   error
	}
	got := make(chan result, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "check flags: "); ok {
				got <- result{flags: strings.Fields(rest)}
				_, _ = io.Copy(io.Discard, stdout)
				return
			}
		}
		got <- result{err: fmt.Errorf("testnet exited without printing its flags: %v", sc.Err())}
	}()
	select {
	case r := <-got:
		if r.err != nil {
			_ = tn.Process.Kill()
			_ = tn.Wait()
			return nil, nil, r.err
		}
		return tn, r.flags, nil
	case <-time.After(2 * time.Minute):
		_ = tn.Process.Kill()
		_ = tn.Wait()
		return nil, nil, errors.New("testnet did not start within 2 minutes")
	}
}

// writeList writes the names of testnet.Generate(n, seed), one per line.
func writeList(path string, n int, seed int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, d := range testnet.Generate(n, seed).Domains {
		fmt.Fprintln(w, d.Name)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// countNewLines adds the newlines written to path after offset to lines.
func countNewLines(path string, lines, offset int64) (int64, int64) {
	f, err := os.Open(path)
	if err != nil {
		return lines, offset
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return lines, offset
	}
	buf := make([]byte, 256<<10)
	for {
		k, err := f.Read(buf)
		lines += int64(bytes.Count(buf[:k], []byte{'\n'}))
		offset += int64(k)
		if err != nil {
			return lines, offset
		}
	}
}

// statusKiB returns a "kB" field of /proc/PID/status, or 0.
func statusKiB(pid int, name string) int64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for l := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(l, name); ok {
			v, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return v
		}
	}
	return 0
}

// procCPU returns the user+system CPU time of a running process so far.
func procCPU(pid int) time.Duration {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// utime and stime are the 14th and 15th fields, in clock ticks (100
	// per second on Linux); the command name in parentheses may hold
	// spaces, so count from its closing parenthesis.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * (time.Second / 100)
}
