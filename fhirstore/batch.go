package fhirstore

import (
	"context"
	"fmt"
	"slices"

	"github.com/lib/pq"
)

// CreateMany stores new resources of one type with server-assigned ids in a handful of
// statements whatever their number: on PostgreSQL one for the current and history rows
// and one for every index row (pgwrite.go); on SQLite a multi-row INSERT per table (split
// only at the placeholder limit). Hooks then run for each resource in order, as for
// Create. It is the write path of batches of readings, where a statement per resource
// would make the round trips the bound.
//
// ids, when not nil, are the ids to use, one per body, each freshly made with NewID (a
// caller that rewrote references to them beforehand); nil makes new ones.
func (tx *Tx) CreateMany(ctx context.Context, typ string, ids []string, bodies []map[string]any) ([]*Resource, error) {
	if len(bodies) == 0 {
		return nil, nil
	}
	if ids != nil && len(ids) != len(bodies) {
		return nil, fmt.Errorf("fhirstore: CreateMany: %d ids for %d resources", len(ids), len(bodies))
	}
	out := make([]*Resource, len(bodies))
	for i, b := range bodies {
		id := NewID()
		if ids != nil {
			if !ValidID(ids[i]) {
				return nil, fmt.Errorf("%w: id %q is not a valid FHIR id", ErrInvalid, ids[i])
			}
			id = ids[i]
		}
		r, err := tx.s.finish(typ, id, 1, tx.now, b)
		if err != nil {
			return nil, err
		}
		r.Method = "POST"
		out[i] = r
	}
	var rids []int64
	var err error
	if tx.s.d.name() == "postgres" {
		rids, err = tx.pgInsertCurrent(ctx, out)
	} else {
		rids, err = tx.insertCurrent(ctx, out)
		if err == nil {
			err = tx.insertRows(ctx, indexInsert{table: "resource_history", cols: "rid, type, id, version, last_updated, deleted, method, body",
				width: 8, n: len(out), row: func(i int, a []any) []any {
					r := out[i]
					return append(a, rids[i], r.Type, r.ID, r.Version, r.LastUpdated.UnixMicro(), 0, r.Method, string(r.Body))
				}})
			if err != nil {
				err = fmt.Errorf("fhirstore: history of %d %s: %w", len(out), typ, err)
			}
		}
	}
	if err != nil {
		return nil, err
	}
	// Index rows of all resources, merged per table.
	var merged []indexInsert
	var latest []latestRow
	for i, b := range bodies {
		rows, err := tx.s.indexer.Index(typ, b)
		if err != nil {
			return nil, fmt.Errorf("fhirstore: index %s/%s: %w", typ, out[i].ID, err)
		}
		if rows == nil {
			continue
		}
		latest = append(latest, latestRows(rids[i], typ, rows)...)
		ins := indexInserts(rids[i], typ, rows)
		if merged == nil {
			merged = make([]indexInsert, len(ins))
			for k, in := range ins {
				merged[k] = indexInsert{table: in.table, cols: in.cols, width: in.width}
			}
		}
		for k, in := range ins {
			merged[k] = appendInsert(merged[k], in)
		}
	}
	if err := tx.insertIndex(ctx, append(merged, latestInsert(latest))); err != nil {
		return nil, fmt.Errorf("fhirstore: index rows of %d %s: %w", len(out), typ, err)
	}
	for i, r := range out {
		if err := tx.runHooks(ctx, Change{Resource: r, Created: true, Content: bodies[i]}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// appendInsert concatenates the rows of b after those of a (same table).
func appendInsert(a, b indexInsert) indexInsert {
	if b.n == 0 {
		return a
	}
	if a.n == 0 {
		return b
	}
	an, arow, brow := a.n, a.row, b.row
	a.row = func(i int, args []any) []any {
		if i < an {
			return arow(i, args)
		}
		return brow(i-an, args)
	}
	a.n += b.n
	return a
}

// insertCurrent inserts the current rows of new resources and returns their row ids in
// the same order.
func (tx *Tx) insertCurrent(ctx context.Context, rs []*Resource) ([]int64, error) {
	const width = 6
	rids := make([]int64, len(rs))
	pos := make(map[string]int, len(rs))
	for i, r := range rs {
		pos[r.ID] = i
	}
	per := maxInsertArgs / width
	for start := 0; start < len(rs); start += per {
		end := min(len(rs), start+per)
		q := insertSQL("resource", "type, id, version, last_updated, deleted, body", width, end-start) + " RETURNING rid, id"
		args := make([]any, 0, (end-start)*width)
		for _, r := range rs[start:end] {
			args = append(args, r.Type, r.ID, r.Version, r.LastUpdated.UnixMicro(), 0, string(r.Body))
		}
		rows, err := tx.query(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("fhirstore: insert %d %s: %w", end-start, rs[start].Type, err)
		}
		n := 0
		for rows.Next() {
			var rid int64
			var id string
			if err := rows.Scan(&rid, &id); err != nil {
				rows.Close()
				return nil, fmt.Errorf("fhirstore: insert: %w", err)
			}
			rids[pos[id]] = rid
			n++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("fhirstore: insert: %w", err)
		}
		if n != end-start {
			return nil, fmt.Errorf("fhirstore: insert of %d rows returned %d ids", end-start, n)
		}
	}
	return rids, nil
}

// MatchIdentifiers returns, for each value, the id of a live resource of typ with the
// identifier system|value (the first one found), in one query. Values without a match
// are absent from the map.
func (tx *Tx) MatchIdentifiers(ctx context.Context, typ, system string, values []string) (map[string]string, error) {
	all, err := tx.MatchIdentifiersAll(ctx, typ, system, values)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(all))
	for v, ids := range all {
		out[v] = ids[0]
	}
	return out, nil
}

// MatchIdentifiersAll returns, for each value, the ids of the live resources of typ with
// the identifier system|value (each once, in storage order), in one query; values without
// a match are absent. Matching a patient must see when an identifier names two.
func (tx *Tx) MatchIdentifiersAll(ctx context.Context, typ, system string, values []string) (map[string][]string, error) {
	out := make(map[string][]string, len(values))
	const per = 500
	for start := 0; start < len(values); start += per {
		chunk := values[start:min(len(values), start+per)]
		q := `SELECT t.code, r.id FROM idx_token t JOIN resource r ON r.rid = t.rid
			WHERE t.type = ? AND t.param = 'identifier' AND t.system = ? AND r.deleted = 0 AND t.code `
		args := []any{typ, system}
		if tx.s.d.name() == "postgres" {
			// One statement text whatever the number of values (prepared once).
			q += `= ANY(?::text[])`
			args = append(args, pq.StringArray(chunk))
		} else {
			q += `IN (` + placeholders(len(chunk)) + `)`
			for _, v := range chunk {
				args = append(args, v)
			}
		}
		rows, err := tx.query(ctx, q+` ORDER BY r.rid`, args...)
		if err != nil {
			return nil, fmt.Errorf("fhirstore: match %s identifiers: %w", typ, err)
		}
		for rows.Next() {
			var code, id string
			if err := rows.Scan(&code, &id); err != nil {
				rows.Close()
				return nil, fmt.Errorf("fhirstore: match %s identifiers: %w", typ, err)
			}
			if !slices.Contains(out[code], id) {
				out[code] = append(out[code], id)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("fhirstore: match %s identifiers: %w", typ, err)
		}
	}
	return out, nil
}
