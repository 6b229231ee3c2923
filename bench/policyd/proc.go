package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mailsts/mailsts/internal/tailbuf"
	"github.com/mailsts/mailsts/postfix"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat.
// It is 100 on every Linux architecture Go supports (the kernel ABI fixes
// it, whatever CONFIG_HZ is).
const clockTicks = 100

// daemon is a policy daemon process under measurement.
type daemon struct {
	name  string
	addr  string
	cmd   *exec.Cmd
	out   *tailbuf.Buffer
	done  chan struct{}
	err   error
	start time.Time
	cg    string // under callgrind: the dump file's name prefix in cfg.callgrind
}

// startDaemon starts a child process; its output is kept (last 64 KiB) for
// error reports.
func startDaemon(name, addr string, env []string, bin string, args ...string) (*daemon, error) {
	d := &daemon{name: name, addr: addr, out: tailbuf.New(64 << 10), done: make(chan struct{})}
	d.cmd = exec.Command(bin, args...)
	d.cmd.Env = append(os.Environ(), env...)
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	d.start = time.Now()
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() {
		d.err = d.cmd.Wait()
		close(d.done)
	}()
	return d, nil
}

// stop sends SIGTERM and waits up to 20 s, then kills.
func (d *daemon) stop() {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
	}
}

// exited returns a non-nil error once the process has ended.
func (d *daemon) exited() error {
	select {
	case <-d.done:
		if d.err == nil {
			return fmt.Errorf("%s exited with status 0\n%s", d.name, d.out.String())
		}
		return fmt.Errorf("%s exited: %w\n%s", d.name, d.err, d.out.String())
	default:
		return nil
	}
}

// waitAnswer polls until a lookup of key succeeds with want (a reply
// prefix) and returns the time since the process started. Bounded by
// timeout.
func (d *daemon) waitAnswer(ctx context.Context, key, want string, timeout time.Duration) (time.Duration, error) {
	deadline := time.Now().Add(timeout)
	var last error
	for attempt := 0; time.Now().Before(deadline) && attempt < 1_000_000; attempt++ {
		if err := d.exited(); err != nil {
			return 0, err
		}
		last = func() error {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			c, err := postfix.DialSocketmap(cctx, "tcp", d.addr)
			if err != nil {
				return err
			}
			defer c.Close()
			r, err := c.Lookup(cctx, mapName(d.addr), key)
			if err != nil {
				return err
			}
			if got := r.Status.String() + " " + r.Data; !strings.HasPrefix(got, want) {
				return fmt.Errorf("%s: got %q, want %q…", key, got, want)
			}
			return nil
		}()
		if last == nil {
			return time.Since(d.start), nil
		}
		// Connection refused comes back at once: pace the retries. A
		// millisecond keeps the start-up figure precise.
		t := time.NewTimer(time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, ctx.Err()
		case <-t.C:
		}
	}
	return 0, fmt.Errorf("%s not answering on %s after %v: %w", d.name, d.addr, timeout, last)
}

// cpu returns the process's user+system CPU time so far.
func (d *daemon) cpu() (time.Duration, error) {
	return procCPU(d.cmd.Process.Pid)
}

// sysCPU returns the process's system (kernel) CPU time so far.
func (d *daemon) sysCPU() (time.Duration, error) {
	_, st, err := procTimes(d.cmd.Process.Pid)
	return st, err
}

// rss returns the process's resident set size in bytes.
func (d *daemon) rss() (int64, error) {
	return procRSS(d.cmd.Process.Pid)
}

// procCPU reads utime+stime from /proc/<pid>/stat.
func procCPU(pid int) (time.Duration, error) {
	ut, st, err := procTimes(pid)
	return ut + st, err
}

// procTimes reads utime and stime from /proc/<pid>/stat.
func procTimes(pid int) (user, system time.Duration, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces;
	// fields are counted after its closing parenthesis.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, errors.New("malformed /proc/pid/stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// After ')': state is field 3, so utime (14) and stime (15) are at
	// indexes 11 and 12.
	if len(f) < 13 {
		return 0, 0, errors.New("short /proc/pid/stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, fmt.Errorf("/proc/pid/stat: %w", err)
	}
	return time.Duration(ut) * time.Second / clockTicks, time.Duration(st) * time.Second / clockTicks, nil
}

// selfCPU returns this process's CPU time (testnet servers and load
// generator); zero if /proc is unreadable.
func selfCPU() time.Duration {
	d, _ := procCPU(os.Getpid())
	return d
}

// procRSS reads VmRSS from /proc/<pid>/status.
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS: %w", err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("no VmRSS in /proc/pid/status")
}
