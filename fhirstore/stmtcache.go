package fhirstore

import (
	"container/list"
	"context"
	"database/sql"
	"sync"
	"time"
)

// The store's own statements (writes, locks, identifier and latest-value lookups) have a
// fixed text for a given shape, so they are prepared once per pool connection and reused:
// on PostgreSQL, parsing and planning them again on every call cost more than executing
// them. Search SQL is not cached (its plans depend on the values searched for).
const (
	// maxCachedStmts bounds the cache (texts vary with row counts of multi-row INSERTs).
	maxCachedStmts = 512
	// maxCachedStmtLen keeps one-off giant statements (a large batch's INSERT) out.
	maxCachedStmtLen = 16 << 10
	// prepareWait bounds the wait for a pool connection to prepare on: when every
	// connection is held by a transaction (each perhaps preparing too), the statement
	// runs unprepared instead of waiting.
	prepareWait = 50 * time.Millisecond
)

type stmtCache struct {
	mu  sync.Mutex
	m   map[string]*list.Element // text -> *cachedStmt
	lru list.List                // most recently used first
}

type cachedStmt struct {
	q  string
	st *sql.Stmt
}

// prepared returns the write pool's prepared statement of q (already rebound), preparing
// it on first use; nil when q is not cached or cannot be prepared right now, in which
// case the caller runs it unprepared (and sees any error in it there).
func (s *Store) prepared(ctx context.Context, q string) *sql.Stmt {
	return s.stmts.prepare(ctx, s.wdb, q)
}

// readRow runs a fixed single-row read (by id, by version) on the read pool, prepared once
// per connection.
func (s *Store) readRow(ctx context.Context, q string, args ...any) *sql.Row {
	q = s.d.rebind(q)
	if st := s.rstmts.prepare(ctx, s.db, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return s.db.QueryRowContext(ctx, q, args...)
}

// prepare returns q prepared on db, from the cache or made now; nil when q is not cached
// or cannot be prepared right now.
func (c *stmtCache) prepare(ctx context.Context, db *sql.DB, q string) *sql.Stmt {
	if len(q) > maxCachedStmtLen {
		return nil
	}
	c.mu.Lock()
	if e, ok := c.m[q]; ok {
		c.lru.MoveToFront(e)
		st := e.Value.(*cachedStmt).st
		c.mu.Unlock()
		return st
	}
	c.mu.Unlock()
	pctx, cancel := context.WithTimeout(ctx, prepareWait)
	st, err := db.PrepareContext(pctx, q)
	cancel()
	if err != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*list.Element{}
	}
	if e, ok := c.m[q]; ok { // prepared concurrently
		st.Close()
		c.lru.MoveToFront(e)
		return e.Value.(*cachedStmt).st
	}
	c.m[q] = c.lru.PushFront(&cachedStmt{q, st})
	for c.lru.Len() > maxCachedStmts {
		e := c.lru.Back()
		c.lru.Remove(e)
		old := e.Value.(*cachedStmt)
		delete(c.m, old.q)
		old.st.Close()
	}
	return st
}

// closeStmts closes every cached statement (the store is closing).
func (c *stmtCache) closeStmts() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for e := c.lru.Front(); e != nil; e = e.Next() {
		e.Value.(*cachedStmt).st.Close()
	}
	c.m = nil
	c.lru.Init()
}

// stmt returns q prepared for the transaction, or nil (run it unprepared).
func (tx *Tx) stmt(ctx context.Context, q string) *sql.Stmt {
	if p := tx.s.prepared(ctx, q); p != nil {
		return tx.tx.StmtContext(ctx, p)
	}
	return nil
}

func (tx *Tx) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	q = tx.s.d.rebind(q)
	if st := tx.stmt(ctx, q); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return tx.tx.ExecContext(ctx, q, args...)
}

func (tx *Tx) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	q = tx.s.d.rebind(q)
	if st := tx.stmt(ctx, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return tx.tx.QueryContext(ctx, q, args...)
}

func (tx *Tx) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	q = tx.s.d.rebind(q)
	if st := tx.stmt(ctx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return tx.tx.QueryRowContext(ctx, q, args...)
}
