package fhirstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/lib/pq"
)

// On PostgreSQL the index rows of a write, whatever their number and tables, go in one
// statement of fixed text: each table's rows as one array per column, expanded with
// unnest. The text never changes, so it is prepared once per connection (stmtcache.go);
// a multi-row VALUES list instead changes with every row count and was parsed and planned
// on each call, which cost more than inserting the rows.

// pgTypes are the PostgreSQL column types of each table's insert, in column order.
var pgTypes = map[string][]string{
	"idx_token":     {"bigint", "text", "text", "text", "text", "text", "int"},
	"idx_string":    {"bigint", "text", "text", "text", "text", "int"},
	"idx_reference": {"bigint", "text", "text", "text", "text", "text", "text", "int", "bigint", "bigint"},
	"idx_date":      {"bigint", "text", "text", "bigint", "bigint", "int"},
	"idx_number":    {"bigint", "text", "text", "float8", "float8", "float8", "int"},
	"idx_quantity":  {"bigint", "text", "text", "float8", "float8", "float8", "text", "text", "text", "text", "float8", "float8", "float8", "int"},
	"idx_uri":       {"bigint", "text", "text", "text", "int"},
	"obs_latest":    {"text", "text", "text", "bigint", "bigint", "bigint"},
}

// pgIndexShape is the tables of an index write, in the order indexInserts and
// latestInsert produce them.
var pgIndexShape = sync.OnceValue(func() []indexInsert {
	return append(indexInserts(0, "", &IndexRows{}), latestInsert(nil))
})

// pgIndexSQL is the text of the index write: a data-modifying CTE per table.
var pgIndexSQL = sync.OnceValue(func() string {
	var b strings.Builder
	n := 0
	shape := pgIndexShape()
	for k, in := range shape {
		if k == 0 {
			b.WriteString("WITH ")
		} else if k < len(shape)-1 {
			b.WriteString(", ")
		} else {
			b.WriteString(" ")
		}
		if k < len(shape)-1 {
			b.WriteString("w" + strconv.Itoa(k) + " AS (")
		}
		b.WriteString(unnestInsertSQL(in.table, in.cols, &n))
		b.WriteString(in.suffix)
		if k < len(shape)-1 {
			b.WriteString(")")
		}
	}
	return b.String()
})

// unnestInsertSQL is "INSERT INTO table (cols) SELECT * FROM unnest($n::type[], ...)",
// numbering the placeholders from *n+1.
func unnestInsertSQL(table, cols string, n *int) string {
	types := pgTypes[table]
	args := make([]string, len(types))
	for i, t := range types {
		*n++
		args[i] = "$" + strconv.Itoa(*n) + "::" + t + "[]"
	}
	return "INSERT INTO " + table + " (" + cols + ") SELECT * FROM unnest(" + strings.Join(args, ", ") + ")"
}

// columnArrays turns the rows of in into one array per column, typed for pgTypes.
func columnArrays(in indexInsert) ([]any, error) {
	types := pgTypes[in.table]
	cols := make([]any, len(types))
	for c, t := range types {
		switch t {
		case "text":
			cols[c] = make(pq.StringArray, 0, in.n)
		case "float8":
			cols[c] = make(pq.Float64Array, 0, in.n)
		default:
			cols[c] = make(pq.Int64Array, 0, in.n)
		}
	}
	row := make([]any, 0, len(types))
	for i := 0; i < in.n; i++ {
		row = in.row(i, row[:0])
		if len(row) != len(types) {
			return nil, fmt.Errorf("fhirstore: %s row has %d values for %d columns", in.table, len(row), len(types))
		}
		for c, v := range row {
			switch a := cols[c].(type) {
			case pq.StringArray:
				s, ok := v.(string)
				if !ok {
					return nil, fmt.Errorf("fhirstore: %s column %d: %T is not text", in.table, c, v)
				}
				cols[c] = append(a, s)
			case pq.Float64Array:
				f, ok := v.(float64)
				if !ok {
					return nil, fmt.Errorf("fhirstore: %s column %d: %T is not float8", in.table, c, v)
				}
				cols[c] = append(a, f)
			case pq.Int64Array:
				switch x := v.(type) {
				case int64:
					cols[c] = append(a, x)
				case int:
					cols[c] = append(a, int64(x))
				default:
					return nil, fmt.Errorf("fhirstore: %s column %d: %T is not an integer", in.table, c, v)
				}
			}
		}
	}
	return cols, nil
}

// pgInsertIndex writes the index rows of ins (one entry per table, in pgIndexShape
// order; missing or empty ones write nothing) in one statement.
func (tx *Tx) pgInsertIndex(ctx context.Context, ins []indexInsert) error {
	byTable := make(map[string]indexInsert, len(ins))
	for _, in := range ins {
		if in.n > 0 {
			byTable[in.table] = in
		}
	}
	if len(byTable) == 0 {
		return nil
	}
	var args []any
	for _, shape := range pgIndexShape() {
		in, ok := byTable[shape.table]
		if !ok {
			in = shape
			in.n = 0
		}
		cols, err := columnArrays(in)
		if err != nil {
			return err
		}
		args = append(args, cols...)
	}
	if _, err := tx.exec(ctx, pgIndexSQL(), args...); err != nil {
		return fmt.Errorf("index rows: %w", err)
	}
	return nil
}

// pgInsertCurrent inserts the current and history rows of new resources (first versions,
// created now) in one statement and returns their row ids in order.
func (tx *Tx) pgInsertCurrent(ctx context.Context, rs []*Resource) ([]int64, error) {
	ids := make(pq.StringArray, len(rs))
	bodies := make(pq.StringArray, len(rs))
	for i, r := range rs {
		ids[i], bodies[i] = r.ID, string(r.Body)
	}
	const q = `WITH r AS (INSERT INTO resource (type, id, version, last_updated, deleted, body)
			SELECT $1, u.id, 1, $2, 0, u.body FROM unnest($3::text[], $4::text[]) AS u(id, body) RETURNING rid, id, body),
		h AS (INSERT INTO resource_history (rid, type, id, version, last_updated, deleted, method, body)
			SELECT rid, $1, id, 1, $2, 0, 'POST', body FROM r)
		SELECT rid, id FROM r`
	rows, err := tx.query(ctx, q, rs[0].Type, rs[0].LastUpdated.UnixMicro(), ids, bodies)
	if err != nil {
		return nil, fmt.Errorf("fhirstore: insert %d %s: %w", len(rs), rs[0].Type, err)
	}
	defer rows.Close()
	pos := make(map[string]int, len(rs))
	for i, r := range rs {
		pos[r.ID] = i
	}
	rids := make([]int64, len(rs))
	n := 0
	for rows.Next() {
		var rid int64
		var id string
		if err := rows.Scan(&rid, &id); err != nil {
			return nil, fmt.Errorf("fhirstore: insert: %w", err)
		}
		rids[pos[id]] = rid
		n++
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("fhirstore: insert %d %s: %w", len(rs), rs[0].Type, err)
	}
	if n != len(rs) {
		return nil, fmt.Errorf("fhirstore: insert of %d rows returned %d ids", len(rs), n)
	}
	return rids, nil
}
