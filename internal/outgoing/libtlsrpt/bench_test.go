package libtlsrpt

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/outgoing"
)

// BenchmarkCollect: one datagram through the parser, the Recorder and the
// SQLite store (the batches written as they fill).
func BenchmarkCollect(b *testing.B) {
	st, err := outgoing.OpenSQLite(context.Background(), filepath.Join(b.TempDir(), "s.db"), outgoing.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	rec := outgoing.NewRecorder(st, outgoing.RecorderOptions{MaxWait: time.Second})
	c := &Collector{Recorder: rec}
	dg := []byte(stsExample)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		c.Handle(ctx, dg)
	}
	rec.Close(ctx)
	if c.Stats().Sessions != rec.Stats().Written {
		b.Fatalf("%+v %+v", c.Stats(), rec.Stats())
	}
}

// mixDatagrams are the datagrams of bench/sender: over the given number
// of domains, one in five an MTA-STS failure (certificate expired, seven
// receiving IPs), two in five MTA-STS successes, two in five
// no-policy-found.
func mixDatagrams(n, domains int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		d := fmt.Sprintf("d%05d.example", i%domains)
		var pol string
		switch i % 5 {
		case 0:
			pol = `{"policy-type":2,"policy-domain": "` + d + `","policy-string":["version: STSv1","mode: enforce","mx: mx.` + d + `","max_age: 86400"],"mx-host":["mx.` + d + `"],` +
				`"failure-details":[{"c":204,"s": "192.0.2.1","n": "mx.` + d + `","r": "198.51.100.` + strconv.Itoa(i%7) + `","a": "certificate has expired"}],"t":1,"f":1}`
		case 1, 2:
			pol = `{"policy-type":2,"policy-domain": "` + d + `","policy-string":["version: STSv1","mode: enforce","mx: mx.` + d + `","max_age: 86400"],"mx-host":["mx.` + d + `"],"t":0,"f":0}`
		default:
			pol = `{"policy-type":9,"policy-domain": "` + d + `","t":0,"f":0}`
		}
		out[i] = []byte(`{"dpv": "1","d": "` + d + `","pr": "v=TLSRPTv1; rua=mailto:tlsrpt@` + d + `","policies":[` + pol + `]}`)
	}
	return out
}

// BenchmarkCollectMix: bench/sender's datagrams (1,000 domains) through
// the parser, the Recorder and the SQLite store, every result committed
// before the clock stops; ns/op is per datagram, wall clock (the
// Recorder's writer runs on another goroutine).
func BenchmarkCollectMix(b *testing.B) {
	st, err := outgoing.OpenSQLite(context.Background(), filepath.Join(b.TempDir(), "s.db"), outgoing.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	rec := outgoing.NewRecorder(st, outgoing.RecorderOptions{MaxWait: time.Minute})
	c := &Collector{Recorder: rec}
	dgs := mixDatagrams(10000, 1000)
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c.Handle(ctx, dgs[i%len(dgs)])
		i++
	}
	if err := rec.Close(ctx); err != nil {
		b.Fatal(err)
	}
	if s := c.Stats(); s.Sessions != uint64(i) || rec.Stats().Written != uint64(i) {
		b.Fatalf("%+v %+v", s, rec.Stats())
	}
}

// BenchmarkParse: the parser alone.
func BenchmarkParse(b *testing.B) {
	dg := []byte(stsExample)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(dg); err != nil {
			b.Fatal(err)
		}
	}
}

type countRecorder struct{ n atomic.Uint64 }

func (c *countRecorder) Record(context.Context, outgoing.Result) error { c.n.Add(1); return nil }

// BenchmarkServe: the read side, bench/sender's datagrams sent over a
// Unix datagram socket (blocking sends, one sender) into Serve, with a
// Recorder that only counts.
func BenchmarkServe(b *testing.B) {
	path := filepath.Join(b.TempDir(), "s")
	conn, err := Listen(path, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	rec := &countRecorder{}
	c := &Collector{Recorder: rec}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Serve(ctx, conn) }()
	out, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	dgs := mixDatagrams(10000, 1000)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if _, err := out.Write(dgs[n%len(dgs)]); err != nil {
			b.Fatal(err)
		}
		n++
	}
	for i := 0; c.Stats().Datagrams < uint64(n) && i < 100000; i++ {
		time.Sleep(100 * time.Microsecond)
	}
	cancel()
	if err := <-done; err != nil || rec.n.Load() != uint64(n) {
		b.Fatalf("Serve %v, %d of %d recorded", err, rec.n.Load(), n)
	}
}
