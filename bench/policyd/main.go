// Command policyd is the comparative benchmark of `mailsts policyd` (issue
// #3, "Performance"): in one run, on one fake Internet (internal/testnet,
// loopback only), it measures
//
//   - minimal: a netstring server answering from a Go map, the ceiling;
//   - peer: Debian's postfix-mta-sts-resolver (mta-sts-daemon), the
//     daemon mailsts replaces;
//   - mailsts: `mailsts policyd`, built from this checkout;
//   - tlspol: postfix-tlspol, a second peer, built from a source tree or git
//     directory given with -tlspol (its code never enters this repository);
//   - floor: the least work a cold lookup needs (TXT and A queries, one
//     TLS 1.3 handshake, one GET; cold phases only), the CPU floor;
//
// and prints each figure with the ratios the issue sets as goals. Timings on
// a shared machine are noisy: read the ratios, measured in the same run,
// not the absolute numbers. See bench/README.md for results and method.
//
// Usage (as root: the peer uses the system resolver, so the run happens in
// a network namespace whose resolv.conf names the testnet DNS server on
// 127.0.0.1:53, with policy hosts on 127.0.0.1:443):
//
//	go run ./bench/policyd [-duration 5s] [-conns 16] [-hot 1000] [-cold 1000] [-mem 100000] [-rounds 3] [-daemons minimal,peer,mailsts,floor]
//	go run ./bench/policyd -latency 10ms [-daemons peer,mailsts,floor]
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// config holds the flags.
type config struct {
	duration     time.Duration
	conns        int
	fillConns    int
	hot          int
	cold         int
	mem          int
	fillTimeout  time.Duration
	daemons      []string
	mailsts      string
	peer         string
	tlspol       string // postfix-tlspol: source tree or git directory (built at bench time), or a binary
	inside       string
	minimal      string
	keep         bool
	rounds       int
	mailstsCache string
	profile      string
	profileTime  time.Duration
	callgrind    string // directory: run mailsts and floor under callgrind, count cold-round instructions
	validating   bool   // the testnet answers the root with the AD bit, as a validating resolver

	// floor: the minimal cold-lookup client served as a socketmap.
	floor               string
	floorDNS, floorCA   string
	floorPort           string
	openRate            float64 // open-loop queries per second after each hit round; 0: none
	openDuration        time.Duration
	latency             time.Duration // one-way delay; > 0 selects the latency mode
	latSingle, latBatch int
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("bench/policyd: ")
	var cfg config
	var daemons string
	fs := flag.NewFlagSet("policyd", flag.ExitOnError)
	fs.DurationVar(&cfg.duration, "duration", 5*time.Second, "length of the cache-hit load phase")
	fs.IntVar(&cfg.conns, "conns", 16, "persistent socketmap connections for the hit and cold phases")
	fs.IntVar(&cfg.fillConns, "fill-conns", 64, "connections used to fill the cache for the memory figure")
	fs.IntVar(&cfg.hot, "hot", 1000, "domains warmed into the cache and queried in the hit phase")
	fs.IntVar(&cfg.cold, "cold", 1000, "never-seen domains looked up in the cold phase")
	fs.IntVar(&cfg.mem, "mem", 100000, "domains cached for the memory and start-up figures")
	fs.DurationVar(&cfg.fillTimeout, "fill-timeout", 15*time.Minute, "bound on filling the cache with -mem domains (per daemon)")
	fs.StringVar(&daemons, "daemons", "minimal,peer,mailsts,floor", "daemons to measure, comma-separated (floor: cold lookups only)")
	fs.StringVar(&cfg.mailsts, "mailsts", "", "mailsts binary (default: go build ./cmd/mailsts)")
	fs.StringVar(&cfg.peer, "peer", "/usr/bin/mta-sts-daemon", "postfix-mta-sts-resolver's mta-sts-daemon")
	fs.StringVar(&cfg.tlspol, "tlspol", "", "postfix-tlspol for the tlspol daemon: a source tree or git directory with vendored modules (built into a temporary directory), or a binary")
	fs.StringVar(&cfg.inside, "inside", "", "internal: the network namespace this process runs in")
	fs.StringVar(&cfg.minimal, "serve-minimal", "", "internal: serve the minimal netstring server on this address")
	fs.IntVar(&cfg.rounds, "rounds", 3, "rounds of the hit and cold phases, daemons interleaved; medians are reported")
	fs.StringVar(&cfg.mailstsCache, "mailsts-cache", "sqlite", "mailsts policyd --cache: sqlite (its default; the restart figure needs it) or memory")
	fs.StringVar(&cfg.profile, "profile", "", "write CPU profiles of mailsts policyd (its first cold and first hit round) to this `directory`, for go tool pprof")
	fs.StringVar(&cfg.callgrind, "callgrind", "", "run mailsts policyd and the floor client under valgrind's callgrind, dumps in this `directory`, and report instructions per cold domain (repeatable on a loaded machine; some 50 times slower: use with -cold 200 -mem 0)")
	fs.DurationVar(&cfg.profileTime, "profile-time", 3*time.Second, "length of each -profile CPU profile, taken from the start of the round")
	fs.Float64Var(&cfg.openRate, "open-rate", 30000, "open-loop load after each cache-hit round: this many queries/s over -conns connections, latency from each query's scheduled time (0: none)")
	fs.DurationVar(&cfg.openDuration, "open-duration", 5*time.Second, "length of each open-loop round")
	fs.DurationVar(&cfg.latency, "latency", 0, "latency mode: put a delay proxy adding this one-way `delay` (UDP and TCP) in front of the testnet's DNS and HTTPS, and measure only cold lookups (-latency-single one at a time, -latency-batch over -conns connections); e.g. 10ms for a 20 ms round trip")
	fs.IntVar(&cfg.latSingle, "latency-single", 21, "latency mode: never-seen domains looked up one at a time per round, for the single-lookup p50")
	fs.IntVar(&cfg.latBatch, "latency-batch", 200, "latency mode: never-seen domains looked up over -conns connections per round, for the wall time")
	fs.StringVar(&cfg.floor, "serve-floor", "", "internal: serve the floor client as a socketmap on this address")
	fs.StringVar(&cfg.floorDNS, "floor-dns", "", "internal: the floor client's DNS server")
	fs.StringVar(&cfg.floorPort, "floor-https-port", "443", "internal: the floor client's HTTPS port")
	fs.StringVar(&cfg.floorCA, "floor-ca", "", "internal: the floor client's CA file")
	fs.BoolVar(&cfg.validating, "validating", false, "the testnet's DNS stands for a resolver that validates DNSSEC (the root answered with the AD bit), so mailsts policyd looks up MX for DANE (its bench domains are unsigned either way)")
	fs.BoolVar(&cfg.keep, "keep-going", false, "report the other daemons when one fails instead of stopping")
	_ = fs.Parse(os.Args[1:])
	for d := range strings.SplitSeq(daemons, ",") {
		if d = strings.TrimSpace(d); d != "" {
			cfg.daemons = append(cfg.daemons, d)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch {
	case cfg.minimal != "":
		err = serveMinimal(cfg.minimal, minimalAnswers(cfg.hot))
	case cfg.floor != "":
		var f *floorClient
		if f, err = newFloorClient(cfg.floorDNS, cfg.floorPort, cfg.floorCA); err == nil {
			endProfile := func() error { return nil }
			if cfg.profile != "" {
				endProfile, err = profileFloor(cfg.profile)
			}
			if err == nil {
				// serveFloor returns on SIGTERM, when the benchmark stops it.
				err = errors.Join(serveFloor(cfg.floor, f), endProfile())
			}
		}
	case cfg.inside != "" && cfg.latency > 0:
		err = runLatency(ctx, cfg, os.Stdout)
	case cfg.inside != "":
		err = runInside(ctx, cfg, os.Stdout)
	default:
		err = runOutside(ctx, cfg)
	}
	if err != nil {
		log.Print(err)
		stop()
		os.Exit(1)
	}
}

// runOutside builds mailsts, creates the network namespace and runs this
// program again inside it.
func runOutside(ctx context.Context, cfg config) error {
	if os.Geteuid() != 0 {
		return errors.New("run as root: the benchmark needs a network namespace (ip netns) so that mta-sts-daemon's system resolver reaches the testnet DNS on 127.0.0.1:53")
	}
	ip, err := exec.LookPath("ip")
	if err != nil {
		return fmt.Errorf("iproute2 (ip) is needed for the network namespace: %w", err)
	}
	tmp, err := os.MkdirTemp("", "mailsts-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if cfg.mailsts == "" && contains(cfg.daemons, "mailsts") {
		cfg.mailsts = filepath.Join(tmp, "mailsts")
		log.Printf("building ./cmd/mailsts")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", cfg.mailsts, "./cmd/mailsts")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build ./cmd/mailsts (run from the module root): %w", err)
		}
	}
	if cfg.mailsts != "" {
		if cfg.mailsts, err = filepath.Abs(cfg.mailsts); err != nil {
			return err
		}
	}
	if contains(cfg.daemons, "tlspol") {
		if cfg.tlspol, err = buildTLSPol(ctx, cfg.tlspol, tmp); err != nil {
			return err
		}
	}
	for _, dir := range []*string{&cfg.profile, &cfg.callgrind} {
		if *dir == "" {
			continue
		}
		if err := os.MkdirAll(*dir, 0o755); err != nil {
			return err
		}
		if *dir, err = filepath.Abs(*dir); err != nil {
			return err
		}
	}
	if cfg.callgrind != "" {
		for _, tool := range []string{"valgrind", "callgrind_control"} {
			if _, err := exec.LookPath(tool); err != nil {
				return fmt.Errorf("-callgrind needs %s (apt-get install valgrind): %w", tool, err)
			}
		}
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	ns := "mailsts-bench-" + hex.EncodeToString(b[:])
	etc := filepath.Join("/etc/netns", ns)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(etc)
	// ip netns exec bind-mounts this over /etc/resolv.conf inside.
	if err := os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte("nameserver 127.0.0.1\noptions timeout:2 attempts:2\n"), 0o644); err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, ip, "netns", "add", ns).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns add: %w: %s", err, out)
	}
	defer cleanNamespace(ip, ns)
	if out, err := exec.CommandContext(ctx, ip, "netns", "exec", ns, ip, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return fmt.Errorf("lo up: %w: %s", err, out)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	args := append([]string{"netns", "exec", ns, self}, os.Args[1:]...)
	args = append(args, "-inside", ns, "-mailsts", cfg.mailsts, "-tlspol", cfg.tlspol, "-profile", cfg.profile, "-callgrind", cfg.callgrind)
	cmd := exec.CommandContext(ctx, ip, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	return cmd.Run()
}

// cleanNamespace kills what is left in the namespace (only this run's
// processes can be there) and deletes it.
func cleanNamespace(ip, ns string) {
	for attempt := 0; attempt < 50; attempt++ {
		out, err := exec.Command(ip, "netns", "pids", ns).Output()
		pids := strings.Fields(string(out))
		if err != nil || len(pids) == 0 {
			break
		}
		for _, p := range pids {
			if pid, err := strconv.Atoi(p); err == nil && pid > 1 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(100 * time.Millisecond) // let the kernel reap them
	}
	if out, err := exec.Command(ip, "netns", "del", ns).CombinedOutput(); err != nil {
		log.Printf("ip netns del %s: %v: %s", ns, err, out)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
