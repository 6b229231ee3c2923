package main

import (
	"bufio"
	"net"
	"slices"
	"testing"
	"time"
)

// slowSocketmap answers every query with "OK x" after delay, one at a time
// per connection.
func slowSocketmap(t *testing.T, delay time.Duration) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				buf := make([]byte, maxMinimalRequest+1)
				for {
					if _, err := readNetstring(br, buf); err != nil {
						return
					}
					time.Sleep(delay) // the slow server under test
					if _, err := c.Write(netstring("OK x")); err != nil {
						return
					}
				}
			}()
		}
	}()
	return l.Addr().String()
}

// The open loop keeps its schedule's count and measures latency from each
// query's scheduled time: against a server slower than the offered rate,
// the queueing shows in the latencies (a closed loop would report only the
// service time).
func TestOpenLoopNoCoordinatedOmission(t *testing.T) {
	t.Parallel()
	const service = 5 * time.Millisecond
	addr := slowSocketmap(t, service)
	// 1,000 q/s on one connection for 50 ms: 50 queries due 1 ms apart,
	// each served in at least 5 ms.
	r := openLoop(t.Context(), addr, []string{"a", "b"}, 1, 1000, 50*time.Millisecond, "OK x")
	if r.errors > 0 || r.wrong > 0 {
		t.Fatalf("errors %d, wrong %d", r.errors, r.wrong)
	}
	if r.queries != 50 {
		t.Errorf("queries = %d, want the schedule's 50", r.queries)
	}
	// Query k is due at k ms and cannot finish before (k+1)×5 ms.
	if min := 4*49*time.Millisecond + service; r.percentile(100) < min {
		t.Errorf("max latency %v, want at least %v (queueing behind slow answers)", r.percentile(100), min)
	}
	if r.percentile(0.1) < service {
		t.Errorf("min latency %v below the service time %v", r.percentile(0.1), service)
	}
}

// TestPairedRatios: round i of one daemon is divided by round i of the
// other; extra rounds and zero denominators are left out.
func TestPairedRatios(t *testing.T) {
	got := pairedRatios([]float64{2, 3, 8, 5}, []float64{1, 0, 4})
	if want := []float64{2, 2}; !slices.Equal(got, want) {
		t.Errorf("pairedRatios = %v, want %v", got, want)
	}
}

// TestMergedRounds: the latencies of rounds are kept sorted, so that a
// percentile over several rounds is one (the latency mode's single
// lookups were once appended unsorted, and its p50 was a sample).
func TestMergedRounds(t *testing.T) {
	var all []time.Duration
	all = merged(all, []time.Duration{5, 9})
	all = merged(all, []time.Duration{1, 7})
	if want := []time.Duration{1, 5, 7, 9}; !slices.Equal(all, want) {
		t.Fatalf("merged = %v, want %v", all, want)
	}
	if p := (loadResult{lat: all}).percentile(50); p != 5 {
		t.Errorf("p50 = %v, want 5", p)
	}
}
