package outgoing

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mailsts/mailsts/tlsrpt/result"
)

// BenchmarkStoreAdd: one batch of 512 results over 100 domains per op,
// one in five a failure.
func BenchmarkStoreAdd(b *testing.B) {
	st := openSQLite(&testing.T{})
	defer st.Close()
	var rs []normalized
	for i := range 512 {
		r := ok(fmt.Sprintf("d%03d.example", i%100), day1)
		if i%5 == 0 {
			r.Failures = []Failure{{ResultType: result.CertificateExpired, ReceivingIP: "198.51.100.1"}}
		}
		n, err := normalize(r, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		rs = append(rs, newNormalized(n))
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := st.add(context.Background(), rs, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(rs)), "ns/result")
}

// BenchmarkNormalize: the per-result check (the report's Validate).
func BenchmarkNormalize(b *testing.B) {
	r := fail("example.com", day1, Failure{ResultType: result.CertificateExpired, ReceivingIP: "198.51.100.1"})
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := normalize(r, now); err != nil {
			b.Fatal(err)
		}
	}
}
