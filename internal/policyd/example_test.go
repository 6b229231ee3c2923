package policyd_test

import (
	"context"
	"fmt"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/policyd"
	"github.com/mailsts/mailsts/mtasts"
)

// A Responder with an override; the Decision explains the answer.
func ExampleResponder() {
	fake := &dnsresolve.Fake{} // no DNS data: no DANE, no MTA-STS
	r := &policyd.Responder{
		Cache: &mtasts.Cache{Client: &mtasts.Client{DNS: fake}},
		DNS:   fake,
	}
	err := r.SetRules(&policyd.Rules{Overrides: []policyd.Override{
		{Domain: "partner.example", Action: policyd.ActionEnforce, MX: []string{"*.mx.partner.example"}, Reason: "contract"},
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, key := range []string{"partner.example", ".partner.example", "other.example"} {
		reply, d := r.Answer(context.Background(), "postfix", key)
		fmt.Printf("%s → %s %q (%s)\n", key, reply.Status, reply.Data, d.Source)
	}
	// Output:
	// partner.example → OK "secure match=.mx.partner.example servername=hostname" (override)
	// .partner.example → NOTFOUND "" (key)
	// other.example → NOTFOUND "" (none)
}
