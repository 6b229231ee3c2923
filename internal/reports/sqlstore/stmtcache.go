package sqlstore

import (
	"context"
	"database/sql"
)

// stmtCache keeps the write path's statements prepared on the writer
// pool for the life of the store. SQLite parses and plans a statement at
// every prepare: re-preparing the rollup upsert (hundreds of rows of
// placeholders) and the report inserts for each transaction cost about a
// fifth of the ingest's CPU (bench/reports profile). database/sql keeps
// a statement prepared per connection (SQLite has one writer
// connection), and Tx.StmtContext reuses that preparation inside a
// transaction, re-preparing on the transaction's own connection if the
// pool replaced it.
//
// The statements are prepared when the store opens, never while a
// transaction runs: DB.PrepareContext takes a connection of its own, and
// SQLite's only writer connection is then held by the transaction. The
// set is fixed (putStatements), so the cache is bounded and read-only
// after opening.
type stmtCache map[string]*sql.Stmt

// putStatements are the statements of PutReports, prepared at open.
func putStatements() []string {
	qs := []string{insertReportSQL, insertPolicySQL, keyRowsSQL}
	for _, n := range rollupChunkSizes {
		qs = append(qs, rollupUpsert(n), insertDetails(n))
	}
	return qs
}

// prepareStatements fills s.stmts; called by the Open functions after
// Migrate, before the store is shared.
func (s *sqlStore) prepareStatements(ctx context.Context) error {
	s.stmts = make(stmtCache)
	for _, q := range putStatements() {
		p, err := s.w.PrepareContext(ctx, s.stmtSQL(q))
		if err != nil {
			s.stmts.close()
			return s.errorf("prepare: %w", err)
		}
		s.stmts[q] = p
	}
	return nil
}

// txStmt returns q (with "?" placeholders) prepared for tx: the cached
// preparation when q is one of putStatements, else a new one. The
// statement belongs to tx and is released when tx ends.
func (s *sqlStore) txStmt(ctx context.Context, tx *sql.Tx, q string) (*sql.Stmt, error) {
	if st, ok := s.stmts[q]; ok {
		return tx.StmtContext(ctx, st), nil
	}
	p, err := tx.PrepareContext(ctx, s.stmtSQL(q))
	if err != nil {
		return nil, s.errorf("prepare: %w", err)
	}
	return p, nil
}

// stmtSQL is q as the backend runs it: its placeholders rebound, and
// RETURNING id after an insert of insertsWithID where the backend reads
// new ids that way (dialect.returningID).
func (s *sqlStore) stmtSQL(q string) string {
	if s.d.returningID && insertsWithID[q] {
		q += ` RETURNING id`
	}
	return s.d.rebind(q)
}

// close releases the cached statements (before the pool is closed).
func (c stmtCache) close() {
	for q, st := range c {
		st.Close()
		delete(c, q)
	}
}
