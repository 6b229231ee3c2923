// Command moxparse is the peer of bench/reports -mails: it parses TLS
// report mails with mox's parser (github.com/mjl-/mox/tlsrpt.ParseMessage),
// so that mailsts's mail ingest has an anchor from a mail server that
// receives TLS reports. It reads every file of a directory into memory,
// parses them all once untimed (-warmup: the heap grown and the code
// warm, as in bench/reports's process, which parses them round after
// round), then times one pass of ParseMessage over them in one
// goroutine, and prints one line of JSON (Result) on standard output.
//
// It is a module of its own so that mox stays out of mailsts's go.mod
// and out of `go test ./...`; bench/reports builds and runs it.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/mjl-/mox/tlsrpt"
)

// Result is the line printed, read by bench/reports.
type Result struct {
	Mails    int   `json:"mails"`
	Failures int   `json:"failures"`
	Elapsed  int64 `json:"elapsed_ns"`
	CPU      int64 `json:"cpu_ns"` // process user + system over the timed pass
	// Sessions is the sum over every policy of every parsed report of
	// total-successful-session-count and total-failure-session-count;
	// Details the sum of failed-session-count over every failure detail.
	// Both sides compute them from what they parsed.
	Sessions int64 `json:"sessions"`
	Details  int64 `json:"detail_sessions"`
	Policies int   `json:"policies"`
	// FirstError is the error of the first mail that failed, if any.
	FirstError string `json:"first_error,omitempty"`
}

func main() {
	dir := flag.String("dir", "", "directory of report mails (every file is one mail)")
	warmup := flag.Int("warmup", 1, "untimed passes before the timed one")
	flag.Parse()
	if *dir == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: moxparse -dir DIR")
		os.Exit(64)
	}
	mails, err := readMails(*dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for range *warmup {
		run(mails)
	}
	res := run(mails)
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// readMails reads the directory's regular files in name order.
func readMails(dir string) ([][]byte, error) {
	ents, err := os.ReadDir(dir) // sorted by name
	if err != nil {
		return nil, err
	}
	var mails [][]byte
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		mails = append(mails, b)
	}
	return mails, nil
}

// run times mox's ParseMessage over every mail. The sums are taken
// outside the timed loop, from the parsed reports kept.
func run(mails [][]byte) Result {
	log := slog.New(slog.DiscardHandler)
	parsed := make([]*tlsrpt.ReportJSON, len(mails))
	errs := make([]error, len(mails))
	runtime.GC() // the files read are not the pass's garbage
	start, cpu := time.Now(), cpuTime()
	for i, m := range mails {
		parsed[i], errs[i] = tlsrpt.ParseMessage(log, bytes.NewReader(m))
	}
	res := Result{Mails: len(mails), Elapsed: int64(time.Since(start)), CPU: int64(cpuTime() - cpu)}
	for i, r := range parsed {
		if errs[i] != nil {
			if res.Failures == 0 {
				res.FirstError = fmt.Sprintf("mail %d: %v", i, errs[i])
			}
			res.Failures++
			continue
		}
		for _, p := range r.Policies {
			res.Policies++
			res.Sessions += p.Summary.TotalSuccessfulSessionCount + p.Summary.TotalFailureSessionCount
			for _, d := range p.FailureDetails {
				res.Details += d.FailedSessionCount
			}
		}
	}
	return res
}

// cpuTime is the CPU time the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
