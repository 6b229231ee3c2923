// Command sender benchmarks TLS report collection: libtlsrpt datagrams
// per second that `mailsts tlsrpt collect` takes from its Unix socket into
// the results store with nothing lost, against a minimal Go datagram
// reader (the anchor: read, check the JSON, count) fed the same datagrams
// in the same run. See README.md.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mailsts/mailsts/internal/sqlitedb"
)

func main() {
	n := flag.Int("n", 200000, "datagrams per run")
	senders := flag.Int("senders", 2, "sending goroutines (blocking sendto, so the socket drops nothing)")
	domains := flag.Int("domains", 1000, "distinct recipient domains")
	timeout := flag.Duration("timeout", 5*time.Minute, "give up a run after this long")
	bin := flag.String("mailsts", "", "mailsts binary (default: go build ./cmd/mailsts into a temporary directory)")
	build := flag.Int("build-domains", 0, "instead: time one daily build of this many domains' reports (in process, SQLite)")
	flag.Parse()
	if *build > 0 {
		if err := runBuild(*build); err != nil {
			fmt.Fprintln(os.Stderr, "bench/sender:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*n, *senders, *domains, *timeout, *bin); err != nil {
		fmt.Fprintln(os.Stderr, "bench/sender:", err)
		os.Exit(1)
	}
}

// datagrams returns n datagrams in libtlsrpt's byte form: one in five a
// failure, over the given number of domains.
func datagrams(n, domains int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		d := fmt.Sprintf("d%05d.example", i%domains)
		var pol string
		switch i % 5 {
		case 0:
			pol = `{"policy-type":2,"policy-domain": "` + d + `","policy-string":["version: STSv1","mode: enforce","mx: mx.` + d + `","max_age: 86400"],"mx-host":["mx.` + d + `"],` +
				`"failure-details":[{"c":204,"s": "192.0.2.1","n": "mx.` + d + `","r": "198.51.100.` + strconv.Itoa(i%7) + `","a": "certificate has expired"}],"t":1,"f":1}`
		case 1, 2:
			pol = `{"policy-type":2,"policy-domain": "` + d + `","policy-string":["version: STSv1","mode: enforce","mx: mx.` + d + `","max_age: 86400"],"mx-host":["mx.` + d + `"],"t":0,"f":0}`
		default:
			pol = `{"policy-type":9,"policy-domain": "` + d + `","t":0,"f":0}`
		}
		out[i] = []byte(`{"dpv": "1","d": "` + d + `","pr": "v=TLSRPTv1; rua=mailto:tlsrpt@` + d + `","policies":[` + pol + `]}`)
	}
	return out
}

// send writes every datagram to path from the given number of goroutines.
func send(path string, dgrams [][]byte, senders int) error {
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for i := s; i < len(dgrams); i += senders {
				if _, err := c.Write(dgrams[i]); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

type result struct {
	name     string
	received int64
	elapsed  time.Duration
	cpu      time.Duration // the receiver's CPU (mailsts: its process)
	note     string
}

func run(n, senders, domains int, timeout time.Duration, bin string) error {
	dir, err := os.MkdirTemp("", "bsend")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	dgrams := datagrams(n, domains)
	if bin == "" {
		bin = filepath.Join(dir, "mailsts")
		build := exec.Command("go", "build", "-o", bin, "./cmd/mailsts")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("go build (run from the module root): %w", err)
		}
	}
	var res []result
	r, err := runMinimal(filepath.Join(dir, "min.sock"), dgrams, senders, timeout)
	if err != nil {
		return err
	}
	res = append(res, r)
	r, err = runMailsts(bin, dir, dgrams, senders, timeout)
	if err != nil {
		return err
	}
	res = append(res, r)
	fmt.Printf("%d datagrams, %d senders, %d domains, GOMAXPROCS %d\n", n, senders, domains, runtime.GOMAXPROCS(0))
	fmt.Printf("%-22s %10s %10s %12s %14s  %s\n", "receiver", "received", "seconds", "datagrams/s", "CPU µs/dgram", "notes")
	for _, r := range res {
		cpu := "-"
		if r.cpu > 0 {
			cpu = fmt.Sprintf("%.1f", float64(r.cpu.Microseconds())/float64(r.received))
		}
		fmt.Printf("%-22s %10d %10.2f %12.0f %14s  %s\n", r.name, r.received, r.elapsed.Seconds(), float64(r.received)/r.elapsed.Seconds(), cpu, r.note)
	}
	if res[0].received > 0 && res[1].received > 0 {
		fmt.Printf("mailsts / minimal reader: %.2f\n", (float64(res[1].received)/res[1].elapsed.Seconds())/(float64(res[0].received)/res[0].elapsed.Seconds()))
	}
	return nil
}

// runMinimal is the anchor: read, check that it is JSON, count.
func runMinimal(path string, dgrams [][]byte, senders int, timeout time.Duration) (result, error) {
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return result{}, err
	}
	defer os.Remove(path)
	_ = conn.SetReadBuffer(4 << 20)
	var count, bad atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1<<16)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			if !json.Valid(buf[:k]) {
				bad.Add(1)
			}
			count.Add(1)
		}
	}()
	var ru0 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	start := time.Now()
	if err := send(path, dgrams, senders); err != nil {
		return result{}, err
	}
	deadline := time.Now().Add(timeout)
	for count.Load() < int64(len(dgrams)) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	el := time.Since(start)
	conn.Close()
	<-done
	return result{name: "minimal Go reader", received: count.Load(), elapsed: el,
		note: fmt.Sprintf("in the bench process (CPU shared with the senders); invalid JSON %d", bad.Load())}, nil
}

var counterRE = regexp.MustCompile(`tlsrpt collect: stopped.*`)

// runMailsts runs `mailsts tlsrpt collect --no-build` on a fresh SQLite
// store and counts the sessions stored.
func runMailsts(bin, dir string, dgrams [][]byte, senders int, timeout time.Duration) (result, error) {
	sock := filepath.Join(dir, "m.sock")
	db := filepath.Join(dir, "send.db")
	cmd := exec.Command(bin, "tlsrpt", "collect", "--no-build", "--db", "sqlite:"+db, "--socket", sock, "--stats-interval", "0")
	cmd.Env = append(os.Environ(), "STATE_DIRECTORY="+dir)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return result{}, err
	}
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	lines := make(chan string, 1024)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		close(lines)
	}()
	for i := 0; ; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if i > 1000 {
			cmd.Process.Kill()
			return result{}, fmt.Errorf("mailsts never opened its socket")
		}
		time.Sleep(10 * time.Millisecond)
	}
	sdb, err := sqlitedb.Open(db, sqlitedb.Options{BusyTimeout: 5 * time.Second})
	if err != nil {
		return result{}, err
	}
	defer sdb.Close()
	stored := func() int64 {
		var v int64
		_ = sdb.R.QueryRowContext(context.Background(), `SELECT COALESCE(SUM(successful + failed), 0) FROM outgoing_policies`).Scan(&v)
		return v
	}
	start := time.Now()
	if err := send(sock, dgrams, senders); err != nil {
		cmd.Process.Kill()
		return result{}, err
	}
	// Done when every datagram is stored, or when the count has not
	// moved for 3 s (something was lost: the counters say what).
	deadline := time.Now().Add(timeout)
	var got int64
	last := time.Now()
	for time.Now().Before(deadline) {
		v := stored()
		if v != got {
			got, last = v, time.Now()
		}
		if got >= int64(len(dgrams)) || time.Since(last) > 3*time.Second {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	el := last.Sub(start)
	cmd.Process.Signal(syscall.SIGTERM)
	var final string
	for l := range lines {
		if m := counterRE.FindString(l); m != "" {
			final = m
		}
	}
	if err := cmd.Wait(); err != nil {
		return result{}, fmt.Errorf("mailsts: %w", err)
	}
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return result{name: "mailsts tlsrpt collect", received: got, elapsed: el, cpu: cpu,
		note: "sessions stored in SQLite (datagram to committed row); " + final}, nil
}
