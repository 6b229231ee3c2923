// Command publish benchmarks the MTA-STS policy host of `mailsts serve`
// against nginx (Debian's nginx-light) serving the same policy file with
// the same certificate, in one run on the same machine: requests per
// second over TLS with keep-alive and with a new connection (and a full
// TLS handshake) for each request, and the servers' CPU time per request.
// See README.md.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mailsts/mailsts/internal/publish"
	"github.com/mailsts/mailsts/internal/tailbuf"
	"github.com/mailsts/mailsts/internal/testca"
	"github.com/mailsts/mailsts/internal/testnet"
	"github.com/mailsts/mailsts/mtasts"
)

// The hosted domain of the benchmark.
const (
	domain = "bench.example"
	host   = "mta-sts." + domain
)

// Config of one run.
type Config struct {
	// Duration of each measured phase; Rounds phases per server and mode.
	Duration time.Duration
	Rounds   int
	// Conns is the number of concurrent client loops.
	Conns int
	// Mailsts is the mailsts binary; "" builds ./cmd/mailsts.
	Mailsts string
	// Nginx is the nginx binary.
	Nginx string
	// Modes are "keepalive" and/or "newconn".
	Modes []string
	// Log receives progress lines; nil discards.
	Log io.Writer
}

// Phase is one measured phase.
type Phase struct {
	Server, Mode string
	Requests     int64
	Errors       int64
	Elapsed      time.Duration
	// ServerCPU is the server processes' user+system CPU time.
	ServerCPU time.Duration
}

// RPS is requests per second.
func (p Phase) RPS() float64 { return float64(p.Requests) / p.Elapsed.Seconds() }

// CPUPerReq is the server CPU per request.
func (p Phase) CPUPerReq() time.Duration {
	if p.Requests == 0 {
		return 0
	}
	return p.ServerCPU / time.Duration(p.Requests)
}

// Results of a run: every phase, and the medians per server and mode.
type Results struct {
	Phases []Phase
	Body   []byte
}

// Median returns the phase of median requests per second for server and
// mode.
func (r *Results) Median(server, mode string) Phase {
	var ps []Phase
	for _, p := range r.Phases {
		if p.Server == server && p.Mode == mode {
			ps = append(ps, p)
		}
	}
	if len(ps) == 0 {
		return Phase{}
	}
	slices.SortFunc(ps, func(a, b Phase) int {
		switch {
		case a.RPS() < b.RPS():
			return -1
		case a.RPS() > b.RPS():
			return 1
		}
		return 0
	})
	return ps[len(ps)/2]
}

// server is one policy host under test.
type server struct {
	name string
	addr string
	pids func() []int
	stop func()
}

func main() {
	c := Config{Log: os.Stderr}
	flag.DurationVar(&c.Duration, "duration", 5*time.Second, "length of each measured phase")
	flag.IntVar(&c.Rounds, "rounds", 3, "phases per server and mode (the median is reported)")
	flag.IntVar(&c.Conns, "conns", 16, "concurrent client connections")
	flag.StringVar(&c.Mailsts, "mailsts", "", "mailsts binary (default: go build ./cmd/mailsts)")
	flag.StringVar(&c.Nginx, "nginx", "nginx", "nginx binary (apt install nginx-light)")
	modes := flag.String("modes", "keepalive,newconn", "what to measure: keepalive, newconn")
	flag.Parse()
	c.Modes = strings.Split(*modes, ",")
	res, err := Run(context.Background(), c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/publish:", err)
		os.Exit(1)
	}
	Print(os.Stdout, c, res)
}

// Print writes the medians and the ratios.
func Print(w io.Writer, c Config, r *Results) {
	fmt.Fprintf(w, "policy body %d bytes, %d connections, %d×%s per server and mode, GOMAXPROCS %d, %d CPUs\n\n",
		len(r.Body), c.Conns, c.Rounds, c.Duration, runtime.GOMAXPROCS(0), runtime.NumCPU())
	fmt.Fprintf(w, "%-10s %-8s %12s %14s %8s\n", "mode", "server", "requests/s", "CPU/request", "errors")
	for _, m := range c.Modes {
		for _, s := range []string{"nginx", "mailsts"} {
			p := r.Median(s, m)
			fmt.Fprintf(w, "%-10s %-8s %12.0f %14s %8d\n", m, s, p.RPS(), p.CPUPerReq().Round(100*time.Nanosecond), p.Errors)
		}
		n, ms := r.Median("nginx", m), r.Median("mailsts", m)
		if n.RPS() > 0 && ms.CPUPerReq() > 0 {
			fmt.Fprintf(w, "%-10s mailsts/nginx: %.2f× the requests/s, %.2f× the CPU per request\n", m, ms.RPS()/n.RPS(),
				float64(ms.CPUPerReq())/float64(n.CPUPerReq()))
		}
	}
}

// Run sets up both servers with the same certificate and policy, then
// measures them in alternation.
func Run(ctx context.Context, c Config) (*Results, error) {
	if c.Log == nil {
		c.Log = io.Discard
	}
	if c.Rounds < 1 {
		c.Rounds = 1
	}
	dir, err := os.MkdirTemp("", "mailsts-bench-publish-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)

	// DNS for serve's validation of the hosted domain's MX.
	n, err := testnet.Start(ctx, &testnet.Scenario{Domains: []testnet.Domain{{Name: domain,
		MX: []testnet.MXHost{{Name: "mx1." + domain, Pref: 10}}}}}, testnet.Options{})
	if err != nil {
		return nil, err
	}
	defer n.Close()
	ca, err := testca.New("mailsts bench CA")
	if err != nil {
		return nil, err
	}
	leaf, err := ca.Issue(testca.Leaf{DNSNames: []string{host}})
	if err != nil {
		return nil, err
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := writeKeyPair(leaf, certFile, keyFile); err != nil {
		return nil, err
	}
	sv, err := publish.Render(domain, mtasts.ModeEnforce, []string{"mx1." + domain}, 604800)
	if err != nil {
		return nil, err
	}
	res := &Results{Body: sv.Text}

	ms, err := startMailsts(ctx, c, dir, n.DNSAddr(), certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("mailsts: %w", err)
	}
	defer ms.stop()
	ng, err := startNginx(c, dir, sv.Text, certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("nginx: %w", err)
	}
	defer ng.stop()

	pool := ca.Pool()
	for _, s := range []*server{ng, ms} {
		if err := verify(ctx, s, pool, sv.Text); err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
	}
	for round := 0; round < c.Rounds; round++ {
		for _, mode := range c.Modes {
			for _, s := range []*server{ng, ms} {
				p, err := measure(ctx, c, s, mode, pool, sv.Text)
				if err != nil {
					return nil, err
				}
				fmt.Fprintf(c.Log, "round %d %-9s %-7s %8.0f req/s %s CPU/req %d errors\n", round+1, mode, s.name, p.RPS(), p.CPUPerReq().Round(100*time.Nanosecond), p.Errors)
				res.Phases = append(res.Phases, p)
			}
		}
	}
	return res, nil
}

func writeKeyPair(c *tls.Certificate, certFile, keyFile string) error {
	var cb bytes.Buffer
	for _, der := range c.Certificate[:1] {
		pem.Encode(&cb, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	k, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		return err
	}
	if err := os.WriteFile(certFile, cb.Bytes(), 0o600); err != nil {
		return err
	}
	return os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: k}), 0o600)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// startMailsts runs `mailsts serve` hosting the domain with the
// certificate files.
func startMailsts(ctx context.Context, c Config, dir, dnsAddr, certFile, keyFile string) (*server, error) {
	bin := c.Mailsts
	if bin == "" {
		bin = filepath.Join(dir, "mailsts")
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/mailsts")
		build.Dir = moduleRoot()
		if out, err := build.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build: %v: %s", err, out)
		}
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`dns: [%q]
publish:
  listen: 127.0.0.1:%d
  tls_cert: %q
  tls_key: %q
  state_file: %q
  check_interval: -1s
  domains:
    - {domain: %s, mode: enforce, mx: [mx1.%s], max_age: 604800}
`, dnsAddr, port, certFile, keyFile, filepath.Join(dir, "state.json"), domain, domain)
	cfgFile := filepath.Join(dir, "mailsts.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve", "--config", cfgFile, "--db", "sqlite:"+filepath.Join(dir, "r.db"),
		"--listen", "127.0.0.1:0", "--api=false", "--log-level", "warn")
	cmd.Env = append(os.Environ(), "GOMAXPROCS="+strconv.Itoa(runtime.NumCPU()))
	out := tailbuf.New(8 << 10)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{name: "mailsts", addr: fmt.Sprintf("127.0.0.1:%d", port), pids: func() []int { return []int{cmd.Process.Pid} },
		stop: func() { cmd.Process.Kill(); cmd.Wait() }}
	if err := waitListening(s.addr, 30*time.Second); err != nil {
		s.stop()
		return nil, fmt.Errorf("%w: %s", err, out.String())
	}
	return s, nil
}

// startNginx runs nginx in the foreground with one worker per CPU,
// serving the policy file with the same certificate.
func startNginx(c Config, dir string, body []byte, certFile, keyFile string) (*server, error) {
	bin, err := exec.LookPath(c.Nginx)
	if err != nil {
		return nil, fmt.Errorf("%w (apt install nginx-light)", err)
	}
	root := filepath.Join(dir, "www")
	if err := os.MkdirAll(filepath.Join(root, ".well-known"), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(root, ".well-known", "mta-sts.txt"), body, 0o644); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;"
	}
	conf := fmt.Sprintf(`%s
worker_processes %d;
daemon off;
pid %s/nginx.pid;
error_log %s/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %s/tmp;
  proxy_temp_path %s/tmp;
  fastcgi_temp_path %s/tmp;
  uwsgi_temp_path %s/tmp;
  scgi_temp_path %s/tmp;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  ssl_session_cache off;
  ssl_session_tickets off;
  server {
    listen 127.0.0.1:%d ssl reuseport;
    server_name %s;
    ssl_certificate %s;
    ssl_certificate_key %s;
    ssl_protocols TLSv1.2 TLSv1.3;
    root %s;
    location = /.well-known/mta-sts.txt { default_type text/plain; }
    location / { return 404; }
  }
}
`, user, runtime.NumCPU(), dir, dir, dir, dir, dir, dir, dir, port, host, certFile, keyFile, root)
	cfgFile := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(cfgFile, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	os.MkdirAll(filepath.Join(dir, "tmp"), 0o755)
	cmd := exec.Command(bin, "-c", cfgFile, "-p", dir)
	out := tailbuf.New(8 << 10)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	master := cmd.Process.Pid
	s := &server{name: "nginx", addr: fmt.Sprintf("127.0.0.1:%d", port),
		pids: func() []int { return append(children(master), master) },
		// SIGTERM: the master stops its workers, which hold the output
		// pipe that Wait waits for.
		stop: func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }}
	if err := waitListening(s.addr, 30*time.Second); err != nil {
		s.stop()
		b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		return nil, fmt.Errorf("%w: %s %s", err, out.String(), b)
	}
	return s, nil
}

func moduleRoot() string {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "."
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

func waitListening(addr string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("nothing listens on %s after %s", addr, limit)
}

// client returns an HTTP client dialling s for the policy host's name.
func client(s *server, pool *x509.CertPool, keepAlive bool, conns int) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, s.addr)
		},
		TLSClientConfig:     &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12},
		DisableKeepAlives:   !keepAlive,
		MaxIdleConnsPerHost: conns,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(ctx context.Context, hc *http.Client, want []byte) error {
	req, err := http.NewRequestWithContext(ctx, "GET", "https://"+host+publish.WellKnownPath, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 || !bytes.Equal(b, want) || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		return fmt.Errorf("status %d, type %q, body %q", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	return nil
}

// verify fetches the policy once as the benchmark will.
func verify(ctx context.Context, s *server, pool *x509.CertPool, want []byte) error {
	return get(ctx, client(s, pool, false, 1), want)
}

// measure runs Conns loops of GETs against s for Duration.
func measure(ctx context.Context, c Config, s *server, mode string, pool *x509.CertPool, want []byte) (Phase, error) {
	keep := mode == "keepalive"
	if !keep && mode != "newconn" {
		return Phase{}, fmt.Errorf("unknown mode %q", mode)
	}
	hc := client(s, pool, keep, c.Conns)
	defer hc.CloseIdleConnections()
	// Warm up: open the keep-alive connections.
	var wg sync.WaitGroup
	for range c.Conns {
		wg.Add(1)
		go func() { defer wg.Done(); get(ctx, hc, want) }()
	}
	wg.Wait()
	cpu0, err := cpuTime(s.pids())
	if err != nil {
		return Phase{}, err
	}
	var reqs, errs atomic.Int64
	pctx, cancel := context.WithTimeout(ctx, c.Duration)
	defer cancel()
	start := time.Now()
	for range c.Conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for pctx.Err() == nil {
				if err := get(pctx, hc, want); err != nil {
					if pctx.Err() == nil {
						errs.Add(1)
					}
					continue
				}
				reqs.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu1, err := cpuTime(s.pids())
	if err != nil {
		return Phase{}, err
	}
	return Phase{Server: s.name, Mode: mode, Requests: reqs.Load(), Errors: errs.Load(), Elapsed: elapsed, ServerCPU: cpu1 - cpu0}, nil
}

// clockTick is USER_HZ, the unit of /proc/PID/stat times (100 on Linux).
const clockTick = 10 * time.Millisecond

// cpuTime sums the user and system CPU time of the processes.
func cpuTime(pids []int) (time.Duration, error) {
	var total time.Duration
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0, fmt.Errorf("server CPU time: %w", err)
		}
		// Fields after the command name, which ends at the last ')'.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) < 13 {
			return 0, errors.New("server CPU time: short /proc stat")
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		sy, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(u+sy) * clockTick
	}
	return total, nil
}

// children returns the pids whose parent is ppid.
func children(ppid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(ppid) {
			out = append(out, pid)
		}
	}
	return out
}
