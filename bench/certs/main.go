// Command certs measures on-demand certificate issuance for delegated
// MTA-STS domains (RFC 8461 §8.2): how long a certs.Manager takes to give
// 1,000 delegated policy hosts a certificate from an ACME CA, what that
// costs in memory, and the proof that no certificate was requested for a
// name whose DNS was not (fully) delegated.
//
// Everything runs on loopback: the fake Internet of internal/testnet
// answers DNS, pebble (in this process) is the CA and validates against
// the policy host, and the Manager runs in a child process (this program
// re-executed) so that its memory is measured alone. See bench/README.md.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mailsts/mailsts/internal/publish/certs/certstest"
	"github.com/mailsts/mailsts/internal/tailbuf"
	"github.com/mailsts/mailsts/internal/testnet"
)

const (
	providerHost = "mta-sts.provider.bench.test"
	providerSTS  = "_mta-sts.provider.bench.test"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-child" {
		if err := child(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/certs:", err)
		os.Exit(1)
	}
}

type options struct {
	delegated, half, foreign, conns int
	challenge, storage              string
	throttle                        int
	timeout                         time.Duration
	showLog                         bool
}

func run() error {
	var o options
	flag.IntVar(&o.delegated, "domains", 1000, "delegated domains (both CNAMEs): each must get a certificate")
	flag.IntVar(&o.half, "half", 500, "half-delegated domains (mta-sts CNAME only): none may be ordered")
	flag.IntVar(&o.foreign, "foreign", 500, "domains whose mta-sts name points elsewhere, _mta-sts CNAME in place: none may be ordered")
	flag.IntVar(&o.conns, "conns", 16, "concurrent TLS clients")
	flag.StringVar(&o.challenge, "challenge", "tls-alpn-01", "tls-alpn-01 or http-01")
	flag.StringVar(&o.storage, "storage", "file", "file, postgres (MAILSTS_TEST_POSTGRES or the local test server) or redis (127.0.0.1:6379)")
	flag.IntVar(&o.throttle, "throttle", 1000, "certmagic's per-account order limit per 10 s (its default is 10)")
	flag.BoolVar(&o.showLog, "log", false, "print the end of the Manager's log (warnings and errors)")
	flag.DurationVar(&o.timeout, "timeout", 20*time.Minute, "give up after this long")
	flag.Parse()
	if o.challenge != "tls-alpn-01" && o.challenge != "http-01" {
		return fmt.Errorf("-challenge: tls-alpn-01 or http-01")
	}
	// Pebble's knobs, read when it starts: no random sleep before each
	// validation, no rejected nonces. Validation itself stays real.
	os.Setenv("PEBBLE_VA_NOSLEEP", "1")
	os.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()

	sc := &testnet.Scenario{Domains: []testnet.Domain{{Name: "provider.bench.test", Records: []string{
		providerHost + ". 300 IN A 127.0.0.1",
		providerSTS + `. 300 IN TXT "v=STSv1; id=1"`,
	}}}}
	var good, bad []string
	for i := range o.delegated {
		d := fmt.Sprintf("d%05d.bench.test", i)
		sc.Domains = append(sc.Domains, testnet.Domain{Name: d, Records: []string{
			"mta-sts." + d + ". 300 IN CNAME " + providerHost + ".",
			"_mta-sts." + d + ". 300 IN CNAME " + providerSTS + ".",
		}})
		good = append(good, "mta-sts."+d)
	}
	for i := range o.half {
		d := fmt.Sprintf("h%05d.bench.test", i)
		sc.Domains = append(sc.Domains, testnet.Domain{Name: d, Records: []string{
			"mta-sts." + d + ". 300 IN CNAME " + providerHost + ".",
		}})
		bad = append(bad, "mta-sts."+d)
	}
	for i := range o.foreign {
		d := fmt.Sprintf("f%05d.bench.test", i)
		sc.Domains = append(sc.Domains, testnet.Domain{Name: d, Records: []string{
			"mta-sts." + d + ". 300 IN A 127.0.0.9",
			"_mta-sts." + d + ". 300 IN CNAME " + providerSTS + ".",
		}})
		bad = append(bad, "mta-sts."+d)
	}
	n, err := testnet.Start(ctx, sc, testnet.Options{})
	if err != nil {
		return err
	}
	defer n.Close()

	// The policy host's listeners are made here and inherited by the
	// child, so that pebble knows their ports before the child starts.
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	tlsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	ca := certstest.Start(certstest.Options{DNSAddr: n.DNSAddr(),
		HTTPPort: httpLn.Addr().(*net.TCPAddr).Port, TLSPort: tlsLn.Addr().(*net.TCPAddr).Port})
	defer ca.Close()
	tlsAddr := tlsLn.Addr().String()

	dir, err := os.MkdirTemp("", "mailsts-bench-certs-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	rootFile := filepath.Join(dir, "acme-api-root.pem")
	apiRoot := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.APICert().Raw})
	if err := os.WriteFile(rootFile, apiRoot, 0o600); err != nil {
		return err
	}
	hf, _ := httpLn.(*net.TCPListener).File()
	tf, _ := tlsLn.(*net.TCPListener).File()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, self, "-child", "-ca", ca.URL, "-ca-root", rootFile, "-dns", n.DNSAddr(),
		"-dir", filepath.Join(dir, "storage"), "-storage", o.storage, "-challenge", o.challenge,
		"-throttle", fmt.Sprint(o.throttle),
		"-http-port", fmt.Sprint(httpLn.Addr().(*net.TCPAddr).Port), "-tls-port", fmt.Sprint(tlsLn.Addr().(*net.TCPAddr).Port))
	cmd.ExtraFiles = []*os.File{hf, tf}
	logs := tailbuf.New(64 << 10)
	cmd.Stderr = logs
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		return err
	}
	hf.Close()
	tf.Close()
	httpLn.Close()
	tlsLn.Close()
	defer func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}()
	out := bufio.NewScanner(stdout)
	stats := func() (childStats, error) {
		var s childStats
		if _, err := io.WriteString(stdin, "stats\n"); err != nil {
			return s, err
		}
		if !out.Scan() {
			return s, fmt.Errorf("child exited:\n%s", logs)
		}
		return s, json.Unmarshal(out.Bytes(), &s)
	}
	if !out.Scan() || out.Text() != "ready" {
		return fmt.Errorf("child did not start:\n%s", logs)
	}
	base, err := stats()
	if err != nil {
		return err
	}

	names := append(slices.Clone(good), bad...)
	rand.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	isGood := map[string]bool{}
	for _, g := range good {
		isGood[g] = true
	}
	fmt.Printf("bench/certs: %d delegated, %d half-delegated, %d pointing elsewhere; %s; %s storage; %d clients; certmagic throttle %d orders/10s\n",
		len(good), o.half, o.foreign, o.challenge, o.storage, o.conns, o.throttle)
	cold := drive(ctx, tlsAddr, ca.CertRoots, names, o.conns)
	coldStats, err := stats()
	if err != nil {
		return err
	}
	warm := drive(ctx, tlsAddr, ca.CertRoots, good, o.conns)
	warmStats, err := stats()
	if err != nil {
		return err
	}

	// The proof: every delegated name ordered exactly once, no other name
	// ever.
	var wrong []string
	for _, g := range good {
		if c := ca.OrderCount(g); c != 1 {
			wrong = append(wrong, fmt.Sprintf("%s ordered %d times", g, c))
		}
	}
	for _, b := range bad {
		if ca.Ordered(b) {
			wrong = append(wrong, b+" ordered although not delegated")
		}
	}
	var failedGood, servedBad int
	var goodLat []time.Duration
	for _, r := range cold {
		switch {
		case isGood[r.name] && r.err != nil:
			failedGood++
			if failedGood <= 5 {
				fmt.Printf("  failure: %s: %v\n", r.name, r.err)
			}
		case !isGood[r.name] && r.err == nil:
			servedBad++
		case isGood[r.name]:
			goodLat = append(goodLat, r.d)
		}
	}
	coldWall := wall(cold)
	fmt.Printf("\nissuance (first handshake of every name, in random order):\n")
	fmt.Printf("  wall time %v for %d names: %.1f certificates/s\n", coldWall.Round(time.Millisecond), len(names), float64(len(good)-failedGood)/coldWall.Seconds())
	fmt.Printf("  delegated: %d issued, %d failed; handshake latency p50 %v p90 %v max %v\n",
		len(good)-failedGood, failedGood, pct(goodLat, 50), pct(goodLat, 90), pct(goodLat, 100))
	fmt.Printf("  not delegated: %d refused, %d served (want 0)\n", len(bad)-servedBad, servedBad)
	fmt.Printf("  pebble orders: %d total (want %d); names ordered that were not delegated: %d (want 0)\n",
		len(ca.Orders()), len(good), countPrefix(wrong, " ordered although"))
	var warmFail int
	var warmLat []time.Duration
	for _, r := range warm {
		if r.err != nil {
			warmFail++
		} else {
			warmLat = append(warmLat, r.d)
		}
	}
	ww := wall(warm)
	fmt.Printf("\nserving (second handshake of every delegated name, from memory):\n")
	fmt.Printf("  %d handshakes in %v: %.0f/s, %d failed; p50 %v\n", len(warm), ww.Round(time.Millisecond), float64(len(warm))/ww.Seconds(), warmFail, pct(warmLat, 50))
	fmt.Printf("\nManager process (child) memory, after GC:\n")
	fmt.Printf("  heap in use: %.1f MiB before, %.1f MiB after issuance (%.1f KiB per certificate), %.1f MiB after serving\n",
		mib(base.HeapInuse), mib(coldStats.HeapInuse), float64(coldStats.HeapInuse-base.HeapInuse)/1024/float64(max(1, len(good)-failedGood)), mib(warmStats.HeapInuse))
	fmt.Printf("  max RSS %.1f MiB; CPU %.2f s user + %.2f s system; %d goroutines at the end\n",
		float64(warmStats.MaxRSSKiB)/1024, warmStats.UserSec, warmStats.SysSec, warmStats.Goroutines)
	if o.showLog {
		fmt.Printf("\nManager log (end):\n%s\n", logs)
	}
	if len(wrong) > 0 || failedGood > 0 || servedBad > 0 || warmFail > 0 {
		for i, w := range wrong {
			if i == 10 {
				fmt.Printf("  … %d more\n", len(wrong)-10)
				break
			}
			fmt.Println("  wrong:", w)
		}
		return errors.New("FAILED: see above")
	}
	fmt.Println("\nOK: every delegated name got exactly one order and a certificate; no other name was ordered")
	return nil
}

func countPrefix(ss []string, sub string) int {
	n := 0
	for _, s := range ss {
		if strings.Contains(s, sub) {
			n++
		}
	}
	return n
}

type result struct {
	name       string
	start, end time.Time
	d          time.Duration
	err        error
}

// drive handshakes once per name with conns clients and verifies each
// served certificate against the CA's root.
func drive(ctx context.Context, addr string, roots *x509.CertPool, names []string, conns int) []result {
	res := make([]result, len(names))
	next := make(chan int)
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				r := result{name: names[i], start: time.Now()}
				hctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
				d := &tls.Dialer{Config: &tls.Config{ServerName: names[i], RootCAs: roots}}
				c, err := d.DialContext(hctx, "tcp", addr)
				cancel()
				if err == nil {
					c.Close()
				}
				r.end = time.Now()
				r.d, r.err = r.end.Sub(r.start), err
				res[i] = r
			}
		}()
	}
	for i := range names {
		select {
		case next <- i:
		case <-ctx.Done():
		}
	}
	close(next)
	wg.Wait()
	return res
}

func wall(rs []result) time.Duration {
	if len(rs) == 0 {
		return 0
	}
	lo, hi := rs[0].start, rs[0].end
	for _, r := range rs {
		if r.start.Before(lo) {
			lo = r.start
		}
		if r.end.After(hi) {
			hi = r.end
		}
	}
	return hi.Sub(lo)
}

func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s) - 1) * p / 100
	return s[i].Round(time.Millisecond)
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// childStats is the child's answer to "stats".
type childStats struct {
	HeapInuse  uint64  `json:"heap_inuse"`
	MaxRSSKiB  int64   `json:"max_rss_kib"`
	UserSec    float64 `json:"user_sec"`
	SysSec     float64 `json:"sys_sec"`
	Goroutines int     `json:"goroutines"`
}

func readStats() childStats {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return childStats{
		HeapInuse:  ms.HeapInuse,
		MaxRSSKiB:  ru.Maxrss,
		UserSec:    time.Duration(ru.Utime.Nano()).Seconds(),
		SysSec:     time.Duration(ru.Stime.Nano()).Seconds(),
		Goroutines: runtime.NumGoroutine(),
	}
}
