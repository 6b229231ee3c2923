package sqlstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/tlsrpt"
)

// Duplicates, conflicts and the one counted report per key.
//
// RFC 8460 §5.3 (RPT-RECV-4) uses report-id to drop duplicates, but a
// report POSTed over HTTPS carries no authentication (§5.3: "not
// authenticated"), so keying on (organization-name, report-id) alone let
// anyone suppress a sender's coming report by sending a forged one with
// its organisation and report-id first. A report is therefore a
// duplicate only when its content is identical: same key and same
// content hash, the SHA-256 of the canonical form of the normalised
// report (contentHash). A report with the key of a stored one but other
// content is stored too, and every report of the key is flagged
// conflict.
//
// Summary (and the rollup) count one report per key, so that conflicts
// are never double-counted: the first authenticated one (a mail report
// whose DKIM signature belongs to the reporting organisation), else the
// first stored. An authenticated report arriving after an
// unauthenticated one with the same key takes over the count (the
// rollup moves in the same transaction); identical retries change
// nothing, except that an identical copy that is authenticated marks the
// stored report authenticated. Failures and Show list every report,
// with its authenticated and conflict flags.

// legacyHashPrefix marks the content_hash of reports stored before
// migration 3, whose hash is computed when a report of the same key
// arrives. SHA-256 hex never contains a colon.
const legacyHashPrefix = "legacy:"

// contentHash returns the SHA-256, in hex, of the canonical form of r:
// tlsrpt.Marshal of the report with domains lowercased without a
// trailing dot and times in whole seconds, exactly as the store keeps
// them, so that a report rebuilt from its rows hashes as it did when it
// arrived.
func contentHash(r *tlsrpt.Report) string {
	c := *r
	c.DateRange.Start = r.DateRange.Start.Truncate(time.Second)
	c.DateRange.End = r.DateRange.End.Truncate(time.Second)
	c.Policies = make([]tlsrpt.PolicyResult, len(r.Policies))
	for i, p := range r.Policies {
		p.Policy.Domain = normDomain(p.Policy.Domain)
		mxs := make([]string, len(p.Policy.MXHost))
		for j, m := range p.Policy.MXHost {
			mxs[j] = normDomain(m)
		}
		p.Policy.MXHost = mxs
		fds := make([]tlsrpt.FailureDetails, len(p.FailureDetails))
		for j, fd := range p.FailureDetails {
			fd.ReceivingMXHostname = normDomain(fd.ReceivingMXHostname)
			fds[j] = fd
		}
		p.FailureDetails = fds
		c.Policies[i] = p
	}
	b, err := tlsrpt.Marshal(&c)
	if err != nil {
		b = []byte(err.Error()) // unreachable: Marshal fails only on nil
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// querier is what *sql.DB and *sql.Tx share for reading.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// keyRowsSQL selects the stored reports of a key, oldest first.
const keyRowsSQL = `SELECT id, content_hash, authenticated, counted FROM reports
		WHERE report_id = ? AND organization = ? ORDER BY id`

// keyRow is one stored report of an (organization, report-id) key.
type keyRow struct {
	id                     int64
	hash                   string
	authenticated, counted bool
}

// keyRows returns the stored reports of a key, oldest first, with the
// hashes of legacy rows computed and stored.
func (s *sqlStore) keyRows(ctx context.Context, tx *sql.Tx, ps *putStmts, org, reportID string) ([]keyRow, error) {
	if err := s.prepare(ctx, tx, &ps.keyRows, keyRowsSQL); err != nil {
		return nil, err
	}
	rows, err := ps.keyRows.QueryContext(ctx, reportID, org)
	if err != nil {
		return nil, s.errorf("find reports with this report-id: %w", err)
	}
	var out []keyRow
	for rows.Next() {
		var kr keyRow
		var auth, counted int64
		if err := rows.Scan(&kr.id, &kr.hash, &auth, &counted); err != nil {
			rows.Close()
			return nil, s.errorf("find reports with this report-id: %w", err)
		}
		kr.authenticated, kr.counted = auth != 0, counted != 0
		out = append(out, kr)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, s.errorf("find reports with this report-id: %w", err)
	}
	for i := range out {
		if !strings.HasPrefix(out[i].hash, legacyHashPrefix) {
			continue
		}
		r, err := s.loadReport(ctx, tx, out[i].id)
		if err != nil {
			return nil, err
		}
		out[i].hash = contentHash(r)
		if _, err := tx.ExecContext(ctx, s.d.rebind(`UPDATE reports SET content_hash = ? WHERE id = ?`), out[i].hash, out[i].id); err != nil {
			return nil, s.errorf("hash stored report %d: %w", out[i].id, err)
		}
	}
	return out, nil
}

// loadReport rebuilds stored report id from its rows through q.
func (s *sqlStore) loadReport(ctx context.Context, q querier, id int64) (*tlsrpt.Report, error) {
	r := &tlsrpt.Report{}
	var start, end int64
	err := q.QueryRowContext(ctx, s.d.rebind(`SELECT organization, report_id, contact_info, start_time, end_time
		FROM reports WHERE id = ?`), id).Scan(&r.OrganizationName, &r.ReportID, &r.ContactInfo, &start, &end)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: report %d", reports.ErrNotFound, id)
	}
	if err != nil {
		return nil, s.errorf("load report %d: %w", id, err)
	}
	r.DateRange = tlsrpt.DateRange{Start: time.Unix(start, 0).UTC(), End: time.Unix(end, 0).UTC()}
	sr := reports.StoredReport{ID: id, Report: r}
	if err := s.loadPolicies(ctx, q, &sr); err != nil {
		return nil, err
	}
	return r, nil
}

// recount makes the counted report of a key the first authenticated one,
// else the first, moving the rollup sums accordingly. rows are the key's
// reports, oldest first, as they are now in tx; known is the content of
// report knownID (the one being put), so it need not be read back.
func (s *sqlStore) recount(ctx context.Context, tx *sql.Tx, rows []keyRow, known *tlsrpt.Report, knownID int64, ru rollup) error {
	want := rows[0].id
	for _, kr := range rows {
		if kr.authenticated {
			want = kr.id
			break
		}
	}
	var cur int64
	for _, kr := range rows {
		if kr.counted {
			cur = kr.id
			break
		}
	}
	if cur == want {
		return nil
	}
	content := func(id int64) (*tlsrpt.Report, error) {
		if id == knownID {
			return known, nil
		}
		return s.loadReport(ctx, tx, id)
	}
	if cur != 0 {
		// The copy losing the count leaves the rollup only if a fold
		// added it (fold.go). On PostgreSQL the read locks its row: a
		// fold that claimed it first has committed by then (its mark
		// reads 0), and one that comes later skips it.
		var pending int64
		if err := tx.QueryRowContext(ctx, s.d.rebind(`SELECT pending FROM reports WHERE id = ?`+s.d.forUpdate), cur).Scan(&pending); err != nil {
			return s.errorf("read the fold mark of report %d: %w", cur, err)
		}
		if pending == 0 {
			r, err := content(cur)
			if err != nil {
				return err
			}
			ru.subReport(r, day(r.DateRange.Start))
		}
	}
	// The copy taking the count is pending: the next fold adds it.
	if _, err := tx.ExecContext(ctx, s.d.rebind(`UPDATE reports SET counted = CASE WHEN id = ? THEN 1 ELSE 0 END,
		pending = CASE WHEN id = ? THEN 1 ELSE 0 END WHERE id IN (?, ?)`), want, want, want, cur); err != nil {
		return s.errorf("move the count to report %d: %w", want, err)
	}
	return nil
}

// subReport takes one counted report out of the rollup (the opposite of
// addReport); entries that cancel out are dropped.
func (ru rollup) subReport(r *tlsrpt.Report, d string) {
	one := rollup{}
	one.addReport(r, d)
	for k, v := range one {
		t := ru[k]
		t.reports -= v.reports
		t.successful -= v.successful
		t.failed -= v.failed
		t.succReports -= v.succReports
		t.ndReports -= v.ndReports
		t.ndFailed -= v.ndFailed
		if t == (rollupSums{}) {
			delete(ru, k)
			continue
		}
		ru[k] = t
	}
}

// uncountedCond is the condition on a policies or failure_details row
// (column report) that its report is counted by Summary; with
// authenticatedOnly also that it is authenticated.
func uncountedCond(f reports.Filter) string {
	c := "report NOT IN (SELECT id FROM reports WHERE counted = 0)"
	if f.AuthenticatedOnly {
		c += " AND report IN (SELECT id FROM reports WHERE authenticated = 1)"
	}
	return c
}
