package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/mailsts/mailsts/internal/outgoing"
	rtype "github.com/mailsts/mailsts/tlsrpt/result"
)

// runBuild fills a fresh SQLite store with one day of results for the
// given number of domains (varied policies and failures) and times one
// builder pass over them, with the heap's peak sampled meanwhile.
func runBuild(domains int) error {
	dir, err := os.MkdirTemp("", "bbuild")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	st, err := outgoing.OpenSQLite(ctx, filepath.Join(dir, "send.db"), outgoing.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	day := time.Now().UTC().AddDate(0, 0, -1)
	types := rtype.Types()
	var batch []outgoing.Result
	fillStart := time.Now()
	for i := range domains {
		d := fmt.Sprintf("d%05d.example", i)
		sts := outgoing.Policy{Type: "sts", Strings: []string{"version: STSv1", "mode: enforce", "mx: mx1." + d, "mx: mx2." + d, "max_age: 604800"},
			MXHosts: []string{"mx1." + d, "mx2." + d}}
		for range 10 { // successes, merged into one row
			batch = append(batch, outgoing.Result{Time: day, PolicyDomain: d, Policy: sts})
		}
		for f := range i % 12 { // 0..11 distinct failure details
			batch = append(batch, outgoing.Result{Time: day, PolicyDomain: d, Policy: sts, Failures: []outgoing.Failure{{
				ResultType: types[f%len(types)], ReceivingMXHostname: fmt.Sprintf("mx%d.%s", f%2+1, d),
				ReceivingIP: fmt.Sprintf("192.0.2.%d", f+1), AdditionalInfo: "detail"}}})
		}
		if i%7 == 0 {
			batch = append(batch, outgoing.Result{Time: day, PolicyDomain: d, Policy: outgoing.Policy{Type: "no-policy-found"}})
		}
		if len(batch) >= 2000 {
			if err := st.Add(ctx, batch...); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if err := st.Add(ctx, batch...); err != nil {
		return err
	}
	fill := time.Since(fillStart)

	var bytes atomic.Int64
	var n atomic.Int64
	b := &outgoing.Builder{Store: st, OrganizationName: "Bench Sender", ContactInfo: "tlsrpt@sender.example", Node: "bench",
		Sink: outgoing.SinkFunc(func(_ context.Context, r outgoing.BuiltReport) error {
			bytes.Add(int64(len(r.Body)))
			n.Add(1)
			return nil
		})}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	stop := make(chan struct{})
	go func() {
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				runtime.ReadMemStats(&m)
				if m.HeapInuse > peak.Load() {
					peak.Store(m.HeapInuse)
				}
			}
		}
	}()
	start := time.Now()
	stats, err := b.RunOnce(ctx)
	el := time.Since(start)
	close(stop)
	if err != nil {
		return err
	}
	fmt.Printf("build: %d domains (filled in %.1f s), %d reports built in %.2f s (%.0f reports/s), %d failed; gzip bodies %.1f KiB in all; heap in use peak %.1f MiB over %.1f MiB before\n",
		domains, fill.Seconds(), stats.Built, el.Seconds(), float64(stats.Built)/el.Seconds(), stats.Failed,
		float64(bytes.Load())/1024, float64(peak.Load())/(1<<20), float64(base)/(1<<20))
	if stats.Built != domains || n.Load() != int64(domains) {
		return fmt.Errorf("built %d of %d", stats.Built, domains)
	}
	return nil
}
