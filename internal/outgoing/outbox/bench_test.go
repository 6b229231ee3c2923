package outbox

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkPassHTTPS measures one delivery pass over b.N reports, each to
// one https rua on loopback: record lookup, lease claim, POST and outcome
// per report, with the default two workers.
func BenchmarkPassHTTPS(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			var s *Store
			if backend == "sqlite" {
				s = openSQLite(b)
			} else {
				s = openPostgres(b, 1)[0]
			}
			pc := newPostCounter(b)
			recs := map[string]string{}
			o := &Outbox{Store: s, HTTP: pc.poster(), Now: newClock(t0).Now, Config: Config{DisableSpread: true}}
			for i := range b.N {
				d := fmt.Sprintf("d%d.example", i)
				recs[d] = rua(pc.URL())
				if err := o.Enqueue(context.Background(), testReport(b, d)); err != nil {
					b.Fatal(err)
				}
			}
			o.Resolver = fakeDNS(recs)
			b.ResetTimer()
			res, err := o.RunOnce(context.Background())
			if err != nil || res.Sent != b.N {
				b.Fatalf("%+v %v", res, err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reports/s")
		})
	}
}
