package fhirstore

import (
	"context"
	"strings"
)

// ExplainSearch returns the backend's query plan of the page query of req (tests only).
// noSeqScan (PostgreSQL) plans with sequential scans disabled, which shows whether the
// indexes can serve the query whatever the table sizes.
func (s *Store) ExplainSearch(ctx context.Context, req SearchRequest, noSeqScan bool) (string, error) {
	b := &qb{s: s, snap: s.registry().snapshot(), now: s.Now()}
	plan, err := b.plan(req)
	if err != nil {
		return "", err
	}
	sqlText, args, err := pageSQL(joinFrags(" AND ", plan.where), plan, nil, 0)
	if err != nil {
		return "", err
	}
	prefix := "EXPLAIN "
	if s.d.name() == "sqlite" {
		prefix = "EXPLAIN QUERY PLAN "
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return "", err
	}
	defer tx.Rollback()
	if noSeqScan && s.d.name() == "postgres" {
		if _, err := tx.ExecContext(ctx, "SET LOCAL enable_seqscan = off"); err != nil {
			return "", err
		}
	}
	rows, err := tx.QueryContext(ctx, s.d.rebind(prefix+sqlText), args...)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var lines []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return "", err
		}
		var parts []string
		for _, v := range vals {
			switch x := v.(type) {
			case []byte:
				parts = append(parts, string(x))
			case string:
				parts = append(parts, x)
			}
		}
		lines = append(lines, strings.Join(parts, " "))
	}
	return strings.Join(lines, "\n"), rows.Err()
}

// MaintainOnce runs one round of Maintain (tests only).
func (s *Store) MaintainOnce(ctx context.Context) error { return s.maintainOnce(ctx) }
