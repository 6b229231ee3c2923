package cli

import (
	"context"
	"fmt"
	"log/slog"
	"text/tabwriter"

	"github.com/mailsts/mailsts/internal/selftest"
)

var selftestCommand = command{
	name:    "selftest",
	summary: "prove what policyd answers Postfix, offline, against a fake Internet",
	run:     runSelftest,
}

const selftestHelp = `
Starts the fake Internet (DNS, HTTPS policy hosts, SMTP MX hosts) and a policy
daemon on loopback, then asks the daemon over real socketmap and tcp_table
connections what Postfix would get for each scenario: enforce, testing (with
and without strict_testing), none, no record, DANE, fetch failures with and
without a cached policy, DNS failure (TEMP, then no policy), Postfix key forms,
and MX hosts that moved without a policy id change. A fake clock makes time
pass instantly. Needs no network and no configuration: it is the offline demo.

Examples:
  mailsts selftest
  mailsts selftest -v        # also show the daemon's log

Exit codes: 0 every scenario passed, 1 some failed, 2 the test could not run, 64 usage.
`

func runSelftest(ctx context.Context, env Env, args []string) int {
	fs := newFlagSet("selftest", "mailsts selftest [-v]", selftestHelp, env.Stderr)
	verbose := fs.Bool("v", false, "print the daemon's log (debug level) to stderr")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() != 0 {
		return usageError(env.Stderr, "selftest", "no arguments expected")
	}
	var logger *slog.Logger
	if *verbose {
		logger = slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	fmt.Fprintln(env.Stdout, "mailsts selftest: policyd against the fake Internet on loopback")
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\tscenario\tquery\tanswer\tref")
	failed := 0
	results, err := selftest.Run(ctx, selftest.Options{Logger: logger, Progress: func(r selftest.Result) {
		mark := "PASS"
		if !r.Pass {
			mark = "FAIL"
			failed++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", mark, r.Name, r.Query, r.Got, r.Ref)
		if !r.Pass {
			fmt.Fprintf(tw, "\t  want:\t\t%s\t\n", r.Want)
		}
	}})
	tw.Flush()
	if err != nil {
		fmt.Fprintf(env.Stderr, "mailsts selftest: %v\n", err)
		return ExitError
	}
	fmt.Fprintf(env.Stdout, "\n%d of %s passed.\n", len(results)-failed, plural(len(results), "scenario", "scenarios"))
	if failed > 0 {
		return ExitFailure
	}
	return ExitOK
}
