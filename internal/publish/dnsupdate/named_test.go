package dnsupdate

import (
	"context"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/publish/dnsupdate/dnsupdatetest"
)

// primary is the BIND primary of dnsupdatetest serving testZone, whose
// _mta-sts record starts as id old1.
type primary struct {
	*dnsupdatetest.Primary
	log any
}

const testZone = "example.test"

func startNamed(t *testing.T) *primary {
	t.Helper()
	p := dnsupdatetest.Start(t, dnsupdatetest.Options{Zone: testZone, Records: `_mta-sts IN TXT "v=STSv1; id=old1;"`})
	return &primary{Primary: p, log: p.Log}
}

func (p *primary) txt(t *testing.T, name string) []string { return p.TXT(t, name) }

func (p *primary) serial() (uint32, error) { return p.Serial() }

func (p *primary) updater(t *testing.T) *Updater {
	t.Helper()
	k, err := LoadKey(p.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	return &Updater{Server: p.Addr, Zone: p.Zone, Key: k, TTL: 60}
}

func bg(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}
