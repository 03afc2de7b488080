package fhirstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"time"

	"github.com/lib/pq"
)

// Statuses of an inbound message in the message log.
const (
	// MessageProcessed: the message was stored (its resources committed) and accepted.
	MessageProcessed = "processed"
	// MessageError: the message was refused (rejected or in error); nothing it carried was
	// stored. A resend with the same key is processed again.
	MessageError = "error"
)

// messageLogDDL is the inbound message log: one row per message received from an external
// system, keyed by its sender and the sender's control id (both NULL for a message too
// malformed to have them), with the raw bytes, the acknowledgment sent back and the
// resources the message created or updated. Raw bytes are BYTEA (a BLOB under SQLite's
// numeric affinity): a message may be in a character set other than UTF-8.
var messageLogDDL = []string{
	`CREATE TABLE inbound_message (
		id ROWID_PK,
		sender TEXT,
		control_id TEXT,
		type TEXT NOT NULL DEFAULT '',
		status TEXT NOT NULL,
		ack_code TEXT NOT NULL DEFAULT '',
		error TEXT NOT NULL DEFAULT '',
		raw BYTEA NOT NULL,
		ack BYTEA,
		resources TEXT NOT NULL DEFAULT '',
		received_at BIGINT NOT NULL,
		CONSTRAINT inbound_message_key UNIQUE (sender, control_id)
	)`,
	`CREATE INDEX inbound_message_status_idx ON inbound_message (status, id)`,
}

// InboundMessage is one entry of the inbound message log.
type InboundMessage struct {
	ID int64
	// Sender and ControlID are the deduplication key (for HL7 v2: sending application and
	// facility, and MSH-10); both empty for a message that could not be read.
	Sender    string
	ControlID string
	// Type is the message type, such as "ORU^R01".
	Type string
	// Status is MessageProcessed or MessageError.
	Status string
	// AckCode is the acknowledgment code sent back ("AA", "AE", "CA" ...).
	AckCode string
	// Error says why the message failed; it never quotes message content.
	Error string
	// Raw is the message as received; Ack the acknowledgment sent back (nil for none).
	Raw []byte
	Ack []byte
	// Resources are the "Type/id" references the message created or updated.
	Resources  []string
	ReceivedAt time.Time
}

// MessageQuery selects entries of the message log, newest first.
type MessageQuery struct {
	// Status keeps entries with this status ("" keeps all).
	Status string
	// Count is the page size (default 20, capped at 1000).
	Count int
	// Before continues a page: only entries with an id lower than it (0 starts at the newest).
	Before int64
}

// ErrRetry marks an error after which the whole transaction must be run again (a deadlock
// or serialization failure on PostgreSQL): Savepoint returns it joined with the cause, and
// InTx retries when the function passes it on.
var ErrRetry = errors.New("fhirstore: transaction must be retried")

// Savepoint runs fn in a savepoint of the transaction: when fn fails, its writes (and the
// changes and after-commit functions they registered) are rolled back and the transaction
// carries on, so that several independent units of work can share one commit. An error
// that aborts the whole transaction is returned joined with ErrRetry, without rolling back
// the savepoint: the caller must return it from the InTx function.
func (tx *Tx) Savepoint(ctx context.Context, fn func() error) error {
	changes, done, before, planned := len(tx.changes), len(tx.onDone), len(tx.before), tx.planned
	if _, err := tx.tx.ExecContext(ctx, "SAVEPOINT vigil_unit"); err != nil {
		return fmt.Errorf("fhirstore: savepoint: %w", err)
	}
	err := fn()
	if err != nil {
		if tx.s.d.retryable(err) {
			return errors.Join(ErrRetry, err)
		}
		if _, rerr := tx.tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT vigil_unit"); rerr != nil {
			return errors.Join(ErrRetry, fmt.Errorf("fhirstore: rollback to savepoint: %w", rerr))
		}
		tx.changes, tx.onDone, tx.before = tx.changes[:changes], tx.onDone[:done], tx.before[:before]
		tx.planned = planned // a SET LOCAL inside is undone too
		// What hooks remembered may describe rolled-back writes: forget it all.
		tx.memo = nil
	}
	if _, rerr := tx.tx.ExecContext(ctx, "RELEASE SAVEPOINT vigil_unit"); rerr != nil {
		return errors.Join(ErrRetry, fmt.Errorf("fhirstore: release savepoint: %w", rerr))
	}
	return err
}

// LockKey takes a lock on key for the rest of the transaction: LockKeys with one key.
func (tx *Tx) LockKey(ctx context.Context, key string) error { return tx.LockKeys(ctx, key) }

// LockKeys takes a lock on each key for the rest of the transaction, so that transactions
// that decide on the same key (a conditional create of one identifier, say) run one after
// the other, across server processes. On PostgreSQL they are transaction-scoped advisory
// locks, taken in one round trip and in a fixed order; SQLite runs one write transaction
// at a time and needs none.
func (tx *Tx) LockKeys(ctx context.Context, keys ...string) error {
	if tx.s.d.name() != "postgres" || len(keys) == 0 {
		return nil
	}
	hashes := make([]int64, 0, len(keys))
	for _, k := range keys {
		h := fnv.New64a()
		h.Write([]byte(k))
		hashes = append(hashes, int64(h.Sum64()))
	}
	slices.Sort(hashes)
	hashes = slices.Compact(hashes)
	if _, err := tx.exec(ctx, `SELECT pg_advisory_xact_lock(k) FROM unnest(?::bigint[]) AS k`, pq.Array(hashes)); err != nil {
		return fmt.Errorf("fhirstore: lock keys: %w", err)
	}
	return nil
}

// ClaimMessage claims the log entry of the message with key (sender, controlID) for this
// transaction. When no entry exists it inserts m (with status MessageError until
// FinishMessage records the outcome) and returns nil. When one exists it is locked and
// returned: a MessageProcessed entry means the message is a duplicate; a MessageError one
// may be processed again. A concurrent transaction claiming the same key waits for this
// one to end.
func (tx *Tx) ClaimMessage(ctx context.Context, m *InboundMessage) (*InboundMessage, error) {
	if m.Sender == "" && m.ControlID == "" {
		return nil, fmt.Errorf("%w: a message without a key cannot be claimed", ErrInvalid)
	}
	var id int64
	err := tx.queryRow(ctx, `INSERT INTO inbound_message (sender, control_id, type, status, raw, received_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (sender, control_id) DO NOTHING RETURNING id`,
		m.Sender, m.ControlID, m.Type, MessageError, m.Raw, tx.now.UnixMicro()).Scan(&id)
	if err == nil {
		m.ID, m.ReceivedAt, m.Status = id, tx.now, MessageError
		return nil, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("fhirstore: claim message: %w", err)
	}
	rows, err := tx.query(ctx, messageSelect+` WHERE sender = ? AND control_id = ?`+tx.s.d.forUpdate(), m.Sender, m.ControlID)
	if err != nil {
		return nil, fmt.Errorf("fhirstore: claim message: %w", err)
	}
	got, err := scanMessages(rows)
	if err != nil {
		return nil, fmt.Errorf("fhirstore: claim message: %w", err)
	}
	if len(got) == 0 {
		return nil, fmt.Errorf("fhirstore: claim message: the entry vanished: %w", ErrConflict)
	}
	m.ID = got[0].ID
	return got[0], nil
}

// FinishMessage records the outcome of a claimed message (m.ID from ClaimMessage): its
// status, acknowledgment, error and resources, and its raw text and type as received
// this time.
func (tx *Tx) FinishMessage(ctx context.Context, m *InboundMessage) error {
	res, err := tx.exec(ctx, `UPDATE inbound_message SET type = ?, status = ?, ack_code = ?, error = ?, raw = ?, ack = ?,
		resources = ?, received_at = ? WHERE id = ?`,
		m.Type, m.Status, m.AckCode, m.Error, m.Raw, m.Ack, strings.Join(m.Resources, " "), tx.now.UnixMicro(), m.ID)
	if err != nil {
		return fmt.Errorf("fhirstore: finish message %d: %w", m.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("fhirstore: finish message %d: %w", m.ID, ErrNotFound)
	}
	m.ReceivedAt = tx.now
	return nil
}

// RecordProcessed logs a message processed in this transaction, in one statement written
// after its resources: m with status MessageProcessed, its acknowledgment and resources.
// It replaces an entry of the same key that failed earlier. It reports false, writing
// nothing, when the key's entry is processed already: the message is a duplicate (sent
// again, or processed meanwhile by a concurrent transaction, which this one waited for),
// and the caller rolls back what it wrote for it.
func (tx *Tx) RecordProcessed(ctx context.Context, m *InboundMessage) (bool, error) {
	if m.Sender == "" && m.ControlID == "" {
		return false, fmt.Errorf("%w: a message without a key cannot be recorded as processed", ErrInvalid)
	}
	var id int64
	err := tx.queryRow(ctx, `INSERT INTO inbound_message (sender, control_id, type, status, ack_code, error, raw, ack, resources, received_at)
		VALUES (?, ?, ?, ?, ?, '', ?, ?, ?, ?)
		ON CONFLICT (sender, control_id) DO UPDATE SET type = excluded.type, status = excluded.status,
			ack_code = excluded.ack_code, error = '', raw = excluded.raw, ack = excluded.ack,
			resources = excluded.resources, received_at = excluded.received_at
		WHERE inbound_message.status <> ?
		RETURNING id`,
		m.Sender, m.ControlID, m.Type, MessageProcessed, m.AckCode, m.Raw, m.Ack, strings.Join(m.Resources, " "), tx.now.UnixMicro(),
		MessageProcessed).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("fhirstore: record message: %w", err)
	}
	m.ID, m.Status, m.Error, m.ReceivedAt = id, MessageProcessed, "", tx.now
	return true, nil
}

// RecordMessage logs a message that failed outside a claim: one without a key (it could
// not be read), or one whose processing transaction failed. A keyed entry replaces an
// earlier failed entry of the same key but never a processed one: then nothing is written
// and the processed entry is returned with ErrConflict, so that the caller can answer the
// resend as the duplicate it is.
func (s *Store) RecordMessage(ctx context.Context, m *InboundMessage) (*InboundMessage, error) {
	var orig *InboundMessage
	err := s.InTx(ctx, func(tx *Tx) error {
		orig = nil
		if m.Sender == "" && m.ControlID == "" {
			var id int64
			err := tx.queryRow(ctx, `INSERT INTO inbound_message (sender, control_id, type, status, ack_code, error, raw, ack, received_at)
				VALUES (NULL, NULL, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
				m.Type, m.Status, m.AckCode, m.Error, m.Raw, m.Ack, tx.now.UnixMicro()).Scan(&id)
			if err != nil {
				return fmt.Errorf("fhirstore: record message: %w", err)
			}
			m.ID, m.ReceivedAt = id, tx.now
			return nil
		}
		prev, err := tx.ClaimMessage(ctx, m)
		if err != nil {
			return err
		}
		if prev != nil && prev.Status == MessageProcessed {
			orig = prev
			return fmt.Errorf("fhirstore: record message: already processed: %w", ErrConflict)
		}
		return tx.FinishMessage(ctx, m)
	})
	return orig, err
}

const messageSelect = `SELECT id, sender, control_id, type, status, ack_code, error, raw, ack, resources, received_at FROM inbound_message`

func scanMessages(rows *sql.Rows) ([]*InboundMessage, error) {
	defer rows.Close()
	var out []*InboundMessage
	for rows.Next() {
		m := &InboundMessage{}
		var sender, control sql.NullString
		var resources string
		var at int64
		if err := rows.Scan(&m.ID, &sender, &control, &m.Type, &m.Status, &m.AckCode, &m.Error, &m.Raw, &m.Ack, &resources, &at); err != nil {
			return nil, err
		}
		m.Sender, m.ControlID = sender.String, control.String
		m.Resources = strings.Fields(resources)
		m.ReceivedAt = time.UnixMicro(at).UTC()
		out = append(out, m)
	}
	return out, rows.Err()
}

// Message returns one entry of the message log.
func (s *Store) Message(ctx context.Context, id int64) (*InboundMessage, error) {
	return logRow(ctx, s, "message", messageSelect, id, scanMessages)
}

// Messages returns one page of the message log, newest first.
func (s *Store) Messages(ctx context.Context, q MessageQuery) ([]*InboundMessage, error) {
	var where []frag
	if q.Status != "" {
		where = append(where, frag{"status = ?", []any{q.Status}})
	}
	return logPage(ctx, s, "messages", messageSelect, where, q.Before, q.Count, scanMessages)
}

// logRow reads the row of a log table (message log, outbox) with this id; sel selects
// the table's columns and scan reads them.
func logRow[T any](ctx context.Context, s *Store, what, sel string, id int64, scan func(*sql.Rows) ([]T, error)) (T, error) {
	var zero T
	got, err := logPage(ctx, s, what, sel, []frag{{"id = ?", []any{id}}}, 0, 1, scan)
	if err != nil {
		return zero, err
	}
	if len(got) == 0 {
		return zero, fmt.Errorf("fhirstore: %s %d: %w", what, id, ErrNotFound)
	}
	return got[0], nil
}

// logPage reads one page of a log table, newest first: the rows meeting where, before the
// id before (0: from the newest), at most count (the default page size when 0).
func logPage[T any](ctx context.Context, s *Store, what, sel string, where []frag, before int64, count int, scan func(*sql.Rows) ([]T, error)) ([]T, error) {
	if before > 0 {
		where = append(where, frag{"id < ?", []any{before}})
	}
	sqlText, args := sel, []any(nil)
	if w := joinFrags(" AND ", where); !w.empty() {
		sqlText, args = sel+" WHERE "+w.sql, w.args
	}
	sqlText += fmt.Sprintf(` ORDER BY id DESC LIMIT %d`, pageSize(count))
	rows, err := s.db.QueryContext(ctx, s.d.rebind(sqlText), args...)
	if err != nil {
		return nil, fmt.Errorf("fhirstore: %s: %w", what, err)
	}
	out, err := scan(rows)
	if err != nil {
		return nil, fmt.Errorf("fhirstore: %s: %w", what, err)
	}
	return out, nil
}

// pageSize applies the default and the cap of a page size.
func pageSize(n int) int {
	if n <= 0 {
		return DefaultPageSize
	}
	return min(n, MaxPageSize)
}

// MatchIdentifier returns the ids (up to limit) of live resources of typ with an
// identifier of the given value and, when systemSet, system: how a mapped message finds
// the Patient, Device or Observation it refers to. The query is driven by the token index
// (type, param, code, system), so its cost does not grow with the number of resources.
func (tx *Tx) MatchIdentifier(ctx context.Context, typ, system string, systemSet bool, value string, limit int) ([]string, error) {
	q := `SELECT r.id FROM idx_token t JOIN resource r ON r.rid = t.rid
		WHERE t.type = ? AND t.param = 'identifier' AND t.code = ?`
	args := []any{typ, value}
	if systemSet {
		q += ` AND t.system = ?`
		args = append(args, system)
	}
	q += ` AND r.deleted = 0 LIMIT ?`
	args = append(args, limit)
	rows, err := tx.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("fhirstore: match %s identifier: %w", typ, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("fhirstore: match %s identifier: %w", typ, err)
		}
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out, rows.Err()
}
