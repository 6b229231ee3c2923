package outbox

import (
	"context"
	"strconv"
	"strings"
	"time"
)

// Entry is one line of the outbox listing: a delivery, or a report whose
// destinations are not looked up yet (Kind "report", no Destination).
type Entry struct {
	// ID is "d<n>" for a delivery and "r<n>" for a report's lookup; both
	// are accepted by Retry.
	ID           string    `json:"id"`
	Kind         string    `json:"kind"`
	PolicyDomain string    `json:"policy_domain"`
	Day          string    `json:"day"`
	ReportID     string    `json:"report_id"`
	Destination  string    `json:"destination"`
	State        State     `json:"state"`
	Attempts     int       `json:"attempts"`
	NextAttempt  time.Time `json:"next_attempt"`
	LastError    string    `json:"last_error"`
	SentAt       time.Time `json:"sent_at,omitzero"`
	Size         int       `json:"size"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// ListOptions filter List.
type ListOptions struct {
	// States keeps only these states (none: all).
	States []State
	// Limit caps the entries (0: 1000), newest reports first.
	Limit int
	// PolicyDomains keeps only reports about these domains (none: all);
	// compared lowercased, as the outbox stores them.
	PolicyDomains []string
}

func unix(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.Unix(v, 0).UTC()
}

// List returns the outbox's deliveries and unresolved reports.
func (s *Store) List(ctx context.Context, o ListOptions) ([]Entry, error) {
	limit := o.Limit
	if limit <= 0 {
		limit = 1000
	}
	where, args := "", []any{}
	if len(o.States) > 0 {
		ph := strings.TrimSuffix(strings.Repeat("?, ", len(o.States)), ", ")
		where = " AND x.state IN (" + ph + ")"
		for _, st := range o.States {
			args = append(args, string(st))
		}
	}
	if len(o.PolicyDomains) > 0 {
		ph := strings.TrimSuffix(strings.Repeat("?, ", len(o.PolicyDomains)), ", ")
		where += " AND x.policy_domain IN (" + ph + ")"
		for _, d := range o.PolicyDomains {
			args = append(args, strings.ToLower(strings.TrimSuffix(d, ".")))
		}
	}
	q := `SELECT * FROM (
		SELECT 'd' AS kind, d.id AS id, r.policy_domain AS policy_domain, r.day AS day, r.report_id AS report_id,
			d.destination AS destination, d.state AS state, d.attempts AS attempts, d.next_attempt AS next_attempt,
			d.last_error AS last_error, d.sent_at AS sent_at, LENGTH(r.body) AS size, d.updated_at AS updated_at
		FROM outbox_deliveries d JOIN outbox_reports r ON r.id = d.report
		UNION ALL
		SELECT 'r', r.id, r.policy_domain, r.day, r.report_id, '', r.state, r.attempts, r.next_attempt,
			r.last_error, 0, LENGTH(r.body), r.updated_at
		FROM outbox_reports r WHERE r.state <> 'resolved'
	) x WHERE 1 = 1` + where + ` ORDER BY x.day DESC, x.policy_domain, x.kind, x.destination LIMIT ?`
	args = append(args, limit)
	rows, err := s.r.QueryContext(ctx, s.q(q), args...)
	if err != nil {
		return nil, storageErr("list", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		var e Entry
		var id, next, sent, upd int64
		var st string
		if err := rows.Scan(&e.Kind, &id, &e.PolicyDomain, &e.Day, &e.ReportID, &e.Destination, &st, &e.Attempts, &next,
			&e.LastError, &sent, &e.Size, &upd); err != nil {
			return nil, storageErr("list", err)
		}
		e.ID = e.Kind + strconv.FormatInt(id, 10)
		if e.Kind == "d" {
			e.Kind = "delivery"
		} else {
			e.Kind = "report"
		}
		e.State = State(st)
		if e.State == StateSending {
			e.NextAttempt = time.Time{}
		} else {
			e.NextAttempt = unix(next)
		}
		if e.State == StateSent || e.State == StateGivenUp || e.State == StateSuppressed {
			e.NextAttempt = time.Time{}
		}
		e.SentAt, e.UpdatedAt = unix(sent), unix(upd)
		out = append(out, e)
	}
	return out, storageErr("list", rows.Err())
}

// CountStates returns how many deliveries and unresolved reports (as
// List lists them) are in each state, for the reports about the given
// domains (none: all).
func (s *Store) CountStates(ctx context.Context, policyDomains []string) (map[State]int, error) {
	where, args := "", []any{}
	if len(policyDomains) > 0 {
		ph := strings.TrimSuffix(strings.Repeat("?, ", len(policyDomains)), ", ")
		where = " AND r.policy_domain IN (" + ph + ")"
		for _, d := range policyDomains {
			args = append(args, strings.ToLower(strings.TrimSuffix(d, ".")))
		}
	}
	q := `SELECT state, CAST(SUM(n) AS BIGINT) FROM (
		SELECT d.state AS state, COUNT(*) AS n FROM outbox_deliveries d JOIN outbox_reports r ON r.id = d.report WHERE 1 = 1` + where + ` GROUP BY d.state
		UNION ALL
		SELECT r.state, COUNT(*) FROM outbox_reports r WHERE r.state <> 'resolved'` + where + ` GROUP BY r.state
	) x GROUP BY state`
	rows, err := s.r.QueryContext(ctx, s.q(q), append(args, args...)...)
	if err != nil {
		return nil, storageErr("count", err)
	}
	defer rows.Close()
	out := map[State]int{}
	for rows.Next() {
		var st string
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			return nil, storageErr("count", err)
		}
		out[State(st)] = int(n)
	}
	return out, storageErr("count", rows.Err())
}

// Retry makes a delivery ("d12" or "12") or a report's destination lookup
// ("r7") due now, whatever its state except sending and sent; the give-up
// age counts again from now. It fails with ErrNotFound when nothing
// matches.
func (s *Store) Retry(ctx context.Context, id string, now time.Time) error {
	table := "outbox_deliveries"
	num := id
	switch {
	case strings.HasPrefix(id, "r"):
		table, num = "outbox_reports", id[1:]
	case strings.HasPrefix(id, "d"):
		num = id[1:]
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return ErrNotFound
	}
	res, err := s.w.ExecContext(ctx, s.q(`UPDATE `+table+` SET state = 'pending', next_attempt = ?, age_from = ?, updated_at = ?
		WHERE id = ? AND state IN ('pending', 'failed-retrying', 'given-up', 'suppressed')`), now.Unix(), now.Unix(), now.Unix(), n)
	if err != nil {
		return storageErr("retry", err)
	}
	if k, _ := res.RowsAffected(); k != 1 {
		return ErrNotFound
	}
	return nil
}

// Destination is a report destination's record: its failure streak and
// suppression.
type Destination struct {
	Destination      string    `json:"destination"`
	FailDays         int       `json:"fail_days"`
	LastFailureDay   string    `json:"last_failure_day"`
	LastError        string    `json:"last_error"`
	LastSuccess      time.Time `json:"last_success,omitzero"`
	Suppressed       bool      `json:"suppressed"`
	SuppressedAt     time.Time `json:"suppressed_at,omitzero"`
	SuppressedReason string    `json:"suppressed_reason"`
}

// Destinations lists known destinations; suppressedOnly keeps the
// suppressed ones.
func (s *Store) Destinations(ctx context.Context, suppressedOnly bool) ([]Destination, error) {
	q := `SELECT destination, fail_days, last_failure_day, last_error, last_success, suppressed_at, suppressed_reason FROM outbox_destinations`
	if suppressedOnly {
		q += ` WHERE suppressed_at <> 0`
	}
	rows, err := s.r.QueryContext(ctx, q+` ORDER BY destination`)
	if err != nil {
		return nil, storageErr("destinations", err)
	}
	defer rows.Close()
	var out []Destination
	for rows.Next() {
		var d Destination
		var ls, sa int64
		if err := rows.Scan(&d.Destination, &d.FailDays, &d.LastFailureDay, &d.LastError, &ls, &sa, &d.SuppressedReason); err != nil {
			return nil, storageErr("destinations", err)
		}
		d.LastSuccess, d.SuppressedAt, d.Suppressed = unix(ls), unix(sa), sa != 0
		out = append(out, d)
	}
	return out, storageErr("destinations", rows.Err())
}

// Suppress stops deliveries to dest (a rua URI as published) until
// Unsuppress; waiting deliveries to it become suppressed.
func (s *Store) Suppress(ctx context.Context, dest, reason string, now time.Time) error {
	if reason == "" {
		reason = "suppressed by the administrator"
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return storageErr("suppress", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO outbox_destinations (destination) VALUES (?) ON CONFLICT (destination) DO NOTHING`), dest); err != nil {
		return storageErr("suppress", err)
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE outbox_destinations SET suppressed_at = ?, suppressed_reason = ? WHERE destination = ?`), now.Unix(), clip(reason), dest); err != nil {
		return storageErr("suppress", err)
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE outbox_deliveries SET state = 'suppressed', last_error = 'destination suppressed', updated_at = ?
		WHERE destination = ? AND state IN ('pending', 'failed-retrying')`), now.Unix(), dest); err != nil {
		return storageErr("suppress", err)
	}
	return storageErr("suppress", tx.Commit())
}

// Unsuppress clears dest's suppression and failure streak; its suppressed
// deliveries become due now, their give-up age counting from now. It fails
// with ErrNotFound when dest is not suppressed.
func (s *Store) Unsuppress(ctx context.Context, dest string, now time.Time) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return storageErr("unsuppress", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, s.q(`UPDATE outbox_destinations SET suppressed_at = 0, suppressed_reason = '', fail_days = 0, last_failure_day = ''
		WHERE destination = ? AND suppressed_at <> 0`), dest)
	if err != nil {
		return storageErr("unsuppress", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrNotFound
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE outbox_deliveries SET state = 'pending', next_attempt = ?, age_from = ?, last_error = '', updated_at = ?
		WHERE destination = ? AND state = 'suppressed'`), now.Unix(), now.Unix(), now.Unix(), dest); err != nil {
		return storageErr("unsuppress", err)
	}
	return storageErr("unsuppress", tx.Commit())
}

// ActiveMailRecipients returns the mailto addresses (lowercased) of
// deliveries sent or attempted since the given time, or still waiting:
// the collectors use it to leave the SMTP sessions that carry reports out
// of the reports (no report-about-report loops). See also
// IsReportMessageID.
func (s *Store) ActiveMailRecipients(ctx context.Context, since time.Time) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT DISTINCT destination FROM outbox_deliveries
		WHERE LOWER(destination) LIKE 'mailto:%' AND (updated_at >= ? OR state IN ('pending', 'sending', 'failed-retrying'))`), since.Unix())
	if err != nil {
		return nil, storageErr("recipients", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return nil, storageErr("recipients", err)
		}
		if a := mailtoAddress(d); a != "" {
			out = append(out, strings.ToLower(a))
		}
	}
	return out, storageErr("recipients", rows.Err())
}

// Prune deletes reports (with their deliveries) whose deliveries are all
// finished (sent, given up) or that were given up, last touched before
// the given time. It returns the number of reports deleted.
func (s *Store) Prune(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.w.ExecContext(ctx, s.q(`DELETE FROM outbox_reports WHERE updated_at < ? AND (state = 'given-up' OR (state = 'resolved' AND NOT EXISTS (
		SELECT 1 FROM outbox_deliveries d WHERE d.report = outbox_reports.id AND (d.state NOT IN ('sent', 'given-up') OR d.updated_at >= ?))))`),
		before.Unix(), before.Unix())
	if err != nil {
		return 0, storageErr("prune", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}
