// Command sender benchmarks TLS report collection: libtlsrpt datagrams
// per second that `mailsts tlsrpt collect` takes from its Unix socket into
// the results store with nothing lost, against a minimal Go datagram
// reader (the anchor: read, check the JSON, count) fed the same datagrams
// in the same run. See README.md.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailsts/mailsts/internal/outgoing/libtlsrpt/libtlsrpttest"
)

func main() {
	var c config
	flag.IntVar(&c.n, "n", 200000, "datagrams per run")
	flag.IntVar(&c.senders, "senders", 2, "sending goroutines (blocking sendto, so the socket drops nothing)")
	flag.IntVar(&c.domains, "domains", 1000, "distinct recipient domains")
	flag.IntVar(&c.rounds, "rounds", 3, "rounds; the receivers take turns within each, the peer first in even rounds")
	flag.IntVar(&c.qlen, "qlen", 0, "run the receivers in their own network namespace with this net.unix.max_dgram_qlen (0: the host's; needs root and unshare)")
	flag.DurationVar(&c.timeout, "timeout", 5*time.Minute, "give up a run after this long")
	flag.StringVar(&c.bin, "mailsts", "", "mailsts binary (default: go build ./cmd/mailsts into a temporary directory)")
	flag.StringVar(&c.collectd, "collectd", "", "sys4 tlsrpt-reporter source: a checkout, or a git directory whose HEAD is archived into the run's temporary directory (the peer; runs with python3)")
	flag.BoolVar(&c.anchor, "anchor", true, "also measure the minimal Go reader")
	ladder := flag.String("ladder", "", "instead: offered `rates` (datagrams/s, comma-separated, ascending), non-blocking sendto as libtlsrpt does; each receiver climbs until it loses datagrams")
	step := flag.Duration("step", 3*time.Second, "with -ladder: how long each rate is offered")
	logLines := flag.Int("postfix-log", 0, "instead: follow a generated Postfix 3.7 log of this many lines (postfixlog.Follower into a SQLite store)")
	build := flag.Int("build-domains", 0, "instead: time one daily build of this many domains' reports (in process, SQLite)")
	flag.Parse()
	var err error
	switch {
	case *build > 0:
		err = runBuild(*build)
	case *logLines > 0:
		err = runLog(*logLines, c.domains, c.rounds, os.Stdout)
	case *ladder != "":
		var rates []int
		for _, f := range strings.Split(*ladder, ",") {
			r, perr := strconv.Atoi(strings.TrimSpace(f))
			if perr != nil || r <= 0 {
				fmt.Fprintf(os.Stderr, "bench/sender: -ladder: bad rate %q\n", f)
				os.Exit(64)
			}
			rates = append(rates, r)
		}
		err = runLadder(c, rates, *step, os.Stdout)
	default:
		err = run(c, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/sender:", err)
		os.Exit(1)
	}
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

// startMailsts runs `mailsts tlsrpt collect --no-build` on a fresh SQLite
// store in dir.
func startMailsts(bin, dir, tag string, qlen int) (*daemon, error) {
	sock := filepath.Join(dir, tag+".sock")
	db := filepath.Join(dir, tag+".db")
	logf := filepath.Join(dir, tag+".log")
	argv := wrapQlen(qlen, []string{bin, "tlsrpt", "collect", "--no-build", "--no-deliver", "--db", "sqlite:" + db,
		"--socket", sock, "--stats-interval", "0"})
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "STATE_DIRECTORY="+dir)
	f, err := os.Create(logf)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	d := &daemon{name: "mailsts tlsrpt collect", sock: sock, cmd: cmd, log: logf,
		query: `SELECT COALESCE(SUM(successful + failed), 0) FROM outgoing_policies`}
	d.watch()
	if err := waitSocket(d.exited, sock); err != nil {
		d.kill()
		return nil, fmt.Errorf("mailsts %s%s", err, d.logTail())
	}
	if d.db, err = roDB(db); err != nil {
		d.kill()
		return nil, err
	}
	return d, nil
}

// counters returns mailsts's last counter line ("stopped …"), if any.
func (d *daemon) counters() string {
	b, _ := os.ReadFile(d.log)
	return counterRE.FindString(string(b))
}

var counterRE = regexp.MustCompile(`tlsrpt collect: stopped[^\n]*`)

// waitStored waits until the daemon has committed want, or until its
// count has not moved for stall; it returns the count and when it last
// moved.
func waitStored(d *daemon, want int64, stall, timeout time.Duration) (int64, time.Time) {
	deadline := time.Now().Add(timeout)
	var got int64
	last := time.Now()
	for time.Now().Before(deadline) {
		if v := d.stored(); v != got {
			got, last = v, time.Now()
		}
		if got >= want || time.Since(last) > stall {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return got, last
}

// flatOut sends every datagram with blocking sendto (the kernel holds a
// sender while the reader's queue is full, so nothing is dropped on the
// way) and times the daemon from the first datagram to the last one
// committed.
func flatOut(d *daemon, dgrams [][]byte, senders int, timeout time.Duration) (result, error) {
	start := time.Now()
	if err := send(d.sock, dgrams, senders); err != nil {
		d.kill()
		return result{}, err
	}
	sent := time.Since(start)
	got, last := waitStored(d, int64(len(dgrams)), 3*time.Second, timeout)
	cpu, final, err := d.stop()
	if err != nil {
		return result{}, err
	}
	return result{name: d.name, sent: int64(len(dgrams)), received: got, final: final, elapsed: last.Sub(start), sendTime: sent, cpu: cpu, note: d.counters()}, nil
}

type result struct {
	name     string
	sent     int64
	received int64 // committed when the clock stopped
	final    int64 // committed after the daemon stopped
	elapsed  time.Duration
	// sendTime is when the last datagram was queued: with blocking
	// sends, the reader has then taken all but a queue's worth.
	sendTime time.Duration
	cpu      time.Duration // the receiver's CPU (for a daemon: its process)
	note     string
}

func (r result) rate() float64 { return float64(r.received) / r.elapsed.Seconds() }

func (r result) readRate() float64 {
	if r.sendTime <= 0 {
		return 0
	}
	return float64(r.sent) / r.sendTime.Seconds()
}

func (r result) cpuPer() float64 {
	if r.cpu <= 0 || r.final <= 0 {
		return 0
	}
	return float64(r.cpu.Microseconds()) / float64(r.final)
}

type config struct {
	n, senders, domains, rounds, qlen int
	timeout                           time.Duration
	bin, collectd                     string
	anchor                            bool
}

func prepare(c config, dir string) (bin string, p *peer, err error) {
	bin = c.bin
	if bin == "" {
		bin = filepath.Join(dir, "mailsts")
		build := exec.Command("go", "build", "-o", bin, "./cmd/mailsts")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return "", nil, fmt.Errorf("go build (run from the module root): %w", err)
		}
	}
	if c.collectd != "" {
		if p, err = preparePeer(c.collectd, dir); err != nil {
			return "", nil, fmt.Errorf("tlsrpt-collectd: %w", err)
		}
	}
	return bin, p, nil
}

// run measures each receiver flat out, in interleaved rounds.
func run(c config, out io.Writer) error {
	dir, err := os.MkdirTemp("", "bsend")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin, p, err := prepare(c, dir)
	if err != nil {
		return err
	}
	dgrams := libtlsrpttest.Mix(c.n, c.domains)
	byName := map[string][]result{}
	var names []string
	add := func(r result) {
		if _, ok := byName[r.name]; !ok {
			names = append(names, r.name)
		}
		byName[r.name] = append(byName[r.name], r)
	}
	fmt.Fprintf(out, "%d datagrams per run, %d senders (blocking sendto), %d domains, %d rounds, net.unix.max_dgram_qlen %s, GOMAXPROCS %d\n",
		c.n, c.senders, c.domains, c.rounds, qlenString(c.qlen), runtime.GOMAXPROCS(0))
	if p != nil {
		fmt.Fprintf(out, "peer: tlsrpt-collectd %s %s(%s), SQLite, --sockettimeout 1, max_uncommited_datagrams 1000\n", p.version, commitNote(p.commit), p.root)
	}
	fmt.Fprintf(out, "%-5s %-30s %9s %9s %8s %12s %10s %13s  %s\n", "round", "receiver", "sent", "stored", "seconds", "committed/s", "read/s", "CPU µs/dgram", "notes")
	for round := 1; round <= c.rounds; round++ {
		type step func() (result, error)
		var steps []step
		if c.anchor {
			steps = append(steps, func() (result, error) {
				return runMinimal(filepath.Join(dir, "min.sock"), dgrams, c.senders, c.timeout)
			})
		}
		steps = append(steps, func() (result, error) {
			d, err := startMailsts(bin, dir, fmt.Sprintf("m%d", round), c.qlen)
			if err != nil {
				return result{}, err
			}
			return flatOut(d, dgrams, c.senders, c.timeout)
		})
		if p != nil {
			peerStep := func() (result, error) {
				d, err := p.start(dir, fmt.Sprintf("p%d", round), c.qlen)
				if err != nil {
					return result{}, err
				}
				return flatOut(d, dgrams, c.senders, c.timeout)
			}
			// Interleave: the peer goes first in even rounds.
			if round%2 == 0 {
				steps = append([]step{peerStep}, steps...)
			} else {
				steps = append(steps, peerStep)
			}
		}
		for _, s := range steps {
			r, err := s()
			if err != nil {
				return err
			}
			add(r)
			cpu := "-"
			if v := r.cpuPer(); v > 0 {
				cpu = fmt.Sprintf("%.1f", v)
			}
			fmt.Fprintf(out, "%-5d %-30s %9d %9d %8.2f %12.0f %10.0f %13s  %s\n", round, r.name, r.sent, r.final, r.elapsed.Seconds(), r.rate(), r.readRate(), cpu, r.note)
		}
	}
	fmt.Fprintf(out, "\nsummary over %d rounds (median, min–max):\n", c.rounds)
	for _, name := range names {
		rs := byName[name]
		var rates, reads, cpus []float64
		lost := int64(0)
		for _, r := range rs {
			rates = append(rates, r.rate())
			reads = append(reads, r.readRate())
			cpus = append(cpus, r.cpuPer())
			lost += r.sent - r.final
		}
		fmt.Fprintf(out, "  %-30s %s committed/s, %s read/s, %s µs CPU per datagram, lost %d of %d\n", name, spread(rates, "%.0f"), spread(reads, "%.0f"), spread(cpus, "%.1f"), lost, int64(len(rs))*int64(c.n))
	}
	if p != nil {
		m, q := byName["mailsts tlsrpt collect"], byName["tlsrpt-collectd "+p.version]
		var ratios, readRatios, cpuRatios []float64
		for i := range min(len(m), len(q)) {
			ratios = append(ratios, m[i].rate()/q[i].rate())
			readRatios = append(readRatios, m[i].readRate()/q[i].readRate())
			if q[i].cpuPer() > 0 {
				cpuRatios = append(cpuRatios, m[i].cpuPer()/q[i].cpuPer())
			}
		}
		fmt.Fprintf(out, "  mailsts ÷ tlsrpt-collectd, same round: %s× the committed/s (goal ≥ 10), %s× the read/s, %s× the CPU per datagram\n",
			spread(ratios, "%.1f"), spread(readRatios, "%.1f"), spread(cpuRatios, "%.2f"))
	}
	return nil
}

func qlenString(q int) string {
	if q > 0 {
		return fmt.Sprintf("%d (receivers in their own network namespace)", q)
	}
	b, err := os.ReadFile("/proc/sys/net/unix/max_dgram_qlen")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b)) + " (this host's)"
}

func commitNote(c string) string {
	if c == "" {
		return ""
	}
	return "at " + c[:min(12, len(c))] + " "
}

// spread formats the median and range of vs.
func spread(vs []float64, f string) string {
	if len(vs) == 0 {
		return "-"
	}
	s := append([]float64(nil), vs...)
	sort.Float64s(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	if len(s) == 1 {
		return fmt.Sprintf(f, med)
	}
	return fmt.Sprintf(f+" ("+f+"–"+f+")", med, s[0], s[len(s)-1])
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
	return result{name: "minimal Go reader", sent: int64(len(dgrams)), received: count.Load(), final: count.Load(), elapsed: el, sendTime: el,
		note: fmt.Sprintf("in the bench process (CPU shared with the senders); invalid JSON %d", bad.Load())}, nil
}
