package httpapi

import (
	"testing"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/ingest"
	"github.com/mailsts/mailsts/internal/reports/reportstest"
)

func newIngester(st reports.Store, mode ingest.DKIMMode, r dnsresolve.Resolver) *ingest.Ingester {
	return &ingest.Ingester{Store: st, DKIM: mode, Resolver: r, Now: reportstest.FixedNow}
}

func mustOutcome(t *testing.T, res ingest.Result, err error, want ingest.Outcome) {
	t.Helper()
	if err != nil {
		t.Fatalf("ingest: %v", err)
	}
	if res.Outcome != want {
		t.Fatalf("outcome %s, want %s (%+v)", res.Outcome, want, res)
	}
}
