package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/mailsts/mailsts/internal/testnet"
)

// Every benchmark domain has the same good enforce policy naming the one
// shared MX host, so every daemon answers the same thing for every domain.
const (
	benchMX   = "mx1.mx.bench.example"
	readyKey  = "ready.bench.example"
	wantReply = "OK secure match=" + benchMX
)

// Addresses of the daemons inside the namespace.
const (
	minimalAddr = "127.0.0.1:8463"
	floorAddr   = "127.0.0.1:8464"
	tlspolAddr  = "127.0.0.1:8465"
	peerAddr    = "127.0.0.1:8462"
	mailstsAddr = "127.0.0.1:8461"
	// mailstsDebug is policyd's metrics listener with the profiler (-profile).
	mailstsDebug = "127.0.0.1:9469"
)

func domainNames(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%06d.bench.example", prefix, i)
	}
	return out
}

// keySets are the benchmark's domains, in disjoint sets: hot (shared by
// all daemons), cold[daemon][round] (every daemon and round gets its own
// never-seen domains, so that no daemon profits from another's fetches
// warming the testnet's certificate cache) and mem (the memory fill).
type keySets struct {
	hot  []string
	cold map[string][][]string
	mem  []string
}

func newKeySets(cfg config) keySets {
	ks := keySets{
		hot:  domainNames("h", cfg.hot),
		cold: make(map[string][][]string),
		mem:  domainNames("m", cfg.mem),
	}
	for i, d := range cfg.daemons {
		if d == "minimal" {
			continue // answers from its map only
		}
		for r := range cfg.rounds {
			ks.cold[d] = append(ks.cold[d], domainNames(fmt.Sprintf("c%d-%d-", i, r), cfg.cold))
		}
	}
	return ks
}

func (ks keySets) all() []string {
	out := append([]string{readyKey}, ks.hot...)
	for _, rounds := range ks.cold {
		for _, set := range rounds {
			out = append(out, set...)
		}
	}
	return append(out, ks.mem...)
}

func minimalAnswers(hot int) map[string]string {
	m := make(map[string]string, hot+1)
	for _, k := range append(domainNames("h", hot), readyKey) {
		m[k] = "secure match=" + benchMX + " servername=hostname"
	}
	return m
}

func benchScenario(ks keySets) *testnet.Scenario {
	sc := &testnet.Scenario{}
	add := func(name string) {
		sc.Domains = append(sc.Domains, testnet.Domain{
			Name:   name,
			STSTXT: [][]string{{"v=STSv1; id=bench1"}},
			Policy: &testnet.PolicyHost{Body: "version: STSv1\nmode: enforce\nmx: " + benchMX + "\nmax_age: 604800\n"},
			MX:     []testnet.MXHost{{Name: benchMX, Pref: 10}},
		})
	}
	for _, k := range ks.all() {
		add(k)
	}
	return sc
}

// figures are one daemon's results; zero values were not measured.
type figures struct {
	name          string
	startup       time.Duration // to the first answer, empty cache
	hit           loadResult    // all rounds merged (latencies)
	open          loadResult    // open-loop rounds merged
	openP99       []float64     // open-loop p99 per round, seconds
	hitRounds     []float64     // q/s per round
	cpuRounds     []float64     // CPU seconds per query, per round
	cold          loadResult    // the round with the median wall time
	coldRounds    []float64     // wall seconds per round
	coldCPU       time.Duration // the daemon's CPU time in the cold phase
	coldBenchCPU  time.Duration // this process's (testnet and client)
	coldSys       time.Duration // the system (kernel) part of coldCPU
	coldIr        int64         // instructions in the cold rounds, under -callgrind
	coldDNS       int64         // DNS queries the testnet received in the cold rounds
	memDomains    int
	memBytes      int64         // RSS delta over memDomains
	memCPU        time.Duration // the daemon's CPU over the memory fill
	memWrong      int           // fill lookups not answered with the policy
	startupCached time.Duration
	cachedOnDisk  int
	dbBytes       int64
	err           error
}

// qps is the median of the rounds' queries per second.
func (f *figures) qps() float64 { return median(f.hitRounds) }

// cpuPerQuery is the median of the rounds' CPU time per query.
func (f *figures) cpuPerQuery() time.Duration {
	return time.Duration(median(f.cpuRounds) * float64(time.Second))
}

// coldWall is the median of the cold rounds' wall times.
func (f *figures) coldWall() time.Duration {
	return time.Duration(median(f.coldRounds) * float64(time.Second))
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// runInside runs in the namespace: the testnet on the well-known ports,
// every daemon started, then the phases with the daemons interleaved round
// by round (so that load from elsewhere on the machine hits them alike),
// then the report.
func runInside(ctx context.Context, cfg config, out io.Writer) error {
	ks := newKeySets(cfg)
	all := ks.all()
	log.Printf("starting testnet with %d domains", len(all))
	n, err := testnet.Start(ctx, benchScenario(ks), testnet.Options{
		IP:         netip.MustParseAddr("127.0.0.1"),
		DNSPort:    53,
		HTTPSPort:  443,
		Validating: cfg.validating,
	})
	if err != nil {
		return fmt.Errorf("testnet (inside namespace %s): %w", cfg.inside, err)
	}
	defer n.Close()
	tmp, err := os.MkdirTemp("", "mailsts-bench-inside-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	var figs []*figures
	procs := map[string]*daemon{}
	defer func() {
		for _, d := range procs {
			d.stop()
		}
	}()
	live := func() []*figures {
		var out []*figures
		for _, f := range figs {
			if f.err == nil {
				out = append(out, f)
			}
		}
		return out
	}
	fail := func(f *figures, phase string, err error) error {
		f.err = fmt.Errorf("%s: %w", phase, err)
		log.Printf("%s: %v", f.name, f.err)
		if d := procs[f.name]; d != nil {
			d.stop()
			delete(procs, f.name)
		}
		if !cfg.keep {
			return fmt.Errorf("%s: %w", f.name, f.err)
		}
		return nil
	}

	for _, name := range cfg.daemons {
		f := &figures{name: name}
		figs = append(figs, f)
		log.Printf("starting %s", name)
		d, err := startOne(ctx, cfg, n, tmp, name)
		if err == nil {
			procs[name] = d
			wait := time.Minute
			if d.cg != "" {
				wait = 10 * time.Minute // valgrind starts slowly
			}
			f.startup, err = d.waitAnswer(ctx, readyKey, wantReply, wait)
		}
		if err != nil {
			if err := fail(f, "start", err); err != nil {
				return err
			}
		}
	}
	for r := range cfg.rounds {
		for _, f := range live() {
			if len(ks.cold[f.name]) == 0 {
				continue
			}
			log.Printf("cold round %d: %s", r+1, f.name)
			if err := coldRound(ctx, cfg, n, ks.cold[f.name][r], procs[f.name], f); err != nil {
				if err := fail(f, "cold phase", err); err != nil {
					return err
				}
			}
		}
	}
	for _, f := range live() {
		if f.name == "floor" {
			continue // cold lookups only: it has no cache
		}
		warm := each(ctx, procs[f.name].addr, ks.hot, cfg.conns, 10*time.Minute, wantReply)
		if err := warm.check("warm-up", len(ks.hot)); err != nil {
			if err := fail(f, "warm-up", err); err != nil {
				return err
			}
		}
	}
	for r := range cfg.rounds {
		for _, f := range live() {
			if f.name == "floor" {
				continue
			}
			log.Printf("hit round %d: %s", r+1, f.name)
			if err := hitRound(ctx, cfg, ks, procs[f.name], f); err != nil {
				if err := fail(f, "hit phase", err); err != nil {
					return err
				}
			}
		}
	}
	for _, f := range live() {
		if f.name == "minimal" || f.name == "floor" {
			continue
		}
		log.Printf("memory fill: %s", f.name)
		if err := memPhase(ctx, cfg, ks, procs[f.name], f); err != nil {
			if err := fail(f, "memory fill", err); err != nil {
				return err
			}
		}
		if f.name == "mailsts" && f.err == nil && cfg.mailstsCache == "sqlite" && len(ks.mem) > 0 {
			log.Printf("restart on the SQLite cache: %s", f.name)
			d := procs[f.name]
			d.stop()
			delete(procs, f.name)
			if err := restartPhase(ctx, cfg, ks, n, tmp, f); err != nil {
				if err := fail(f, "restart", err); err != nil {
					return err
				}
			}
		}
	}
	report(out, cfg, figs)
	return nil
}

// startOne starts one daemon (not waiting for it), pointed at the
// testnet's DNS and HTTPS.
func startOne(ctx context.Context, cfg config, n *testnet.Net, tmp, name string) (*daemon, error) {
	return startOneAt(ctx, cfg, n, n.DNSAddr(), n.HTTPSPort(), tmp, name)
}

// startOneAt starts one daemon using the DNS server dnsAddr and policy
// hosts on httpsPort (where the peer's are fixed: 127.0.0.1:53 and 443).
func startOneAt(ctx context.Context, cfg config, n *testnet.Net, dnsAddr string, httpsPort int, tmp, name string) (*daemon, error) {
	switch name {
	case "tlspol":
		return startTLSPol(cfg, n, dnsAddr, tmp)
	case "floor":
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		return startMeasured(cfg, "floor", floorAddr, self, "-serve-floor", floorAddr,
			"-floor-dns", dnsAddr, "-floor-https-port", strconv.Itoa(httpsPort), "-floor-ca", n.CAFile(),
			"-profile", cfg.profile)
	case "minimal":
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		return startDaemon("minimal", minimalAddr, nil, self, "-serve-minimal", minimalAddr, "-hot", strconv.Itoa(cfg.hot))
	case "peer":
		if _, err := os.Stat(cfg.peer); err != nil {
			return nil, fmt.Errorf("postfix-mta-sts-resolver is not installed (%w); apt-get install postfix-mta-sts-resolver, or leave peer out of -daemons", err)
		}
		// The internal (in-memory LRU) cache, large enough for every
		// domain: the peer's fastest configuration. The peer re-checks the
		// TXT record of entries older than cache_grace (60 s) on access;
		// the hit rounds follow the warm-up within that window.
		conf := filepath.Join(tmp, "mta-sts-daemon.yml")
		yml := fmt.Sprintf("host: 127.0.0.1\nport: 8462\nreuse_port: true\ncache:\n  type: internal\n  options:\n    cache_size: %d\ndefault_zone:\n  strict_testing: false\n  timeout: 4\n",
			len(cfg.daemons)*cfg.rounds*cfg.cold+cfg.hot+cfg.mem+100)
		if err := os.WriteFile(conf, []byte(yml), 0o644); err != nil {
			return nil, err
		}
		// SSL_CERT_FILE makes Python's default SSL context trust the
		// testnet CA; the resolver is the namespace's resolv.conf.
		return startDaemon("peer", peerAddr, []string{"SSL_CERT_FILE=" + n.CAFile()}, cfg.peer, "-c", conf, "-v", "warn")
	case "mailsts":
		if cfg.mailsts == "" {
			return nil, errors.New("no mailsts binary (-mailsts)")
		}
		args := mailstsArgs(n, dnsAddr, httpsPort, cfg.mailstsCache, filepath.Join(tmp, "state"))
		if cfg.profile != "" {
			args = append(args, "--metrics", mailstsDebug, "--pprof")
		}
		return startMeasured(cfg, "mailsts", mailstsAddr, cfg.mailsts, args...)
	}
	return nil, fmt.Errorf("unknown daemon %q (want minimal, peer, mailsts, tlspol or floor)", name)
}

// startMeasured starts mailsts or the floor client, under callgrind with
// -callgrind.
func startMeasured(cfg config, name, addr, bin string, args ...string) (*daemon, error) {
	if cfg.callgrind == "" {
		return startDaemon(name, addr, nil, bin, args...)
	}
	vg, vargs, env := callgrindArgs(cfg.callgrind, name, bin, args)
	d, err := startDaemon(name, addr, env, vg, vargs...)
	if d != nil {
		d.cg = name
	}
	return d, err
}

func mailstsArgs(n *testnet.Net, dnsAddr string, httpsPort int, cache, stateDir string) []string {
	return []string{"policyd",
		"--listen", mailstsAddr,
		"--dns", dnsAddr,
		"--ca-file", n.CAFile(),
		"--https-port", strconv.Itoa(httpsPort),
		"--state-dir", stateDir,
		"--cache", cache,
	}
}

// coldRound looks up never-seen domains over cfg.conns connections and
// reads the daemon's and this process's CPU time around it.
func coldRound(ctx context.Context, cfg config, n *testnet.Net, keys []string, d *daemon, f *figures) error {
	q0 := n.DNSQueryTotal()
	c0, err := d.cpu()
	if err != nil {
		return err
	}
	s0 := selfCPU()
	k0, err := d.sysCPU()
	if err != nil {
		return err
	}
	if d.cg != "" {
		if err := callgrindControl(ctx, d, "-z"); err != nil {
			return err
		}
	}
	prof := startProfile(cfg, d, "cold", len(f.coldRounds) == 0)
	r := each(ctx, d.addr, keys, cfg.conns, 10*time.Minute, wantReply)
	c1, err := d.cpu()
	prof()
	if err != nil {
		return err
	}
	k1, err := d.sysCPU()
	if err != nil {
		return err
	}
	f.coldSys += k1 - k0
	f.coldDNS += n.DNSQueryTotal() - q0
	if d.cg != "" {
		if err := callgrindControl(ctx, d, "-d"); err != nil {
			return err
		}
		ir, err := callgrindLast(cfg.callgrind, d)
		if err != nil {
			return err
		}
		f.coldIr += ir
	}
	if err := r.check("cold phase", len(keys)); err != nil {
		return err
	}
	f.coldRounds = append(f.coldRounds, r.wall.Seconds())
	f.coldCPU += c1 - c0
	f.coldBenchCPU += selfCPU() - s0
	if f.cold.wall == 0 || r.wall.Seconds() == median(f.coldRounds) {
		f.cold = r
	}
	return nil
}

// hitRound runs one timed cache-hit load and reads the daemon's CPU time
// around it.
func hitRound(ctx context.Context, cfg config, ks keySets, d *daemon, f *figures) error {
	c0, err := d.cpu()
	if err != nil {
		return err
	}
	prof := startProfile(cfg, d, "hit", len(f.hitRounds) == 0)
	r := timed(ctx, d.addr, ks.hot, cfg.conns, cfg.duration, wantReply)
	c1, err := d.cpu()
	prof()
	if err != nil {
		return err
	}
	if err := r.check("hit phase", 0); err != nil {
		return err
	}
	if r.queries == 0 {
		return errors.New("hit phase: no query answered")
	}
	if cfg.openRate > 0 {
		o := openLoop(ctx, d.addr, ks.hot, cfg.conns, cfg.openRate, cfg.openDuration, wantReply)
		if err := o.check("open-loop phase", 0); err != nil {
			return err
		}
		f.open.queries += o.queries
		f.open.wall += o.wall
		f.open.lat = merged(f.open.lat, o.lat)
		slices.Sort(o.lat)
		f.openP99 = append(f.openP99, o.percentile(99).Seconds())
	}
	f.hitRounds = append(f.hitRounds, r.qps())
	f.cpuRounds = append(f.cpuRounds, (c1-c0).Seconds()/float64(r.queries))
	f.hit.queries += r.queries
	f.hit.wall += r.wall
	f.hit.lat = merged(f.hit.lat, r.lat)
	return nil
}

// memPhase fills the cache with cfg.mem more domains and divides the RSS
// growth by the number cached.
func memPhase(ctx context.Context, cfg config, ks keySets, d *daemon, f *figures) error {
	if len(ks.mem) == 0 {
		return nil
	}
	r0, err := d.rss()
	if err != nil {
		return err
	}
	c0, err := d.cpu()
	if err != nil {
		return err
	}
	fill := each(ctx, d.addr, ks.mem, cfg.fillConns, cfg.fillTimeout, wantReply)
	r1, err := d.rss()
	if err != nil {
		return err
	}
	c1, err := d.cpu()
	if err != nil {
		return err
	}
	f.memCPU = c1 - c0
	if cfg.profile != "" && d.name == "mailsts" {
		saveProfile(cfg, "heap", "/debug/pprof/heap")
	}
	f.memDomains = fill.queries - fill.wrong
	f.memBytes = r1 - r0
	f.memWrong = fill.wrong
	if fill.queries < len(ks.mem) {
		log.Printf("%s: filled %d of %d domains within %v", d.name, fill.queries, len(ks.mem), cfg.fillTimeout)
	}
	// A daemon may fail open under the fill's load (a fetch timing out
	// gives NOTFOUND): those domains are not cached and not counted, and
	// the report says how many there were. I/O errors still fail.
	if fill.errors > 0 || fill.wrong > len(ks.mem)/100 {
		return fill.check("memory fill", 0)
	}
	return nil
}

// restartPhase restarts policyd on the SQLite cache the memory fill left
// and times the first answer for a cached domain; the policy host must not
// be asked again, which proves the answer came from disk.
func restartPhase(ctx context.Context, cfg config, ks keySets, n *testnet.Net, tmp string, f *figures) error {
	state := filepath.Join(tmp, "state")
	f.cachedOnDisk = f.memDomains
	f.dbBytes = dirSize(state)
	probe := ks.mem[len(ks.mem)/2]
	before := n.Requests(probe)
	d, err := startDaemon("mailsts (restart)", mailstsAddr, nil, cfg.mailsts, mailstsArgs(n, n.DNSAddr(), n.HTTPSPort(), "sqlite", state)...)
	if err != nil {
		return err
	}
	defer d.stop()
	if f.startupCached, err = d.waitAnswer(ctx, probe, wantReply, 5*time.Minute); err != nil {
		return err
	}
	if after := n.Requests(probe); after != before {
		return fmt.Errorf("after restart %s was fetched again (%d → %d policy requests): not served from the SQLite cache", probe, before, after)
	}
	return nil
}

func dirSize(dir string) int64 {
	var total int64
	_ = filepath.WalkDir(dir, func(_ string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			if info, err := e.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	return total
}

// startProfile, with -profile, fetches a CPU profile of mailsts policyd
// (cfg.profileTime from now) into DIR/<phase>.pprof while the round runs;
// the returned function waits for it. Other daemons and rounds: no-op.
// The memory fill also saves DIR/heap.pprof at its end.
func startProfile(cfg config, d *daemon, phase string, first bool) (wait func()) {
	if cfg.profile == "" || d.name != "mailsts" || !first {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		secs := max(1, int(cfg.profileTime.Round(time.Second)/time.Second))
		saveProfile(cfg, phase, fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs))
	}()
	return func() { <-done }
}

// saveProfile fetches a profile from policyd's debug listener into
// DIR/<name>.pprof, logging (not failing) on error.
func saveProfile(cfg config, name, path string) {
	resp, err := http.Get("http://" + mailstsDebug + path)
	if err != nil {
		log.Printf("profile %s: %v", name, err)
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		log.Printf("profile %s: status %d %v", name, resp.StatusCode, err)
		return
	}
	file := filepath.Join(cfg.profile, name+".pprof")
	if err := os.WriteFile(file, body, 0o644); err != nil {
		log.Printf("profile %s: %v", name, err)
		return
	}
	log.Printf("profile of mailsts policyd (%s): %s", name, file)
}
