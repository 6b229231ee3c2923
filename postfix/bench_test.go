package postfix

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The benchmarks measure round trips over loopback from 16 persistent
// connections, the DESIGN.md load shape. The load client is allocation-free
// after warm-up, so allocs/op is the server's. Compare:
//
//	go test -run XXX -bench 'Socketmap' -benchmem ./postfix

const benchConns = 16

var benchPolicy = map[string]string{
	"example.com": "OK " + pfxSTS5Plain,
	"example.net": "OK secure match=.example.net servername=hostname",
}

func benchHandler() Handler {
	return HandlerFunc(func(ctx context.Context, name, key string) Reply {
		if v, ok := benchPolicy[key]; ok {
			return Found(v[3:])
		}
		return NotFound()
	})
}

// minimalServer is the ceiling: a bare netstring server answering from a
// map, with no timeouts, limits, state tracking or observer.
func minimalServer(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	b.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			// The connection ends when the load client closes it.
			wg.Go(func() {
				defer c.Close()
				br, bw := bufio.NewReader(c), bufio.NewWriter(c)
				buf := make([]byte, 0, 1024)
				for {
					hdr, err := br.ReadSlice(':')
					if err != nil {
						return
					}
					n, err := strconv.Atoi(string(hdr[:len(hdr)-1]))
					if err != nil || n > 1000 {
						return
					}
					buf = buf[:n+1]
					if _, err := io.ReadFull(br, buf); err != nil {
						return
					}
					_, key, _ := bytes.Cut(buf[:n], []byte{' '})
					v, ok := benchPolicy[string(key)]
					if !ok {
						v = "NOTFOUND "
					}
					bw.WriteString(strconv.Itoa(len(v)))
					bw.WriteByte(':')
					bw.WriteString(v)
					bw.WriteByte(',')
					if br.Buffered() == 0 {
						if bw.Flush() != nil {
							return
						}
					}
				}
			})
		}
	})
	return l.Addr().String()
}

// load runs b.N lookups from benchConns connections, depth requests in
// flight per connection, and checks every reply.
func load(b *testing.B, addr string, depth int) {
	keys := []string{"example.com", "example.net", ".example.com"}
	var reqs, want [][]byte
	for _, k := range keys {
		reqs = append(reqs, AppendNetstring(nil, "postfix "+k))
		v, ok := benchPolicy[k]
		if !ok {
			v = "NOTFOUND "
		}
		want = append(want, []byte(v))
	}
	conns := make([]net.Conn, benchConns)
	for i := range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	var next atomic.Int64
	var failed atomic.Value
	b.ReportAllocs()
	cpu0 := processCPU(b)
	b.ResetTimer()
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() {
			br, bw := bufio.NewReader(c), bufio.NewWriter(c)
			nr := NetstringReader{r: br, max: DefaultMaxReplySize}
			for {
				start := next.Add(int64(depth)) - int64(depth)
				if start >= int64(b.N) {
					return
				}
				n := min(int64(depth), int64(b.N)-start)
				for i := range n {
					bw.Write(reqs[(start+i)%int64(len(reqs))])
				}
				if err := bw.Flush(); err != nil {
					failed.Store(err)
					return
				}
				for i := range n {
					p, err := nr.Next()
					if err != nil || !bytes.Equal(p, want[(start+i)%int64(len(want))]) {
						failed.Store(errWrongReply)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	// CPU time per lookup, client and server together: unlike ns/op it
	// barely moves when other processes compete for the cores.
	b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
	if err := failed.Load(); err != nil {
		b.Fatal(err)
	}
}

// processCPU returns the user+system CPU time this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

var errWrongReply = errors.New("wrong reply")

func startBench(b *testing.B, timeouts time.Duration) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &SocketmapServer{Handler: benchHandler(), IdleTimeout: timeouts, ReadTimeout: timeouts, WriteTimeout: timeouts}
	go srv.Serve(l)
	b.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// BenchmarkSocketmap: sequential round trips on 16 connections.
func BenchmarkSocketmap(b *testing.B) { load(b, startBench(b, 0), 1) }

// BenchmarkSocketmapNoTimeouts: as BenchmarkSocketmap with the timeouts
// disabled, to show what the deadlines cost.
func BenchmarkSocketmapNoTimeouts(b *testing.B) { load(b, startBench(b, -1), 1) }

// BenchmarkSocketmapMinimal: the same load against the ceiling.
func BenchmarkSocketmapMinimal(b *testing.B) { load(b, minimalServer(b), 1) }

// BenchmarkSocketmapPipelined: 32 requests in flight per connection.
func BenchmarkSocketmapPipelined(b *testing.B) { load(b, startBench(b, 0), 32) }

// BenchmarkSocketmapMinimalPipelined: the ceiling with 32 in flight.
func BenchmarkSocketmapMinimalPipelined(b *testing.B) { load(b, minimalServer(b), 32) }

// BenchmarkTCPTable: sequential round trips on 16 connections.
func BenchmarkTCPTable(b *testing.B) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &TCPTableServer{Handler: benchHandler()}
	go srv.Serve(l)
	b.Cleanup(func() { srv.Close() })
	want := []byte("200 " + pfxSTS5Plain + "\n")
	b.ReportAllocs()
	b.SetParallelism((benchConns + 1) / 2)
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		req := []byte("get example.com\n")
		for pb.Next() {
			if _, err := c.Write(req); err != nil {
				b.Error(err)
				return
			}
			line, err := br.ReadSlice('\n')
			if err != nil || !bytes.Equal(line, want) {
				b.Errorf("reply %q, %v", line, err)
				return
			}
		}
	})
}
