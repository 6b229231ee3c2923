package outgoing

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/stdlib"

	"github.com/mailsts/mailsts/internal/sqlitedb"
	"github.com/mailsts/mailsts/tlsrpt"
)

// ErrStorage wraps failures of the database under the Store.
var ErrStorage = errors.New("outgoing: storage")

// ErrSchemaTooNew means the database was migrated by a newer mailsts than
// this one: run the newer version, or restore a backup.
var ErrSchemaTooNew = errors.New("outgoing: schema is newer than this program")

// ErrBadSpec means a database spec is neither sqlite:PATH nor a
// postgres:// URL.
var ErrBadSpec = sqlitedb.ErrBadSpec

// DefaultFile is the SQLite file Open uses in the state directory when
// the spec is empty.
const DefaultFile = "tlsrpt-send.db"

// DefaultMaxDetails is the default cap on distinct failure-detail rows of
// one policy on one day.
const DefaultMaxDetails = 200

// Options configure a Store.
type Options struct {
	// MaxDetails caps the distinct failure-detail rows kept per policy
	// per day; 0 means DefaultMaxDetails. Further distinct details are
	// merged into one row per result type that keeps only the result
	// type, so that totals stay exact while the rows stay bounded.
	MaxDetails int
	// Logger receives migrations and cap notices; nil discards.
	Logger *slog.Logger
}

// Store keeps per-session results per UTC day, policy domain and policy
// (totals and merged failure details) and the per-(domain, day) build
// claims of the Builder, in SQLite or PostgreSQL. Its tables are its own
// (names start with "outgoing_", version in outgoing_schema_version), so
// the outbox's tables can live in the same database. Safe for concurrent
// use, by several processes too.
type Store struct {
	w, r       *sql.DB
	closers    []io.Closer
	d          dialect
	loc        string
	maxDetails int
	logger     *slog.Logger

	prepMu                sync.Mutex
	stPolicies, stDetails *sql.Stmt
}

// Open opens the store a spec names: a postgres:// (or postgresql://)
// URL, sqlite:PATH, or "" for DefaultFile in stateDir (created, mode 0750,
// when missing).
func Open(ctx context.Context, spec, stateDir string, o Options) (*Store, error) {
	pg, path, err := sqlitedb.ResolveSpec(spec, stateDir, DefaultFile)
	switch {
	case errors.Is(err, ErrBadSpec):
		return nil, err
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrStorage, err)
	case pg != "":
		return OpenPostgres(ctx, pg, o)
	}
	return OpenSQLite(ctx, path, o)
}

// OpenSQLite opens (creating when missing) the SQLite file at path and
// migrates its outgoing_ tables.
func OpenSQLite(ctx context.Context, path string, o Options) (*Store, error) {
	db, err := sqlitedb.Open(path, sqlitedb.Options{BusyTimeout: 10 * time.Second, Synchronous: "NORMAL"})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStorage, err)
	}
	s := newStore(sqliteDialect(), db.Path, o, db.W, db.R)
	s.closers = []io.Closer{db}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// OpenPostgres connects to PostgreSQL (a postgres:// URL or key=value
// string; search_path=SCHEMA selects a schema) and migrates the outgoing_
// tables, serialised with other nodes by an advisory lock.
func OpenPostgres(ctx context.Context, dsn string, o Options) (*Store, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: postgres: %w", ErrStorage, err)
	}
	db.SetMaxOpenConns(8)
	s := newStore(postgresDialect(), redactDSN(dsn), o, db, db)
	s.closers = []io.Closer{db}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, s.errorf("connect: %w", err)
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func newStore(d dialect, loc string, o Options, w, r *sql.DB) *Store {
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	md := o.MaxDetails
	if md <= 0 {
		md = DefaultMaxDetails
	}
	return &Store{w: w, r: r, d: d, loc: loc, maxDetails: md, logger: logger}
}

// Close closes the database.
func (s *Store) Close() error {
	var errs []error
	for _, c := range s.closers {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// Backend names the database kind: "sqlite" or "postgres".
func (s *Store) Backend() string { return s.d.name }

func (s *Store) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s %s: %w", ErrStorage, s.d.name, s.loc, fmt.Errorf(format, args...))
}

func redactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" {
		return u.Redacted()
	}
	if strings.Contains(dsn, "password") {
		return "(dsn with password)"
	}
	return dsn
}

// Add counts the results, all or none: each is checked (an invalid one
// fails the call with ErrInvalidResult before anything is written), then
// they are merged and written in one transaction.
func (s *Store) Add(ctx context.Context, results ...Result) error {
	now := time.Now()
	norm := make([]normalized, 0, len(results))
	for _, r := range results {
		n, err := normalize(r, now)
		if err != nil {
			return err
		}
		norm = append(norm, newNormalized(n))
	}
	return s.add(ctx, norm, nil)
}

// Cursor returns the position last stored for a log source with the
// results read before it (Recorder.RecordCursor); ok is false when there
// is none.
func (s *Store) Cursor(ctx context.Context, source string) (cursor string, ok bool, err error) {
	err = s.r.QueryRowContext(ctx, s.d.rebind(`SELECT cursor FROM outgoing_cursors WHERE source = ?`), source).Scan(&cursor)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, s.errorf("read cursor: %w", err)
	}
	return cursor, true, nil
}

// policyAgg is the merge of a batch's results under one (day, domain,
// policy).
type policyAgg struct {
	day, domain, key string
	pol              Policy
	succ, fail       int64
	details          map[Failure]int64
	order            []Failure
}

func policyKey(p Policy) string {
	h := sha256.New()
	h.Write([]byte(p.Type + "\x00" + strings.Join(p.Strings, "\n") + "\x00" + strings.Join(p.MXHosts, "\n")))
	return hex.EncodeToString(h.Sum(nil))
}

func detailKey(f Failure) string {
	h := sha256.New()
	h.Write([]byte(strings.Join([]string{string(f.ResultType), f.SendingMTAIP, f.ReceivingMXHostname,
		f.ReceivingMXHelo, f.ReceivingIP, f.AdditionalInfo, f.FailureReasonCode}, "\x00")))
	return hex.EncodeToString(h.Sum(nil))
}

// overflowInfo is the additional-information of the row that merges the
// failure details beyond the per-policy cap.
const overflowInfo = "further distinct failure details of this type merged (per-policy cap reached)"

// add writes normalized results and the log sources' cursors in one
// transaction.
func (s *Store) add(ctx context.Context, rs []normalized, cursors map[string]string) error {
	if len(rs) == 0 && len(cursors) == 0 {
		return nil
	}
	aggs := map[[3]string]*policyAgg{}
	var order []*policyAgg
	var lastDay time.Time
	var day string
	for _, r := range rs {
		if d := r.Time.Truncate(24 * time.Hour); day == "" || !d.Equal(lastDay) {
			lastDay, day = d, dayString(r.Time)
		}
		k := r.key
		a := aggs[[3]string{day, r.PolicyDomain, k}]
		if a == nil {
			a = &policyAgg{day: day, domain: r.PolicyDomain, key: k, pol: r.Policy, details: map[Failure]int64{}}
			aggs[[3]string{day, r.PolicyDomain, k}] = a
			order = append(order, a)
		}
		if !r.failed() {
			a.succ++
			continue
		}
		a.fail++
		for _, f := range r.Failures {
			if _, ok := a.details[f]; !ok {
				a.order = append(a.order, f)
			}
			a.details[f]++
		}
	}
	// SQLite: the statements run without ctx's cancellation, which is
	// checked between policies and before the commit instead. With a
	// context that can end (the Recorder's write timeout), database/sql
	// and the driver start a goroutine per statement to interrupt it:
	// about 2% of the datagram collector's CPU (bench/sender). A
	// statement here is short; one waiting for another process's lock
	// ends at the busy timeout.
	sctx := ctx
	if s.d.name == "sqlite" {
		sctx = context.WithoutCancel(ctx)
	}
	tx, err := s.w.BeginTx(sctx, nil)
	if err != nil {
		return s.errorf("begin: %w", err)
	}
	defer tx.Rollback()
	ps, err := s.prepare(sctx, tx)
	if err != nil {
		return err
	}
	defer ps.close()
	for _, a := range order {
		if err := ctx.Err(); err != nil {
			return s.errorf("write results: %w", err)
		}
		if err := s.addPolicy(sctx, ps, a); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return s.errorf("write results: %w", err)
	}
	now := time.Now().Unix()
	for src, c := range cursors {
		if _, err := tx.ExecContext(sctx, s.d.rebind(`INSERT INTO outgoing_cursors (source, cursor, updated_at) VALUES (?, ?, ?)
			ON CONFLICT (source) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at`), src, c, now); err != nil {
			return s.errorf("store cursor: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return s.errorf("commit: %w", err)
	}
	return nil
}

// addStmts are the statements of add, prepared once per transaction.
type addStmts struct {
	upsertPolicy, bump, insert, setDetails *sql.Stmt
}

func (s *Store) prepare(ctx context.Context, tx *sql.Tx) (*addStmts, error) {
	var ps addStmts
	for _, q := range []struct {
		dst **sql.Stmt
		sql string
	}{
		{&ps.upsertPolicy, `INSERT INTO outgoing_policies
		(day, policy_domain, policy_key, policy_type, policy_string, mx_host, successful, failed, details)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)
		ON CONFLICT (day, policy_domain, policy_key) DO UPDATE SET
			successful = outgoing_policies.successful + excluded.successful,
			failed = outgoing_policies.failed + excluded.failed
		RETURNING id, details`},
		{&ps.bump, `UPDATE outgoing_failures SET sessions = sessions + ? WHERE policy = ? AND detail_key = ?`},
		{&ps.insert, `INSERT INTO outgoing_failures
		(policy, day, detail_key, result_type, sending_mta_ip, receiving_mx_hostname, receiving_mx_helo,
		 receiving_ip, additional_information, failure_reason_code, sessions)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&ps.setDetails, `UPDATE outgoing_policies SET details = ? WHERE id = ?`},
	} {
		st, err := tx.PrepareContext(ctx, s.d.rebind(q.sql))
		if err != nil {
			ps.close()
			return nil, s.errorf("prepare: %w", err)
		}
		*q.dst = st
	}
	return &ps, nil
}

func (ps *addStmts) close() {
	for _, st := range []*sql.Stmt{ps.upsertPolicy, ps.bump, ps.insert, ps.setDetails} {
		if st != nil {
			st.Close()
		}
	}
}

func (s *Store) addPolicy(ctx context.Context, ps *addStmts, a *policyAgg) error {
	strs, _ := json.Marshal(nonNil(a.pol.Strings))
	mx, _ := json.Marshal(nonNil(a.pol.MXHosts))
	var id, details int64
	// The upsert takes the policy row's lock (PostgreSQL) or the
	// database's (SQLite) for the transaction: the detail count below is
	// read and raised by one writer at a time.
	err := ps.upsertPolicy.QueryRowContext(ctx,
		a.day, a.domain, a.key, a.pol.Type, string(strs), string(mx), a.succ, a.fail).Scan(&id, &details)
	if err != nil {
		return s.errorf("add policy: %w", err)
	}
	start := details
	merged := int64(0)
	for _, f := range a.order {
		n := a.details[f]
		ok, err := s.bumpDetail(ctx, ps, id, f, n)
		if err != nil {
			return err
		}
		if ok {
			continue
		}
		if details >= int64(s.maxDetails) {
			// Over the cap: fold into the result type's overflow row,
			// which does not count against the cap (at most one per
			// result type).
			merged += n
			f = Failure{ResultType: f.ResultType, AdditionalInfo: overflowInfo}
			if ok, err := s.bumpDetail(ctx, ps, id, f, n); err != nil || ok {
				if err != nil {
					return err
				}
				continue
			}
		} else {
			details++
		}
		if err := s.insertDetail(ctx, ps, id, a.day, f, n); err != nil {
			return err
		}
	}
	if details != start {
		if _, err := ps.setDetails.ExecContext(ctx, details, id); err != nil {
			return s.errorf("count details: %w", err)
		}
	}
	if merged > 0 {
		s.logger.Debug("outgoing: failure details over the per-policy cap merged",
			"policy_domain", a.domain, "day", a.day, "cap", s.maxDetails, "sessions", merged)
	}
	return nil
}

func (s *Store) bumpDetail(ctx context.Context, ps *addStmts, policy int64, f Failure, n int64) (bool, error) {
	res, err := ps.bump.ExecContext(ctx, n, policy, detailKey(f))
	if err != nil {
		return false, s.errorf("add failure detail: %w", err)
	}
	c, err := res.RowsAffected()
	if err != nil {
		return false, s.errorf("add failure detail: %w", err)
	}
	return c > 0, nil
}

func (s *Store) insertDetail(ctx context.Context, ps *addStmts, policy int64, day string, f Failure, n int64) error {
	_, err := ps.insert.ExecContext(ctx,
		policy, day, detailKey(f), string(f.ResultType), f.SendingMTAIP, f.ReceivingMXHostname, f.ReceivingMXHelo,
		f.ReceivingIP, f.AdditionalInfo, f.FailureReasonCode, n)
	if err != nil {
		return s.errorf("add failure detail: %w", err)
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// DomainDay names one report: a policy domain and a UTC day (00:00:00Z).
type DomainDay struct {
	Domain string
	Day    time.Time
}

// LogValue implements slog.LogValuer.
func (d DomainDay) LogValue() slog.Value {
	return slog.GroupValue(slog.String("policy_domain", d.Domain), slog.String("day", dayString(d.Day)))
}

// Policies returns what the store holds for one domain and day, in a
// stable order (policy type, then policy key; details by result type and
// members), ready for a report: every policy's policy-domain is the
// domain.
func (s *Store) Policies(ctx context.Context, dd DomainDay) ([]tlsrpt.PolicyResult, error) {
	day := dayString(dd.Day)
	stPol, stDet, err := s.readStmts(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := stPol.QueryContext(ctx, dd.Domain, day)
	if err != nil {
		return nil, s.errorf("read policies: %w", err)
	}
	var out []tlsrpt.PolicyResult
	var ids []int64
	for rows.Next() {
		var id int64
		var strs, mx string
		var p tlsrpt.PolicyResult
		if err := rows.Scan(&id, &p.Policy.Type, &strs, &mx, &p.Summary.TotalSuccessfulSessionCount, &p.Summary.TotalFailureSessionCount); err != nil {
			rows.Close()
			return nil, s.errorf("read policies: %w", err)
		}
		if err := json.Unmarshal([]byte(strs), &p.Policy.String); err != nil {
			rows.Close()
			return nil, s.errorf("policy %d: policy_string: %w", id, err)
		}
		if err := json.Unmarshal([]byte(mx), &p.Policy.MXHost); err != nil {
			rows.Close()
			return nil, s.errorf("policy %d: mx_host: %w", id, err)
		}
		p.Policy.Domain = dd.Domain
		out = append(out, p)
		ids = append(ids, id)
	}
	if err := rows.Close(); err != nil {
		return nil, s.errorf("read policies: %w", err)
	}
	if err := rows.Err(); err != nil {
		return nil, s.errorf("read policies: %w", err)
	}
	for i, id := range ids {
		rows, err := stDet.QueryContext(ctx, id)
		if err != nil {
			return nil, s.errorf("read failure details: %w", err)
		}
		for rows.Next() {
			var d tlsrpt.FailureDetails
			var rt string
			if err := rows.Scan(&rt, &d.SendingMTAIP, &d.ReceivingMXHostname, &d.ReceivingMXHelo, &d.ReceivingIP,
				&d.AdditionalInformation, &d.FailureReasonCode, &d.FailedSessionCount); err != nil {
				rows.Close()
				return nil, s.errorf("read failure details: %w", err)
			}
			d.ResultType = tlsrpt.ResultType(rt)
			out[i].FailureDetails = append(out[i].FailureDetails, d)
		}
		if err := rows.Close(); err != nil {
			return nil, s.errorf("read failure details: %w", err)
		}
		if err := rows.Err(); err != nil {
			return nil, s.errorf("read failure details: %w", err)
		}
	}
	return out, nil
}

// readStmts returns the prepared statements of Policies, prepared on
// first use (database/sql re-prepares them per connection as needed).
func (s *Store) readStmts(ctx context.Context) (policies, details *sql.Stmt, err error) {
	s.prepMu.Lock()
	defer s.prepMu.Unlock()
	if s.stPolicies == nil {
		p, err := s.r.PrepareContext(ctx, s.d.rebind(`SELECT id, policy_type, policy_string, mx_host, successful, failed
		FROM outgoing_policies WHERE policy_domain = ? AND day = ? ORDER BY policy_type, policy_key`))
		if err != nil {
			return nil, nil, s.errorf("prepare: %w", err)
		}
		d, err := s.r.PrepareContext(ctx, s.d.rebind(`SELECT result_type, sending_mta_ip, receiving_mx_hostname,
			receiving_mx_helo, receiving_ip, additional_information, failure_reason_code, sessions
			FROM outgoing_failures WHERE policy = ?
			ORDER BY result_type, receiving_mx_hostname, receiving_ip, sending_mta_ip, receiving_mx_helo,
			         additional_information, failure_reason_code`))
		if err != nil {
			p.Close()
			return nil, nil, s.errorf("prepare: %w", err)
		}
		s.stPolicies, s.stDetails = p, d
		s.closers = append([]io.Closer{p, d}, s.closers...)
	}
	return s.stPolicies, s.stDetails, nil
}

// Pending lists the (domain, day) pairs before the day of before that
// hold results and whose report is not done, oldest day first, at most
// limit (0 means 1000).
func (s *Store) Pending(ctx context.Context, before time.Time, limit int) ([]DomainDay, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := s.r.QueryContext(ctx, s.d.rebind(`SELECT DISTINCT p.day, p.policy_domain FROM outgoing_policies p
		LEFT JOIN outgoing_claims c ON c.policy_domain = p.policy_domain AND c.day = p.day
		WHERE p.day < ? AND (c.state IS NULL OR c.state <> 'done')
		ORDER BY p.day, p.policy_domain LIMIT `+strconv.Itoa(limit)), dayString(before))
	if err != nil {
		return nil, s.errorf("pending reports: %w", err)
	}
	defer rows.Close()
	var out []DomainDay
	for rows.Next() {
		var day, dom string
		if err := rows.Scan(&day, &dom); err != nil {
			return nil, s.errorf("pending reports: %w", err)
		}
		t, err := parseDay(day)
		if err != nil {
			return nil, s.errorf("pending reports: day %q: %w", day, err)
		}
		out = append(out, DomainDay{Domain: dom, Day: t})
	}
	if err := rows.Err(); err != nil {
		return nil, s.errorf("pending reports: %w", err)
	}
	return out, nil
}

// Claim takes the build of one report for owner until now+lease. It
// succeeds (true) when nobody holds it, or the holder's lease ran out (a
// crashed node's claim), and fails (false) while another owner's lease
// runs or when the report is done. One statement, so that two nodes on one
// database never both win.
func (s *Store) Claim(ctx context.Context, dd DomainDay, owner string, now time.Time, lease time.Duration) (bool, error) {
	res, err := s.w.ExecContext(ctx, s.d.rebind(`INSERT INTO outgoing_claims
		(policy_domain, day, state, owner, lease_until, attempts, report_id, done_at)
		VALUES (?, ?, 'building', ?, ?, 1, '', 0)
		ON CONFLICT (policy_domain, day) DO UPDATE SET
			owner = excluded.owner, lease_until = excluded.lease_until, attempts = outgoing_claims.attempts + 1
		WHERE outgoing_claims.state = 'building' AND outgoing_claims.lease_until <= ?`),
		dd.Domain, dayString(dd.Day), owner, now.Add(lease).Unix(), now.Unix())
	if err != nil {
		return false, s.errorf("claim: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, s.errorf("claim: %w", err)
	}
	return n == 1, nil
}

// Done marks the report built and handed over, if owner still holds the
// claim; false means another node took the claim over (its lease ran
// out) and will hand over the same report again.
func (s *Store) Done(ctx context.Context, dd DomainDay, owner, reportID string, now time.Time) (bool, error) {
	res, err := s.w.ExecContext(ctx, s.d.rebind(`UPDATE outgoing_claims SET state = 'done', report_id = ?, done_at = ?
		WHERE policy_domain = ? AND day = ? AND owner = ? AND state = 'building'`),
		reportID, now.Unix(), dd.Domain, dayString(dd.Day), owner)
	if err != nil {
		return false, s.errorf("mark done: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, s.errorf("mark done: %w", err)
	}
	return n == 1, nil
}

// Release gives up owner's claim after a failed build; another Claim
// succeeds from retryAt on.
func (s *Store) Release(ctx context.Context, dd DomainDay, owner string, retryAt time.Time) error {
	_, err := s.w.ExecContext(ctx, s.d.rebind(`UPDATE outgoing_claims SET lease_until = ?
		WHERE policy_domain = ? AND day = ? AND owner = ? AND state = 'building'`),
		retryAt.Unix(), dd.Domain, dayString(dd.Day), owner)
	if err != nil {
		return s.errorf("release claim: %w", err)
	}
	return nil
}

// ClaimState is a claim as stored: for tests and the outbox command.
type ClaimState struct {
	State      string // "building" or "done"
	Owner      string
	LeaseUntil time.Time
	Attempts   int
	ReportID   string
}

// ClaimOf returns the claim of one report; ok is false when there is none.
func (s *Store) ClaimOf(ctx context.Context, dd DomainDay) (c ClaimState, ok bool, err error) {
	var lease int64
	err = s.r.QueryRowContext(ctx, s.d.rebind(`SELECT state, owner, lease_until, attempts, report_id
		FROM outgoing_claims WHERE policy_domain = ? AND day = ?`), dd.Domain, dayString(dd.Day)).
		Scan(&c.State, &c.Owner, &lease, &c.Attempts, &c.ReportID)
	if errors.Is(err, sql.ErrNoRows) {
		return c, false, nil
	}
	if err != nil {
		return c, false, s.errorf("read claim: %w", err)
	}
	c.LeaseUntil = time.Unix(lease, 0).UTC()
	return c, true, nil
}

// Expire deletes results and claims of days before the day of before and
// returns how many policy rows went.
func (s *Store) Expire(ctx context.Context, before time.Time) (int64, error) {
	day := dayString(before)
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, s.errorf("expire: %w", err)
	}
	defer tx.Rollback()
	var n int64
	for _, q := range []string{
		`DELETE FROM outgoing_failures WHERE day < ?`,
		`DELETE FROM outgoing_policies WHERE day < ?`,
		`DELETE FROM outgoing_claims WHERE day < ?`,
		`DELETE FROM outgoing_answers WHERE answered_at < ?`,
	} {
		var arg any = day
		if strings.Contains(q, "answered_at") {
			arg = before.Unix()
		}
		res, err := tx.ExecContext(ctx, s.d.rebind(q), arg)
		if err != nil {
			return 0, s.errorf("expire: %w", err)
		}
		if strings.Contains(q, "outgoing_policies") {
			n, _ = res.RowsAffected()
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, s.errorf("expire: %w", err)
	}
	return n, nil
}

var _ = stdlib.GetDefaultDriver // the import registers the "pgx" driver
