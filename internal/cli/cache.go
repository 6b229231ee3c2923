package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/policyd"
	"github.com/mailsts/mailsts/internal/stscache"
	"github.com/mailsts/mailsts/mtasts"
	"github.com/mailsts/mailsts/tlsrpt/result"
)

var cacheCommand = command{
	name:    "cache",
	summary: "list, show, purge, warm, export or check the status of policyd's MTA-STS cache",
	run:     runCache,
}

const cacheHelp = `
Operates on the policy cache policyd uses, found from the same --config,
--state-dir and --cache flags (default: the SQLite file under the state
directory).

Subcommands:
  list [--json]         table of cached domains (domain, mode, id, fetched, expires, last error);
                        --json: JSON Lines, as export
  show [--json] DOMAIN  everything cached for one domain
  purge DOMAIN...       forget domains (purge --all: every entry); running
                        daemons drop them too and fetch them again when asked
  warm FILE             fetch the policies of the domains in FILE (one per line, # comments)
  export                every entry as JSON Lines
  import --from-resolver FILE|URL
                        copy the policies postfix-mta-sts-resolver cached
                        (its SQLite file, read only, or a redis://, rediss://
                        or unix:// URL of its Redis database) into this cache
  status [--json]       which store is configured and in use, its path, entries,
                        whether it is durable and writable by you, damaged
                        files set aside, and what the running policyd recorded
                        (its status file, policyd-status.json in the state
                        directory); changes nothing

Every subcommand but status opens the SQLite file as policyd does: a
damaged file is set aside (FILE.damaged-TIME) and rebuilt from what can be
read, with an ERROR line; if a running policyd uses the file (its status
file says so), they refuse instead (exit 2): restart policyd to repair it. Run as
root in a state directory owned by another user, the files created belong
to that user; better, run as that user (sudo -u mailsts mailsts cache ...).

Purging reaches running daemons without a restart. SQLite: the purge is
logged in the file, and each policyd using it reads the log every 2 s and
drops the purged domains from memory. Redis: every policyd on the prefix is
told at once (Pub/Sub); one that lost its connection meanwhile finds the
purge's one-hour tombstone when it reconnects and drops the domain from
memory (it keeps the rest). A purged domain's policy is fetched
again at its next lookup. cache.type memory: each policyd's cache lives in its own process,
out of reach of this command, so every subcommand refuses (exit 2): it would
list, show, fill or purge an empty cache of its own. Restart policyd to empty
its cache.

Examples:
  mailsts cache list
  mailsts cache show gmail.com
  mailsts cache purge example.com example.net
  mailsts cache warm --concurrency 16 top-destinations.txt
  mailsts cache export > cache.jsonl
  mailsts cache import --from-resolver /var/lib/mta-sts/cache.db
  sudo -u mailsts mailsts cache status --json

Exit codes:
  0  done
  1  show: the domain is not cached; warm: some domains have no policy or failed;
     import: some records could not be read (skipped)
  2  the store could not be opened or failed; cache.type is memory or unknown in the configuration
  64 usage error: unknown subcommand or flag, a flag the subcommand does not take, a bad value
     (--cache bogus), missing or extra arguments
`

func runCache(ctx context.Context, env Env, args []string) int {
	fs := newFlagSet("cache", "mailsts cache [--config F] [--state-dir D] [--cache T] list [--json]|show [--json] DOMAIN|purge [DOMAIN...|--all]|warm FILE|export|import --from-resolver FILE|URL|status [--json]", cacheHelp, env.Stderr)
	var df daemonFlags
	df.register(fs)
	all := fs.Bool("all", false, "purge: every entry")
	concurrency := fs.Int("concurrency", 8, "warm: domains fetched at once")
	asJSON := fs.Bool("json", false, "list, show, status: print JSON (list as JSON Lines, like export); export writes JSON Lines only")
	fromResolver := fs.String("from-resolver", "", "import: postfix-mta-sts-resolver's cache, its SQLite `file` or a redis:// URL")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() == 0 {
		return usageError(env.Stderr, "cache", "missing subcommand: list, show, purge, warm, export, import or status")
	}
	sub := fs.Arg(0)
	// Flags may also follow the subcommand.
	if code := parseFlags(fs, fs.Args()[1:]); code >= 0 {
		return code
	}
	rest := fs.Args()
	usage := func(msg string) int {
		return usageError(env.Stderr, "cache "+sub, "%s", msg)
	}
	// Flags either work or are refused: a flag given to a subcommand it
	// does not apply to is a usage error.
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, o := range []struct {
		flag string
		subs []string
	}{{"all", []string{"purge"}}, {"concurrency", []string{"warm"}}, {"json", []string{"list", "show", "export", "status"}}, {"from-resolver", []string{"import"}}} {
		if set[o.flag] && !slices.Contains(o.subs, sub) && slices.Contains([]string{"list", "show", "purge", "warm", "export", "import", "status"}, sub) {
			return usage(fmt.Sprintf("--%s applies to %s only", o.flag, strings.Join(o.subs, ", ")))
		}
	}
	if sub == "export" && set["json"] && !*asJSON {
		return usage("export writes JSON Lines only; use list for a table")
	}
	if err := df.checkValues(fs); err != nil {
		return usage(err.Error())
	}
	switch sub {
	case "list", "export", "status":
		if len(rest) != 0 {
			return usage("no arguments expected")
		}
	case "show":
		if len(rest) != 1 {
			return usage("exactly one DOMAIN is required")
		}
	case "purge":
		if (len(rest) == 0) != *all {
			return usage("give DOMAIN... or --all")
		}
	case "warm":
		if len(rest) != 1 || *concurrency < 1 {
			return usage("exactly one FILE and --concurrency ≥ 1 are required")
		}
	case "import":
		if len(rest) != 0 || *fromResolver == "" {
			return usage("--from-resolver FILE|URL is required, and no arguments")
		}
	default:
		return usage("unknown subcommand")
	}
	log := slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg, err := df.load(fs, log)
	if err != nil {
		fmt.Fprintf(env.Stderr, "mailsts cache: %v\n", err)
		return ExitError
	}
	if !validCacheType(cfg.Cache.Type) {
		// From the configuration file: a configuration error, not usage.
		// Never guess (OpenCache would create a SQLite file).
		fmt.Fprintf(env.Stderr, "mailsts cache: cache.type %q is not sqlite, memory or redis\n", cfg.Cache.Type)
		return ExitError
	}
	if sub == "status" {
		return cacheStatus(ctx, env, cfg, *asJSON)
	}
	if code, refused := refuseRepairUnderDaemon(ctx, env, cfg, sub); refused {
		return code
	}
	st, err := policyd.OpenCache(ctx, cfg, policyd.StoreOptions{Getenv: env.getenv, NoFallback: true}, log)
	if err != nil {
		fmt.Fprintf(env.Stderr, "mailsts cache: %v\n", err)
		return ExitError
	}
	defer st.Close(context.WithoutCancel(ctx))
	if st.Kind() == stscache.KindMemory {
		fmt.Fprintf(env.Stderr, "mailsts cache %s: cache.type is memory: each running policyd holds its own cache, "+
			"out of reach of this command (restart policyd to empty it); use sqlite or redis to manage the cache from outside\n", sub)
		return ExitError
	}
	switch sub {
	case "list":
		if *asJSON {
			return cacheExport(ctx, env, st)
		}
		return cacheList(ctx, env, st)
	case "export":
		return cacheExport(ctx, env, st)
	case "show":
		return cacheShow(ctx, env, st, rest[0], *asJSON)
	case "purge":
		return cachePurge(ctx, env, st, rest, *all)
	case "import":
		return cacheImport(ctx, env, cfg, st, *fromResolver)
	default:
		return cacheWarm(ctx, env, cfg, st, rest[0], *concurrency, log)
	}
}

func entries(ctx context.Context, s mtasts.Store) ([]*mtasts.Entry, error) {
	var es []*mtasts.Entry
	err := s.Range(ctx, func(e *mtasts.Entry) bool { es = append(es, e); return true })
	slices.SortFunc(es, func(a, b *mtasts.Entry) int { return strings.Compare(a.Domain, b.Domain) })
	return es, err
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04Z")
}

func entryMode(e *mtasts.Entry) string {
	if e.Policy == nil {
		return "(none)"
	}
	return string(e.Policy.Mode)
}

func cacheList(ctx context.Context, env Env, s mtasts.Store) int {
	es, err := entries(ctx, s)
	if err != nil {
		fmt.Fprintf(env.Stderr, "mailsts cache list: %v\n", err)
		return ExitError
	}
	tw := tabwriter.NewWriter(env.Stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "DOMAIN\tMODE\tID\tFETCHED\tEXPIRES\tLAST ERROR")
	for _, e := range es {
		id := e.ID
		if id == "" {
			id = "-"
		}
		le := e.LastError
		if len(le) > 60 {
			le = le[:57] + "..."
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Domain, entryMode(e), id, fmtTime(e.FetchedAt), fmtTime(e.Expires()), le)
	}
	tw.Flush()
	return ExitOK
}

// exportEntry is one JSON Lines record of `cache export`.
type exportEntry struct {
	Domain        string    `json:"domain"`
	ID            string    `json:"id,omitempty"`
	Mode          string    `json:"mode,omitempty"`
	MX            []string  `json:"mx,omitempty"`
	MaxAge        int64     `json:"max_age,omitempty"`
	Policy        []string  `json:"policy,omitempty"`
	FetchedAt     time.Time `json:"fetched_at"`
	Expires       time.Time `json:"expires"`
	CheckedAt     time.Time `json:"checked_at"`
	NoPolicyUntil time.Time `json:"no_policy_until"`
	Failures      int       `json:"failures,omitempty"`
	FailedID      string    `json:"failed_id,omitempty"`
	LastError     string    `json:"last_error,omitempty"`
	LastUsed      time.Time `json:"last_used"`
}

func toExport(e *mtasts.Entry) exportEntry {
	x := exportEntry{Domain: e.Domain, ID: e.ID, FetchedAt: e.FetchedAt, Expires: e.Expires(), CheckedAt: e.CheckedAt,
		NoPolicyUntil: e.NoPolicyUntil, Failures: e.Failures, FailedID: e.FailedID, LastError: e.LastError, LastUsed: e.LastUsed}
	if p := e.Policy; p != nil {
		x.Mode, x.MX, x.MaxAge, x.Policy = string(p.Mode), p.MX, p.MaxAge, p.Lines()
	}
	return x
}

func cacheExport(ctx context.Context, env Env, s mtasts.Store) int {
	enc := json.NewEncoder(env.Stdout)
	var werr error
	err := s.Range(ctx, func(e *mtasts.Entry) bool {
		werr = enc.Encode(toExport(e))
		return werr == nil
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "mailsts cache export: %v\n", err)
		return ExitError
	}
	return ExitOK
}

func validCacheType(t string) bool { return t == "sqlite" || t == "memory" || t == "redis" }

func cacheShow(ctx context.Context, env Env, s mtasts.Store, domain string, asJSON bool) int {
	d, err := dnsresolve.Normalize(domain)
	if err != nil {
		return usageError(env.Stderr, "cache show", "%v", err)
	}
	e, err := s.Get(ctx, d)
	if err != nil {
		fmt.Fprintf(env.Stderr, "mailsts cache show: %v\n", err)
		return ExitError
	}
	if e == nil {
		fmt.Fprintf(env.Stdout, "%s: not cached\n", d)
		return ExitFailure
	}
	x := toExport(e)
	if asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(x); err != nil {
			return ExitError
		}
		return ExitOK
	}
	fmt.Fprintf(env.Stdout, "domain:          %s\nmode:            %s\nid:              %s\n", x.Domain, entryMode(e), x.ID)
	if e.Policy != nil {
		fmt.Fprintf(env.Stdout, "mx:              %s\nmax_age:         %d\n", strings.Join(x.MX, ", "), x.MaxAge)
	}
	fmt.Fprintf(env.Stdout, "fetched:         %s\nexpires:         %s\nchecked:         %s\nno policy until: %s\nlast used:       %s\n",
		fmtTime(e.FetchedAt), fmtTime(e.Expires()), fmtTime(e.CheckedAt), fmtTime(e.NoPolicyUntil), fmtTime(e.LastUsed))
	if e.Failures > 0 || e.LastError != "" {
		fmt.Fprintf(env.Stdout, "failures:        %d (id %q, last %s)\nlast error:      %s\n", e.Failures, e.FailedID, fmtTime(e.FailedAt), e.LastError)
	}
	return ExitOK
}

func cachePurge(ctx context.Context, env Env, st *stscache.Cache, args []string, all bool) int {
	// Check every name before deleting any.
	domains := make([]string, 0, len(args))
	for _, dom := range args {
		d, err := dnsresolve.Normalize(dom)
		if err != nil {
			return usageError(env.Stderr, "cache purge", "%q: %v", dom, err)
		}
		domains = append(domains, d)
	}
	// The cache tells running daemons (SQLite: its purge log; Redis: a
	// tombstone and an announcement).
	n, err := st.Purge(ctx, domains, all)
	if err != nil {
		fmt.Fprintf(env.Stderr, "mailsts cache purge: %v\n", err)
		return ExitError
	}
	fmt.Fprintf(env.Stdout, "purged %s\n", plural(n, "entry", "entries"))
	switch cs := st.Status(); cs.Kind {
	case stscache.KindSQLite:
		fmt.Fprintf(env.Stdout, "running policyd daemons using %s drop them from memory within a few seconds\n", cs.Where)
	case stscache.KindRedis:
		fmt.Fprintln(env.Stdout, "policyd daemons sharing this Redis prefix drop them from memory now")
	}
	return ExitOK
}

// maxWarmFile caps the domain list read by warm.
const maxWarmFile = 64 << 20

func readDomains(path string, stdin io.Reader) ([]string, error) {
	var r io.Reader
	if path == "-" && stdin != nil {
		r = stdin
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	var out []string
	sc := bufio.NewScanner(io.LimitReader(r, maxWarmFile))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return out, sc.Err()
}

func cacheWarm(ctx context.Context, env Env, cfg *policyd.Config, s mtasts.Store, path string, concurrency int, log *slog.Logger) int {
	domains, err := readDomains(path, env.Stdin)
	if err != nil {
		fmt.Fprintf(env.Stderr, "mailsts cache warm: %v\n", err)
		return ExitError
	}
	// The flags and file must make a valid configuration before anything
	// is fetched (a bad --dns is an error, not a failure of every domain).
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(env.Stderr, "mailsts cache warm: %v\n", err)
		return ExitError
	}
	client, err := policyd.NewClient(cfg, nil)
	if err != nil {
		fmt.Fprintf(env.Stderr, "mailsts cache warm: %v\n", err)
		return ExitError
	}
	// Only what the run learns reaches the shared store: its failures
	// never make a running daemon answer TEMP.
	cache := &mtasts.Cache{Client: client, Store: newWarmStore(s, nil), RefreshInterval: cfg.Cache.RefreshInterval, NegativeTTL: cfg.Cache.NegativeTTL, Logger: log}
	var found, none, failed atomic.Int64
	var outMu sync.Mutex // the workers share env.Stderr
	report := func(format string, a ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintf(env.Stderr, format, a...)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(concurrency)
	for _, d := range domains {
		g.Go(func() error {
			res, err := cache.Get(gctx, d)
			if err == nil && mtasts.Remembered(res.Err) {
				// An earlier attempt's outcome (a daemon's negative
				// cache or failure): warming means looking now. The
				// back-off of a failed fetch of the same policy id
				// still holds (RFC 8461 §3.3, STS-FETCH-7).
				res, err = cache.Refresh(gctx, d, false)
			}
			switch {
			case err != nil:
				failed.Add(1)
				report("%s: %v\n", d, err)
			case res.Policy != nil:
				found.Add(1)
			case res.Err != nil && mtasts.ResultType(res.Err) != result.NoPolicy:
				failed.Add(1)
				report("%s: %s\n", d, res.Err)
			default:
				none.Add(1)
			}
			return gctx.Err()
		})
	}
	if err := g.Wait(); err != nil {
		fmt.Fprintf(env.Stderr, "mailsts cache warm: %v\n", err)
		return ExitError
	}
	fmt.Fprintf(env.Stdout, "%s: %d with a policy, %d without, %d failed\n", plural(len(domains), "domain", "domains"), found.Load(), none.Load(), failed.Load())
	if failed.Load() > 0 || none.Load() > 0 {
		return ExitFailure
	}
	return ExitOK
}
