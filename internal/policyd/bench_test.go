package policyd

import (
	"context"
	"testing"

	"github.com/mailsts/mailsts/internal/stscache"
	"github.com/mailsts/mailsts/postfix"
)

// BenchmarkAnswerCacheHit measures the hot path: a cached enforce policy,
// through the tiered SQLite cache the daemon uses, with the MX check done.
func BenchmarkAnswerCacheHit(b *testing.B) {
	n := startNet(b, f2Domain())
	st := openCacheKind(b, stscache.KindSQLite)
	e := newEnvOn(b, n, st, nil)
	e.r.Touch = st.Touch
	ctx := context.Background()
	if rep, _ := e.r.Answer(ctx, "postfix", "example.com"); rep.Status != postfix.StatusOK {
		b.Fatal("no answer")
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rep := e.r.Lookup(ctx, "postfix", "example.com")
		if rep.Status != postfix.StatusOK {
			b.Fatal(rep)
		}
	}
}
