package libtlsrpt

import (
	"context"
	"path/filepath"
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
