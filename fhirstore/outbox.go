package fhirstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/lib/pq"
)

// Statuses of an outbox row.
const (
	// OutboxPending: waiting to be delivered (again, after a failed attempt when Attempts > 0).
	OutboxPending = "pending"
	// OutboxSent: delivered and acknowledged.
	OutboxSent = "sent"
	// OutboxParked: refused by the destination in a way a resend cannot fix; it waits for an
	// operator (RequeueOutbox) and no longer holds up the rows behind it.
	OutboxParked = "parked"
	// OutboxFailed selects, in an OutboxQuery, the pending rows whose last attempt failed.
	OutboxFailed = "failed"
)

// OutboxChannel is the PostgreSQL notification channel Enqueue notifies (with the
// destination as payload) when its transaction commits.
const OutboxChannel = "vigil_outbox"

// outboxDDL is the outbound outbox: messages to deliver to named destinations, written in
// the transaction of the data they carry and delivered in id order per destination. A
// claimed row carries a lease (claimed_until) so that one row per destination is in flight
// across all processes, and a crashed sender's row is taken over when the lease ends.
var outboxDDL = []string{
	`CREATE TABLE outbox (
		id ROWID_PK,
		destination TEXT NOT NULL,
		ref TEXT NOT NULL DEFAULT '',
		payload BYTEA NOT NULL,
		status TEXT NOT NULL,
		attempts INTEGER NOT NULL DEFAULT 0,
		next_attempt BIGINT NOT NULL,
		claimed_until BIGINT NOT NULL DEFAULT 0,
		last_error TEXT NOT NULL DEFAULT '',
		created_at BIGINT NOT NULL,
		sent_at BIGINT NOT NULL DEFAULT 0
	)`,
	`CREATE INDEX outbox_destination_idx ON outbox (destination, status, id)`,
	`CREATE INDEX outbox_status_idx ON outbox (status, id)`,
}

// OutboxMessage is one row of the outbox.
type OutboxMessage struct {
	ID          int64
	Destination string
	// Ref names what the message carries ("Observation/123"), for operators.
	Ref     string
	Payload []byte
	Status  string
	// Attempts counts delivery attempts so far (the current one included once claimed).
	Attempts    int
	NextAttempt time.Time
	LastError   string
	CreatedAt   time.Time
	// SentAt is zero until the row is sent.
	SentAt time.Time
}

// OutboxQuery selects outbox rows, newest first.
type OutboxQuery struct {
	Destination string
	// Status is OutboxPending, OutboxSent, OutboxParked, OutboxFailed or "" (all).
	Status string
	// Count is the page size (default 20, capped at 1000).
	Count int
	// Before continues a page: only rows with an id lower than it.
	Before int64
}

// Enqueue writes a message for destination in the transaction: it is delivered only if the
// transaction commits. ref names what it carries. On PostgreSQL the commit also notifies
// OutboxChannel, waking senders in every process.
func (tx *Tx) Enqueue(ctx context.Context, destination, ref string, payload []byte) (int64, error) {
	var id int64
	now := tx.now.UnixMicro()
	err := tx.queryRow(ctx, `INSERT INTO outbox (destination, ref, payload, status, next_attempt, created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id`,
		destination, ref, payload, OutboxPending, now, now).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("fhirstore: enqueue for %s: %w", destination, err)
	}
	if tx.s.d.name() == "postgres" {
		if _, err := tx.exec(ctx, `SELECT pg_notify(?, ?)`, OutboxChannel, destination); err != nil {
			return 0, fmt.Errorf("fhirstore: enqueue for %s: notify: %w", destination, err)
		}
	}
	return id, nil
}

const outboxSelect = `SELECT id, destination, ref, payload, status, attempts, next_attempt, claimed_until, last_error, created_at, sent_at FROM outbox`

func scanOutbox(rows *sql.Rows) ([]*OutboxMessage, []int64, error) {
	defer rows.Close()
	var out []*OutboxMessage
	var claims []int64
	for rows.Next() {
		m := &OutboxMessage{}
		var next, claimed, created, sent int64
		if err := rows.Scan(&m.ID, &m.Destination, &m.Ref, &m.Payload, &m.Status, &m.Attempts, &next, &claimed, &m.LastError, &created, &sent); err != nil {
			return nil, nil, err
		}
		m.NextAttempt = time.UnixMicro(next).UTC()
		m.CreatedAt = time.UnixMicro(created).UTC()
		if sent > 0 {
			m.SentAt = time.UnixMicro(sent).UTC()
		}
		out = append(out, m)
		claims = append(claims, claimed)
	}
	return out, claims, rows.Err()
}

// ClaimOutbox claims the next message of destination for delivery: the oldest pending row,
// when it is due and no sender holds it. The claim lasts lease; within it the caller
// reports the outcome with CompleteOutbox, RetryOutbox or ParkOutbox. Only the head of a
// destination's queue is ever claimed, so messages leave in order and one at a time per
// destination, across processes. When nothing can be claimed it returns nil and the time
// the head becomes claimable (zero when the queue is empty).
func (s *Store) ClaimOutbox(ctx context.Context, destination string, lease time.Duration) (*OutboxMessage, time.Time, error) {
	var got *OutboxMessage
	var wait time.Time
	err := s.InTx(ctx, func(tx *Tx) error {
		got, wait = nil, time.Time{}
		lock := ""
		if s.d.name() == "postgres" {
			// A head locked by another claimer is skipped, not waited for: that claimer
			// owns it. Skipping never reaches the second row, because the head is chosen
			// by the subquery before locking.
			lock = " FOR UPDATE SKIP LOCKED"
		}
		// The status is tested again on the row itself: a head completed by another sender
		// between this statement's snapshot and its lock is re-read at its new version
		// (PostgreSQL re-checks the row's own conditions, not the subquery's), and must
		// not be claimed a second time.
		rows, err := tx.query(ctx, outboxSelect+` WHERE id = (SELECT MIN(id) FROM outbox WHERE destination = ? AND status = ?) AND status = ?`+lock,
			destination, OutboxPending, OutboxPending)
		if err != nil {
			return fmt.Errorf("fhirstore: claim outbox %s: %w", destination, err)
		}
		heads, claims, err := scanOutbox(rows)
		if err != nil {
			return fmt.Errorf("fhirstore: claim outbox %s: %w", destination, err)
		}
		if len(heads) == 0 {
			return nil
		}
		h, now := heads[0], tx.now
		if until := time.UnixMicro(claims[0]).UTC(); until.After(now) {
			wait = until
			return nil
		}
		if h.NextAttempt.After(now) {
			wait = h.NextAttempt
			return nil
		}
		if _, err := tx.exec(ctx, `UPDATE outbox SET claimed_until = ?, attempts = attempts + 1 WHERE id = ?`,
			now.Add(lease).UnixMicro(), h.ID); err != nil {
			return fmt.Errorf("fhirstore: claim outbox %d: %w", h.ID, err)
		}
		h.Attempts++
		got = h
		return nil
	})
	return got, wait, err
}

// CompleteOutbox marks a claimed message sent.
func (s *Store) CompleteOutbox(ctx context.Context, id int64) error {
	return s.updateOutbox(ctx, id, `UPDATE outbox SET status = ?, sent_at = ?, claimed_until = 0, last_error = '' WHERE id = ?`,
		func(now time.Time) []any { return []any{OutboxSent, now.UnixMicro(), id} })
}

// RetryOutbox releases a claimed message after a failed attempt: it stays at the head of its
// queue and is tried again at the time given.
func (s *Store) RetryOutbox(ctx context.Context, id int64, at time.Time, reason string) error {
	return s.updateOutbox(ctx, id, `UPDATE outbox SET claimed_until = 0, next_attempt = ?, last_error = ? WHERE id = ?`,
		func(time.Time) []any { return []any{at.UnixMicro(), reason, id} })
}

// ParkOutbox takes a claimed message out of its queue until an operator requeues it.
func (s *Store) ParkOutbox(ctx context.Context, id int64, reason string) error {
	return s.updateOutbox(ctx, id, `UPDATE outbox SET status = ?, claimed_until = 0, last_error = ? WHERE id = ?`,
		func(time.Time) []any { return []any{OutboxParked, reason, id} })
}

// RequeueOutbox puts a parked or failed message back in its queue, due now. A sent message
// cannot be requeued (ErrConflict).
func (s *Store) RequeueOutbox(ctx context.Context, id int64) (*OutboxMessage, error) {
	var got *OutboxMessage
	err := s.InTx(ctx, func(tx *Tx) error {
		rows, err := tx.query(ctx, outboxSelect+` WHERE id = ?`+s.d.forUpdate(), id)
		if err != nil {
			return fmt.Errorf("fhirstore: requeue outbox %d: %w", id, err)
		}
		ms, _, err := scanOutbox(rows)
		if err != nil {
			return fmt.Errorf("fhirstore: requeue outbox %d: %w", id, err)
		}
		if len(ms) == 0 {
			return fmt.Errorf("fhirstore: outbox %d: %w", id, ErrNotFound)
		}
		if ms[0].Status == OutboxSent {
			return fmt.Errorf("fhirstore: outbox %d was sent already: %w", id, ErrConflict)
		}
		if _, err := tx.exec(ctx, `UPDATE outbox SET status = ?, next_attempt = ? WHERE id = ?`, OutboxPending, tx.now.UnixMicro(), id); err != nil {
			return fmt.Errorf("fhirstore: requeue outbox %d: %w", id, err)
		}
		if s.d.name() == "postgres" {
			if _, err := tx.exec(ctx, `SELECT pg_notify(?, ?)`, OutboxChannel, ms[0].Destination); err != nil {
				return fmt.Errorf("fhirstore: requeue outbox %d: notify: %w", id, err)
			}
		}
		got = ms[0]
		got.Status, got.NextAttempt = OutboxPending, tx.now
		return nil
	})
	return got, err
}

func (s *Store) updateOutbox(ctx context.Context, id int64, q string, args func(now time.Time) []any) error {
	return s.InTx(ctx, func(tx *Tx) error {
		res, err := tx.exec(ctx, q, args(tx.now)...)
		if err != nil {
			return fmt.Errorf("fhirstore: outbox %d: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("fhirstore: outbox %d: %w", id, ErrNotFound)
		}
		return nil
	})
}

// OutboxMessage returns one outbox row.
func (s *Store) OutboxMessage(ctx context.Context, id int64) (*OutboxMessage, error) {
	return logRow(ctx, s, "outbox", outboxSelect, id, scanOutboxRows)
}

// OutboxMessages returns one page of outbox rows, newest first.
func (s *Store) OutboxMessages(ctx context.Context, q OutboxQuery) ([]*OutboxMessage, error) {
	var where []frag
	if q.Destination != "" {
		where = append(where, frag{"destination = ?", []any{q.Destination}})
	}
	switch q.Status {
	case "":
	case OutboxFailed:
		where = append(where, frag{"status = ? AND last_error <> ''", []any{OutboxPending}})
	default:
		where = append(where, frag{"status = ?", []any{q.Status}})
	}
	return logPage(ctx, s, "outbox", outboxSelect, where, q.Before, q.Count, scanOutboxRows)
}

// scanOutboxRows is scanOutbox without the claim times.
func scanOutboxRows(rows *sql.Rows) ([]*OutboxMessage, error) {
	ms, _, err := scanOutbox(rows)
	return ms, err
}

// ListenOutbox calls wake with the destination of every message enqueued or requeued by
// any process on the PostgreSQL database at rawURL, until ctx ends; it also calls wake("")
// after a reconnect, when notifications may have been missed. On SQLite (one process) it
// returns nil at once: callers wake their senders in process (Tx.AfterCommit).
func (s *Store) ListenOutbox(ctx context.Context, rawURL string, wake func(destination string)) error {
	if s.d.name() != "postgres" {
		return nil
	}
	dsn, err := postgresDSN(rawURL)
	if err != nil {
		return err
	}
	l := pq.NewListener(dsn, 100*time.Millisecond, 10*time.Second, func(ev pq.ListenerEventType, err error) {
		if err != nil {
			s.log.Warn("outbox listener", "event", int(ev), "err", err)
		}
	})
	defer l.Close()
	if err := l.Listen(OutboxChannel); err != nil {
		return fmt.Errorf("fhirstore: listen %s: %w", OutboxChannel, err)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case n := <-l.Notify:
			if n == nil { // reconnected: notifications may have been lost
				wake("")
				continue
			}
			wake(n.Extra)
		case <-time.After(time.Minute):
			go l.Ping()
		}
	}
}
