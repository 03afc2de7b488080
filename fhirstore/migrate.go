package fhirstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// migration is one schema step. Steps are applied in order, each in its own transaction,
// and recorded in schema_migrations; a step never changes once released.
type migration struct {
	version int
	name    string
	stmts   []string // portable DDL (see dialect.ddl)
}

var migrations = []migration{
	{1, "resources and history", []string{
		`CREATE TABLE resource (
			rid ROWID_PK,
			type TEXT NOT NULL,
			id TEXT NOT NULL,
			version BIGINT NOT NULL,
			last_updated BIGINT NOT NULL,
			deleted SMALLINT NOT NULL DEFAULT 0,
			body TEXT NOT NULL,
			CONSTRAINT resource_type_id_key UNIQUE (type, id)
		)`,
		`CREATE INDEX resource_type_updated_idx ON resource (type, last_updated, rid)`,
		`CREATE TABLE resource_history (
			hid ROWID_PK,
			rid BIGINT NOT NULL,
			type TEXT NOT NULL,
			id TEXT NOT NULL,
			version BIGINT NOT NULL,
			last_updated BIGINT NOT NULL,
			deleted SMALLINT NOT NULL DEFAULT 0,
			method TEXT NOT NULL,
			body TEXT NOT NULL,
			CONSTRAINT resource_history_type_id_version_key UNIQUE (type, id, version)
		)`,
		`CREATE INDEX resource_history_type_idx ON resource_history (type, hid)`,
		`CREATE INDEX resource_history_updated_idx ON resource_history (last_updated)`,
		// Token index (identifier, and every token search parameter once search lands).
		`CREATE TABLE idx_token (
			rid BIGINT NOT NULL,
			type TEXT NOT NULL,
			param TEXT NOT NULL,
			system TEXT NOT NULL DEFAULT '',
			code TEXT NOT NULL DEFAULT '',
			text TEXT NOT NULL DEFAULT ''
		)`,
		`CREATE INDEX idx_token_code ON idx_token (type, param, code, system, rid)`,
		`CREATE INDEX idx_token_rid ON idx_token (rid)`,
	}},
	{2, "search index tables", searchIndexDDL},
	{3, "inbound message log and outbox", append(append([]string{}, messageLogDDL...), outboxDDL...)},
	{4, "covering date index by rid", searchIndexDDL4},
	{5, "token index: rid before system", searchIndexDDL5},
	{6, "latest observation per patient and code", latestDDL},
	{7, "date span on reference rows", referenceDatesDDL},
	{8, "latest observation updated in place", latestInPlaceDDL},
}

// SchemaVersion is the newest schema version this build knows.
func SchemaVersion() int { return migrations[len(migrations)-1].version }

// Migrate creates or upgrades the schema. It is safe to run from several processes at once
// on PostgreSQL (an advisory lock serialises them) and is a no-op when up to date.
func (s *Store) Migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("fhirstore: migrate: create schema_migrations: %w", err)
	}
	for _, m := range migrations {
		if err := s.applyMigration(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) applyMigration(ctx context.Context, m migration) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("fhirstore: migrate %d: %w", m.version, err)
	}
	defer tx.Rollback()
	if s.d.name() == "postgres" {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7408311)`); err != nil {
			return fmt.Errorf("fhirstore: migrate %d: lock: %w", m.version, err)
		}
	}
	var n int
	err = tx.QueryRowContext(ctx, s.d.rebind(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`), m.version).Scan(&n)
	if err != nil {
		return fmt.Errorf("fhirstore: migrate %d: %w", m.version, err)
	}
	if n > 0 {
		return nil
	}
	for _, stmt := range m.stmts {
		stmt := s.d.ddl(stmt)
		if stmt == "" {
			continue // a step for the other backend
		}
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("fhirstore: migrate %d (%s): %s: %w", m.version, m.name, firstLine(stmt), err)
		}
	}
	if _, err := tx.ExecContext(ctx, s.d.rebind(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
		m.version, m.name, s.Now().UnixMicro()); err != nil {
		return fmt.Errorf("fhirstore: migrate %d: record: %w", m.version, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("fhirstore: migrate %d: commit: %w", m.version, err)
	}
	s.log.Info("schema migrated", "version", m.version, "name", m.name, "backend", s.d.name())
	return nil
}

// AppliedVersion returns the newest applied schema version (0 for an empty database).
func (s *Store) AppliedVersion(ctx context.Context) (int, error) {
	var v sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v)
	if err != nil {
		if strings.Contains(err.Error(), "no such table") || strings.Contains(err.Error(), "does not exist") {
			return 0, nil
		}
		return 0, fmt.Errorf("fhirstore: schema version: %w", err)
	}
	return int(v.Int64), nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
