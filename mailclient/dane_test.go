package mailclient

import (
	"context"
	"encoding/hex"
	"fmt"
	"testing"

	"github.com/mailsts/mailsts/dane"
	"github.com/mailsts/mailsts/internal/testnet"
)

// DANE for mail clients: a self-signed certificate no PKIX root vouches
// for is validated by DNSSEC-signed TLSA records at _port._tcp.host
// (RFC 7672 §3 as RFC 6186 §6 allows), the latch records "dane", and the
// same TLSA records in an unsigned zone do not count.
func TestDANEValidation(t *testing.T) {
	t.Parallel()
	const host = "mail.dane-mua.test"
	n := ownNet(t, testnet.Domain{Name: "dane-mua.test", Secure: true, Clients: []testnet.ClientHost{{Name: host, Cert: testnet.CertSelfSigned}}})
	leaf, err := n.CA().Leaf(host, testnet.CertSelfSigned, 0)
	if err != nil {
		t.Fatal(err)
	}
	port := n.ClientPort(testnet.ServiceIMAPS)
	rec := dane.Record(3, 1, 1, leaf.Leaf)
	tlsa := fmt.Sprintf("_%d._tcp.%s. 300 IN TLSA 3 1 1 %s", port, host, hex.EncodeToString(rec.Data))
	set := func(secure bool) {
		t.Helper()
		if err := n.Set(testnet.Domain{Name: "dane-mua.test", Secure: secure, Records: []string{tlsa},
			Clients: []testnet.ClientHost{{Name: host, Cert: testnet.CertSelfSigned}}}); err != nil {
			t.Fatal(err)
		}
	}
	set(true)
	d := newDialer(t, n)
	ep := endpoint(n, IMAPS, host)
	s, err := d.Dial(context.Background(), "u@dane-mua.test", ep)
	if err != nil {
		t.Fatal(err)
	}
	s.Conn.Close()
	if s.Observation.Validation != DANE || s.Latch.Validation != DANE || !s.Latch.Validated {
		t.Errorf("observation %+v latch %+v", s.Observation, s.Latch)
	}
	set(false) // the zone loses DNSSEC: the TLSA records no longer count
	_, err = d.Dial(context.Background(), "u@dane-mua.test", ep)
	if re := refusal(t, err); !re.Verdict.Latched || re.Observation.Validation != NotValidated {
		t.Errorf("unsigned: %+v", re)
	}
}
