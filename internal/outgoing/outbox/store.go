package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/stdlib"

	"github.com/mailsts/mailsts/internal/sqlitedb"
)

// Sentinel errors of the store.
var (
	// ErrStorage means the database failed; nothing was changed. Retry
	// once the database is back.
	ErrStorage = errors.New("outbox: storage")
	// ErrBadSpec means a database spec is neither sqlite:PATH nor a
	// postgres:// URL. Fix the flag or configuration.
	ErrBadSpec = sqlitedb.ErrBadSpec
	// ErrNotFound means no delivery, report or destination matched.
	ErrNotFound = errors.New("outbox: not found")
	// ErrLeaseLost means the claim on a delivery expired and another
	// worker took it over; the outcome of this attempt was not recorded.
	// Make leases longer than a delivery can take.
	ErrLeaseLost = errors.New("outbox: lease lost")
)

// DefaultFile is the SQLite file Open uses in the state directory when the
// spec is empty.
const DefaultFile = "tlsrpt-outbox.db"

// Store keeps reports waiting for delivery and the state of each
// delivery, in SQLite (one node) or PostgreSQL (several nodes sharing one
// database). It is safe for concurrent use by several goroutines,
// processes and hosts: deliveries are claimed with a lease, so that no
// two workers send the same delivery at once, and a delivery whose worker
// died is claimed again once its lease has expired.
type Store struct {
	w, r  *sql.DB
	pg    bool
	close func() error
}

// Open opens the outbox a spec names: a postgres:// (or postgresql://)
// URL, sqlite:PATH, or "" for DefaultFile in stateDir (created 0750 when
// missing), and migrates its tables.
func Open(ctx context.Context, spec, stateDir string) (*Store, error) {
	pg, path, err := sqlitedb.ResolveSpec(spec, stateDir, DefaultFile)
	switch {
	case errors.Is(err, ErrBadSpec):
		return nil, err
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrStorage, err)
	case pg != "":
		return OpenPostgres(ctx, pg)
	}
	return OpenSQLite(ctx, path)
}

// OpenSQLite opens (creating) the SQLite file at path.
func OpenSQLite(ctx context.Context, path string) (*Store, error) {
	db, err := sqlitedb.Open(path, sqlitedb.Options{BusyTimeout: 30 * time.Second, Synchronous: "FULL", ForeignKeys: true})
	if err != nil {
		return nil, fmt.Errorf("%w: sqlite %s: %w", ErrStorage, path, err)
	}
	s := &Store{w: db.W, r: db.R, close: db.Close}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// OpenPostgres connects to PostgreSQL (add search_path=SCHEMA to the DSN
// for a schema other than public) and migrates the outbox tables.
func OpenPostgres(ctx context.Context, dsn string) (*Store, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: postgres: %w", ErrStorage, err)
	}
	db.SetMaxOpenConns(8)
	s := &Store{w: db, r: db, pg: true, close: db.Close}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("%w: postgres %s: %w", ErrStorage, redact(dsn), err)
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

var _ = stdlib.GetDefaultDriver // the import registers the "pgx" driver

func redact(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" {
		return u.Redacted()
	}
	return "(dsn)"
}

// Close closes the database.
func (s *Store) Close() error { return s.close() }

// q rebinds "?" placeholders to "$n" for PostgreSQL. Queries hold no "?"
// inside literals.
func (s *Store) q(query string) string {
	if !s.pg {
		return query
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

func storageErr(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %s: %w", ErrStorage, op, err)
}

// State is the state of a delivery (and of a report's destination lookup).
type State string

// The states. A delivery goes pending → sending → sent, or → failed-retrying
// (back to sending at its next attempt) → … → given-up; suppressed
// deliveries wait for their destination to be unsuppressed.
const (
	StatePending    State = "pending"
	StateSending    State = "sending" // claimed by a worker, under a lease
	StateSent       State = "sent"
	StateRetrying   State = "failed-retrying"
	StateGivenUp    State = "given-up"
	StateSuppressed State = "suppressed"
	// StateResolved is a report whose destinations were looked up; its
	// deliveries carry the state from then on.
	StateResolved State = "resolved"
)

// States lists the delivery states in the order of their life.
var States = []State{StatePending, StateSending, StateRetrying, StateSent, StateGivenUp, StateSuppressed}

// Report is one finished daily report handed to the outbox by the
// builder (the same fields as the builder's own type).
type Report struct {
	PolicyDomain string    // the domain the report is about (A-labels)
	Day          time.Time // the UTC day covered
	ReportID     string
	Filename     string // RFC 8460 §5.1 file name
	Body         []byte // gzip JSON (RFC 8460 §5.2)
	Submitter    string
}

func dayString(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// insert adds r unless a report for its (PolicyDomain, Day) is there.
func (s *Store) insert(ctx context.Context, r Report, now, notBefore time.Time) (bool, error) {
	res, err := s.w.ExecContext(ctx, s.q(`INSERT INTO outbox_reports
		(policy_domain, day, report_id, filename, submitter, body, created_at, not_before, state, next_attempt, age_from, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (policy_domain, day) DO NOTHING`),
		strings.ToLower(r.PolicyDomain), dayString(r.Day), r.ReportID, r.Filename, r.Submitter, r.Body,
		now.Unix(), notBefore.Unix(), string(StatePending), notBefore.Unix(), notBefore.Unix(), now.Unix())
	if err != nil {
		return false, storageErr("enqueue", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// claimedReport is a report whose destination lookup a worker holds.
type claimedReport struct {
	ID           int64
	PolicyDomain string
	ReportID     string
	Attempts     int
	AgeFrom      time.Time
}

// skipLocked makes concurrent PostgreSQL claimers pass over each other's
// rows; SQLite serialises writers with BEGIN IMMEDIATE instead.
func (s *Store) skipLocked() string {
	if s.pg {
		return " FOR UPDATE SKIP LOCKED"
	}
	return ""
}

// claimReport takes the next report due for its destination lookup.
func (s *Store) claimReport(ctx context.Context, owner string, now time.Time, lease time.Duration) (*claimedReport, error) {
	due := `((state IN ('pending', 'failed-retrying') AND next_attempt <= ?) OR (state = 'sending' AND lease_until <= ?))`
	row := s.w.QueryRowContext(ctx, s.q(`UPDATE outbox_reports SET state = 'sending', lease_owner = ?, lease_until = ?,
		attempts = attempts + 1, updated_at = ?
		WHERE id = (SELECT id FROM outbox_reports WHERE `+due+` ORDER BY next_attempt, id LIMIT 1`+s.skipLocked()+`)
		AND `+due+`
		RETURNING id, policy_domain, report_id, attempts, age_from`),
		owner, ceilUnix(now.Add(lease)), now.Unix(), now.Unix(), now.Unix(), now.Unix(), now.Unix())
	var c claimedReport
	var age int64
	err := row.Scan(&c.ID, &c.PolicyDomain, &c.ReportID, &c.Attempts, &age)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, storageErr("claim report", err)
	}
	c.AgeFrom = time.Unix(age, 0).UTC()
	return &c, nil
}

// resolveReport records the destinations of a claimed report: one
// delivery each, due at once (suppressed ones wait).
func (s *Store) resolveReport(ctx context.Context, id int64, owner string, dests []string, now time.Time) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return storageErr("resolve", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, s.q(`UPDATE outbox_reports SET state = 'resolved', lease_owner = '', lease_until = 0,
		last_error = '', updated_at = ? WHERE id = ? AND state = 'sending' AND lease_owner = ?`), now.Unix(), id, owner)
	if err != nil {
		return storageErr("resolve", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrLeaseLost
	}
	for _, d := range dests {
		var sup int64
		err := tx.QueryRowContext(ctx, s.q(`SELECT suppressed_at FROM outbox_destinations WHERE destination = ?`), d).Scan(&sup)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return storageErr("resolve", err)
		}
		st, why := StatePending, ""
		if sup != 0 {
			st, why = StateSuppressed, "destination suppressed"
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO outbox_deliveries
			(report, destination, state, next_attempt, age_from, last_error, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (report, destination) DO NOTHING`), id, d, string(st), now.Unix(), now.Unix(), why, now.Unix()); err != nil {
			return storageErr("resolve", err)
		}
	}
	return storageErr("resolve", tx.Commit())
}

// failReport records a failed destination lookup: st is StateRetrying
// (with next) or StateGivenUp.
func (s *Store) failReport(ctx context.Context, id int64, owner string, st State, next time.Time, why string, now time.Time) error {
	res, err := s.w.ExecContext(ctx, s.q(`UPDATE outbox_reports SET state = ?, next_attempt = ?, last_error = ?,
		lease_owner = '', lease_until = 0, updated_at = ? WHERE id = ? AND state = 'sending' AND lease_owner = ?`),
		string(st), next.Unix(), clip(why), now.Unix(), id, owner)
	if err != nil {
		return storageErr("report failure", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrLeaseLost
	}
	return nil
}

// Claimed is a delivery held by a worker.
type Claimed struct {
	ID          int64
	Destination string
	Attempts    int // including this one
	AgeFrom     time.Time
	Suppressed  bool
	Report      Report
}

// claimDelivery takes the next due delivery: pending or retrying and due,
// or sending with an expired lease (its worker died).
func (s *Store) claimDelivery(ctx context.Context, owner string, now time.Time, lease time.Duration) (*Claimed, error) {
	due := `((state IN ('pending', 'failed-retrying') AND next_attempt <= ?) OR (state = 'sending' AND lease_until <= ?))`
	var c Claimed
	var reportRow int64
	var age int64
	err := s.w.QueryRowContext(ctx, s.q(`UPDATE outbox_deliveries SET state = 'sending', lease_owner = ?, lease_until = ?,
		attempts = attempts + 1, updated_at = ?
		WHERE id = (SELECT id FROM outbox_deliveries WHERE `+due+` ORDER BY next_attempt, id LIMIT 1`+s.skipLocked()+`)
		AND `+due+`
		RETURNING id, report, destination, attempts, age_from`),
		owner, ceilUnix(now.Add(lease)), now.Unix(), now.Unix(), now.Unix(), now.Unix(), now.Unix()).
		Scan(&c.ID, &reportRow, &c.Destination, &c.Attempts, &age)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, storageErr("claim delivery", err)
	}
	c.AgeFrom = time.Unix(age, 0).UTC()
	var day string
	var sup int64
	err = s.r.QueryRowContext(ctx, s.q(`SELECT r.policy_domain, r.day, r.report_id, r.filename, r.submitter, r.body,
		COALESCE((SELECT suppressed_at FROM outbox_destinations WHERE destination = ?), 0)
		FROM outbox_reports r WHERE r.id = ?`), c.Destination, reportRow).
		Scan(&c.Report.PolicyDomain, &day, &c.Report.ReportID, &c.Report.Filename, &c.Report.Submitter, &c.Report.Body, &sup)
	if err != nil {
		return nil, storageErr("claim delivery", err)
	}
	c.Report.Day, _ = time.Parse(time.DateOnly, day)
	c.Suppressed = sup != 0
	return &c, nil
}

// outcome is the result of one delivery attempt.
type outcome struct {
	State State
	Next  time.Time // for StateRetrying
	Error string
	// Counts marks an attempt that reached (or failed to reach) the
	// destination, for the suppression streak: true for sent and for
	// transport failures, false for suppressed and lost leases.
	Counts bool
}

// finishDelivery records the outcome of a claimed delivery and, for
// attempts that count, the destination's failure streak. It returns
// whether the destination became suppressed now.
func (s *Store) finishDelivery(ctx context.Context, c *Claimed, owner string, o outcome, now time.Time, suppressAfterDays int) (bool, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return false, storageErr("finish", err)
	}
	defer tx.Rollback()
	sentAt := int64(0)
	if o.State == StateSent {
		sentAt = now.Unix()
	}
	attemptsFix := 0
	if o.State == StateSuppressed {
		attemptsFix = 1 // nothing was tried
	}
	res, err := tx.ExecContext(ctx, s.q(`UPDATE outbox_deliveries SET state = ?, next_attempt = ?, last_error = ?, sent_at = ?,
		attempts = attempts - ?, lease_owner = '', lease_until = 0, updated_at = ?
		WHERE id = ? AND state = 'sending' AND lease_owner = ?`),
		string(o.State), o.Next.Unix(), clip(o.Error), sentAt, attemptsFix, now.Unix(), c.ID, owner)
	if err != nil {
		return false, storageErr("finish", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return false, ErrLeaseLost
	}
	suppressed := false
	if o.Counts {
		if suppressed, err = s.noteAttempt(ctx, tx, c.Destination, o, now, suppressAfterDays); err != nil {
			return false, err
		}
	}
	return suppressed, storageErr("finish", tx.Commit())
}

// noteAttempt keeps the destination's streak of consecutive UTC days with
// failures and no success, and suppresses it at suppressAfterDays (0:
// never).
func (s *Store) noteAttempt(ctx context.Context, tx *sql.Tx, dest string, o outcome, now time.Time, suppressAfterDays int) (bool, error) {
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO outbox_destinations (destination) VALUES (?) ON CONFLICT (destination) DO NOTHING`), dest); err != nil {
		return false, storageErr("destination", err)
	}
	if o.State == StateSent {
		_, err := tx.ExecContext(ctx, s.q(`UPDATE outbox_destinations SET fail_days = 0, last_failure_day = '', last_success = ? WHERE destination = ?`), now.Unix(), dest)
		return false, storageErr("destination", err)
	}
	var days int
	var lastDay string
	var sup int64
	if err := tx.QueryRowContext(ctx, s.q(`SELECT fail_days, last_failure_day, suppressed_at FROM outbox_destinations WHERE destination = ?`), dest).
		Scan(&days, &lastDay, &sup); err != nil {
		return false, storageErr("destination", err)
	}
	today := dayString(now)
	switch lastDay {
	case today:
	case dayString(now.AddDate(0, 0, -1)):
		days++
	default:
		days = 1
	}
	suppress := sup == 0 && suppressAfterDays > 0 && days >= suppressAfterDays
	q := `UPDATE outbox_destinations SET fail_days = ?, last_failure_day = ?, last_error = ? WHERE destination = ?`
	args := []any{days, today, clip(o.Error), dest}
	if suppress {
		q = `UPDATE outbox_destinations SET fail_days = ?, last_failure_day = ?, last_error = ?, suppressed_at = ?, suppressed_reason = ? WHERE destination = ?`
		args = []any{days, today, clip(o.Error), now.Unix(), fmt.Sprintf("failed on %d consecutive days; last error: %s", days, clip(o.Error)), dest}
	}
	if _, err := tx.ExecContext(ctx, s.q(q), args...); err != nil {
		return false, storageErr("destination", err)
	}
	if suppress {
		// Pending deliveries to it wait too.
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE outbox_deliveries SET state = 'suppressed', last_error = 'destination suppressed', updated_at = ?
			WHERE destination = ? AND state IN ('pending', 'failed-retrying')`), now.Unix(), dest); err != nil {
			return false, storageErr("destination", err)
		}
	}
	return suppress, nil
}

// ceilUnix rounds t up to whole seconds: a lease is never shorter than
// asked.
func ceilUnix(t time.Time) int64 {
	u := t.Unix()
	if t.After(time.Unix(u, 0)) {
		u++
	}
	return u
}

func clip(s string) string {
	const max = 1000
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}
