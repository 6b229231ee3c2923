// Package selftest proves, scenario by scenario, what mailsts policyd
// answers Postfix: it starts the fake Internet (internal/testnet) and a
// policy daemon on loopback, asks the daemon over real socketmap and
// tcp_table connections, and compares every answer with what RFC 8461 and
// the Postfix conventions require. It is `mailsts selftest`, and the
// offline demo of the project.
//
// A fake clock drives the daemon, so steps that need time to pass (a
// cached policy due for a re-check, the end of the TEMP window, a stale MX
// check) run instantly.
package selftest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/mailsts/mailsts/internal/policyd"
	"github.com/mailsts/mailsts/internal/testnet"
	"github.com/mailsts/mailsts/postfix"
)

// Result is the outcome of one step.
type Result struct {
	Name  string // what the step proves
	Ref   string // checklist IDs
	Query string // what was asked: "socketmap postfix example.com"
	Want  string // the expected reply, "OK …", "NOTFOUND", "TEMP"
	Got   string
	Pass  bool
}

// Options configure Run.
type Options struct {
	// Logger receives the daemon's logs; nil discards them.
	Logger *slog.Logger
	// Progress, when set, is called after each step.
	Progress func(Result)
}

// clock is the daemon's fake clock: real time plus an offset the steps
// advance.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// env is what a step can use.
type env struct {
	net   *testnet.Net
	clock *clock
	sm    *postfix.SocketmapClient
	tcp   *postfix.TCPTableClient
}

// step is one scenario step: an optional change of the world, then one
// query and the expected answer.
type step struct {
	name, ref string
	before    func(e *env) error
	proto     string // "socketmap" (default) or "tcp_table"
	mapName   string // socketmap map name; "" means "postfix"
	key       string
	want      string // exact reply: "OK <data>", "NOTFOUND", "TEMP"
	// after, when set, checks the world after the answer (for example
	// that a fetch really happened) and returns what is wrong.
	after func(e *env) error
}

// fetches returns a check that the policy host of domain saw n requests.
func fetches(domain string, n int) func(e *env) error {
	return func(e *env) error {
		if got := e.net.Requests(domain); got != n {
			return fmt.Errorf("policy host of %s saw %d requests, want %d", domain, got, n)
		}
		return nil
	}
}

// Extra domains the default scenario lacks: a policy that will become
// unreachable while cached, one whose MX hosts move without an id change,
// and one whose _mta-sts lookup fails.
func extraDomains() []testnet.Domain {
	enforce := func(name string, mx ...string) testnet.Domain {
		body := "version: STSv1\nmode: enforce\n"
		var hosts []testnet.MXHost
		for i, m := range mx {
			body += "mx: " + m + "\n"
			hosts = append(hosts, testnet.MXHost{Name: m, Pref: uint16(10 * (i + 1))})
		}
		body += "max_age: 604800\n"
		return testnet.Domain{
			Name:   name,
			STSTXT: [][]string{{"v=STSv1; id=v1"}},
			Policy: &testnet.PolicyHost{Body: body},
			MX:     hosts,
		}
	}
	return []testnet.Domain{
		enforce("cached.selftest.example", "mx1.cached.selftest.example"),
		enforce("moved.selftest.example", "mx1.moved.selftest.example"),
	}
}

func steps() []step {
	return []step{
		{name: "enforce policy: verified TLS to MX hosts matching the patterns", ref: "PFX-STS-1, STS-APPLY-7",
			key: "enforce.example", want: "OK secure match=.enforce.example servername=hostname"},
		{name: "policy body with CRLF line endings", ref: "STS-POL-4",
			key: "crlf.example", want: "OK secure match=mx1.crlf.example servername=hostname"},
		{name: "TXT record split into two strings", ref: "STS-TXT-9",
			key: "multistring.example", want: "OK secure match=mx1.multistring.example servername=hostname"},
		{name: "testing policy: no enforcement", ref: "PFX-STS-1, STS-APPLY-2",
			key: "testing.example", want: "NOTFOUND"},
		{name: "testing policy in a strict_testing zone: enforced", ref: "PFX-STS-1",
			mapName: "strict", key: "testing.example", want: "OK secure match=mx1.testing.example servername=hostname"},
		{name: "mode none: no policy", ref: "STS-APPLY-3",
			key: "none.example", want: "NOTFOUND"},
		{name: "no _mta-sts record: no policy", ref: "STS-TXT-7",
			key: "nosts.example", want: "NOTFOUND"},
		{name: "two v=STSv1 records: no policy", ref: "STS-TXT-7",
			key: "two-records.example", want: "NOTFOUND"},
		{name: "DANE: DNSSEC-validated TLSA on every MX wins over MTA-STS", ref: "STS-DANE-2, STS-DANE-4",
			key: "dane.example", want: "OK dane-only"},
		{name: "policy host answers 404, nothing cached: no policy", ref: "STS-FETCH-9",
			key: "notfound.example", want: "NOTFOUND"},
		{name: "policy host certificate for the wrong name, nothing cached: no policy", ref: "STS-FETCH-2, STS-FETCH-9",
			key: "wrong-name.example", want: "NOTFOUND"},
		{name: "_mta-sts lookup SERVFAIL, nothing cached: defer (TEMP)", ref: "OPEN-1, STS-TXT-13",
			key: "servfail.example", want: "TEMP"},
		{name: "…still failing after the TEMP window: no policy", ref: "OPEN-1",
			before: func(e *env) error { e.clock.Advance(11 * time.Minute); return nil },
			key:    "servfail.example", want: "NOTFOUND"},
		{name: "parent-domain probe: never a parent's policy", ref: "STS-SEL-3, PFX-POL-2",
			key: ".enforce.example", want: "NOTFOUND"},
		{name: "IP literal: no MTA-STS", ref: "STS-SEL-4",
			key: "[192.0.2.1]", want: "NOTFOUND"},
		{name: "smart host [relay]:port: the relay's policy", ref: "OPEN-5, STS-SEL-2",
			key: "[enforce.example]:587", want: "OK secure match=.enforce.example servername=hostname"},
		{name: "key case and trailing dot normalised", ref: "PFX-SOCKETMAP-9",
			key: "ENFORCE.Example.", want: "OK secure match=.enforce.example servername=hostname"},
		{name: "tcp_table protocol: enforce policy", ref: "PFX-TCP-3, F-14",
			proto: "tcp_table", key: "enforce.example", want: "OK secure match=.enforce.example servername=hostname"},
		{name: "policy fetched and cached", ref: "STS-CACHE-1",
			key: "cached.selftest.example", want: "OK secure match=mx1.cached.selftest.example servername=hostname"},
		{name: "new TXT id, policy host now fails: cached policy still enforced", ref: "STS-CACHE-5, STS-FETCH-10",
			before: func(e *env) error {
				d, _ := e.net.Domain("cached.selftest.example")
				d.STSTXT = [][]string{{"v=STSv1; id=v2"}}
				d.Policy = &testnet.PolicyHost{Status: 500, Body: "broken\n"}
				if err := e.net.Set(d); err != nil {
					return err
				}
				e.clock.Advance(16 * time.Minute) // past the cache's TXT re-check interval
				return nil
			},
			key: "cached.selftest.example", want: "OK secure match=mx1.cached.selftest.example servername=hostname",
			after: fetches("cached.selftest.example", 2)},
		{name: "policy cached for moved domain", ref: "STS-CACHE-1",
			key: "moved.selftest.example", want: "OK secure match=mx1.moved.selftest.example servername=hostname"},
		{name: "MX hosts moved, policy id unchanged: re-fetched before answering", ref: "STS-APPLY-4",
			before: func(e *env) error {
				d, _ := e.net.Domain("moved.selftest.example")
				d.MX = []testnet.MXHost{{Name: "mx2.moved.selftest.example", Pref: 10}}
				d.Policy = &testnet.PolicyHost{Body: "version: STSv1\nmode: enforce\nmx: mx2.moved.selftest.example\nmax_age: 604800\n"}
				if err := e.net.Set(d); err != nil {
					return err
				}
				e.clock.Advance(16 * time.Minute) // past the MX check interval
				return nil
			},
			key: "moved.selftest.example", want: "OK secure match=mx2.moved.selftest.example servername=hostname",
			after: fetches("moved.selftest.example", 2)},
	}
}

// Run starts the fake Internet and a policy daemon, runs every step and
// returns the results. The error is for failures to run at all; failed
// steps are results with Pass false.
func Run(ctx context.Context, opts Options) ([]Result, error) {
	sc := testnet.DefaultScenario()
	sc.Domains = append(sc.Domains, extraDomains()...)
	n, err := testnet.Start(ctx, sc, testnet.Options{})
	if err != nil {
		return nil, fmt.Errorf("starting the fake Internet: %w", err)
	}
	defer n.Close()

	cfg := policyd.Default()
	cfg.Listen = []policyd.Listener{{Socketmap: "127.0.0.1:0"}, {TCPTable: "127.0.0.1:0"}}
	cfg.DNS.Servers = []string{n.DNSAddr()}
	cfg.DNS.Timeout = time.Second
	cfg.Fetch.CAFile = n.CAFile()
	cfg.Fetch.HTTPSPort = n.HTTPSPort()
	cfg.Fetch.Timeout = 5 * time.Second
	cfg.Cache.Type = "memory"
	t := true
	cfg.Zones = map[string]policyd.ZoneConfig{"strict": {StrictTesting: true, DANE: "auto", TempWindow: policyd.DefaultTempWindow, RequireSNI: &t}}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}

	clk := &clock{}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ready := make(chan []net.Addr, 1)
	d := &policyd.Daemon{Config: cfg, Logger: logger, Now: clk.Now, Ready: func(a []net.Addr) { ready <- a }}
	dctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(dctx, nil) }()
	defer func() { stop(); <-done }()

	var addrs []net.Addr
	select {
	case addrs = <-ready:
	case err := <-done:
		if err == nil {
			err = errors.New("daemon stopped before listening")
		}
		return nil, fmt.Errorf("starting policyd: %w", err)
	case <-time.After(30 * time.Second):
		return nil, errors.New("policyd did not start within 30s")
	}

	e := &env{net: n, clock: clk}
	if e.sm, err = postfix.DialSocketmap(ctx, "tcp", addrs[0].String()); err != nil {
		return nil, err
	}
	defer e.sm.Close()
	if e.tcp, err = postfix.DialTCPTable(ctx, "tcp", addrs[1].String()); err != nil {
		return nil, err
	}
	defer e.tcp.Close()

	var results []Result
	for _, s := range steps() {
		r := runStep(ctx, e, s)
		results = append(results, r)
		if opts.Progress != nil {
			opts.Progress(r)
		}
	}
	return results, nil
}

func runStep(ctx context.Context, e *env, s step) Result {
	mapName := s.mapName
	if mapName == "" {
		mapName = "postfix"
	}
	proto := s.proto
	if proto == "" {
		proto = "socketmap"
	}
	r := Result{Name: s.name, Ref: s.ref, Want: s.want}
	if proto == "socketmap" {
		r.Query = fmt.Sprintf("socketmap %s %s", mapName, s.key)
	} else {
		r.Query = "tcp_table get " + s.key
	}
	if s.before != nil {
		if err := s.before(e); err != nil {
			r.Got = "setup failed: " + err.Error()
			return r
		}
	}
	qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var reply postfix.Reply
	var err error
	if proto == "socketmap" {
		reply, err = e.sm.Lookup(qctx, mapName, s.key)
	} else {
		reply, err = e.tcp.Get(qctx, s.key)
	}
	if err != nil {
		r.Got = "error: " + err.Error()
		return r
	}
	r.Got = strings.TrimSpace(reply.Status.String() + " " + reply.Data)
	if reply.Status == postfix.StatusOK {
		r.Pass = r.Got == s.want
	} else {
		// NOTFOUND and TEMP carry free text (a reason) after the status.
		r.Pass = reply.Status.String() == s.want
	}
	if r.Pass && s.after != nil {
		if err := s.after(e); err != nil {
			r.Pass = false
			r.Got += " (but " + err.Error() + ")"
		}
	}
	return r
}
