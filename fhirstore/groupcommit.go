package fhirstore

import (
	"context"
	"fmt"
	"sync"
)

// groupWriter serialises SQLite write transactions in one goroutine and lets concurrent
// callers share a commit: it runs each queued job in its own savepoint of one database
// transaction and commits once for all of them. A job's error rolls back only its
// savepoint. Every caller is answered only after the commit that holds its writes returns,
// so an acknowledged write is durable (synchronous=FULL) while the fsync rate no longer
// bounds the write rate.
type groupWriter struct {
	s    *Store
	jobs chan *writeJob
	max  int

	mu     sync.Mutex
	closed bool
	done   chan struct{}
}

type writeJob struct {
	ctx    context.Context
	fn     func(*Tx) error
	result chan error
	onDone []func()
}

func newGroupWriter(s *Store, max int) *groupWriter {
	w := &groupWriter{s: s, jobs: make(chan *writeJob, max), max: max, done: make(chan struct{})}
	go w.loop()
	return w
}

func (w *groupWriter) submit(ctx context.Context, fn func(*Tx) error) error {
	j := &writeJob{ctx: ctx, fn: fn, result: make(chan error, 1)}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	// The send happens under the lock so close cannot race it; the channel is buffered
	// and drained by the loop, so this blocks only under heavy backlog.
	select {
	case w.jobs <- j:
	case <-ctx.Done():
		w.mu.Unlock()
		return ctx.Err()
	}
	w.mu.Unlock()
	// Once queued, the job will be answered: wait for it even if ctx ends, because it may
	// already be in a commit and the caller must not report failure for a stored write.
	err := <-j.result
	if err == nil {
		for _, f := range j.onDone {
			f()
		}
	}
	return err
}

func (w *groupWriter) close() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	close(w.jobs)
	w.mu.Unlock()
	<-w.done
}

func (w *groupWriter) loop() {
	defer close(w.done)
	batch := make([]*writeJob, 0, w.max)
	for j := range w.jobs {
		batch = append(batch[:0], j)
	fill:
		for len(batch) < w.max {
			select {
			case j, ok := <-w.jobs:
				if !ok {
					break fill
				}
				batch = append(batch, j)
			default:
				break fill
			}
		}
		w.run(batch)
	}
}

func (w *groupWriter) run(batch []*writeJob) {
	ctx := context.Background()
	sqlTx, err := w.s.wdb.BeginTx(ctx, nil)
	if err != nil {
		for _, j := range batch {
			j.result <- fmt.Errorf("fhirstore: begin: %w", err)
		}
		return
	}
	now := w.s.Now()
	results := make([]error, len(batch))
	ok := 0
	for i, j := range batch {
		if err := j.ctx.Err(); err != nil {
			results[i] = err
			continue
		}
		if _, err := sqlTx.ExecContext(ctx, "SAVEPOINT job"); err != nil {
			results[i] = fmt.Errorf("fhirstore: savepoint: %w", err)
			continue
		}
		tx := &Tx{s: w.s, tx: sqlTx, now: now}
		err := j.fn(tx)
		if err == nil {
			err = tx.runBeforeCommit(j.ctx)
		}
		if err != nil {
			results[i] = err
			if _, rerr := sqlTx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT job"); rerr != nil {
				// The transaction is unusable: fail the whole group.
				sqlTx.Rollback()
				for k, jj := range batch {
					if results[k] == nil {
						results[k] = fmt.Errorf("fhirstore: rollback to savepoint: %w", rerr)
					}
					jj.result <- results[k]
				}
				return
			}
		} else {
			j.onDone = tx.onDone
			ok++
		}
		if _, err := sqlTx.ExecContext(ctx, "RELEASE SAVEPOINT job"); err != nil && results[i] == nil {
			results[i] = fmt.Errorf("fhirstore: release savepoint: %w", err)
		}
	}
	var commitErr error
	if ok > 0 {
		if err := sqlTx.Commit(); err != nil {
			commitErr = fmt.Errorf("fhirstore: commit: %w", err)
		}
	} else {
		sqlTx.Rollback()
	}
	for i, j := range batch {
		if results[i] == nil && commitErr != nil {
			results[i] = commitErr
		}
		j.result <- results[i]
	}
}
