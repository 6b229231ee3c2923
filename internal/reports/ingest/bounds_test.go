package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"runtime"
	"testing"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/sqlstore/sqlstoretest"
	"github.com/mailsts/mailsts/tlsrpt"
)

// detailBomb is a gzip report whose policy holds n empty failure details:
// the shape that got `mailsts serve` OOM-killed at 3 GB (issue #11.3).
func detailBomb(t testing.TB, n int) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write([]byte(`{"organization-name":"Bomb","date-range":{"start-datetime":"2025-01-01T00:00:00Z","end-datetime":"2025-01-01T23:59:59Z"},` +
		`"contact-info":"x@bomb.example","report-id":"bomb","policies":[{"policy":{"policy-type":"sts","policy-string":["version: STSv1"],` +
		`"policy-domain":"example.org","mx-host":["mx.example.org"]},"summary":{"total-successful-session-count":1,"total-failure-session-count":1},` +
		`"failure-details":[{}`))
	chunk := bytes.Repeat([]byte(",{}"), 100000)
	for range n / 100000 {
		zw.Write(chunk)
	}
	zw.Write([]byte(`]}]}`))
	zw.Close()
	return buf.Bytes()
}

// TestIngestDetailBomb: one request with the 19 KB bomb of 6.5 million
// empty failure details, received, parsed and stored, allocates less than
// 96 MiB in all (it was OOM-killed at 3 GB), stores one merged detail and
// one report whose Show answer is small (it was 220 MB).
func TestIngestDetailBomb(t *testing.T) { // RPT-RECV-2
	// Not parallel: the allocation count is process-wide, and sequential
	// tests run alone.
	st := sqlstoretest.OpenSQLite(t)
	in := newIngester(st, DKIMOff, nil)
	body := detailBomb(t, 6_500_000)
	var res Result
	var err error
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	res, err = in.Body(context.Background(), bytes.NewReader(body), tlsrpt.MediaTypeGzip, int64(len(body)), reports.SourceHTTP, "192.0.2.1:1")
	runtime.ReadMemStats(&after)
	mustOutcome(t, res, err, OutcomeStored)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d-byte body, 6.5 million details: %.1f MiB allocated for the request", len(body), float64(alloc)/(1<<20))
	bound := uint64(96 << 20)
	if raceEnabled {
		bound *= 2
	}
	if alloc > bound {
		t.Errorf("the request allocated %d bytes, want < %d MiB", alloc, bound>>20)
	}
	got, err := st.Show(context.Background(), "bomb")
	if err != nil {
		t.Fatal(err)
	}
	if fd := got[0].Report.Policies[0].FailureDetails; len(fd) != 1 || !hasRepair(got[0].Repairs, "failure-details-merged") {
		t.Errorf("stored %d details, repairs %v", len(fd), got[0].Repairs)
	}
}
