package sqlstore

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailsts/mailsts/internal/migrate"
	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/tlsrpt"
)

// dialect holds what differs between SQLite and PostgreSQL. Queries are
// written once with "?" placeholders; rebind turns them into "$n" for
// PostgreSQL. Text columns compare bytewise in both (PostgreSQL columns
// are COLLATE "C"), so ORDER BY gives the same order everywhere.
type dialect struct {
	name       string
	rebind     func(string) string
	migrations []string
	// contains formats "haystack contains needle" for two SQL expressions.
	contains func(haystack, needle string) string
	// sum formats the sum of a non-negative BIGINT column as a BIGINT
	// aggregate that saturates at 2^63-1 instead of failing on overflow.
	sum func(col string) string
	// domainRollup names the rollup for a query of some domains' rows
	// of the domain grain: SQLite is told to read its domain index
	// (without ANALYZE statistics, as on a new database, it scans the
	// primary key's day range instead), PostgreSQL plans by itself.
	domainRollup string
	// domainDayRollup is the same for grainDomainDay.
	domainDayRollup string
	// reportersRollup is the rollup for Reporters.
	reportersRollup string
	// versionTable holds the schema version; "" is PRAGMA user_version
	// (package migrate).
	versionTable string
	// lockKey serialises the writers of one report key (organization,
	// report-id) until the transaction ends (conflict.go).
	lockKey func(ctx context.Context, tx *sql.Tx, key string) error
	// detachWrites runs PutReports' statements without the caller's
	// cancellation, checked between reports instead (PutReports).
	detachWrites bool
	// foldLock serialises folds (fold.go) until the transaction ends;
	// skipLocked ends the fold's claim of pending reports (PostgreSQL:
	// FOR UPDATE SKIP LOCKED), forUpdate a read of a report's mark that
	// the transaction then changes (recount).
	foldLock              func(ctx context.Context, tx *sql.Tx) error
	skipLocked, forUpdate string
	// foldSQL are rollupFold's statements for this backend.
	foldSQL []string
	// returningID: insertID reads a new row's id through RETURNING id
	// (PostgreSQL) instead of the driver's LastInsertId (SQLite).
	returningID bool
}

// sqlStore implements Store over database/sql for both backends.
type sqlStore struct {
	d      dialect
	loc    string // file name or server, for errors and logs
	logger *slog.Logger
	w      *sql.DB // writes (SQLite: the single writer connection)
	r      *sql.DB // reads (SQLite: a query_only pool; PostgreSQL: same as w)
	// stmts are PutReports' statements, prepared on w at open
	// (stmtcache.go); nil in stores built without an Open function.
	stmts stmtCache
	// foldMu serialises this store's folds; folder runs them in the
	// background (nil in stores built without an Open function).
	foldMu sync.Mutex
	folder *folder
	// fw is the fold's own connection on SQLite (fold_aside.go; nil
	// on PostgreSQL and in stores built without an Open function),
	// aside the statements of its folds; writeMu hands SQLite's write
	// lock between PutReports and a fold's write transaction.
	fw      *sql.DB
	aside   *asidePlan
	writeMu sync.Mutex
	// asideHook, for tests, runs between a fold aside's read and its
	// write; asideFallbacks counts the folds aside that found a report
	// changed in between and ran in one transaction instead.
	asideHook      func()
	asideFallbacks atomic.Int64
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func (s *sqlStore) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s %s: %w", reports.ErrStorage, s.d.name, s.loc, fmt.Errorf(format, args...))
}

// Migrate implements Store: one transaction per step, append-only steps
// (package migrate).
func (s *sqlStore) Migrate(ctx context.Context) error {
	schema := migrate.Schema{Steps: s.d.migrations, Table: s.d.versionTable,
		Postgres: s.d.name == "postgres", LockKey: pgMigrationLock,
		Where: s.d.name + " " + s.loc, TooNew: reports.ErrSchemaTooNew, Err: reports.ErrStorage,
		Migrated: func(v int) { s.logger.Info("reports: migrated schema", "db", s.d.name, "where", s.loc, "version", v) }}
	return schema.Run(ctx, s.w)
}

// Raw encodings of the raw column.
const (
	rawGzip     = "gzip"     // the column holds gzip(raw)
	rawIdentity = "identity" // raw was already gzip; stored as received
)

// compressRaw returns the bytes to store and their encoding. Input that
// is already gzip (RFC 8460 §5.2 bodies) is kept as it came.
func compressRaw(raw []byte) ([]byte, string) {
	if bytes.HasPrefix(raw, []byte{0x1f, 0x8b}) {
		return raw, rawIdentity
	}
	var buf bytes.Buffer
	zw := rawWriters.Get().(*gzip.Writer)
	zw.Reset(&buf)
	zw.Write(raw) // writes to a bytes.Buffer do not fail
	zw.Close()
	zw.Reset(io.Discard) // buf is the caller's now
	rawWriters.Put(zw)
	return buf.Bytes(), rawGzip
}

// rawWriters are compressRaw's compressors, reused: a new one allocates
// about 1 MB of state, per stored mail report.
var rawWriters = sync.Pool{New: func() any {
	zw, _ := gzip.NewWriterLevel(io.Discard, gzip.BestCompression)
	return zw
}}

// maxRawOut caps decompression of a stored raw value: it was at most the
// input cap when stored, so more means the row is corrupt.
const maxRawOut = 64 << 20

func decompressRaw(b []byte, enc string) ([]byte, error) {
	if enc != rawGzip {
		return b, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(io.LimitReader(zr, maxRawOut))
}

// day is the UTC date of t as stored in the day columns.
func day(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// normDomain lowercases a domain and drops a trailing dot, so filters and
// groups treat Example.ORG and example.org. alike.
func normDomain(s string) string {
	return strings.ToLower(strings.TrimSuffix(strings.TrimSpace(s), "."))
}

// mxKey joins a policy's mx-host list into the grouping key.
func mxKey(hosts []string) string {
	hs := make([]string, len(hosts))
	for i, h := range hosts {
		hs[i] = normDomain(h)
	}
	return strings.Join(hs, ",")
}

func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "null"
	}
	return string(b)
}

// PutReport implements Store.
func (s *sqlStore) PutReport(ctx context.Context, in reports.Incoming) (reports.PutResult, error) {
	res, err := s.PutReports(ctx, []reports.Incoming{in})
	if err != nil {
		return reports.PutResult{}, err
	}
	return res[0], nil
}

// PutReports implements Store: one transaction, so one disk sync, for the
// whole batch.
func (s *sqlStore) PutReports(ctx context.Context, ins []reports.Incoming) ([]reports.PutResult, error) {
	for _, in := range ins {
		if in.Report == nil {
			return nil, fmt.Errorf("reports: PutReports: nil report")
		}
	}
	// SQLite: the statements run without ctx's cancellation, which is
	// checked between reports and before the commit instead. With a
	// context that can end (an HTTP request's, GroupCommit's timeout),
	// database/sql and the driver start a goroutine per statement to
	// interrupt it, and this transaction runs five to ten statements a
	// report: that was a tenth of the HTTP receiver's CPU per report
	// (bench/reports -http). A statement of this write path is short;
	// one waiting for another process's lock ends at the busy timeout.
	sctx := ctx
	if s.d.detachWrites {
		sctx = context.WithoutCancel(ctx)
	}
	// What needs no database is done before the transaction takes
	// SQLite's one writer (a fold or another batch may hold it
	// meanwhile, on the other core).
	pins := make([]putInput, len(ins))
	for i, in := range ins {
		pins[i] = newPutInput(in)
	}
	if s.fw != nil {
		s.writeMu.Lock()
		defer s.writeMu.Unlock()
	}
	tx, err := s.w.BeginTx(sctx, nil)
	if err != nil {
		return nil, s.errorf("begin: %w", err)
	}
	defer tx.Rollback()
	ps := &putStmts{}
	defer ps.close()
	pd := &pendingDetails{}
	// One writer per (organization, report-id) at a time, taken in key
	// order so that concurrent batches cannot deadlock (conflict.go).
	keys := make([]string, 0, len(ins))
	for _, in := range ins {
		keys = append(keys, in.Report.OrganizationName+"\x00"+in.Report.ReportID)
	}
	slices.Sort(keys)
	for _, k := range slices.Compact(keys) {
		if err := s.d.lockKey(ctx, tx, k); err != nil {
			return nil, s.errorf("lock report key: %w", err)
		}
	}
	out := make([]reports.PutResult, 0, len(ins))
	// putTx adds to the rollup the report each key counts.
	ru := rollup{}
	for i := range pins {
		if err := ctx.Err(); err != nil {
			return nil, s.errorf("store reports: %w", err)
		}
		res, err := s.putTx(sctx, tx, ps, pd, &pins[i], ru)
		if err != nil {
			return nil, err
		}
		out = append(out, res)
	}
	if err := s.flushDetails(sctx, tx, pd); err != nil {
		return nil, err
	}
	// The new reports are pending (fold.go); what goes to the rollup
	// here is a moved count's subtraction of a folded copy (recount),
	// which commits with the move.
	if err := s.flushRollup(sctx, tx, ru); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		// Ended before the commit: nothing is stored.
		return nil, s.errorf("store reports: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, s.errorf("commit: %w", err)
	}
	stored := 0
	for _, r := range out {
		if !r.Duplicate {
			stored++
		}
	}
	s.notePending(stored)
	return out, nil
}

// putStmts are PutReports' statements for one transaction, taken from
// the store's cache (stmtcache.go) when first used.
type putStmts struct{ report, policy, keyRows *sql.Stmt }

func (p *putStmts) close() {
	for _, st := range []*sql.Stmt{p.report, p.policy, p.keyRows} {
		if st != nil {
			st.Close()
		}
	}
}

func (s *sqlStore) prepare(ctx context.Context, tx *sql.Tx, st **sql.Stmt, q string) error {
	if *st != nil {
		return nil
	}
	p, err := s.txStmt(ctx, tx, q)
	if err != nil {
		return err
	}
	*st = p
	return nil
}

// insertID runs st, an insert of one row (insertsWithID), and returns
// the new row's id: on SQLite from the driver's LastInsertId (a
// RETURNING clause made SQLite keep the row aside until the statement
// ended, and database/sql's query path costs more than Exec's:
// bench/reports, 2,648–3,295 reports/s against 2,514–2,852), on
// PostgreSQL, which has no LastInsertId, through RETURNING id.
func (s *sqlStore) insertID(ctx context.Context, st *sql.Stmt, args ...any) (int64, error) {
	if s.d.returningID {
		var id int64
		err := st.QueryRowContext(ctx, args...).Scan(&id)
		return id, err
	}
	res, err := st.ExecContext(ctx, args...)
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

// insertsWithID are the inserts whose new id putTx reads (insertID).
var insertsWithID = map[string]bool{insertReportSQL: true, insertPolicySQL: true}

// The statements of putTx.
const (
	insertReportSQL = `INSERT INTO reports (organization, report_id, content_hash, contact_info,
		start_time, end_time, day, received_at, source, origin, submitter, dkim_domain, repairs, problems,
		successful, failed, raw, raw_encoding, raw_size, authenticated, conflict, counted, pending)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	insertPolicySQL = `INSERT INTO policies (report, seq, day, organization,
		policy_type, policy_domain, policy_string, mx_host, mx_hosts, successful, failed, details)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
)

// detailColumns is the number of columns (parameters) of a row in
// insertDetails.
const detailColumns = 17

// insertDetails is the statement inserting n failure_details rows.
func insertDetails(n int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO failure_details (policy, report, policy_seq, seq,
		day, organization, policy_type, policy_domain, mx_host, result_type, sending_mta_ip,
		receiving_mx_hostname, receiving_mx_helo, receiving_ip, failed_session_count,
		additional_information, failure_reason_code) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
	}
	return b.String()
}

// pendingDetails are the failure_details rows of a transaction's
// reports, written by flushDetails in statements of many rows (the
// chunk sizes of the rollup) instead of one statement per detail: a
// third of PutReports' statements were detail inserts. Their order, and
// so their ids, are those of one insert per detail.
type pendingDetails struct {
	args []any // detailColumns per row
}

func (p *pendingDetails) rows() int { return len(p.args) / detailColumns }

// flushDetails inserts the pending rows. It runs before anything that
// reads failure_details in the transaction (loading a stored report of
// the same key, conflict.go) and before the commit.
func (s *sqlStore) flushDetails(ctx context.Context, tx *sql.Tx, p *pendingDetails) error {
	args := p.args
	for len(args) > 0 {
		n := rollupChunkLen(len(args) / detailColumns)
		st, err := s.txStmt(ctx, tx, insertDetails(n))
		if err != nil {
			return err
		}
		_, err = st.ExecContext(ctx, args[:n*detailColumns]...)
		st.Close()
		if err != nil {
			return s.errorf("insert failure details: %w", err)
		}
		args = args[n*detailColumns:]
	}
	clear(p.args)
	p.args = p.args[:0]
	return nil
}

func (s *sqlStore) putTx(ctx context.Context, tx *sql.Tx, ps *putStmts, pd *pendingDetails, pin *putInput, ru rollup) (reports.PutResult, error) {
	in, r, d, hash := pin.Incoming, pin.Report, pin.day, pin.hash
	rows, err := s.keyRows(ctx, tx, ps, r.OrganizationName, r.ReportID)
	if err != nil {
		return reports.PutResult{}, err
	}
	if len(rows) > 0 && pd.rows() > 0 {
		// A report of this key is stored: what follows may load it
		// (conflict.go), with its details.
		if err := s.flushDetails(ctx, tx, pd); err != nil {
			return reports.PutResult{}, err
		}
	}
	for i, kr := range rows {
		if kr.hash != hash {
			continue
		}
		if in.Authenticated && !kr.authenticated {
			// The same content, now with a signature of its organisation.
			if _, err := tx.ExecContext(ctx, s.d.rebind(`UPDATE reports SET authenticated = 1, dkim_domain = ? WHERE id = ?`),
				in.DKIMDomain, kr.id); err != nil {
				return reports.PutResult{}, s.errorf("mark report authenticated: %w", err)
			}
			rows[i].authenticated = true
		}
		if err := s.recount(ctx, tx, rows, r, kr.id, ru); err != nil {
			return reports.PutResult{}, err
		}
		return reports.PutResult{ID: kr.id, Duplicate: true, Conflict: len(rows) > 1}, nil
	}
	if err := s.prepare(ctx, tx, &ps.report, insertReportSQL); err != nil {
		return reports.PutResult{}, err
	}
	id, err := s.insertID(ctx, ps.report,
		r.OrganizationName, r.ReportID, hash, r.ContactInfo, r.DateRange.Start.Unix(), r.DateRange.End.Unix(), d,
		in.ReceivedAt.UTC().Unix(), in.Source, in.Origin, in.Submitter, in.DKIMDomain, pin.repairs, pin.problems,
		pin.success, pin.failure, pin.raw, pin.enc, int64(len(in.Raw)), boolInt(in.Authenticated), boolInt(len(rows) > 0),
		boolInt(len(rows) == 0), boolInt(len(rows) == 0))
	if err != nil {
		return reports.PutResult{}, s.errorf("insert report: %w", err)
	}
	if err := s.prepare(ctx, tx, &ps.policy, insertPolicySQL); err != nil {
		return reports.PutResult{}, err
	}
	for i, p := range r.Policies {
		pol := p.Policy
		strs, mxs := pol.String, pol.MXHost
		if strs == nil {
			strs = []string{}
		}
		if mxs == nil {
			mxs = []string{}
		}
		pid, err := s.insertID(ctx, ps.policy, id, i, d, r.OrganizationName, pol.Type, normDomain(pol.Domain),
			jsonText(strs), mxKey(mxs), jsonText(mxs), p.Summary.TotalSuccessfulSessionCount,
			p.Summary.TotalFailureSessionCount, len(p.FailureDetails))
		if err != nil {
			return reports.PutResult{}, s.errorf("insert policy: %w", err)
		}
		if len(p.FailureDetails) == 0 {
			continue
		}
		dom, mx := normDomain(pol.Domain), mxKey(mxs)
		for j, fd := range p.FailureDetails {
			pd.args = append(pd.args, pid, id, i, j, d, r.OrganizationName, pol.Type, dom,
				mx, string(fd.ResultType), fd.SendingMTAIP, normDomain(fd.ReceivingMXHostname), fd.ReceivingMXHelo,
				fd.ReceivingIP, fd.FailedSessionCount, fd.AdditionalInformation, fd.FailureReasonCode)
		}
	}
	if len(rows) == 0 {
		// The first report of its key is the counted one, stored so
		// (the common case: no recount, no UPDATE), and pending: the
		// next fold adds it to the rollup (fold.go).
		return reports.PutResult{ID: id}, nil
	}
	rows = append(rows, keyRow{id: id, hash: hash, authenticated: in.Authenticated})
	if len(rows) > 1 {
		if _, err := tx.ExecContext(ctx, s.d.rebind(`UPDATE reports SET conflict = 1 WHERE report_id = ? AND organization = ?`),
			r.ReportID, r.OrganizationName); err != nil {
			return reports.PutResult{}, s.errorf("flag conflict: %w", err)
		}
	}
	if err := s.recount(ctx, tx, rows, r, id, ru); err != nil {
		return reports.PutResult{}, err
	}
	return reports.PutResult{ID: id, Conflict: len(rows) > 1}, nil
}

// putInput is a report to store with what PutReports computes of it
// before its transaction: the columns that need no database.
type putInput struct {
	reports.Incoming
	// hash names the content: RFC 8460 §5.3 (RPT-RECV-4):
	// (organization-name, report-id) names a report; a copy is a
	// duplicate only when its content is identical, else both are kept
	// as a conflict (conflict.go).
	hash              string
	day               string
	raw               []byte
	enc               string
	repairs, problems string
	success, failure  int64
}

func newPutInput(in reports.Incoming) putInput {
	p := putInput{Incoming: in, hash: contentHash(in.Report), day: day(in.Report.DateRange.Start)}
	p.raw, p.enc = compressRaw(in.Raw)
	p.success, p.failure = in.Report.Totals()
	repairs, problems := in.Repairs, in.Problems
	if repairs == nil {
		repairs = []tlsrpt.Repair{}
	}
	if problems == nil {
		problems = []tlsrpt.Problem{}
	}
	p.repairs, p.problems = jsonText(repairs), jsonText(problems)
	return p
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// PutRejected implements Store.
func (s *sqlStore) PutRejected(ctx context.Context, rj reports.Rejection) (int64, error) {
	raw, _ := compressRaw(rj.Raw)
	if bytes.HasPrefix(rj.Raw, []byte{0x1f, 0x8b}) {
		// Rejected gzip may be a bomb or broken: always wrap it, so the
		// column has one encoding.
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(rj.Raw)
		zw.Close()
		raw = buf.Bytes()
	}
	size := rj.Size
	if !rj.Truncated {
		size = int64(len(rj.Raw))
	}
	truncated := 0
	if rj.Truncated {
		truncated = 1
	}
	kept := int64(len(raw) + len(rj.Detail) + len(rj.Origin))
	var id int64
	// RETURNING gives no row when the key exists (DO NOTHING).
	err := s.w.QueryRowContext(ctx, s.d.rebind(`INSERT INTO rejected (received_at, source, origin, reason, detail,
		size, truncated, raw, sha256, input_key, kept) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (input_key) WHERE input_key <> '' DO NOTHING RETURNING id`),
		rj.ReceivedAt.UTC().Unix(), rj.Source, rj.Origin, rj.Reason, rj.Detail, size, truncated, raw,
		rj.SHA256, rj.Key, kept).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) && rj.Key != "" {
		if err := s.w.QueryRowContext(ctx, s.d.rebind(`SELECT id FROM rejected WHERE input_key = ?`), rj.Key).Scan(&id); err != nil {
			return 0, s.errorf("find rejected input %q: %w", rj.Key, err)
		}
		return id, nil
	}
	if err != nil {
		return 0, s.errorf("insert rejected: %w", err)
	}
	return id, nil
}

// TrimRejected implements Store: the newest rows whose kept bytes sum to
// at most maxBytes stay.
func (s *sqlStore) TrimRejected(ctx context.Context, maxBytes int64) (int64, error) {
	var total int64
	if err := s.w.QueryRowContext(ctx, `SELECT CAST(COALESCE(SUM(kept), 0) AS BIGINT) FROM rejected`).Scan(&total); err != nil {
		return 0, s.errorf("trim rejected: %w", err)
	}
	if total <= maxBytes {
		return 0, nil
	}
	var cutoff int64
	err := s.w.QueryRowContext(ctx, s.d.rebind(`SELECT id FROM (SELECT id, SUM(kept) OVER (ORDER BY id DESC) AS acc FROM rejected) t
		WHERE acc > ? ORDER BY id DESC LIMIT 1`), maxBytes).Scan(&cutoff)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, s.errorf("trim rejected: %w", err)
	}
	res, err := s.w.ExecContext(ctx, s.d.rebind(`DELETE FROM rejected WHERE id <= ?`), cutoff)
	if err != nil {
		return 0, s.errorf("trim rejected: %w", err)
	}
	n, _ := res.RowsAffected()
	if n > 0 {
		s.logger.Warn("reports: oldest rejected input deleted to stay within the byte budget", "rows", n, "budget", maxBytes)
	}
	return n, nil
}

// Prune implements Store. Rollup rows are keyed by the day of the
// reports they count, and every report of a day before Before goes, so
// deleting those rollup rows leaves exactly the sums of the reports kept.
func (s *sqlStore) Prune(ctx context.Context, p reports.Prune) (reports.PruneResult, error) {
	var res reports.PruneResult
	if p.Before.IsZero() {
		return res, fmt.Errorf("%w: prune needs a day", reports.ErrBadFilter)
	}
	// Pending reports are folded first, so the rollup rows counted are
	// the ones that go whatever a background fold does meanwhile, and a
	// dry run counts what the prune then deletes.
	if err := s.Fold(ctx); err != nil {
		if !p.DryRun {
			return res, err
		}
		// A dry run by a user who may only read the file still counts;
		// the rollup rows of pending reports are then not among them.
		s.logger.Warn("reports: prune dry run: pending reports not folded; their rollup rows are not counted", "err", err)
	}
	d := day(p.Before)
	y, m, dd := p.Before.UTC().Date()
	cut := time.Date(y, m, dd, 0, 0, 0, 0, time.UTC).Unix()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return res, s.errorf("begin: %w", err)
	}
	defer tx.Rollback()
	steps := []struct {
		n            *int64
		count, purge string
		arg          any
	}{
		{&res.Reports, `SELECT COUNT(*) FROM reports WHERE day < ?`, `DELETE FROM reports WHERE day < ?`, d},
		{&res.RollupRows, `SELECT COUNT(*) FROM summary_rollup WHERE day < ?`, `DELETE FROM summary_rollup WHERE day < ?`, d},
		{&res.Rejected, `SELECT COUNT(*) FROM rejected WHERE received_at < ?`, `DELETE FROM rejected WHERE received_at < ?`, cut},
	}
	for _, st := range steps {
		if p.DryRun {
			if err := tx.QueryRowContext(ctx, s.d.rebind(st.count), st.arg).Scan(st.n); err != nil {
				return res, s.errorf("prune: %w", err)
			}
			continue
		}
		r, err := tx.ExecContext(ctx, s.d.rebind(st.purge), st.arg)
		if err != nil {
			return res, s.errorf("prune: %w", err)
		}
		*st.n, _ = r.RowsAffected()
	}
	if p.DryRun {
		return res, nil
	}
	if err := tx.Commit(); err != nil {
		return res, s.errorf("prune: commit: %w", err)
	}
	s.logger.Info("reports: pruned", "before", d, "reports", res.Reports, "rollup_rows", res.RollupRows, "rejected", res.Rejected)
	return res, nil
}

// groupOrder maps Summary keys to the columns shared by policies and
// failure_details, in output order.
func groupOrder() []struct{ key, col string } {
	return []struct{ key, col string }{
		{reports.GroupDay, "day"},
		{reports.GroupPolicyDomain, "policy_domain"},
		{reports.GroupOrganization, "organization"},
		{reports.GroupMXHost, "mx_host"},
		{reports.GroupPolicyType, "policy_type"},
	}
}

// where builds the WHERE clause shared by the queries over policies and
// failure_details (alias a, may be empty).
func (s *sqlStore) where(f reports.Filter, a string, details bool) (string, []any) {
	if a != "" {
		a += "."
	}
	var conds []string
	var args []any
	if !f.Since.IsZero() {
		conds = append(conds, a+"day >= ?")
		args = append(args, day(f.Since))
	}
	if !f.Until.IsZero() {
		conds = append(conds, a+"day <= ?")
		args = append(args, day(f.Until))
	}
	if f.PolicyDomain != "" {
		conds = append(conds, a+"policy_domain = ?")
		args = append(args, normDomain(f.PolicyDomain))
	}
	if len(f.Domains) > 0 {
		conds = append(conds, a+"policy_domain IN ("+strings.TrimSuffix(strings.Repeat("?, ", len(f.Domains)), ", ")+")")
		for _, d := range f.Domains {
			args = append(args, normDomain(d))
		}
	}
	if f.Organization != "" {
		conds = append(conds, a+"organization = ?")
		args = append(args, f.Organization)
	}
	if f.MXHost != "" {
		mx := normDomain(f.MXHost)
		// TLSA policies name the MX host as their policy domain (RFC 8460
		// §3), STS policies list MX patterns in mx-host.
		c := "(" + s.d.contains("',' || "+a+"mx_host || ','", "?") + " OR " + a + "policy_domain = ?"
		args = append(args, ","+mx+",", mx)
		if details {
			c += " OR " + a + "receiving_mx_hostname = ?"
			args = append(args, mx)
		}
		conds = append(conds, c+")")
	}
	if details && f.SendingIP != "" {
		conds = append(conds, a+"sending_mta_ip = ?")
		args = append(args, f.SendingIP)
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

func validateFilter(f reports.Filter) error {
	if !f.Since.IsZero() && !f.Until.IsZero() && day(f.Until) < day(f.Since) {
		return fmt.Errorf("%w: until %s is before since %s", reports.ErrBadFilter, day(f.Until), day(f.Since))
	}
	if f.Limit < 0 {
		return fmt.Errorf("%w: negative limit", reports.ErrBadFilter)
	}
	if len(f.Domains) > reports.MaxFilterDomains {
		return fmt.Errorf("%w: more than %d domains", reports.ErrBadFilter, reports.MaxFilterDomains)
	}
	return nil
}

// Summary implements Store. It reads the rollup (see rollup.go) unless
// the filter needs the policy rows.
func (s *sqlStore) Summary(ctx context.Context, f reports.Filter) ([]reports.SummaryRow, error) {
	cols, byResult, err := summaryColumns(f)
	if err != nil {
		return nil, err
	}
	var q string
	var args []any
	if grain, ok := rollupGrain(f, cols, byResult); ok {
		// The rollup, and the reports not folded into it yet (fold.go)
		// from their own rows, in one statement (one snapshot: a fold
		// committing meanwhile moves reports from one part to the
		// other, and each is read once); summaryRows adds up the rows of
		// one group.
		q, args = s.summaryRollupQuery(f, cols, byResult, grain)
		// The pending reports' details through their policies: the
		// details have no index by report (rollupDroppedIndexes).
		pq, pargs := s.summaryRawQuery(f, cols, byResult, "report IN ("+pendingCond+")",
			"policy IN (SELECT id FROM policies WHERE report IN ("+pendingCond+"))", tagPending)
		q = q + " UNION ALL " + pq
		args = append(args, pargs...)
	} else {
		q, args = s.summaryRawQuery(f, cols, byResult, uncountedCond(f), uncountedCond(f), 0)
	}
	return s.summaryRows(ctx, q, args, cols, byResult)
}

// summaryRaw is Summary as a direct aggregation over the policy and
// failure rows, whatever the filter: the reference the tests compare the
// rollup with.
func (s *sqlStore) summaryRaw(ctx context.Context, f reports.Filter) ([]reports.SummaryRow, error) {
	cols, byResult, err := summaryColumns(f)
	if err != nil {
		return nil, err
	}
	q, args := s.summaryRawQuery(f, cols, byResult, uncountedCond(f), uncountedCond(f), 0)
	return s.summaryRows(ctx, q, args, cols, byResult)
}

// summaryColumns validates f and returns the grouped key columns (in
// groupOrder) and whether the result type is grouped too.
func summaryColumns(f reports.Filter) ([]string, bool, error) {
	if err := validateFilter(f); err != nil {
		return nil, false, err
	}
	groups := f.GroupBy
	if len(groups) == 0 {
		groups = reports.DefaultGroupBy()
	}
	var cols []string
	byResult := false
	for _, g := range groups {
		if g == reports.GroupResultType {
			byResult = true
			continue
		}
		found := false
		for _, o := range groupOrder() {
			if o.key == g {
				found = true
			}
		}
		if !found {
			return nil, false, fmt.Errorf("%w: unknown group-by key %q (want day, domain, org, mx, type or result)", reports.ErrBadFilter, g)
		}
	}
	for _, o := range groupOrder() {
		if slices.Contains(groups, o.key) {
			cols = append(cols, o.col)
		}
	}
	return cols, byResult, nil
}

// summaryRawQuery builds Summary's query as a direct aggregation over the
// policy and failure rows: used for the MX filter, which the rollup
// cannot answer, and by the tests as the reference for the rollup.
func (s *sqlStore) summaryRawQuery(f reports.Filter, cols []string, byResult bool, scope, detailScope string, tagBase int) (string, []any) {
	sel := ""
	grp := ""
	if len(cols) > 0 {
		sel = strings.Join(cols, ", ") + ", "
		grp = " GROUP BY " + strings.Join(cols, ", ")
	}
	var q string
	var args []any
	pw, pargs := s.where(f, "", false)
	and := func(w, cond string) string {
		if w == "" {
			return " WHERE " + cond
		}
		return w + " AND " + cond
	}
	// scope (detailScope for the failure details): one report per key
	// counts (conflict.go), or the pending reports only (fold.go).
	pw = and(pw, scope)
	tag := func(t int) string { return fmt.Sprintf(", %d", tagBase+t) }
	if !byResult {
		if f.ResultType != "" {
			pw = and(pw, "id IN (SELECT policy FROM failure_details WHERE result_type = ?)")
			pargs = append(pargs, f.ResultType)
		}
		q = `SELECT ` + sel + `'' AS result_type, COUNT(DISTINCT report), ` + s.d.sum("successful") + `, ` + s.d.sum("failed") + tag(tagTotal) + ` FROM policies` + pw + grp
		args = pargs
	} else {
		dw, dargs := s.where(f, "", false)
		dw = and(dw, detailScope)
		var parts []string
		if f.ResultType == "" || f.ResultType == reports.ResultSuccess {
			parts = append(parts, `SELECT `+sel+`'`+reports.ResultSuccess+`', COUNT(DISTINCT report), `+s.d.sum("successful")+`, 0`+tag(tagSuccess)+` FROM policies`+and(pw, "successful > 0")+grp)
			args = append(args, pargs...)
		}
		if f.ResultType == "" || f.ResultType == reports.ResultNoDetails {
			parts = append(parts, `SELECT `+sel+`'`+reports.ResultNoDetails+`', COUNT(DISTINCT report), 0, `+s.d.sum("failed")+tag(tagNoDetails)+` FROM policies`+and(pw, "failed > 0 AND details = 0")+grp)
			args = append(args, pargs...)
		}
		if f.ResultType != reports.ResultSuccess && f.ResultType != reports.ResultNoDetails {
			rgrp := " GROUP BY " + strings.Join(append(slices.Clone(cols), "result_type"), ", ")
			if f.ResultType != "" {
				dw = and(dw, "result_type = ?")
				dargs = append(dargs, f.ResultType)
			}
			parts = append(parts, `SELECT `+sel+`result_type, COUNT(DISTINCT report), 0, `+s.d.sum("failed_session_count")+tag(tagDetail)+` FROM failure_details`+dw+rgrp)
			args = append(args, dargs...)
		}
		q = strings.Join(parts, " UNION ALL ")
	}
	return q, args
}

// summaryRows runs a Summary query and sorts its rows. Each row ends
// with its part's tag (tagTotal…, plus tagPending for the pending
// reports' rows): a pending row is added to the row of the same group
// (keys, result type and tag) from the rollup, if any, with the sums
// saturating as in SQL. Rows of one part are distinct groups, so
// without pending reports nothing is merged.
func (s *sqlStore) summaryRows(ctx context.Context, q string, args []any, cols []string, byResult bool) ([]reports.SummaryRow, error) {
	rows, err := s.r.QueryContext(ctx, s.d.rebind(q), args...)
	if err != nil {
		return nil, s.errorf("summary: %w", err)
	}
	defer rows.Close()
	type group struct {
		row reports.SummaryRow
		tag int64
	}
	var out, pending []reports.SummaryRow
	var outTags, pendingTags []int64
	for rows.Next() {
		var row reports.SummaryRow
		dest := make([]any, 0, len(cols)+5)
		for _, c := range cols {
			switch c {
			case "day":
				dest = append(dest, &row.Day)
			case "policy_domain":
				dest = append(dest, &row.PolicyDomain)
			case "organization":
				dest = append(dest, &row.Organization)
			case "mx_host":
				dest = append(dest, &row.MXHost)
			case "policy_type":
				dest = append(dest, &row.PolicyType)
			}
		}
		var n, succ, fail sql.NullInt64
		var tag int64
		dest = append(dest, &row.ResultType, &n, &succ, &fail, &tag)
		if err := rows.Scan(dest...); err != nil {
			return nil, s.errorf("summary: %w", err)
		}
		row.Reports, row.Successful, row.Failed = n.Int64, succ.Int64, fail.Int64
		if tag >= tagPending {
			pending, pendingTags = append(pending, row), append(pendingTags, tag-tagPending)
			continue
		}
		out, outTags = append(out, row), append(outTags, tag)
	}
	if err := rows.Err(); err != nil {
		return nil, s.errorf("summary: %w", err)
	}
	if len(pending) > 0 {
		key := func(r reports.SummaryRow, tag int64) group {
			r.Reports, r.Successful, r.Failed = 0, 0, 0
			return group{r, tag}
		}
		at := make(map[group]int, len(out))
		for i, r := range out {
			at[key(r, outTags[i])] = i
		}
		for j, p := range pending {
			i, ok := at[key(p, pendingTags[j])]
			if !ok {
				out = append(out, p)
				continue
			}
			o := &out[i]
			o.Reports = tlsrpt.SaturatingAdd(o.Reports, p.Reports)
			o.Successful = tlsrpt.SaturatingAdd(o.Successful, p.Successful)
			o.Failed = tlsrpt.SaturatingAdd(o.Failed, p.Failed)
		}
	}
	// Groups of no report (an aggregate over no rows, or rollup rows
	// whose reports all moved to another copy) are left out.
	out = slices.DeleteFunc(out, func(r reports.SummaryRow) bool { return r.Reports == 0 })
	if len(out) == 0 {
		out = nil // as when no row came
	}
	if !byResult {
		for i := range out {
			if r := &out[i]; r.Successful+r.Failed > 0 {
				rate := float64(r.Successful) / float64(r.Successful+r.Failed)
				r.SuccessRate = &rate
			}
		}
	}
	// Sorted here, bytewise, so both backends give the same order: newest
	// day first, then the other keys.
	slices.SortFunc(out, func(a, b reports.SummaryRow) int {
		if c := strings.Compare(b.Day, a.Day); c != 0 {
			return c
		}
		for _, p := range [][2]string{{a.PolicyDomain, b.PolicyDomain}, {a.Organization, b.Organization},
			{a.MXHost, b.MXHost}, {a.PolicyType, b.PolicyType}, {a.ResultType, b.ResultType}} {
			if c := strings.Compare(p[0], p[1]); c != 0 {
				return c
			}
		}
		// Equal keys happen when a sender's detail uses a pseudo result
		// type's name: order by the sums so the order is total.
		return cmp.Or(cmp.Compare(a.Reports, b.Reports), cmp.Compare(a.Successful, b.Successful), cmp.Compare(a.Failed, b.Failed))
	})
	return out, nil
}

// Failures implements Store.
func (s *sqlStore) Failures(ctx context.Context, f reports.Filter) ([]reports.FailureRow, error) {
	if err := validateFilter(f); err != nil {
		return nil, err
	}
	w, args := s.where(f, "fd", true)
	if f.ResultType != "" {
		if w == "" {
			w = " WHERE "
		} else {
			w += " AND "
		}
		w += "fd.result_type = ?"
		args = append(args, f.ResultType)
	}
	if f.AuthenticatedOnly {
		if w == "" {
			w = " WHERE "
		} else {
			w += " AND "
		}
		w += "r.authenticated = 1"
	}
	if f.Cursor != "" {
		c, cargs, err := failuresAfter(f.Cursor)
		if err != nil {
			return nil, err
		}
		if w == "" {
			w = " WHERE "
		} else {
			w += " AND "
		}
		w += c
		args = append(args, cargs...)
	}
	args = append(args, f.LimitOrDefault())
	rows, err := s.r.QueryContext(ctx, s.d.rebind(`SELECT fd.day, fd.organization, r.report_id, fd.policy_type,
		fd.policy_domain, fd.mx_host, fd.result_type, fd.sending_mta_ip, fd.receiving_mx_hostname,
		fd.receiving_mx_helo, fd.receiving_ip, fd.failed_session_count, fd.additional_information,
		fd.failure_reason_code, r.authenticated, r.conflict, r.id, fd.policy_seq, fd.seq
		FROM failure_details fd JOIN reports r ON r.id = fd.report`+w+`
		ORDER BY fd.day DESC, fd.organization, r.report_id, r.id, fd.policy_seq, fd.seq LIMIT ?`), args...)
	if err != nil {
		return nil, s.errorf("failures: %w", err)
	}
	defer rows.Close()
	var out []reports.FailureRow
	for rows.Next() {
		var x reports.FailureRow
		var auth, conflict int64
		if err := rows.Scan(&x.Day, &x.Organization, &x.ReportID, &x.PolicyType, &x.PolicyDomain, &x.MXHost,
			&x.ResultType, &x.SendingMTAIP, &x.ReceivingMXHostname, &x.ReceivingMXHelo, &x.ReceivingIP,
			&x.FailedSessionCount, &x.AdditionalInformation, &x.FailureReasonCode, &auth, &conflict, &x.Position.ReportRow, &x.Position.PolicySeq, &x.Position.Seq); err != nil {
			return nil, s.errorf("failures: %w", err)
		}
		x.Authenticated, x.Conflict = auth != 0, conflict != 0
		out = append(out, x)
	}
	if err := rows.Err(); err != nil {
		return nil, s.errorf("failures: %w", err)
	}
	return out, nil
}

// maxShow caps the reports Show returns for one report-id (anyone can
// POST reports under any organisation name; real ids are shared by at most
// a few). With MaxReportFailureDetails details each, one Show answer stays
// bounded.
const maxShow = 10

// Show implements Store. It returns at most maxShow reports, ordered by
// organisation.
func (s *sqlStore) Show(ctx context.Context, reportID string) ([]reports.StoredReport, error) {
	rows, err := s.r.QueryContext(ctx, s.d.rebind(`SELECT id, organization, report_id, contact_info, start_time,
		end_time, received_at, source, origin, submitter, dkim_domain, repairs, problems, raw, raw_encoding, raw_size,
		content_hash, authenticated, conflict, counted
		FROM reports WHERE report_id = ? ORDER BY organization, id LIMIT ?`), reportID, maxShow)
	if err != nil {
		return nil, s.errorf("show: %w", err)
	}
	var out []reports.StoredReport
	for rows.Next() {
		var sr reports.StoredReport
		r := &tlsrpt.Report{}
		var start, end, recv int64
		var repairs, problems, enc string
		var raw []byte
		var auth, conflict, counted int64
		if err := rows.Scan(&sr.ID, &r.OrganizationName, &r.ReportID, &r.ContactInfo, &start, &end, &recv,
			&sr.Source, &sr.Origin, &sr.Submitter, &sr.DKIMDomain, &repairs, &problems, &raw, &enc, &sr.RawSize,
			&sr.ContentHash, &auth, &conflict, &counted); err != nil {
			rows.Close()
			return nil, s.errorf("show: %w", err)
		}
		sr.Authenticated, sr.Conflict, sr.Counted = auth != 0, conflict != 0, counted != 0
		if strings.HasPrefix(sr.ContentHash, legacyHashPrefix) {
			sr.ContentHash = "" // not computed yet (stored before migration 3)
		}
		r.DateRange = tlsrpt.DateRange{Start: time.Unix(start, 0).UTC(), End: time.Unix(end, 0).UTC()}
		sr.ReceivedAt = time.Unix(recv, 0).UTC()
		if err := json.Unmarshal([]byte(repairs), &sr.Repairs); err != nil {
			rows.Close()
			return nil, s.errorf("show: repairs of report %d: %w", sr.ID, err)
		}
		if err := json.Unmarshal([]byte(problems), &sr.Problems); err != nil {
			rows.Close()
			return nil, s.errorf("show: problems of report %d: %w", sr.ID, err)
		}
		if sr.Raw, err = decompressRaw(raw, enc); err != nil {
			rows.Close()
			return nil, s.errorf("show: raw of report %d: %w", sr.ID, err)
		}
		sr.Report = r
		out = append(out, sr)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, s.errorf("show: %w", err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: report-id %q", reports.ErrNotFound, reportID)
	}
	for i := range out {
		if err := s.loadPolicies(ctx, s.r, &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *sqlStore) loadPolicies(ctx context.Context, q querier, sr *reports.StoredReport) error {
	rows, err := q.QueryContext(ctx, s.d.rebind(`SELECT id, policy_type, policy_domain, policy_string, mx_hosts,
		successful, failed FROM policies WHERE report = ? ORDER BY seq`), sr.ID)
	if err != nil {
		return s.errorf("show: %w", err)
	}
	var ids []int64
	for rows.Next() {
		var pr tlsrpt.PolicyResult
		var id int64
		var strs, mxs string
		if err := rows.Scan(&id, &pr.Policy.Type, &pr.Policy.Domain, &strs, &mxs,
			&pr.Summary.TotalSuccessfulSessionCount, &pr.Summary.TotalFailureSessionCount); err != nil {
			rows.Close()
			return s.errorf("show: %w", err)
		}
		if err := json.Unmarshal([]byte(strs), &pr.Policy.String); err != nil {
			rows.Close()
			return s.errorf("show: policy-string of report %d: %w", sr.ID, err)
		}
		if err := json.Unmarshal([]byte(mxs), &pr.Policy.MXHost); err != nil {
			rows.Close()
			return s.errorf("show: mx-host of report %d: %w", sr.ID, err)
		}
		if len(pr.Policy.String) == 0 {
			pr.Policy.String = nil
		}
		if len(pr.Policy.MXHost) == 0 {
			pr.Policy.MXHost = nil
		}
		ids = append(ids, id)
		sr.Report.Policies = append(sr.Report.Policies, pr)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return s.errorf("show: %w", err)
	}
	for i, id := range ids {
		drows, err := q.QueryContext(ctx, s.d.rebind(`SELECT result_type, sending_mta_ip, receiving_mx_hostname,
			receiving_mx_helo, receiving_ip, failed_session_count, additional_information, failure_reason_code
			FROM failure_details WHERE policy = ? ORDER BY seq`), id)
		if err != nil {
			return s.errorf("show: %w", err)
		}
		for drows.Next() {
			var fd tlsrpt.FailureDetails
			var rt string
			if err := drows.Scan(&rt, &fd.SendingMTAIP, &fd.ReceivingMXHostname, &fd.ReceivingMXHelo, &fd.ReceivingIP,
				&fd.FailedSessionCount, &fd.AdditionalInformation, &fd.FailureReasonCode); err != nil {
				drows.Close()
				return s.errorf("show: %w", err)
			}
			fd.ResultType = tlsrpt.ResultType(rt)
			sr.Report.Policies[i].FailureDetails = append(sr.Report.Policies[i].FailureDetails, fd)
		}
		drows.Close()
		if err := drows.Err(); err != nil {
			return s.errorf("show: %w", err)
		}
	}
	return nil
}

// ListRejected implements Store. Since and Until bound the day received.
func (s *sqlStore) ListRejected(ctx context.Context, f reports.Filter) ([]reports.Rejected, error) {
	if err := validateFilter(f); err != nil {
		return nil, err
	}
	var conds []string
	var args []any
	if !f.Since.IsZero() {
		y, m, d := f.Since.UTC().Date()
		conds = append(conds, "received_at >= ?")
		args = append(args, time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix())
	}
	if !f.Until.IsZero() {
		y, m, d := f.Until.UTC().Date()
		conds = append(conds, "received_at < ?")
		args = append(args, time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC).Unix())
	}
	if f.Cursor != "" {
		c, cargs, err := rejectedAfter(f.Cursor)
		if err != nil {
			return nil, err
		}
		conds = append(conds, c)
		args = append(args, cargs...)
	}
	w := ""
	if len(conds) > 0 {
		w = " WHERE " + strings.Join(conds, " AND ")
	}
	args = append(args, f.LimitOrDefault())
	rows, err := s.r.QueryContext(ctx, s.d.rebind(`SELECT id, received_at, source, origin, reason, detail, size, truncated, sha256
		FROM rejected`+w+` ORDER BY received_at DESC, id DESC LIMIT ?`), args...)
	if err != nil {
		return nil, s.errorf("rejected: %w", err)
	}
	defer rows.Close()
	var out []reports.Rejected
	for rows.Next() {
		var x reports.Rejected
		var recv, trunc int64
		if err := rows.Scan(&x.ID, &recv, &x.Source, &x.Origin, &x.Reason, &x.Detail, &x.Size, &trunc, &x.SHA256); err != nil {
			return nil, s.errorf("rejected: %w", err)
		}
		x.ReceivedAt = time.Unix(recv, 0).UTC()
		x.Truncated = trunc != 0
		out = append(out, x)
	}
	if err := rows.Err(); err != nil {
		return nil, s.errorf("rejected: %w", err)
	}
	return out, nil
}

// RejectedRaw implements Store.
func (s *sqlStore) RejectedRaw(ctx context.Context, id int64) (reports.Rejected, error) {
	var x reports.Rejected
	var recv, trunc int64
	var raw []byte
	err := s.r.QueryRowContext(ctx, s.d.rebind(`SELECT id, received_at, source, origin, reason, detail, size, truncated, sha256, raw
		FROM rejected WHERE id = ?`), id).Scan(&x.ID, &recv, &x.Source, &x.Origin, &x.Reason, &x.Detail, &x.Size, &trunc, &x.SHA256, &raw)
	if errors.Is(err, sql.ErrNoRows) {
		return x, fmt.Errorf("%w: rejected input %d", reports.ErrNotFound, id)
	}
	if err != nil {
		return x, s.errorf("rejected: %w", err)
	}
	x.ReceivedAt = time.Unix(recv, 0).UTC()
	x.Truncated = trunc != 0
	if x.Raw, err = decompressRaw(raw, rawGzip); err != nil {
		return x, s.errorf("rejected %d: raw: %w", id, err)
	}
	return x, nil
}

// failuresAfter is the WHERE condition (alias fd, reports r) of the rows
// after the cursor in Failures' order: day DESC, then organization,
// report_id, the report's row id (copies and conflicts share a report-id),
// policy_seq, seq ascending.
func failuresAfter(cursor string) (string, []any, error) {
	var c reports.FailureCursor
	if err := reports.DecodeCursor(cursor, &c); err != nil {
		return "", nil, err
	}
	return `(fd.day < ? OR fd.day = ? AND (fd.organization > ? OR fd.organization = ? AND (r.report_id > ? OR
		r.report_id = ? AND (r.id > ? OR r.id = ? AND (fd.policy_seq > ? OR fd.policy_seq = ? AND fd.seq > ?)))))`,
		[]any{c.Day, c.Day, c.Org, c.Org, c.ReportID, c.ReportID, c.Row, c.Row, c.PolicySeq, c.PolicySeq, c.Seq}, nil
}

// rejectedAfter is the condition of the rows after the cursor in
// ListRejected's order: received_at DESC, id DESC.
func rejectedAfter(cursor string) (string, []any, error) {
	var c reports.RejectedCursor
	if err := reports.DecodeCursor(cursor, &c); err != nil {
		return "", nil, err
	}
	return "(received_at < ? OR received_at = ? AND id < ?)", []any{c.ReceivedAt, c.ReceivedAt, c.ID}, nil
}
