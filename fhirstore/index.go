package fhirstore

import (
	"context"
	"fmt"
	"strings"
)

// Indexer extracts the search index rows of a resource. It is called inside the write
// transaction, so the index always agrees with the stored resource.
type Indexer interface {
	Index(resourceType string, resource map[string]any) (*IndexRows, error)
}

// IndexRows are the rows one resource contributes to the index tables.
type IndexRows struct {
	Tokens []TokenRow
}

// TokenRow is one token value: a Coding, an Identifier, a code, a boolean...
type TokenRow struct {
	Param  string
	System string
	Code   string
	Text   string
}

// IdentifierIndexer indexes the top-level identifier element of every resource as the
// token parameter "identifier", which is what conditional create/update/delete need.
type IdentifierIndexer struct{}

// Index implements Indexer.
func (IdentifierIndexer) Index(_ string, res map[string]any) (*IndexRows, error) {
	rows := &IndexRows{}
	add := func(v any) {
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		system, _ := m["system"].(string)
		value, _ := m["value"].(string)
		if value == "" {
			return
		}
		rows.Tokens = append(rows.Tokens, TokenRow{Param: "identifier", System: system, Code: value})
	}
	switch id := res["identifier"].(type) {
	case []any:
		for _, v := range id {
			add(v)
		}
	case map[string]any:
		add(id)
	}
	return rows, nil
}

func (tx *Tx) reindex(ctx context.Context, rid int64, r *Resource, body map[string]any) error {
	if _, err := tx.exec(ctx, `DELETE FROM idx_token WHERE rid = ?`, rid); err != nil {
		return fmt.Errorf("fhirstore: clear index %s/%s: %w", r.Type, r.ID, err)
	}
	if r.Deleted || body == nil {
		return nil
	}
	rows, err := tx.s.indexer.Index(r.Type, body)
	if err != nil {
		return fmt.Errorf("fhirstore: index %s/%s: %w", r.Type, r.ID, err)
	}
	if rows == nil || len(rows.Tokens) == 0 {
		return nil
	}
	// One multi-row INSERT per table keeps the round trips per write constant.
	var b strings.Builder
	b.WriteString(`INSERT INTO idx_token (rid, type, param, system, code, text) VALUES `)
	args := make([]any, 0, len(rows.Tokens)*6)
	for i, t := range rows.Tokens {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, ?, ?)")
		args = append(args, rid, r.Type, t.Param, t.System, t.Code, t.Text)
	}
	if _, err := tx.exec(ctx, b.String(), args...); err != nil {
		return fmt.Errorf("fhirstore: write index %s/%s: %w", r.Type, r.ID, err)
	}
	return nil
}

// TokenMatch is one condition on a token parameter: Code must match; System matches when
// SystemSet (an empty System then means "no system", per FHIR's `|code`).
type TokenMatch struct {
	Param     string
	System    string
	SystemSet bool
	Code      string
}

// FindIDs returns the ids of live resources of typ that satisfy every token condition
// (AND), and whose id is in ids when ids is non-empty. limit bounds the result (conditional
// operations need only to know 0, 1 or many).
func (tx *Tx) FindIDs(ctx context.Context, typ string, ids []string, tokens []TokenMatch, limit int) ([]string, error) {
	q := `SELECT r.id FROM resource r WHERE r.type = ? AND r.deleted = 0`
	args := []any{typ}
	if len(ids) > 0 {
		q += ` AND r.id IN (` + strings.TrimSuffix(strings.Repeat("?, ", len(ids)), ", ") + `)`
		for _, id := range ids {
			args = append(args, id)
		}
	}
	for _, t := range tokens {
		q += ` AND EXISTS (SELECT 1 FROM idx_token t WHERE t.rid = r.rid AND t.type = ? AND t.param = ? AND t.code = ?`
		args = append(args, typ, t.Param, t.Code)
		if t.SystemSet {
			q += ` AND t.system = ?`
			args = append(args, t.System)
		}
		q += `)`
	}
	q += ` ORDER BY r.rid LIMIT ?`
	args = append(args, limit)
	rows, err := tx.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("fhirstore: find %s: %w", typ, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("fhirstore: find %s: %w", typ, err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}
