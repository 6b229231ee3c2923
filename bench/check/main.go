// Command check benchmarks `mailsts check` in bulk: full checks (TXT record,
// policy fetch, MX lookup, STARTTLS probe of every MX host, DANE and TLSRPT
// lookups) of n generated domains, with the testnet serving them in the same
// process on loopback. It prints domains per second and memory figures.
//
//	go run ./bench/check -n 10000
//
// See README.md for the figures and how they were measured.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/checker"
	"github.com/mailsts/mailsts/internal/testnet"
	"github.com/mailsts/mailsts/mtasts"
)

func main() {
	n := flag.Int("n", 1000, "number of generated domains")
	seed := flag.Int64("seed", 1, "scenario seed")
	conc := flag.Int("concurrency", checker.DefaultConcurrency, "domains checked at once")
	out := flag.String("out", "", "JSON Lines output file (default: a temporary file, removed)")
	memprofile := flag.String("memprofile", "", "write a heap profile taken after the run to `file`")
	flag.Parse()
	if err := run(*n, *seed, *conc, *out, *memprofile); err != nil {
		log.Fatal(err)
	}
}

func run(n int, seed int64, conc int, outPath, memprofile string) error {
	ctx := context.Background()
	sc := testnet.Generate(n, seed)
	tn, err := testnet.Start(ctx, sc, testnet.Options{CertValidity: 90 * 24 * time.Hour})
	if err != nil {
		return err
	}
	defer tn.Close()

	dir, err := os.MkdirTemp("", "mailsts-bench-check")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// The input is a file read as a stream, as in real bulk runs.
	list := filepath.Join(dir, "domains.txt")
	lf, err := os.Create(list)
	if err != nil {
		return err
	}
	lw := bufio.NewWriter(lf)
	for _, d := range sc.Domains {
		fmt.Fprintln(lw, d.Name)
	}
	if err := lw.Flush(); err != nil {
		return err
	}
	lf.Close()
	sc = nil // the testnet keeps its own copy

	if outPath == "" {
		outPath = filepath.Join(dir, "out.jsonl")
	}
	of, err := os.Create(outPath)
	if err != nil {
		return err
	}
	defer of.Close()

	dns, err := dnsresolve.NewClient(tn.DNSAddr())
	if err != nil {
		return err
	}
	c := &checker.Checker{
		DNS:          dns,
		STS:          &mtasts.Client{DNS: dns, RootCAs: tn.RootCAs(), HTTPSPort: tn.HTTPSPort(), Timeout: 10 * time.Second},
		RootCAs:      tn.RootCAs(),
		SMTPPort:     tn.SMTPPort(),
		ProbeTimeout: 5 * time.Second,
		Timeout:      30 * time.Second,
	}
	in, err := os.Open(list)
	if err != nil {
		return err
	}
	defer in.Close()

	runtime.GC()
	hwmBefore := vmHWM()
	var heapMax atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() { // sample the live heap every 100 ms
		defer close(sampled)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > heapMax.Load() {
					heapMax.Store(ms.HeapInuse)
				}
			}
		}
	}()
	var cpuStart = cpuTime()
	b := &checker.Bulk{Checker: c, Concurrency: conc, Out: of}
	sum, err := b.Run(ctx, checker.NewDomainReader(bufio.NewReader(in), ""))
	close(stop)
	<-sampled
	if err != nil {
		return err
	}
	cpu := cpuTime() - cpuStart
	rate := float64(sum.Checked) / sum.Elapsed.Seconds()
	fmt.Printf("domains %d  concurrency %d  GOMAXPROCS %d\n", sum.Checked, conc, runtime.GOMAXPROCS(0))
	fmt.Printf("elapsed %s  rate %.0f domains/s  cpu %.2fs (%.2f ms/domain)\n",
		sum.Elapsed.Round(time.Millisecond), rate, cpu.Seconds(), 1000*cpu.Seconds()/float64(max(sum.Checked, 1)))
	fmt.Printf("VmHWM before run %d MiB, after %d MiB; max heap in use during run %d MiB\n",
		hwmBefore>>10, vmHWM()>>10, heapMax.Load()>>20)
	var vs []string
	for v, k := range sum.Verdicts {
		vs = append(vs, v+"="+strconv.Itoa(k))
	}
	sort.Strings(vs)
	fmt.Printf("verdicts %s; slowest %s (%s)\n", strings.Join(vs, " "), sum.SlowestDomain, sum.Slowest)
	if memprofile != "" {
		f, err := os.Create(memprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		runtime.GC()
		if err := pprof.WriteHeapProfile(f); err != nil {
			return err
		}
	}
	if sum.Checked != n {
		return fmt.Errorf("checked %d of %d domains", sum.Checked, n)
	}
	return nil
}

// vmHWM returns the process's peak resident set size in KiB (Linux).
func vmHWM() int64 {
	return statusField("VmHWM:")
}

func statusField(name string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name); ok {
			v, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return v
		}
	}
	return -1
}

// cpuTime returns the user+system CPU time of the process so far.
func cpuTime() time.Duration {
	data, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name in parentheses; utime and stime are
	// the 14th and 15th fields, in clock ticks (100 per second on Linux).
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
