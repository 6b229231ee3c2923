package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Callgrind mode (-callgrind DIR): mailsts and the floor client run under
// valgrind's callgrind, and each cold round's instruction count (Ir) is read
// from a dump taken around it. Unlike CPU time, an instruction count does not
// depend on what else the machine runs, so two builds can be compared on a
// shared machine. Valgrind runs one thread at a time and slows a process
// some 50-fold: use it with small rounds (-cold 200) and -mem 0.

// callgrindArgs wraps a daemon's command line in valgrind's callgrind,
// writing its dumps to dir/name.<pid>.<n>. Go's asynchronous preemption
// (signals) trips callgrind's signal bookkeeping and valgrind 3.19 cannot
// execute RDTSCP (runtime.cputicks), so both are turned off.
func callgrindArgs(dir, name, bin string, args []string) (string, []string, []string) {
	vg := []string{"--tool=callgrind", "--callgrind-out-file=" + filepath.Join(dir, name+".%p"), bin}
	return "valgrind", append(vg, args...), []string{"GODEBUG=asyncpreemptoff=1,cpu.rdtscp=off"}
}

// callgrindControl runs callgrind_control with one option (-z: zero the
// counters, -d: dump them) for the daemon.
func callgrindControl(ctx context.Context, d *daemon, opt string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "callgrind_control", opt, strconv.Itoa(d.cmd.Process.Pid)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("callgrind_control %s: %w: %s", opt, err, out)
	}
	return nil
}

// callgrindLast returns the instructions in the daemon's newest dump (the
// counters since the last zero or dump).
func callgrindLast(dir string, d *daemon) (int64, error) {
	prefix := filepath.Join(dir, d.cg+"."+strconv.Itoa(d.cmd.Process.Pid)+".")
	best, file := 0, ""
	for n := 1; n < 10000; n++ {
		if _, err := os.Stat(prefix + strconv.Itoa(n)); err != nil {
			break
		}
		best, file = n, prefix+strconv.Itoa(n)
	}
	if best == 0 {
		return 0, fmt.Errorf("no callgrind dump %s*", prefix)
	}
	return summaryIr(file)
}

// summaryIr reads the "summary:" (or "totals:") line of a callgrind dump.
func summaryIr(file string) (int64, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, p := range []string{"summary:", "totals:"} {
			if v, ok := strings.CutPrefix(line, p); ok {
				fs := strings.Fields(v)
				if len(fs) == 0 {
					return 0, fmt.Errorf("%s: empty %s line", file, p)
				}
				return strconv.ParseInt(fs[0], 10, 64)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New(file + ": no summary line")
}
