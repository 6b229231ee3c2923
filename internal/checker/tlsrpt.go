package checker

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/tlsrpt"
)

// checkTLSRPT checks the _smtp._tls TXT record (RFC 8460 §3).
func (c *Checker) checkTLSRPT(ctx context.Context, d string) (sum TLSRPTSummary, fs findings) {
	name := "_smtp._tls." + d
	txts, _, err := c.dns.LookupTXT(ctx, name)
	switch {
	case errors.Is(err, dnsresolve.ErrNotFound):
		fs.add("tlsrpt.missing", SeverityWarn, "", "no TXT record at "+name+": senders send no TLS failure reports")
		return sum, fs
	case err != nil:
		fs.add("tlsrpt.dns-error", SeverityWarn, "", "the TXT lookup of "+name+" failed: "+err.Error())
		return sum, fs
	}
	rec, err := tlsrpt.SelectRecord(txts)
	switch {
	case errors.Is(err, tlsrpt.ErrNoRecord):
		fs.add("tlsrpt.missing", SeverityWarn, "", fmt.Sprintf("none of the %d TXT records at %s begins with v=TLSRPTv1: senders send no reports", len(txts), name))
		return sum, fs
	case errors.Is(err, tlsrpt.ErrMultipleRecords):
		fs.add("tlsrpt.multiple", SeverityFail, "", "several TXT records at "+name+" begin with v=TLSRPTv1; senders then send no reports (RFC 8460 §3)")
		return sum, fs
	case err != nil:
		fs.add("tlsrpt.syntax", SeverityFail, "", "the TLSRPT record is invalid: "+err.Error())
		return sum, fs
	}
	sum.Record = rec.String()
	usable, ignored := rec.UsableRUA()
	for _, u := range usable {
		sum.RUA = append(sum.RUA, u.Raw)
	}
	for _, ig := range ignored {
		fs.add("tlsrpt.rua-ignored", SeverityWarn, "", fmt.Sprintf("rua %q is ignored: %s", clip(ig.Raw), ig.Reason))
	}
	if len(usable) == 0 {
		fs.add("tlsrpt.no-rua", SeverityFail, "", "the TLSRPT record has no usable mailto: or https: rua; senders send no reports")
		return sum, fs
	}
	fs.add("tlsrpt.ok", SeverityOK, "", "reports go to "+strings.Join(sum.RUA, ", "))
	return sum, fs
}
