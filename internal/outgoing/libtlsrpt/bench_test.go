package libtlsrpt

import (
	"context"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/outgoing"
	"github.com/mailsts/mailsts/internal/outgoing/libtlsrpt/libtlsrpttest"
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
	dgs := libtlsrpttest.Mix(10000, 1000)
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
	dgs := libtlsrpttest.Mix(10000, 1000)
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
