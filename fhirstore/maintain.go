package fhirstore

import (
	"context"
	"fmt"
	"time"
)

// Maintain keeps the query planner's view of the store's tables current while the server
// runs, until ctx ends. The index tables grow by millions of rows, and a plan made from
// the statistics of an empty table (a fresh database, before PostgreSQL's autovacuum has
// analyzed it, or a server where autovacuum is off) walks a whole index where one page
// would do. Every interval it ANALYZEs the tables that changed by a fifth since their last
// analysis (at least 1,000 rows), and, when the server's autovacuum is off, VACUUMs those
// with as many new or dead rows, so that index-only scans stay index-only. On SQLite it
// runs PRAGMA optimize, which analyzes what needs it.
func (s *Store) Maintain(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := s.maintainOnce(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("database maintenance failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Store) maintainOnce(ctx context.Context) error {
	if s.d.name() != "postgres" {
		_, err := s.db.ExecContext(ctx, `PRAGMA optimize`)
		return err
	}
	// Several servers on one database: one of them does the round, on one connection that
	// holds a session advisory lock meanwhile; the others skip it.
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var locked bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock(7408312)`).Scan(&locked); err != nil {
		return fmt.Errorf("maintenance lock: %w", err)
	}
	if !locked {
		return nil
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(7408312)`)
	var autovacuum string
	if err := conn.QueryRowContext(ctx, `SHOW autovacuum`).Scan(&autovacuum); err != nil {
		return fmt.Errorf("autovacuum setting: %w", err)
	}
	rows, err := conn.QueryContext(ctx, `SELECT relname, n_live_tup, n_mod_since_analyze, n_ins_since_vacuum, n_dead_tup
		FROM pg_stat_user_tables WHERE schemaname = current_schema()`)
	if err != nil {
		return fmt.Errorf("table statistics: %w", err)
	}
	type work struct {
		table          string
		analyze, clean bool
	}
	var todo []work
	for rows.Next() {
		var name string
		var live, mod, ins, dead int64
		if err := rows.Scan(&name, &live, &mod, &ins, &dead); err != nil {
			rows.Close()
			return fmt.Errorf("table statistics: %w", err)
		}
		if !s.ownTable(name) {
			continue
		}
		threshold := max(1000, live/5)
		w := work{table: name, analyze: mod >= threshold, clean: autovacuum == "off" && (ins >= threshold || dead >= threshold)}
		if w.analyze || w.clean {
			todo = append(todo, w)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("table statistics: %w", err)
	}
	for _, w := range todo {
		stmt, what := "ANALYZE "+w.table, "analyze"
		if w.clean {
			stmt, what = "VACUUM (ANALYZE) "+w.table, "vacuum and analyze"
		}
		start := time.Now()
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("%s %s: %w", what, w.table, err)
		}
		s.log.Info("database maintenance", "table", w.table, "action", what, "took_ms", time.Since(start).Milliseconds())
	}
	return nil
}

// ownTable reports whether name is one of the tables the migrations create.
func (s *Store) ownTable(name string) bool {
	switch name {
	case "resource", "resource_history", "obs_latest", "inbound_message", "outbox":
		return true
	}
	for _, t := range indexTables {
		if t == name {
			return true
		}
	}
	return false
}
