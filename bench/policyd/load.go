package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailsts/mailsts/postfix"
)

// loadResult is what one load phase measured on the client side.
type loadResult struct {
	queries int           // answered
	wrong   int           // answered, but not with the expected reply
	errors  int           // I/O or protocol errors (the connection is redialled)
	wall    time.Duration // phase duration
	lat     []time.Duration
}

func (r loadResult) qps() float64 { return float64(r.queries) / r.wall.Seconds() }

// merged adds the latencies of one more round to those of the rounds
// before, sorted, as percentile needs them.
func merged(all, round []time.Duration) []time.Duration {
	all = append(all, round...)
	slices.Sort(all)
	return all
}

// percentile returns the p-th percentile (0 < p ≤ 100) of the latencies.
func (r loadResult) percentile(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	i := int(float64(len(r.lat))*p/100+0.5) - 1
	return r.lat[min(max(i, 0), len(r.lat)-1)]
}

// worker is one persistent socketmap connection doing one lookup at a time,
// as a Postfix smtp process does.
type worker struct {
	addr string
	c    *postfix.SocketmapClient
}

func (w *worker) lookup(ctx context.Context, key string) (postfix.Reply, error) {
	if w.c == nil {
		c, err := postfix.DialSocketmap(ctx, "tcp", w.addr)
		if err != nil {
			return postfix.Reply{}, err
		}
		w.c = c
	}
	r, err := w.c.Lookup(ctx, mapName(w.addr), key)
	if err != nil {
		w.c.Close()
		w.c = nil
	}
	return r, err
}

func (w *worker) close() {
	if w.c != nil {
		w.c.Close()
	}
}

// matches reports whether a reply is the expected one ("OK secure …").
func matches(r postfix.Reply, want string) bool {
	return strings.HasPrefix(r.Status.String()+" "+r.Data, want)
}

// timed runs conns workers over keys for dur: worker i starts at key
// i*len(keys)/conns and cycles. Latency is measured per lookup.
func timed(ctx context.Context, addr string, keys []string, conns int, dur time.Duration, want string) loadResult {
	ctx, cancel := context.WithTimeout(ctx, dur+30*time.Second)
	defer cancel()
	var stop atomic.Bool
	timer := time.AfterFunc(dur, func() { stop.Store(true) })
	defer timer.Stop()
	return run(ctx, addr, conns, want, func(i, k int) (string, bool) {
		if stop.Load() {
			return "", false
		}
		return keys[(i*len(keys)/conns+k)%len(keys)], true
	})
}

// each looks every key up once, spread over conns workers, and returns when
// all are answered or timeout passes.
func each(ctx context.Context, addr string, keys []string, conns int, timeout time.Duration, want string) loadResult {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var next atomic.Int64
	return run(ctx, addr, conns, want, func(int, int) (string, bool) {
		j := int(next.Add(1) - 1)
		if j >= len(keys) {
			return "", false
		}
		return keys[j], true
	})
}

// run starts conns workers, each with its own connection; worker i asks
// key(i, k) for its k-th lookup until key says to stop or ctx ends, and
// records latency, wrong answers and errors.
func run(ctx context.Context, addr string, conns int, want string, key func(i, k int) (string, bool)) loadResult {
	var (
		mu  sync.Mutex
		res loadResult
		wg  sync.WaitGroup
	)
	start := time.Now()
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &worker{addr: addr}
			defer w.close()
			lat := make([]time.Duration, 0, 1<<12)
			var n, wrong, errs int
			for k := 0; ctx.Err() == nil; k++ {
				next, ok := key(i, k)
				if !ok {
					break
				}
				t0 := time.Now()
				r, err := w.lookup(ctx, next)
				d := time.Since(t0)
				if err != nil {
					errs++
					continue
				}
				n++
				lat = append(lat, d)
				if !matches(r, want) {
					wrong++
				}
			}
			mu.Lock()
			res.queries += n
			res.wrong += wrong
			res.errors += errs
			res.lat = append(res.lat, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.wall = time.Since(start)
	slices.Sort(res.lat)
	return res
}

// check turns a phase with errors or wrong answers into an error, so that
// no figure is reported for a daemon that did not do the work.
func (r loadResult) check(phase string, expected int) error {
	if r.errors > 0 || r.wrong > 0 || (expected > 0 && r.queries != expected) {
		return fmt.Errorf("%s: %d answered (want %d), %d wrong answers, %d errors", phase, r.queries, expected, r.wrong, r.errors)
	}
	return nil
}

// openLoop offers rate queries per second over conns connections for dur,
// whatever the daemon's answers do: connection i sends its k-th query at
// start + (k + i/conns) × conns/rate. A connection carries one query at a
// time (as Postfix's), so a late answer delays the next send; each
// latency is therefore measured from the query's scheduled time, not from
// when it was sent, and includes the queueing a slow answer causes (no
// coordinated omission). Client-side timer lateness counts too, alike for
// every daemon.
func openLoop(ctx context.Context, addr string, keys []string, conns int, rate float64, dur time.Duration, want string) loadResult {
	ctx, cancel := context.WithTimeout(ctx, dur+30*time.Second)
	defer cancel()
	interval := time.Duration(float64(conns) / rate * float64(time.Second))
	var (
		mu  sync.Mutex
		res loadResult
		wg  sync.WaitGroup
	)
	start := time.Now().Add(20 * time.Millisecond)
	for i := range conns {
		wg.Go(func() {
			w := &worker{addr: addr}
			defer w.close()
			lat := make([]time.Duration, 0, int(dur/interval)+1)
			var n, wrong, errs int
			offset := time.Duration(i) * interval / time.Duration(conns)
			for k := 0; ctx.Err() == nil; k++ {
				at := start.Add(offset + time.Duration(k)*interval)
				if at.Sub(start) >= dur {
					break
				}
				if d := time.Until(at); d > 0 {
					time.Sleep(d)
				}
				key := keys[(i*len(keys)/conns+k)%len(keys)]
				r, err := w.lookup(ctx, key)
				if err != nil {
					errs++
					continue
				}
				n++
				lat = append(lat, time.Since(at))
				if !matches(r, want) {
					wrong++
				}
			}
			mu.Lock()
			res.queries += n
			res.wrong += wrong
			res.errors += errs
			res.lat = append(res.lat, lat...)
			mu.Unlock()
		})
	}
	wg.Wait()
	res.wall = time.Since(start)
	slices.Sort(res.lat)
	return res
}
