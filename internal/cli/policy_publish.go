package cli

import (
	"context"
	"fmt"

	"github.com/mailsts/mailsts/internal/checker"
	"github.com/mailsts/mailsts/internal/publish"
	"github.com/mailsts/mailsts/internal/publish/dnsupdate"
)

const policyPublishHelp = `
Publishes, for each hosted domain (all without DOMAIN), its DNS records
with DNS UPDATE (RFC 2136, signed with the TSIG key of publish.dns_update):
the _smtp._tls TXT record when records.rua is set, then the _mta-sts TXT
record with the id of the policy served now. It does what serve does after
every start and reload, once.

Nothing is written for a domain unless, first, its policy fetched from
https://mta-sts.<domain>/.well-known/mta-sts.txt as a sender fetches it
(valid certificate, no redirect, text/plain) is byte for byte the policy
whose id is announced (RFC 8461 §8.1), and, for mode enforce, every live
MX host matches the policy and passes STARTTLS with a valid certificate,
probed as 'mailsts policy status' does. Otherwise the domain is refused
with the reason, and the zone is left as it was. Each update replaces the
whole TXT RRset at its name in one atomic message.

--dry-run runs the same checks and prints what would be written, without
contacting the primary (publish.dns_update may then be absent).

Examples:
  mailsts policy publish
  mailsts policy publish --dry-run example.org
  mailsts policy publish --json example.org

Exit codes:
  0  every domain published (or would be, with --dry-run)
  1  some domain refused: its policy is not served yet, or an MX fails (listed)
  2  could not run (configuration), or the primary refused or did not answer
  64 usage error, or DOMAIN is not hosted
`

func runPolicyPublish(ctx context.Context, env Env, args []string) int {
	fs := newFlagSet("policy publish", "mailsts policy publish [--config F] [--dns ADDR] [--ca-file F] [--dry-run] [--json] [DOMAIN...]", policyPublishHelp, env.Stderr)
	var pf publishFlags
	pf.register(fs)
	dry := fs.Bool("dry-run", false, "run the checks and print what would be written; write nothing")
	asJSON := fs.Bool("json", false, "print a JSON array, one object per domain")
	smtpPort := fs.Int("smtp-port", checker.DefaultSMTPPort, "probe MX hosts on this `port` (for test networks)")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	cfg, set, doms, sc, code := pf.prepareCheck(ctx, env, "publish", fs, *smtpPort)
	if set == nil {
		return code
	}
	a := &publish.Announcer{Checker: sc, DryRun: *dry}
	if !*dry {
		u := cfg.Publish.DNSUpdate
		if u == nil {
			fmt.Fprintf(env.Stderr, "mailsts policy publish: %s: publish.dns_update is not configured; print the records with 'mailsts policy records', or check with --dry-run\n", pf.path())
			return ExitError
		}
		key, err := dnsupdate.LoadKey(u.KeyFile)
		if err != nil {
			fmt.Fprintf(env.Stderr, "mailsts policy publish: %v\n", err)
			return ExitError
		}
		a.Records = &dnsupdate.Updater{Server: u.Server, Zone: u.Zone, Key: key, TTL: u.TTL}
	}
	var all []publish.Announcement
	exit := ExitOK
	for _, d := range doms {
		an := a.Announce(ctx, d)
		all = append(all, an)
		switch an.Outcome {
		case publish.AnnounceRefused:
			exit = max(exit, ExitFailure)
		case publish.AnnounceFailed:
			exit = ExitError
		}
		if *asJSON {
			continue
		}
		switch an.Outcome {
		case publish.AnnouncePublished, publish.AnnounceWouldPublish:
			verb := "published"
			if an.Outcome == publish.AnnounceWouldPublish {
				verb = "would publish"
			}
			fmt.Fprintf(env.Stdout, "%s: %s (mode %s, id %s):\n", d.Name, verb, an.Mode, an.ID)
			for _, r := range an.Records {
				fmt.Fprintf(env.Stdout, "  %s. IN %s %q\n", r.Name, r.Type, r.Value)
			}
		default:
			fmt.Fprintf(env.Stdout, "%s: %s, nothing written (mode %s, id %s): %s\n", d.Name, an.Outcome, an.Mode, an.ID, an.Reason)
		}
	}
	if *asJSON {
		if c := writeJSON(env, all); c != ExitOK {
			return c
		}
	}
	return exit
}
