package fhirstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Read returns the current version of typ/id. For a deleted resource it returns the
// deletion version (Deleted set, no body) together with ErrGone.
func (s *Store) Read(ctx context.Context, typ, id string) (*Resource, error) {
	r := &Resource{Type: typ, ID: id}
	var lu int64
	var del int
	var body string
	err := s.readRow(ctx, `SELECT version, last_updated, deleted, body FROM resource WHERE type = ? AND id = ?`, typ, id).
		Scan(&r.Version, &lu, &del, &body)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%s/%s: %w", typ, id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("fhirstore: read %s/%s: %w", typ, id, err)
	}
	r.LastUpdated = time.UnixMicro(lu).UTC()
	r.Deleted = del != 0
	r.Body = []byte(body)
	if r.Deleted {
		return r, fmt.Errorf("%s/%s: %w", typ, id, ErrGone)
	}
	return r, nil
}

// VRead returns one version of typ/id from history. A version that is a deletion is
// returned with ErrGone.
func (s *Store) VRead(ctx context.Context, typ, id string, version int64) (*Resource, error) {
	r := &Resource{Type: typ, ID: id, Version: version}
	var lu int64
	var del int
	var body string
	err := s.readRow(ctx, `SELECT last_updated, deleted, method, body FROM resource_history WHERE type = ? AND id = ? AND version = ?`, typ, id, version).
		Scan(&lu, &del, &r.Method, &body)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%s/%s/_history/%d: %w", typ, id, version, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("fhirstore: vread %s/%s/%d: %w", typ, id, version, err)
	}
	r.LastUpdated = time.UnixMicro(lu).UTC()
	r.Deleted = del != 0
	r.Body = []byte(body)
	if r.Deleted {
		return r, fmt.Errorf("%s/%s/_history/%d: %w", typ, id, version, ErrGone)
	}
	return r, nil
}

// HistoryQuery selects versions for a history interaction. Type and ID narrow it to a type
// or an instance; both empty means system history.
type HistoryQuery struct {
	Type, ID string
	// Since keeps versions with lastUpdated >= Since (zero: no bound).
	Since time.Time
	// At keeps versions that were current at the instant At (zero: no bound).
	At time.Time
	// Count is the page size (default 20, capped at 1000).
	Count int
	// Before continues a page: only versions with a history sequence lower than it
	// (from HistoryPage.Next); 0 starts at the newest.
	Before int64
}

// HistoryPage is one page of history, newest first.
type HistoryPage struct {
	Entries []*Resource
	// Next is the cursor for the following page, 0 when this is the last page.
	Next int64
	// Total is the number of versions matching the query (all pages).
	Total int
}

// MaxPageSize bounds _count.
const MaxPageSize = 1000

// History returns one page of versions, newest first. Paging is by history sequence, so
// versions written while a client walks the pages neither repeat nor shift entries.
func (s *Store) History(ctx context.Context, q HistoryQuery) (*HistoryPage, error) {
	if q.Count <= 0 {
		q.Count = 20
	}
	if q.Count > MaxPageSize {
		q.Count = MaxPageSize
	}
	var where []string
	var args []any
	if q.Type != "" {
		where = append(where, "h.type = ?")
		args = append(args, q.Type)
	}
	if q.ID != "" {
		where = append(where, "h.id = ?")
		args = append(args, q.ID)
	}
	if !q.Since.IsZero() {
		where = append(where, "h.last_updated >= ?")
		args = append(args, q.Since.UnixMicro())
	}
	if !q.At.IsZero() {
		// Current at At: written at or before At and not replaced by a version written
		// at or before At.
		where = append(where, "h.last_updated <= ?", `NOT EXISTS (SELECT 1 FROM resource_history n
			WHERE n.type = h.type AND n.id = h.id AND n.version = h.version + 1 AND n.last_updated <= ?)`)
		args = append(args, q.At.UnixMicro(), q.At.UnixMicro())
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	var total int
	if err := s.db.QueryRowContext(ctx, s.d.rebind(`SELECT COUNT(*) FROM resource_history h`+cond), args...).Scan(&total); err != nil {
		return nil, fmt.Errorf("fhirstore: history count: %w", err)
	}
	pageCond := cond
	pageArgs := append([]any(nil), args...)
	if q.Before > 0 {
		if pageCond == "" {
			pageCond = " WHERE h.hid < ?"
		} else {
			pageCond += " AND h.hid < ?"
		}
		pageArgs = append(pageArgs, q.Before)
	}
	pageArgs = append(pageArgs, q.Count+1)
	rows, err := s.db.QueryContext(ctx, s.d.rebind(`SELECT h.hid, h.type, h.id, h.version, h.last_updated, h.deleted, h.method, h.body
		FROM resource_history h`+pageCond+` ORDER BY h.hid DESC LIMIT ?`), pageArgs...)
	if err != nil {
		return nil, fmt.Errorf("fhirstore: history: %w", err)
	}
	defer rows.Close()
	page := &HistoryPage{Total: total}
	var lastHid int64
	for rows.Next() {
		var hid, lu int64
		var del int
		var body string
		r := &Resource{}
		if err := rows.Scan(&hid, &r.Type, &r.ID, &r.Version, &lu, &del, &r.Method, &body); err != nil {
			return nil, fmt.Errorf("fhirstore: history scan: %w", err)
		}
		if len(page.Entries) == q.Count {
			page.Next = lastHid
			break
		}
		r.LastUpdated = time.UnixMicro(lu).UTC()
		r.Deleted = del != 0
		r.Body = []byte(body)
		page.Entries = append(page.Entries, r)
		lastHid = hid
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("fhirstore: history: %w", err)
	}
	return page, nil
}
