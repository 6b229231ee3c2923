package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/mailsts/mailsts/internal/metrics"
	"github.com/mailsts/mailsts/internal/outgoing"
	"github.com/mailsts/mailsts/internal/outgoing/libtlsrpt"
	"github.com/mailsts/mailsts/internal/outgoing/outbox"
	"github.com/mailsts/mailsts/internal/outgoing/postfixlog"
	"github.com/mailsts/mailsts/internal/policyd"
	"github.com/mailsts/mailsts/internal/reports"
)

const collectHelp = `
Collects what this host's MTA saw when it sent mail over TLS and builds one
TLS report (RFC 8460) per day and recipient domain.

It listens on a Unix datagram socket for the datagrams of sys4's libtlsrpt
(protocol version 1), which Postfix 3.10+ built with TLSRPT support sends
with these main.cf lines, unchanged from tlsrpt-collectd:
  smtp_tlsrpt_enable = yes
  smtp_tlsrpt_socket_name = /run/mailsts/tlsrpt.sock
Results go to the results store (send.db in the configuration; SQLite
tlsrpt-send.db in the state directory by default, or PostgreSQL shared by
every MTA that reports as one organisation).

For a Postfix without libtlsrpt (Debian 12 ships 3.7), --postfix-log
(send.postfix_log) follows the mail log across rotation and turns each
smtp(8) delivery attempt into a result: TLS sessions that delivered are
successes; "TLS is required, but was not offered", certificate
verification failures (expired, name mismatch, untrusted issuer) and
handshake failures are failures. Each attempt is joined with the policy
'mailsts policyd' answered for the domain (policyd.yml tlsrpt_results on
the same store); without one it counts under no-policy-found. --no-socket
then turns the datagram socket off.

Where Postfix logs only to the systemd journal (Debian 12 without
rsyslog), --postfix-journal (send.postfix_journal) reads the same lines
from journalctl (--follow --output=json, the syslog identifiers
postfix/smtp and postfix/cleanup, or send.postfix_journal_identifiers),
with the same results. The journal cursor is stored in the results store,
in the transaction that stores the results read before it: after a
restart or a crash the journal is read on from there, nothing lost and
nothing counted twice (the 15 minutes before it are read again, without
counting, to rejoin sessions in progress). Without a stored cursor it
starts at the journal's end. If journalctl exits it is run again after a
back-off. The collector's user must be allowed to read the system journal
(group systemd-journal or adm).

The same process builds the reports of each finished UTC day, after
send.delay plus a random share of send.spread past midnight, and once at
start for days left over. Each (domain, day) is claimed in the database,
so several nodes on one PostgreSQL build each report once. Built reports
go to the outbox; --report-dir (send.report_dir) also writes each as its
RFC 8460 file name. --once builds what is pending and exits, without the
socket. The outbox (delivery: in the configuration; SQLite
tlsrpt-outbox.db in the state directory by default) is delivered from by
this process too, every minute, unless --no-deliver (then run 'mailsts
tlsrpt outbox send' from a timer, or let another node deliver). Report
mail that goes out through this host's Postfix is recognised in the mail
log by its Message-ID and never counted itself.

--check-config validates the configuration and flags (the send: and
delivery: sections, the DKIM key, the log: settings), prints one line
and exits, opening nothing.

Malformed datagrams, other protocol versions and results a report could
not carry are counted and logged, never fatal. The counters are logged
every --stats-interval and at exit, and served to Prometheus on --metrics
(mailsts_tlsrpt_collect_*), with the outbox's delivery attempts by rua
scheme and outcome (mailsts_tlsrpt_outbox_*).

Examples:
  mailsts tlsrpt collect --config /etc/mailsts/reports.yml
  mailsts tlsrpt collect --socket /run/mailsts/tlsrpt.sock --org "Example Mail" --contact tlsrpt@example.net --report-dir /var/lib/mailsts/out
  mailsts tlsrpt collect --no-socket --postfix-log /var/log/mail.log --config /etc/mailsts/reports.yml
  mailsts tlsrpt collect --no-socket --postfix-journal --config /etc/mailsts/reports.yml
  mailsts tlsrpt collect --once --config /etc/mailsts/reports.yml

Exit codes:
  0  stopped by SIGTERM or SIGINT; with --once, every pending report was built
  1  with --once, some reports failed to build or enqueue (retried next run)
  2  the results store, the socket, the --postfix-log file or the --metrics
     listener could not be opened, journalctl was not found (--postfix-journal,
     also with --check-config), or the builder failed
  64 usage error: bad flags, a bad --db, a --config that cannot be read,
     organisation name or contact address missing or invalid while building,
     a delivery: section that cannot work (bad values, unreadable DKIM key)
`

func runTLSRPTCollect(ctx context.Context, env Env, args []string) int {
	fs := newFlagSet("tlsrpt collect", "mailsts tlsrpt collect [flags]", collectHelp, env.Stderr)
	config := fs.String("config", "", "YAML configuration `file` (its send: section)")
	db := fs.String("db", "", "results store: sqlite:`PATH` or postgres://… (default sqlite tlsrpt-send.db in the state directory)")
	socket := fs.String("socket", "", "Unix datagram socket `path` for libtlsrpt (default /run/mailsts/tlsrpt.sock)")
	socketMode := fs.String("socket-mode", "", "socket permissions in `octal` (default 0622)")
	org := fs.String("org", "", "organisation `name` in the reports")
	contact := fs.String("contact", "", "contact `address` in the reports; its domain is the submitter")
	postfixLog := fs.String("postfix-log", "", "follow this mail log `file` for smtp(8) delivery results (Postfix without libtlsrpt)")
	postfixJournal := fs.Bool("postfix-journal", false, "follow Postfix's log in the systemd journal for smtp(8) delivery results (no log file)")
	noSocket := fs.Bool("no-socket", false, "do not listen for libtlsrpt datagrams (with --postfix-log or --postfix-journal)")
	reportDir := fs.String("report-dir", "", "also write each built report into `DIR`")
	noBuild := fs.Bool("no-build", false, "only collect; leave building to other nodes")
	once := fs.Bool("once", false, "build the pending reports of finished days and exit (no socket)")
	metricsAddr := fs.String("metrics", "", "serve Prometheus /metrics on this `address` (keep it on loopback)")
	statsEvery := fs.Duration("stats-interval", time.Hour, "log the counters every `interval` (0: only at exit)")
	noDeliver := fs.Bool("no-deliver", false, "only build into the outbox; leave delivery to 'mailsts tlsrpt outbox send' or other nodes")
	var lf logFlags
	lf.register(fs, "info")
	check := checkConfigFlag(fs)
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() > 0 {
		return usageError(env.Stderr, "tlsrpt collect", "unexpected argument %q", fs.Arg(0))
	}
	if err := lf.check(); err != nil {
		return usageError(env.Stderr, "tlsrpt collect", "%v", err)
	}
	errf := func(code int, format string, a ...any) int {
		fmt.Fprintf(env.Stderr, "mailsts tlsrpt collect: "+format+"\n", a...)
		return code
	}
	full, err := reports.LoadConfig(*config)
	if err != nil {
		return errf(ExitUsage, "%v", err)
	}
	cfg := full.Send
	for _, s := range []struct{ flag, dst *string }{
		{db, &cfg.DB}, {socket, &cfg.Socket}, {socketMode, &cfg.SocketMode}, {org, &cfg.OrganizationName},
		{contact, &cfg.ContactInfo}, {reportDir, &cfg.ReportDir}, {postfixLog, &cfg.PostfixLog},
	} {
		if *s.flag != "" {
			*s.dst = *s.flag
		}
	}
	if *postfixJournal {
		cfg.PostfixJournal = true
	}
	if cfg.PostfixJournal && cfg.PostfixLog != "" {
		return usageError(env.Stderr, "tlsrpt collect", "--postfix-log and --postfix-journal read the same Postfix: choose one")
	}
	if cfg.Socket == "" {
		cfg.Socket = "/run/mailsts/tlsrpt.sock"
	}
	if cfg.SocketMode == "" {
		cfg.SocketMode = "0622"
	}
	mode, err := strconv.ParseUint(cfg.SocketMode, 8, 32)
	if err != nil || mode > 0o777 {
		return errf(ExitUsage, "socket mode %q: want octal permissions such as 0622", cfg.SocketMode)
	}
	build := (cfg.Build == nil || *cfg.Build) && !*noBuild
	if *once {
		build = true
	}
	full.Log = lf.apply(full.Log)
	if err := full.Log.Validate(); err != nil {
		return errf(ExitUsage, "%v", err)
	}
	// Built reports go to the outbox, whose workers (here, unless
	// --no-deliver) send them to every rua of the domain.
	deliver := !*noDeliver && !*once
	if *noSocket && cfg.PostfixLog == "" && !cfg.PostfixJournal && !build && !deliver {
		// A daemon that would collect, build and deliver nothing is a
		// mistake, not a configuration: say so instead of running idle.
		return usageError(env.Stderr, "tlsrpt collect", "nothing to do: --no-socket without --postfix-log or --postfix-journal collects nothing, and building and delivering are off")
	}
	log, _ := newLog(env.Stderr, full.Log)
	stateDir := policyd.DefaultStateDir(env.getenv)
	var journal *postfixlog.Journal
	if cfg.PostfixJournal && !*once {
		host, _ := os.Hostname()
		journal = &postfixlog.Journal{Journalctl: cfg.Journalctl, Identifiers: cfg.PostfixJournalIdentifiers,
			Source: "postfix-journal " + host, Logger: log, ReportMessageID: outbox.IsReportMessageID}
		if _, err := journal.Check(); err != nil {
			return errf(ExitError, "postfix journal: %v", err)
		}
	}
	if *check {
		if build {
			probe := &outgoing.Builder{OrganizationName: cfg.OrganizationName, ContactInfo: cfg.ContactInfo}
			if err := probe.CheckIdentity(); err != nil {
				return errf(ExitUsage, "%v", err)
			}
		}
		if build || deliver {
			if _, err := NewOutbox(full, nil, log); err != nil {
				return errf(ExitUsage, "%v", err)
			}
		}
		return configOK(env.Stdout, "tlsrpt collect", "results %s, outbox %s, socket %s, postfix log %q, postfix journal %t, build %t, deliver %t, log %s/%s",
			redactDB(cmpOr(cfg.DB, "sqlite:"+filepath.Join(stateDir, outgoing.DefaultFile))),
			redactDB(cmpOr(full.Delivery.DB, "sqlite:"+filepath.Join(stateDir, outbox.DefaultFile))),
			map[bool]string{true: "off", false: cfg.Socket}[*noSocket], cfg.PostfixLog, cfg.PostfixJournal, build, deliver, full.Log.Level, full.Log.Format)
	}
	if cfg.ReportDir != "" {
		if err := os.MkdirAll(cfg.ReportDir, 0o750); err != nil {
			return errf(ExitError, "report directory: %v", err)
		}
	}
	var ob *outbox.Outbox
	if build || deliver {
		obStore, err := outbox.Open(ctx, full.Delivery.DB, stateDir)
		if errors.Is(err, outbox.ErrBadSpec) {
			return errf(ExitUsage, "delivery.db %v", err)
		}
		if err != nil {
			return errf(ExitError, "%v", err)
		}
		defer obStore.Close()
		if ob, err = NewOutbox(full, obStore, log); err != nil {
			return errf(ExitUsage, "%v", err)
		}
	}
	var sink outgoing.Sink
	if build {
		sink = collectSink(cfg, ob)
	}
	st, err := outgoing.Open(ctx, cfg.DB, stateDir, outgoing.Options{MaxDetails: cfg.MaxDetails, Logger: log})
	if errors.Is(err, outgoing.ErrBadSpec) {
		return errf(ExitUsage, "--db %v", err)
	}
	if err != nil {
		return errf(ExitError, "%v", err)
	}
	defer st.Close()
	keep := cfg.KeepDays
	if keep <= 0 {
		keep = 30
	}
	b := &outgoing.Builder{Store: st, Sink: sink, OrganizationName: cfg.OrganizationName, ContactInfo: cfg.ContactInfo,
		Node: cfg.Node, Delay: cfg.Delay, Logger: log}
	spread := cfg.Spread
	if spread == 0 {
		spread = outgoing.DefaultSpread
	}
	if *once {
		s, err := b.RunOnce(ctx)
		fmt.Fprintf(env.Stdout, "built %d, failed %d, held by other nodes %d\n", s.Built, s.Failed, s.Claimed)
		switch {
		case errors.Is(err, outgoing.ErrConfig):
			return errf(ExitUsage, "%v", err)
		case err != nil:
			return errf(ExitError, "%v", err)
		case s.Failed > 0:
			return ExitFailure
		}
		return ExitOK
	}
	if build {
		// Refuse a configuration that can never build a report now,
		// not at the first midnight.
		if err := b.Check(); err != nil {
			return errf(ExitUsage, "%v", err)
		}
	}
	var conn *net.UnixConn
	if !*noSocket {
		conn, err = libtlsrpt.Listen(cfg.Socket, os.FileMode(mode))
		if err != nil {
			return errf(ExitError, "%v", err)
		}
		defer os.Remove(cfg.Socket)
	}
	var follower *postfixlog.Follower
	if cfg.PostfixLog != "" {
		if _, err := os.Stat(cfg.PostfixLog); err != nil {
			return errf(ExitError, "postfix log: %v", err)
		}
	}
	// The reader may wait for the database longer than an MTA would:
	// meanwhile the socket's buffer holds the datagrams, so a short
	// stall (a WAL checkpoint) loses nothing.
	rec := outgoing.NewRecorder(st, outgoing.RecorderOptions{Buffer: cfg.Buffer, MaxWait: 2 * time.Second, Logger: log})
	col := &libtlsrpt.Collector{Recorder: rec, Logger: log}
	if cfg.PostfixLog != "" {
		follower = &postfixlog.Follower{Path: cfg.PostfixLog, Recorder: rec, Answers: st, Logger: log,
			ReportMessageID: outbox.IsReportMessageID}
	}
	if journal != nil {
		// The journal's results and cursor go through the same
		// Recorder, the cursor stored with them.
		journal.Recorder, journal.Cursors, journal.Answers = rec, st, st
	}
	logStats := func(msg string) {
		s, r := col.Stats(), rec.Stats()
		args := []any{"datagrams", s.Datagrams, "sessions", s.Sessions, "malformed", s.Malformed, "too_large", s.TooLarge,
			"other_version", s.OtherVersion, "no_version", s.NoVersion, "unknown_codes", s.UnknownCodes,
			"details_on_success", s.DetailsOnSuccess, "count_mismatch", s.CountMismatch, "invalid", s.Invalid,
			"dropped", s.Dropped, "written", r.Written, "lost", r.Lost}
		if follower != nil {
			ls := follower.Stats()
			args = append(args, "log_lines", ls.Lines, "log_sessions", ls.Sessions, "log_failures", ls.Failures,
				"log_unjoined", ls.Unjoined, "log_refused", ls.Refused, "log_rotations", ls.Rotations)
		}
		if journal != nil {
			ls, js := journal.Stats(), journal.JournalStats()
			args = append(args, "log_lines", ls.Lines, "log_sessions", ls.Sessions, "log_failures", ls.Failures,
				"log_unjoined", ls.Unjoined, "log_refused", ls.Refused, "journal_entries", js.Entries,
				"journal_skipped", js.Skipped, "journalctl_restarts", js.Restarts)
		}
		log.Info(msg, args...)
	}
	log.Info("tlsrpt collect: started", "socket", conn != nil, "postfix_log", cfg.PostfixLog, "postfix_journal", cfg.PostfixJournal, "store", st.Backend(), "build", build, "deliver", deliver)
	g, gctx := errgroup.WithContext(ctx)
	if *metricsAddr != "" {
		reg := prometheus.NewRegistry()
		src := metrics.SendSources{Collector: col.Stats, Recorder: rec.Stats}
		if follower != nil {
			src.Log = follower.Stats
		}
		if journal != nil {
			src.Log, src.Journal = journal.Stats, journal.JournalStats
		}
		if err := metrics.RegisterSend(reg, src); err != nil {
			return errf(ExitError, "metrics: %v", err)
		}
		if ob != nil {
			om, err := metrics.NewOutbox(reg)
			if err != nil {
				return errf(ExitError, "metrics: %v", err)
			}
			ob.Observer = om
		}
		ln, err := net.Listen("tcp", *metricsAddr)
		if err != nil {
			return errf(ExitError, "metrics listener: %v", err)
		}
		g.Go(func() error { return metrics.Serve(gctx, ln, reg, false, 5*time.Second, log) })
	}
	if conn != nil {
		g.Go(func() error { return col.Serve(gctx, conn) })
	}
	if follower != nil {
		g.Go(func() error { return follower.Run(gctx) })
	}
	if journal != nil {
		// Run returns an error only without journalctl (checked above);
		// journalctl's exits are retried inside, the other sources go on.
		g.Go(func() error { return journal.Run(gctx) })
	}
	if deliver {
		g.Go(func() error { return ob.Run(gctx, time.Minute) })
	}
	if build {
		g.Go(func() error { return b.Schedule(gctx, spread, keep) })
	} else {
		g.Go(func() error { outgoing.ExpireDaily(gctx, st, keep, nil, log); return nil })
	}
	if *statsEvery > 0 {
		g.Go(func() error {
			t := time.NewTicker(*statsEvery)
			defer t.Stop()
			for {
				select {
				case <-gctx.Done():
					return nil
				case <-t.C:
					logStats("tlsrpt collect: counters")
				}
			}
		})
	}
	err = g.Wait()
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if cerr := rec.Close(cctx); cerr != nil {
		log.Error("tlsrpt collect: buffered results not written", "err", cerr)
	}
	logStats("tlsrpt collect: stopped")
	if err != nil {
		return errf(ExitError, "%v", err)
	}
	return ExitOK
}

// collectSink is where the builder hands built reports: the outbox, and
// also the report directory when one is set (written first, so that a
// report in the outbox is always on disk too).
func collectSink(cfg reports.SendConfig, ob *outbox.Outbox) outgoing.Sink {
	enqueue := func(ctx context.Context, r outgoing.BuiltReport) error { return ob.Enqueue(ctx, outbox.Report(r)) }
	if cfg.ReportDir == "" {
		return outgoing.SinkFunc(enqueue)
	}
	dir := outgoing.DirSink{Dir: cfg.ReportDir}
	return outgoing.SinkFunc(func(ctx context.Context, r outgoing.BuiltReport) error {
		if err := dir.Enqueue(ctx, r); err != nil {
			return err
		}
		return enqueue(ctx, r)
	})
}
