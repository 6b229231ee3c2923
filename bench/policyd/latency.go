package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"time"

	"github.com/mailsts/mailsts/internal/testnet"
)

// latFigures are one daemon's results in the latency mode.
type latFigures struct {
	name    string
	startup time.Duration
	single  []time.Duration // every one-at-a-time lookup of every round, sorted
	batch   []float64       // wall seconds per round
	err     error
}

// runLatency is the latency mode (-latency): the testnet listens on free
// ports behind delay proxies on 127.0.0.1:53 (UDP and TCP) and
// 127.0.0.1:443, so every DNS query and every TCP exchange with a policy
// host pays the round-trip time of a real network; the daemons see only
// the proxies. Each round, each daemon looks up -latency-single never-seen
// domains one at a time (the latency a sender waits for on its first
// message to a domain) and then -latency-batch more over -conns
// connections (wall time). Only cold lookups are measured: cache hits do
// not touch the network.
func runLatency(ctx context.Context, cfg config, out io.Writer) error {
	var names []string
	for _, d := range cfg.daemons {
		if d != "minimal" { // answers from its map only
			names = append(names, d)
		}
	}
	single := map[string][][]string{}
	batch := map[string][][]string{}
	all := []string{readyKey}
	for i, d := range names {
		for r := range cfg.rounds {
			s := domainNames(fmt.Sprintf("s%d-%d-", i, r), cfg.latSingle)
			b := domainNames(fmt.Sprintf("b%d-%d-", i, r), cfg.latBatch)
			single[d] = append(single[d], s)
			batch[d] = append(batch[d], b)
			all = append(all, s...)
			all = append(all, b...)
		}
	}
	log.Printf("starting testnet with %d domains behind a %v one-way delay", len(all), cfg.latency)
	n, err := testnet.Start(ctx, benchScenario(keySets{hot: all[1:]}), testnet.Options{IP: netip.MustParseAddr("127.0.0.1")})
	if err != nil {
		return fmt.Errorf("testnet (inside namespace %s): %w", cfg.inside, err)
	}
	defer n.Close()
	dnsProxy, err := startDelayProxy("127.0.0.1:53", n.DNSAddr(), cfg.latency, true)
	if err != nil {
		return fmt.Errorf("DNS delay proxy: %w", err)
	}
	defer dnsProxy.Close()
	httpsProxy, err := startDelayProxy("127.0.0.1:443", n.HTTPSAddr(), cfg.latency, false)
	if err != nil {
		return fmt.Errorf("HTTPS delay proxy: %w", err)
	}
	defer httpsProxy.Close()
	tmp, err := os.MkdirTemp("", "mailsts-bench-inside-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	procs := map[string]*daemon{}
	defer func() {
		for _, d := range procs {
			d.stop()
		}
	}()
	var figs []*latFigures
	fail := func(f *latFigures, phase string, err error) error {
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
	_, port, _ := net.SplitHostPort(httpsProxy.Addr())
	httpsPort := 443
	_, _ = fmt.Sscan(port, &httpsPort)
	for _, name := range names {
		f := &latFigures{name: name}
		figs = append(figs, f)
		log.Printf("starting %s", name)
		d, err := startOneAt(ctx, cfg, n, dnsProxy.Addr(), httpsPort, tmp, name)
		if err == nil {
			procs[name] = d
			f.startup, err = d.waitAnswer(ctx, readyKey, wantReply, time.Minute)
		}
		if err != nil {
			if err := fail(f, "start", err); err != nil {
				return err
			}
		}
	}
	for r := range cfg.rounds {
		for _, f := range figs {
			if f.err != nil {
				continue
			}
			log.Printf("latency round %d: %s", r+1, f.name)
			d := procs[f.name]
			one := each(ctx, d.addr, single[f.name][r], 1, 10*time.Minute, wantReply)
			if err := one.check("single lookups", cfg.latSingle); err != nil {
				if err := fail(f, "single lookups", err); err != nil {
					return err
				}
				continue
			}
			f.single = merged(f.single, one.lat)
			many := each(ctx, d.addr, batch[f.name][r], cfg.conns, 10*time.Minute, wantReply)
			if err := many.check("batch", cfg.latBatch); err != nil {
				if err := fail(f, "batch", err); err != nil {
					return err
				}
				continue
			}
			f.batch = append(f.batch, many.wall.Seconds())
		}
	}
	reportLatency(out, cfg, figs)
	return nil
}

func reportLatency(w io.Writer, cfg config, figs []*latFigures) {
	rtt := 2 * cfg.latency
	host, _ := os.Hostname()
	fmt.Fprintf(w, "\n## bench/policyd -latency %v, %s, %s/%s, %d CPUs, %s\n\n", cfg.latency, time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), host)
	fmt.Fprintf(w, "Delay proxy: %v each way (%v round trip) on DNS (UDP, TCP) and HTTPS; %d rounds; per round %d never-seen domains one at a time, then %d over %d connections; mailsts --cache %s\n\n",
		cfg.latency, rtt, cfg.rounds, cfg.latSingle, cfg.latBatch, cfg.conns, cfg.mailstsCache)
	header, sep := "| figure |", "|---|"
	for _, f := range figs {
		header += " " + label(f.name) + " |"
		sep += "---:|"
	}
	fmt.Fprintln(w, header)
	fmt.Fprintln(w, sep)
	row := func(name string, cell func(f *latFigures) string) {
		line := "| " + name + " |"
		for _, f := range figs {
			c := "failed"
			if f.err == nil {
				c = cell(f)
			}
			line += " " + c + " |"
		}
		fmt.Fprintln(w, line)
	}
	pct := func(f *latFigures, p float64) time.Duration {
		return loadResult{lat: f.single}.percentile(p)
	}
	row("single cold lookup p50 (min–max)", func(f *latFigures) string {
		return fmt.Sprintf("%s (%s–%s)", dur(pct(f, 50)), dur(f.single[0]), dur(f.single[len(f.single)-1]))
	})
	row("single cold lookup p50 in round trips", func(f *latFigures) string {
		return fmt.Sprintf("%.2f", float64(pct(f, 50))/float64(rtt))
	})
	row(fmt.Sprintf("%d cold domains over %d connections, wall (median; min–max)", cfg.latBatch, cfg.conns), func(f *latFigures) string {
		return fmt.Sprintf("%s (%.3f–%.3f s)", dur(time.Duration(median(f.batch)*float64(time.Second))), slices.Min(f.batch), slices.Max(f.batch))
	})
	row("start-up to first answer (one cold lookup)", func(f *latFigures) string { return dur(f.startup) })
	for _, f := range figs {
		if f.err != nil {
			fmt.Fprintf(w, "\n%s failed: %s\n", f.name, firstLine(f.err.Error()))
		}
	}
}
