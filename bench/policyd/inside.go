package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
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
	peerAddr    = "127.0.0.1:8462"
	mailstsAddr = "127.0.0.1:8461"
)

func domainNames(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%06d.bench.example", prefix, i)
	}
	return out
}

// keys of the three domain sets, disjoint.
type keySets struct {
	hot, cold, mem []string
}

func newKeySets(cfg config) keySets {
	return keySets{
		hot:  domainNames("h", cfg.hot),
		cold: domainNames("c", cfg.cold),
		mem:  domainNames("m", cfg.mem),
	}
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
	add(readyKey)
	for _, set := range [][]string{ks.hot, ks.cold, ks.mem} {
		for _, k := range set {
			add(k)
		}
	}
	return sc
}

// figures are one daemon's results; zero values were not measured.
type figures struct {
	name          string
	startup       time.Duration // to the first answer, empty cache
	hit           loadResult
	hitCPU        time.Duration
	cold          loadResult
	memDomains    int
	memBytes      int64 // RSS delta over memDomains
	memWrong      int   // fill lookups not answered with the policy
	startupCached time.Duration
	cachedOnDisk  int
	dbBytes       int64
	err           error
}

func (f *figures) cpuPerQuery() time.Duration {
	if f.hit.queries == 0 {
		return 0
	}
	return f.hitCPU / time.Duration(f.hit.queries)
}

// runInside runs in the namespace: the testnet on the well-known ports,
// then each daemon in turn, then the report.
func runInside(ctx context.Context, cfg config, out io.Writer) error {
	ks := newKeySets(cfg)
	log.Printf("starting testnet with %d domains", cfg.hot+cfg.cold+cfg.mem+1)
	n, err := testnet.Start(ctx, benchScenario(ks), testnet.Options{
		IP:        netip.MustParseAddr("127.0.0.1"),
		DNSPort:   53,
		HTTPSPort: 443,
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
	var all []*figures
	for _, name := range cfg.daemons {
		log.Printf("measuring %s", name)
		f := &figures{name: name}
		switch name {
		case "minimal":
			f.err = measureMinimal(ctx, cfg, ks, f)
		case "peer":
			f.err = measurePeer(ctx, cfg, ks, n, tmp, f)
		case "mailsts":
			f.err = measureMailsts(ctx, cfg, ks, n, tmp, f)
		default:
			f.err = fmt.Errorf("unknown daemon %q (want minimal, peer or mailsts)", name)
		}
		if f.err != nil {
			log.Printf("%s: %v", name, f.err)
			if !cfg.keep {
				return fmt.Errorf("%s: %w", name, f.err)
			}
		}
		all = append(all, f)
	}
	report(out, cfg, all)
	return nil
}

func measureMinimal(ctx context.Context, cfg config, ks keySets, f *figures) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	d, err := startDaemon("minimal", minimalAddr, nil, self, "-serve-minimal", minimalAddr, "-hot", strconv.Itoa(cfg.hot))
	if err != nil {
		return err
	}
	defer d.stop()
	if f.startup, err = d.waitAnswer(ctx, readyKey, wantReply, time.Minute); err != nil {
		return err
	}
	return hitPhase(ctx, cfg, ks, d, f)
}

func measurePeer(ctx context.Context, cfg config, ks keySets, n *testnet.Net, tmp string, f *figures) error {
	if _, err := os.Stat(cfg.peer); err != nil {
		return fmt.Errorf("postfix-mta-sts-resolver is not installed (%w); apt-get install postfix-mta-sts-resolver, or leave peer out of -daemons", err)
	}
	// The internal (in-memory LRU) cache, large enough for every domain:
	// the peer's fastest configuration. The peer re-checks the TXT record of
	// entries older than cache_grace (60 s) on access, so the hit phase
	// follows the warm-up at once.
	conf := filepath.Join(tmp, "mta-sts-daemon.yml")
	yml := fmt.Sprintf("host: 127.0.0.1\nport: 8462\nreuse_port: true\ncache:\n  type: internal\n  options:\n    cache_size: %d\ndefault_zone:\n  strict_testing: false\n  timeout: 4\n",
		cfg.hot+cfg.cold+cfg.mem+100)
	if err := os.WriteFile(conf, []byte(yml), 0o644); err != nil {
		return err
	}
	// SSL_CERT_FILE makes Python's default SSL context trust the testnet CA.
	d, err := startDaemon("peer", peerAddr, []string{"SSL_CERT_FILE=" + n.CAFile()}, cfg.peer, "-c", conf, "-v", "warn")
	if err != nil {
		return err
	}
	defer d.stop()
	if f.startup, err = d.waitAnswer(ctx, readyKey, wantReply, time.Minute); err != nil {
		return err
	}
	if err := coldPhase(ctx, cfg, ks, d, f); err != nil {
		return err
	}
	if err := hitPhase(ctx, cfg, ks, d, f); err != nil {
		return err
	}
	return memPhase(ctx, cfg, ks, d, f)
}

func mailstsArgs(n *testnet.Net, cache, stateDir string) []string {
	return []string{"policyd",
		"--listen", mailstsAddr,
		"--dns", n.DNSAddr(),
		"--ca-file", n.CAFile(),
		"--https-port", strconv.Itoa(n.HTTPSPort()),
		"--state-dir", stateDir,
		"--cache", cache,
	}
}

func measureMailsts(ctx context.Context, cfg config, ks keySets, n *testnet.Net, tmp string, f *figures) error {
	if cfg.mailsts == "" {
		return errors.New("no mailsts binary (-mailsts)")
	}
	err := func() error {
		d, err := startDaemon("mailsts", mailstsAddr, nil, cfg.mailsts, mailstsArgs(n, "memory", filepath.Join(tmp, "state-memory"))...)
		if err != nil {
			return err
		}
		defer d.stop()
		if f.startup, err = d.waitAnswer(ctx, readyKey, wantReply, time.Minute); err != nil {
			return err
		}
		if err := coldPhase(ctx, cfg, ks, d, f); err != nil {
			return err
		}
		if err := hitPhase(ctx, cfg, ks, d, f); err != nil {
			return err
		}
		return memPhase(ctx, cfg, ks, d, f)
	}()
	if err != nil {
		return err
	}
	return startupPhase(ctx, cfg, ks, n, tmp, f)
}

// coldPhase looks up never-seen domains over cfg.conns connections.
func coldPhase(ctx context.Context, cfg config, ks keySets, d *daemon, f *figures) error {
	f.cold = each(ctx, d.addr, ks.cold, cfg.conns, 10*time.Minute, wantReply)
	return f.cold.check("cold phase", len(ks.cold))
}

// hitPhase warms the hot domains, then runs the timed load and reads the
// daemon's CPU time around it.
func hitPhase(ctx context.Context, cfg config, ks keySets, d *daemon, f *figures) error {
	warm := each(ctx, d.addr, ks.hot, cfg.conns, 10*time.Minute, wantReply)
	if err := warm.check("warm-up", len(ks.hot)); err != nil {
		return err
	}
	c0, err := d.cpu()
	if err != nil {
		return err
	}
	f.hit = timed(ctx, d.addr, ks.hot, cfg.conns, cfg.duration, wantReply)
	c1, err := d.cpu()
	if err != nil {
		return err
	}
	f.hitCPU = c1 - c0
	return f.hit.check("hit phase", 0)
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
	fill := each(ctx, d.addr, ks.mem, cfg.fillConns, cfg.fillTimeout, wantReply)
	r1, err := d.rss()
	if err != nil {
		return err
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

// startupPhase fills a SQLite cache, restarts policyd on it and times the
// first answer for a cached domain; the policy host must not be asked
// again, which proves the answer came from disk.
func startupPhase(ctx context.Context, cfg config, ks keySets, n *testnet.Net, tmp string, f *figures) error {
	if len(ks.mem) == 0 {
		return nil
	}
	state := filepath.Join(tmp, "state-sqlite")
	args := mailstsArgs(n, "sqlite", state)
	d, err := startDaemon("mailsts (sqlite)", mailstsAddr, nil, cfg.mailsts, args...)
	if err != nil {
		return err
	}
	fill := func() error {
		defer d.stop()
		if _, err := d.waitAnswer(ctx, readyKey, wantReply, time.Minute); err != nil {
			return err
		}
		r := each(ctx, d.addr, ks.mem, cfg.fillConns, cfg.fillTimeout, wantReply)
		f.cachedOnDisk = r.queries - r.wrong
		return r.check("sqlite fill", len(ks.mem))
	}
	if err := fill(); err != nil {
		return err
	}
	f.dbBytes = dirSize(state)
	probe := ks.mem[len(ks.mem)/2]
	before := n.Requests(probe)
	runtime.GC() // keep the bench process's own garbage out of the way
	d, err = startDaemon("mailsts (sqlite restart)", mailstsAddr, nil, cfg.mailsts, args...)
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
