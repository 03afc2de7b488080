package fhirstore

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Tx is one database transaction of the write pipeline. All reads through it see its own
// writes. A Tx must not be used after the function given to InTx returns.
type Tx struct {
	s       *Store
	tx      *sql.Tx
	now     time.Time
	depth   int
	onDone  []func()
	changes []Change
	memo    map[any]any
	// planned is set once a search has switched the transaction to per-call planning.
	planned bool
	// before are the functions to run once the caller's work is done, before the commit.
	before []func(context.Context) error
}

// BeforeCommit registers f to run after the transaction's work and before its commit, in
// the transaction (never on rollback). Hooks use it to write once per transaction what
// many writes changed, e.g. an alert updated by every reading of a batch. f may write,
// and may register more functions.
func (tx *Tx) BeforeCommit(f func(ctx context.Context) error) { tx.before = append(tx.before, f) }

func (tx *Tx) runBeforeCommit(ctx context.Context) error {
	for len(tx.before) > 0 {
		f := tx.before[0]
		tx.before = tx.before[1:]
		if err := f(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Memo returns the value stored under key for the rest of the transaction, making it with
// mk the first time. Hooks keep per-transaction state in it (e.g. what they already read),
// so a transaction of many writes does not repeat the same queries.
func (tx *Tx) Memo(key any, mk func() any) any {
	if v, ok := tx.memo[key]; ok {
		return v
	}
	if tx.memo == nil {
		tx.memo = map[any]any{}
	}
	v := mk()
	tx.memo[key] = v
	return v
}

// Changes returns the writes made so far in the transaction, in order (hook writes
// included), e.g. to report what a message created.
func (tx *Tx) Changes() []Change { return tx.changes }

// Store returns the store the transaction belongs to.
func (tx *Tx) Store() *Store { return tx.s }

// Now returns the transaction's timestamp (the meta.lastUpdated of all its writes).
func (tx *Tx) Now() time.Time { return tx.now }

// AfterCommit registers f to run after the transaction commits (never on rollback), e.g. to
// wake an outbox worker.
func (tx *Tx) AfterCommit(f func()) { tx.onDone = append(tx.onDone, f) }

// InTx runs fn in a write transaction and commits. If fn returns an error the transaction
// rolls back and the error is returned. fn may be run more than once (a PostgreSQL
// serialization failure or deadlock is retried), so it must not keep state across attempts.
// On SQLite, transactions of concurrent callers share commits (group commit); each runs in
// its own savepoint, so one caller's failure does not affect another's. fn must not call
// InTx itself.
func (s *Store) InTx(ctx context.Context, fn func(tx *Tx) error) error {
	if s.writer != nil {
		return s.writer.submit(ctx, fn)
	}
	const attempts = 5
	var err error
	for i := 0; i < attempts; i++ {
		err = s.runTx(ctx, fn)
		if err == nil || !s.d.retryable(err) || ctx.Err() != nil {
			return err
		}
		time.Sleep(time.Duration(i+1) * 5 * time.Millisecond)
	}
	// Still colliding with concurrent writers after every retry: a conflict the client
	// may resolve by retrying later (HTTP 409).
	return fmt.Errorf("%w: concurrent writes kept colliding: %v", ErrConflict, err)
}

func (s *Store) runTx(ctx context.Context, fn func(tx *Tx) error) error {
	sqlTx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("fhirstore: begin: %w", err)
	}
	tx := &Tx{s: s, tx: sqlTx, now: s.Now()}
	if err := fn(tx); err != nil {
		sqlTx.Rollback()
		return err
	}
	if err := tx.runBeforeCommit(ctx); err != nil {
		sqlTx.Rollback()
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("fhirstore: commit: %w", err)
	}
	for _, f := range tx.onDone {
		f()
	}
	return nil
}

// current is the locked current row of a resource.
type current struct {
	rid int64
	res *Resource
}

// lock reads and locks the current row of type/id; nil when absent.
func (tx *Tx) lock(ctx context.Context, typ, id string) (*current, error) {
	row := tx.queryRow(ctx, `SELECT rid, version, last_updated, deleted, body FROM resource WHERE type = ? AND id = ?`+tx.s.d.forUpdate(), typ, id)
	c := &current{res: &Resource{Type: typ, ID: id}}
	var lu int64
	var del int
	var body string
	if err := row.Scan(&c.rid, &c.res.Version, &lu, &del, &body); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, nil
		}
		return nil, fmt.Errorf("fhirstore: read %s/%s: %w", typ, id, err)
	}
	c.res.LastUpdated = time.UnixMicro(lu).UTC()
	c.res.Deleted = del != 0
	c.res.Body = []byte(body)
	return c, nil
}

// Read returns the current version of type/id as seen by the transaction, locking it for
// the rest of the transaction. A deleted resource is returned with ErrGone.
func (tx *Tx) Read(ctx context.Context, typ, id string) (*Resource, error) {
	c, err := tx.lock(ctx, typ, id)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, fmt.Errorf("%s/%s: %w", typ, id, ErrNotFound)
	}
	if c.res.Deleted {
		return c.res, fmt.Errorf("%s/%s: %w", typ, id, ErrGone)
	}
	return c.res, nil
}

// ValidID reports whether id is a syntactically valid FHIR logical id:
// [A-Za-z0-9\-.]{1,64}. (A loop: it runs on every write and every read by id.)
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// NewID returns a fresh server-assigned id: a UUIDv7, time-ordered so that B-tree inserts
// stay local.
func NewID() string { return uuid.Must(uuid.NewV7()).String() }

// Create stores body as a new resource of type typ with a server-assigned id (any id in
// body is replaced) and returns the stored version.
func (tx *Tx) Create(ctx context.Context, typ string, body map[string]any) (*Resource, error) {
	return tx.CreateNew(ctx, typ, NewID(), body)
}

// CreateNew stores body under id, which the caller has just made with NewID: no resource
// can have it yet, so the existence check (a round trip) is skipped. The unique key still
// refuses a reused id.
func (tx *Tx) CreateNew(ctx context.Context, typ, id string, body map[string]any) (*Resource, error) {
	res, _, err := tx.write(ctx, typ, id, "POST", true, func(*Resource) (map[string]any, error) { return body, nil })
	return res, err
}

// CreateWithID stores body as a new resource with the given id; ErrConflict if the id is
// taken by a live resource.
func (tx *Tx) CreateWithID(ctx context.Context, typ, id string, body map[string]any) (*Resource, error) {
	res, created, err := tx.Update(ctx, typ, id, "POST", func(cur *Resource) (map[string]any, error) {
		if cur != nil {
			return nil, fmt.Errorf("create %s/%s: id in use: %w", typ, id, ErrConflict)
		}
		return body, nil
	})
	if err != nil {
		return nil, err
	}
	if !created {
		return nil, fmt.Errorf("create %s/%s: %w", typ, id, ErrConflict)
	}
	return res, nil
}

// Updater computes the new content of a resource from its current version (nil when the
// resource does not exist or is deleted). Returning ErrVersionConflict (wrapped) aborts
// with a 412-style error; returning a nil map and nil error leaves the resource unchanged.
type Updater func(current *Resource) (map[string]any, error)

// Update writes a new version of typ/id computed by fn from the current one, inside the
// transaction and with the row locked, so concurrent updates serialise and versions stay
// gapless. method is recorded in history ("PUT", "PATCH", "POST"). created reports that the
// resource did not exist (or was deleted) before.
func (tx *Tx) Update(ctx context.Context, typ, id, method string, fn Updater) (res *Resource, created bool, err error) {
	return tx.write(ctx, typ, id, method, false, fn)
}

func (tx *Tx) write(ctx context.Context, typ, id, method string, fresh bool, fn Updater) (res *Resource, created bool, err error) {
	if !ValidID(id) {
		return nil, false, fmt.Errorf("%w: id %q is not a valid FHIR id", ErrInvalid, id)
	}
	var c *current
	if !fresh {
		if c, err = tx.lock(ctx, typ, id); err != nil {
			return nil, false, err
		}
	}
	var prev *Resource
	if c != nil && !c.res.Deleted {
		prev = c.res
	}
	body, err := fn(prev)
	if err != nil {
		return nil, false, err
	}
	if body == nil {
		if prev == nil {
			return nil, false, fmt.Errorf("update %s/%s: updater returned no resource: %w", typ, id, ErrInvalid)
		}
		return prev, false, nil
	}
	version := int64(1)
	if c != nil {
		version = c.res.Version + 1
	}
	newRes, err := tx.s.finish(typ, id, version, tx.now, body)
	if err != nil {
		return nil, false, err
	}
	newRes.Method = method
	rid, err := tx.writeVersion(ctx, c, newRes)
	if err != nil {
		return nil, false, err
	}
	if err := tx.reindex(ctx, rid, newRes, body); err != nil {
		return nil, false, err
	}
	if err := tx.runHooks(ctx, Change{Resource: newRes, Previous: prev, Created: prev == nil, Content: body}); err != nil {
		return nil, false, err
	}
	return newRes, prev == nil, nil
}

// Delete marks typ/id deleted with a new version. fn, when not nil, may veto with an error
// (If-Match). Deleting a missing resource returns ErrNotFound; deleting an already deleted
// one returns the deletion version and ErrGone, and writes nothing.
func (tx *Tx) Delete(ctx context.Context, typ, id string, fn func(current *Resource) error) (*Resource, error) {
	c, err := tx.lock(ctx, typ, id)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, fmt.Errorf("delete %s/%s: %w", typ, id, ErrNotFound)
	}
	if c.res.Deleted {
		return c.res, fmt.Errorf("delete %s/%s: %w", typ, id, ErrGone)
	}
	if fn != nil {
		if err := fn(c.res); err != nil {
			return nil, err
		}
	}
	del := &Resource{Type: typ, ID: id, Version: c.res.Version + 1, LastUpdated: tx.now, Deleted: true, Method: "DELETE"}
	if _, err := tx.writeVersion(ctx, c, del); err != nil {
		return nil, err
	}
	if err := tx.reindex(ctx, c.rid, del, nil); err != nil {
		return nil, err
	}
	if err := tx.runHooks(ctx, Change{Resource: del, Previous: c.res}); err != nil {
		return nil, err
	}
	return del, nil
}

// writeVersion writes r as the current row (a new one when c is nil) and as a history row,
// and returns the row id. On PostgreSQL both go in one statement (data-modifying CTEs),
// which also sends the body once.
func (tx *Tx) writeVersion(ctx context.Context, c *current, r *Resource) (int64, error) {
	if tx.s.d.name() != "postgres" {
		rid, err := tx.writeCurrent(ctx, c, r)
		if err != nil {
			return 0, err
		}
		return rid, tx.writeHistory(ctx, rid, r)
	}
	del := 0
	if r.Deleted {
		del = 1
	}
	lu := r.LastUpdated.UnixMicro()
	var rid int64
	if c == nil {
		err := tx.queryRow(ctx, `WITH r AS (INSERT INTO resource (type, id, version, last_updated, deleted, body)
				VALUES ($1, $2, $3, $4, $5, $6) RETURNING rid),
			h AS (INSERT INTO resource_history (rid, type, id, version, last_updated, deleted, method, body)
				SELECT rid, $1, $2, $3, $4, $5, $7, $6 FROM r)
			SELECT rid FROM r`, r.Type, r.ID, r.Version, lu, del, string(r.Body), r.Method).Scan(&rid)
		if err != nil {
			return 0, fmt.Errorf("fhirstore: insert %s/%s: %w", r.Type, r.ID, err)
		}
		return rid, nil
	}
	err := tx.queryRow(ctx, `WITH u AS (UPDATE resource SET version = $1, last_updated = $2, deleted = $3, body = $4
				WHERE rid = $5 RETURNING rid, type, id),
			h AS (INSERT INTO resource_history (rid, type, id, version, last_updated, deleted, method, body)
				SELECT rid, type, id, $1, $2, $3, $6, $4 FROM u)
			SELECT rid FROM u`, r.Version, lu, del, string(r.Body), c.rid, r.Method).Scan(&rid)
	if err != nil {
		return 0, fmt.Errorf("fhirstore: update %s/%s: %w", r.Type, r.ID, err)
	}
	return rid, nil
}

func (tx *Tx) writeCurrent(ctx context.Context, c *current, r *Resource) (int64, error) {
	del := 0
	if r.Deleted {
		del = 1
	}
	lu := r.LastUpdated.UnixMicro()
	if c == nil {
		var rid int64
		err := tx.queryRow(ctx, `INSERT INTO resource (type, id, version, last_updated, deleted, body) VALUES (?, ?, ?, ?, ?, ?) RETURNING rid`,
			r.Type, r.ID, r.Version, lu, del, string(r.Body)).Scan(&rid)
		if err != nil {
			return 0, fmt.Errorf("fhirstore: insert %s/%s: %w", r.Type, r.ID, err)
		}
		return rid, nil
	}
	if _, err := tx.exec(ctx, `UPDATE resource SET version = ?, last_updated = ?, deleted = ?, body = ? WHERE rid = ?`,
		r.Version, lu, del, string(r.Body), c.rid); err != nil {
		return 0, fmt.Errorf("fhirstore: update %s/%s: %w", r.Type, r.ID, err)
	}
	return c.rid, nil
}

func (tx *Tx) writeHistory(ctx context.Context, rid int64, r *Resource) error {
	del := 0
	if r.Deleted {
		del = 1
	}
	if _, err := tx.exec(ctx, `INSERT INTO resource_history (rid, type, id, version, last_updated, deleted, method, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		rid, r.Type, r.ID, r.Version, r.LastUpdated.UnixMicro(), del, r.Method, string(r.Body)); err != nil {
		return fmt.Errorf("fhirstore: history %s/%s/%d: %w", r.Type, r.ID, r.Version, err)
	}
	return nil
}

const maxHookDepth = 8

func (tx *Tx) runHooks(ctx context.Context, c Change) error {
	tx.changes = append(tx.changes, c)
	hooks := tx.s.currentHooks()
	if len(hooks) == 0 {
		return nil
	}
	if tx.depth >= maxHookDepth {
		return fmt.Errorf("fhirstore: hooks nested deeper than %d writes", maxHookDepth)
	}
	tx.depth++
	defer func() { tx.depth-- }()
	for _, h := range hooks {
		if err := h.AfterWrite(ctx, tx, c); err != nil {
			return err
		}
	}
	return nil
}

// finish sets id and meta (versionId, lastUpdated) on body and encodes it.
func (s *Store) finish(typ, id string, version int64, now time.Time, body map[string]any) (*Resource, error) {
	if rt, _ := body["resourceType"].(string); rt != typ {
		return nil, fmt.Errorf("%w: resourceType %q does not match %s", ErrInvalid, rt, typ)
	}
	body["id"] = id
	meta, _ := body["meta"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
	}
	meta["versionId"] = fmt.Sprint(version)
	meta["lastUpdated"] = FormatInstant(now)
	body["meta"] = meta
	b, err := EncodeResource(body)
	if err != nil {
		return nil, fmt.Errorf("fhirstore: encode %s/%s: %w", typ, id, err)
	}
	return &Resource{Type: typ, ID: id, Version: version, LastUpdated: now, Body: b}, nil
}

// FormatInstant formats t as a FHIR instant in UTC with millisecond precision.
func FormatInstant(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// EncodeResource encodes a resource as compact JSON with resourceType first (as FHIR
// examples and most servers write it) and the other members in a stable order, without
// HTML escaping.
func EncodeResource(body map[string]any) ([]byte, error) {
	rt, _ := body["resourceType"].(string)
	rest := make(map[string]any, len(body))
	for k, v := range body {
		if k != "resourceType" {
			rest[k] = v
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(rest); err != nil {
		return nil, err
	}
	inner := bytes.TrimRight(buf.Bytes(), "\n")
	out := make([]byte, 0, len(inner)+len(rt)+20)
	out = append(out, `{"resourceType":`...)
	out, _ = appendJSONString(out, rt)
	if len(inner) > 2 {
		out = append(out, ',')
		out = append(out, inner[1:]...)
	} else {
		out = append(out, '}')
	}
	return out, nil
}

func appendJSONString(dst []byte, s string) ([]byte, error) {
	b, err := json.Marshal(s)
	return append(dst, b...), err
}
