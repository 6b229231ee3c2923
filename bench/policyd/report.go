package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// report prints the figures as a Markdown table, then the ratios against
// the goals in bench/README.md.
func report(w io.Writer, cfg config, all []*figures) {
	host, _ := os.Hostname()
	fmt.Fprintf(w, "\n## bench/policyd, %s, %s/%s, %d CPUs, %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), host)
	fmt.Fprintf(w, "%d rounds, daemons interleaved, medians shown: hit phase %v at %d connections over %d hot domains; cold phase %d never-seen domains at %d connections; memory with %d domains (filled over %d connections); mailsts --cache %s\n\n",
		cfg.rounds, cfg.duration, cfg.conns, cfg.hot, cfg.cold, cfg.conns, cfg.mem, cfg.fillConns, cfg.mailstsCache)
	byName := map[string]*figures{}
	header := "| figure |"
	sep := "|---|"
	for _, f := range all {
		byName[f.name] = f
		header += " " + label(f.name) + " |"
		sep += "---:|"
	}
	fmt.Fprintln(w, header)
	fmt.Fprintln(w, sep)
	row := func(name string, cell func(f *figures) string) {
		line := "| " + name + " |"
		for _, f := range all {
			c := "–"
			switch {
			case f.err == nil && f.name == "floor" && strings.Contains(name, "cold"):
				c = cell(f)
			case f.err == nil && f.name == "floor":
				// Cold lookups only: it has no cache.
			case f.err == nil:
				c = cell(f)
			default:
				c = "failed"
			}
			line += " " + c + " |"
		}
		fmt.Fprintln(w, line)
	}
	row("cache-hit queries/s (median; min–max)", func(f *figures) string {
		return fmt.Sprintf("%.0f (%.0f–%.0f)", f.qps(), slices.Min(f.hitRounds), slices.Max(f.hitRounds))
	})
	row("server CPU per query", func(f *figures) string { return dur(f.cpuPerQuery()) })
	row("latency p50 (all rounds)", func(f *figures) string { return dur(f.hit.percentile(50)) })
	row("latency p99", func(f *figures) string { return dur(f.hit.percentile(99)) })
	row("latency max", func(f *figures) string { return dur(f.hit.percentile(100)) })
	if cfg.openRate > 0 {
		row(fmt.Sprintf("open loop %.0f q/s: achieved q/s", cfg.openRate), func(f *figures) string {
			if f.open.wall == 0 {
				return "–"
			}
			return fmt.Sprintf("%.0f", float64(f.open.queries)/f.open.wall.Seconds())
		})
		row("open loop latency p50 / p99 / p99.9", func(f *figures) string {
			if len(f.open.lat) == 0 {
				return "–"
			}
			return dur(f.open.percentile(50)) + " / " + dur(f.open.percentile(99)) + " / " + dur(f.open.percentile(99.9))
		})
		row("open loop p99 per round (median; min–max)", func(f *figures) string {
			if len(f.openP99) == 0 {
				return "–"
			}
			return dur(time.Duration(median(f.openP99)*float64(time.Second))) + " (" +
				dur(time.Duration(slices.Min(f.openP99)*float64(time.Second))) + "–" + dur(time.Duration(slices.Max(f.openP99)*float64(time.Second))) + ")"
		})
		row("open loop latency max", func(f *figures) string {
			if len(f.open.lat) == 0 {
				return "–"
			}
			return dur(f.open.percentile(100))
		})
	}
	row(fmt.Sprintf("%d cold domains, wall (median; min–max)", cfg.cold), func(f *figures) string {
		if len(f.coldRounds) == 0 {
			return "–"
		}
		return fmt.Sprintf("%s (%.2f–%.2f s)", dur(f.coldWall()), slices.Min(f.coldRounds), slices.Max(f.coldRounds))
	})
	row("cold phases: daemon CPU / bench (testnet+client) CPU, total", func(f *figures) string {
		if len(f.coldRounds) == 0 {
			return "–"
		}
		return dur(f.coldCPU) + " / " + dur(f.coldBenchCPU)
	})
	row("memory per cached domain (RSS Δ)", func(f *figures) string {
		if f.memDomains == 0 {
			return "–"
		}
		return fmt.Sprintf("%.0f B (%d domains)", float64(f.memBytes)/float64(f.memDomains), f.memDomains)
	})
	row("daemon CPU per domain during the memory fill (cache growing)", func(f *figures) string {
		if f.memDomains == 0 {
			return "–"
		}
		return dur(f.memCPU / time.Duration(f.memDomains))
	})
	row("start-up to first answer, empty cache", func(f *figures) string { return dur(f.startup) })
	row("start-up to first cached answer, SQLite on disk", func(f *figures) string {
		if f.cachedOnDisk == 0 {
			return "–"
		}
		return fmt.Sprintf("%s (%d domains, %.1f MB)", dur(f.startupCached), f.cachedOnDisk, float64(f.dbBytes)/1e6)
	})
	for _, f := range all {
		if f.memWrong > 0 {
			fmt.Fprintf(w, "\n%s answered %d of the %d memory-fill lookups without the policy (NOTFOUND: fetch failed under load, failing open); they are not counted as cached.\n", f.name, f.memWrong, cfg.mem)
		}
		if f.err != nil {
			fmt.Fprintf(w, "\n%s failed: %s\n", f.name, firstLine(f.err.Error()))
		}
	}

	row("daemon CPU per cold domain", func(f *figures) string {
		if len(f.coldRounds) == 0 {
			return "–"
		}
		return dur(coldCPUPerDomain(cfg, f))
	})
	row("… of which system (kernel) CPU per cold domain", func(f *figures) string {
		if len(f.coldRounds) == 0 {
			return "–"
		}
		return dur(f.coldSys / time.Duration(max(1, len(f.coldRounds)*cfg.cold)))
	})
	row("DNS queries per cold domain (received by the testnet)", func(f *figures) string {
		if len(f.coldRounds) == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f", float64(f.coldDNS)/float64(max(1, len(f.coldRounds)*cfg.cold)))
	})
	if cfg.callgrind != "" {
		row("instructions per cold domain (callgrind)", func(f *figures) string {
			if f.coldIr == 0 {
				return "–"
			}
			return fmt.Sprintf("%.3g M", coldIrPerDomain(cfg, f)/1e6)
		})
	}
	m, p, x := byName["mailsts"], byName["peer"], byName["minimal"]
	ok := func(f *figures) bool { return f != nil && f.err == nil }
	fmt.Fprintln(w, "\nRatios (same run) against the policyd goals (bench/README.md):")
	fmt.Fprintln(w)
	goal := func(what string, v float64, cmp string, target float64) {
		met := v >= target
		if cmp == "≤" {
			met = v <= target
		}
		verdict := "met"
		if !met {
			verdict = "NOT met"
		}
		fmt.Fprintf(w, "- %s: %.2f (goal %s %.2f): %s\n", what, v, cmp, target, verdict)
	}
	if ok(m) && ok(p) {
		goal("mailsts q/s ÷ peer q/s", m.qps()/p.qps(), "≥", 2.5)
		goal("mailsts CPU/query ÷ peer CPU/query", float64(m.cpuPerQuery())/float64(p.cpuPerQuery()), "≤", 1.0/3)
		if m.coldWall() > 0 {
			goal("peer cold wall ÷ mailsts cold wall", float64(p.coldWall())/float64(m.coldWall()), "≥", 10)
		}
		fmt.Fprintf(w, "- mailsts p99 ÷ peer p99 (closed loop): %.2f\n", float64(m.hit.percentile(99))/float64(p.hit.percentile(99)))
		if len(m.open.lat) > 0 && len(p.open.lat) > 0 {
			fmt.Fprintf(w, "- mailsts p99 ÷ peer p99, open loop at %.0f q/s: %.2f\n", cfg.openRate,
				float64(m.open.percentile(99))/float64(p.open.percentile(99)))
		}
		if m.memDomains > 0 && p.memDomains > 0 {
			fmt.Fprintf(w, "- memory per cached domain, mailsts ÷ peer: %.2f\n",
				(float64(m.memBytes)/float64(m.memDomains))/(float64(p.memBytes)/float64(p.memDomains)))
		}
	}
	if t := byName["tlspol"]; ok(m) && ok(t) {
		fmt.Fprintf(w, "- mailsts q/s ÷ postfix-tlspol q/s: %.2f\n", m.qps()/t.qps())
		fmt.Fprintf(w, "- mailsts CPU/query ÷ postfix-tlspol CPU/query: %.2f\n", float64(m.cpuPerQuery())/float64(t.cpuPerQuery()))
		if len(m.open.lat) > 0 && len(t.open.lat) > 0 {
			fmt.Fprintf(w, "- mailsts p99 ÷ postfix-tlspol p99, open loop at %.0f q/s: %.2f\n", cfg.openRate,
				float64(m.open.percentile(99))/float64(t.open.percentile(99)))
		}
		if len(m.coldRounds) > 0 && len(t.coldRounds) > 0 {
			fmt.Fprintf(w, "- postfix-tlspol cold wall ÷ mailsts cold wall: %.2f\n", float64(t.coldWall())/float64(m.coldWall()))
		}
	}
	// Tail latency at a fixed load: no worse than the best peer's p99.
	if ok(m) && len(m.open.lat) > 0 {
		var best *figures
		for _, name := range []string{"peer", "tlspol"} {
			if f := byName[name]; ok(f) && len(f.open.lat) > 0 && (best == nil || f.open.percentile(99) < best.open.percentile(99)) {
				best = f
			}
		}
		if best != nil {
			goal(fmt.Sprintf("mailsts p99 ÷ best peer's p99 (%s), open loop at %.0f q/s", label(best.name), cfg.openRate),
				float64(m.open.percentile(99))/float64(best.open.percentile(99)), "≤", 1)
			// The rounds are interleaved: round i of each daemon ran
			// minutes apart at most, so the ratio of each pair moves less
			// with the machine's load than the ratio of the pooled tails.
			if pairs := pairedRatios(m.openP99, best.openP99); len(pairs) > 1 {
				fmt.Fprintf(w, "- the same, round by round (mailsts round i ÷ %s round i): median %.2f, min–max %.2f–%.2f over %d rounds\n",
					label(best.name), median(pairs), slices.Min(pairs), slices.Max(pairs), len(pairs))
			}
		}
	}
	if fl := byName["floor"]; ok(m) && ok(fl) && len(m.coldRounds) > 0 && len(fl.coldRounds) > 0 {
		goal("mailsts CPU per cold domain ÷ floor client's", float64(coldCPUPerDomain(cfg, m))/float64(coldCPUPerDomain(cfg, fl)), "≤", 1.25)
		if m.coldIr > 0 && fl.coldIr > 0 {
			goal("mailsts instructions per cold domain ÷ floor client's (callgrind)", coldIrPerDomain(cfg, m)/coldIrPerDomain(cfg, fl), "≤", 1.25)
		}
		for _, f := range []*figures{p, byName["tlspol"]} {
			if ok(f) && len(f.coldRounds) > 0 {
				fmt.Fprintf(w, "- %s CPU per cold domain ÷ floor client's: %.2f\n", label(f.name), float64(coldCPUPerDomain(cfg, f))/float64(coldCPUPerDomain(cfg, fl)))
			}
		}
	}
	if ok(m) && ok(x) {
		goal("mailsts q/s ÷ minimal q/s", m.qps()/x.qps(), "≥", 0.8)
	}
	if ok(p) && ok(x) {
		fmt.Fprintf(w, "- peer q/s ÷ minimal q/s: %.2f\n", p.qps()/x.qps())
	}
}

// coldCPUPerDomain is the daemon's CPU time over its cold rounds divided by
// the domains they looked up.
func coldCPUPerDomain(cfg config, f *figures) time.Duration {
	return f.coldCPU / time.Duration(max(1, len(f.coldRounds)*cfg.cold))
}

// coldIrPerDomain is the daemon's instruction count over its cold rounds
// (-callgrind) divided by the domains they looked up.
func coldIrPerDomain(cfg config, f *figures) float64 {
	return float64(f.coldIr) / float64(max(1, len(f.coldRounds)*cfg.cold))
}

func label(name string) string {
	switch name {
	case "floor":
		return "floor client"
	case "tlspol":
		return "postfix-tlspol"
	case "minimal":
		return "minimal map server"
	case "peer":
		return "mta-sts-daemon 1.1.2"
	case "mailsts":
		return "mailsts policyd"
	}
	return name
}

// dur prints a duration with three significant digits.
func dur(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d < time.Millisecond:
		return fmt.Sprintf("%.1f µs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// pairedRatios divides a[i] by b[i] for the rounds both have.
func pairedRatios(a, b []float64) []float64 {
	var out []float64
	for i := range min(len(a), len(b)) {
		if b[i] > 0 {
			out = append(out, a[i]/b[i])
		}
	}
	return out
}
