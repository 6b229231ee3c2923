package mailbox

import (
	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/ingest"
	"github.com/mailsts/mailsts/internal/reports/reportstest"
)

func newIngester(st reports.Store, mode ingest.DKIMMode, r dnsresolve.Resolver) *ingest.Ingester {
	return &ingest.Ingester{Store: st, DKIM: mode, Resolver: r, Now: reportstest.FixedNow}
}
