package dnsupdate

import (
	"bytes"
	"context"
	"fmt"

	"github.com/mailsts/mailsts/mtasts"
)

// PolicyServed returns a Ready for Change.PolicyServed: it fetches the
// policy of domain the way a sender does, through c (a certificate valid
// for mta-sts.<domain> under c.RootCAs, no redirect, status 200,
// text/plain, size cap; RFC 8461 §3.3), and requires the body to be want,
// byte for byte, so the id about to be published names the policy senders
// will get.
func PolicyServed(c *mtasts.Client, domain string, want []byte) Ready {
	return func(ctx context.Context) error {
		res, err := c.FetchRaw(ctx, domain)
		if err != nil {
			return err
		}
		if !bytes.Equal(res.Body, want) {
			return fmt.Errorf("mta-sts.%s serves a policy other than the one to announce (%d bytes, want %d)", domain, len(res.Body), len(want))
		}
		return nil
	}
}
