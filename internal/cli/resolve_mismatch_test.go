package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/testnet"
)

// Issue #10 item 9, STS-MX, RFC 8461 §4.1 and §5: when the live MX hosts
// fall outside an enforce policy's mx patterns, --explain says plainly
// what happens to mail, naming the hosts and the patterns: all mail is
// deferred when no MX host is left, and only the matching hosts get mail
// otherwise. A matching policy gets no warning.
func TestResolveExplainMXMismatch(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	partial := testnet.Domain{
		Name:   "partial.example",
		STSTXT: [][]string{{"v=STSv1; id=p1"}},
		Policy: &testnet.PolicyHost{Body: "version: STSv1\nmode: enforce\nmx: mx1.partial.example\nmax_age: 86400\n"},
		MX: []testnet.MXHost{
			{Name: "mx1.partial.example", Pref: 10},
			{Name: "mx2.partial.example", Pref: 20},
		},
	}
	none := testnet.Domain{
		Name:   "moved.example",
		STSTXT: [][]string{{"v=STSv1; id=m1"}},
		Policy: &testnet.PolicyHost{Body: "version: STSv1\nmode: enforce\nmx: mail.old-provider.example\nmx: *.old-provider.example\nmax_age: 86400\n"},
		MX: []testnet.MXHost{
			{Name: "mx1.new-provider.example", Pref: 10},
			{Name: "mx2.new-provider.example", Pref: 20},
		},
	}
	ok := testnet.Domain{
		Name:   "fine.example",
		STSTXT: [][]string{{"v=STSv1; id=f1"}},
		Policy: &testnet.PolicyHost{Body: "version: STSv1\nmode: enforce\nmx: *.fine.example\nmax_age: 86400\n"},
		MX:     []testnet.MXHost{{Name: "mx1.fine.example", Pref: 10}},
	}
	n, err := testnet.Start(ctx, &testnet.Scenario{Domains: []testnet.Domain{partial, none, ok}}, testnet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	explain := func(domain string) (string, resolveOutput) {
		t.Helper()
		args := append(append([]string{"resolve", "--explain"}, netArgs(n)...), domain)
		_, text, _ := run(t, args...)
		_, js, stderr := run(t, append([]string{"resolve", "--json"}, args[1:]...)...)
		var out resolveOutput
		if err := json.Unmarshal([]byte(js), &out); err != nil || out.Policyd == nil {
			t.Fatalf("%s: %v: %s %s", domain, err, js, stderr)
		}
		return text, out
	}

	text, out := explain("moved.example")
	want := "every MX host of moved.example fails the policy's mx patterns: Postfix will defer all mail to this domain until the policy or the MX records are fixed (MX hosts: mx1.new-provider.example, mx2.new-provider.example; policy mx patterns: mail.old-provider.example, *.old-provider.example)"
	if !strings.Contains(text, "Warning: "+want+".") {
		t.Errorf("moved.example: the text does not say that all mail is deferred:\n%s\nwant the line: Warning: %s.", text, want)
	}
	if out.Policyd.Warning != want {
		t.Errorf("moved.example: JSON warning %q, want %q", out.Policyd.Warning, want)
	}
	if d := out.Policyd.Decision; strings.Join(d.UnmatchedMX, " ") != "mx1.new-provider.example mx2.new-provider.example" ||
		strings.Join(d.MXPatterns, " ") != "mail.old-provider.example *.old-provider.example" || len(d.MXHosts) != 2 {
		t.Errorf("moved.example: decision %+v", d)
	}

	text, out = explain("partial.example")
	want = "1 of the 2 MX hosts of partial.example fail the policy's mx patterns: Postfix will not deliver to them, only to the other MX hosts (MX hosts: mx2.partial.example; policy mx patterns: mx1.partial.example)"
	if !strings.Contains(text, "Warning: "+want+".") || out.Policyd.Warning != want {
		t.Errorf("partial.example: want the warning %q, got %q in:\n%s", want, out.Policyd.Warning, text)
	}
	if strings.Contains(text, "defer all mail") {
		t.Errorf("partial.example: mail still goes to mx1, but the text says all of it is deferred:\n%s", text)
	}

	text, out = explain("fine.example")
	if out.Policyd.Warning != "" || strings.Contains(text, "Warning") || out.Policyd.Reply != "OK secure match=.fine.example servername=hostname" {
		t.Errorf("fine.example: %+v\n%s", out.Policyd, text)
	}
}
