// Package fhirstore persists FHIR resources: current versions in one table, every version
// in a history table, search index rows beside them, on PostgreSQL (lib/pq) or an embedded
// SQLite file (modernc.org/sqlite, no cgo). Both backends run the same SQL text through a
// small dialect and pass the same conformance suite (package storetest).
//
// Every write runs inside a transaction (Store.InTx) in which the resource row, its history
// row, its index rows and the rows written by registered hooks (alerts, outboxes) commit
// together, or not at all. Nothing is acknowledged before the commit returns.
package fhirstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Sentinel errors callers branch on.
var (
	// ErrNotFound: no resource (or version) with that type and id exists.
	ErrNotFound = errors.New("fhirstore: not found")
	// ErrGone: the resource existed and was deleted.
	ErrGone = errors.New("fhirstore: deleted")
	// ErrVersionConflict: a version precondition (If-Match) did not hold.
	ErrVersionConflict = errors.New("fhirstore: version conflict")
	// ErrConflict: the write conflicts with the stored state (e.g. create of an existing id).
	ErrConflict = errors.New("fhirstore: conflict")
	// ErrInvalid: the resource given to the store is malformed (no resourceType, bad id).
	ErrInvalid = errors.New("fhirstore: invalid resource")
	// ErrClosed: the store is closed.
	ErrClosed = errors.New("fhirstore: closed")
)

// Resource is one version of a stored resource. Body is the JSON the server serves, with
// id and meta.versionId / meta.lastUpdated set by the store; it is empty for a deletion.
type Resource struct {
	Type        string
	ID          string
	Version     int64
	LastUpdated time.Time
	Deleted     bool
	Body        []byte
	// Method is the interaction that produced the version ("POST", "PUT", "PATCH",
	// "DELETE"); it is kept for history bundles.
	Method string
}

// ETag returns the weak entity tag of the version, W/"n".
func (r *Resource) ETag() string { return fmt.Sprintf(`W/"%d"`, r.Version) }

// Options configure a Store.
type Options struct {
	// Logger receives operational logs (never resource content). Default: slog.Default().
	Logger *slog.Logger
	// Clock returns the current time; tests inject one. Default: time.Now.
	Clock func() time.Time
	// MaxOpenConns bounds the connection pool (PostgreSQL). Default 32.
	MaxOpenConns int
	// GroupCommitMax bounds how many queued write transactions share one SQLite commit.
	// Default 256.
	GroupCommitMax int
	// Indexer extracts search index rows from each written resource. Default: a
	// SearchIndexer over every R4 search parameter (IdentifierIndexer indexes only
	// identifier, enough for conditional operations).
	Indexer Indexer
}

// Store is the FHIR resource store. It is safe for concurrent use.
type Store struct {
	stmts   stmtCache // prepared on wdb
	rstmts  stmtCache // prepared on db
	db      *sql.DB   // reads and searches
	wdb     *sql.DB   // write transactions (the same pool on SQLite)
	d       dialect
	log     *slog.Logger
	clock   func() time.Time
	indexer Indexer

	hooksMu sync.RWMutex
	hooks   []Hook

	// writer serialises SQLite writes and commits them in groups; nil on PostgreSQL.
	writer *groupWriter

	closeOnce sync.Once
}

// Open connects to the database named by rawURL ("postgres://..." or "sqlite:path"),
// creates the SQLite directory if needed, and migrates the schema.
func Open(ctx context.Context, rawURL string, opts Options) (*Store, error) {
	s, err := open(rawURL, opts)
	if err != nil {
		return nil, err
	}
	if err := s.Migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	// Custom search parameters stored earlier are known again after a restart.
	if err := s.LoadSearchParameters(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// OpenNoMigrate connects without touching the schema (used by `vigil migrate` to report).
func OpenNoMigrate(rawURL string, opts Options) (*Store, error) { return open(rawURL, opts) }

func open(rawURL string, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.MaxOpenConns <= 0 {
		opts.MaxOpenConns = 32
	}
	if opts.GroupCommitMax <= 0 {
		opts.GroupCommitMax = 256
	}
	if opts.Indexer == nil {
		ix, err := NewSearchIndexer()
		if err != nil {
			return nil, err
		}
		opts.Indexer = ix
	}
	s := &Store{log: opts.Logger, clock: opts.Clock, indexer: opts.Indexer}
	s.initSearch()
	switch {
	case strings.HasPrefix(rawURL, "postgres://") || strings.HasPrefix(rawURL, "postgresql://"):
		dsn, err := postgresDSN(rawURL)
		if err != nil {
			return nil, err
		}
		db, err := sql.Open("postgres", dsn)
		if err != nil {
			return nil, fmt.Errorf("fhirstore: open postgres: %w", err)
		}
		db.SetMaxOpenConns(opts.MaxOpenConns)
		db.SetMaxIdleConns(opts.MaxOpenConns)
		db.SetConnMaxIdleTime(5 * time.Minute)
		// Write transactions get their own pool whose sessions always use the generic plan
		// of a prepared statement: they run the store's fixed statements (stmtcache.go),
		// simple lookups and writes where re-planning each call (PostgreSQL's default
		// whenever a custom plan looks cheaper) cost more than executing. Searches run on
		// the read pool, planned for their values; a search inside a write transaction
		// switches its transaction back (Tx.Search).
		wdb, err := sql.Open("postgres", withParam(dsn, "plan_cache_mode", "force_generic_plan"))
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("fhirstore: open postgres: %w", err)
		}
		writers := max(4, opts.MaxOpenConns/2)
		wdb.SetMaxOpenConns(writers)
		wdb.SetMaxIdleConns(writers)
		wdb.SetConnMaxIdleTime(5 * time.Minute)
		s.db, s.wdb, s.d = db, wdb, postgresDialect{}
	case strings.HasPrefix(rawURL, "sqlite:"):
		path := strings.TrimPrefix(rawURL, "sqlite:")
		path = strings.TrimPrefix(path, "//")
		if path == "" {
			return nil, fmt.Errorf("fhirstore: sqlite URL %q has no path", rawURL)
		}
		if dir := filepath.Dir(path); dir != "" {
			if err := os.MkdirAll(dir, 0o750); err != nil {
				return nil, fmt.Errorf("fhirstore: create data directory: %w", err)
			}
		}
		db, err := sql.Open("sqlite", sqliteDSN(path))
		if err != nil {
			return nil, fmt.Errorf("fhirstore: open sqlite: %w", err)
		}
		// Readers run concurrently under WAL; writes go through the single group writer.
		db.SetMaxOpenConns(opts.MaxOpenConns)
		db.SetMaxIdleConns(opts.MaxOpenConns)
		s.db, s.wdb, s.d = db, db, sqliteDialect{}
		s.writer = newGroupWriter(s, opts.GroupCommitMax)
	default:
		return nil, fmt.Errorf("fhirstore: unsupported database URL %q: want postgres://... or sqlite:path", redactURL(rawURL))
	}
	return s, nil
}

func postgresDSN(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("fhirstore: parse database URL: %w", err)
	}
	q := u.Query()
	if q.Get("sslmode") == "" {
		// lib/pq defaults to sslmode=require; a local server without TLS is the common
		// case, so say it explicitly (STACK.md: always set sslmode).
		q.Set("sslmode", "disable")
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// withParam adds a connection parameter to a postgres:// DSN unless it is set already.
func withParam(dsn, key, value string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return dsn
	}
	q := u.Query()
	if q.Get(key) == "" {
		q.Set(key, value)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func sqliteDSN(path string) string {
	return "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)" +
		"&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_pragma=temp_store(MEMORY)&_txlock=immediate"
}

// redactURL hides a password in a database URL for error messages and logs.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}

// Backend names the database engine: "postgres" or "sqlite".
func (s *Store) Backend() string { return s.d.name() }

// DB exposes the pool for metrics (sql.DBStats).
func (s *Store) DB() *sql.DB { return s.db }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("fhirstore: ping: %w", err)
	}
	return nil
}

// Close stops the writer and closes the pool.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		if s.writer != nil {
			s.writer.close()
		}
		s.stmts.closeStmts()
		s.rstmts.closeStmts()
		err = s.db.Close()
		if s.wdb != s.db {
			if werr := s.wdb.Close(); err == nil {
				err = werr
			}
		}
	})
	return err
}

// Now returns the store clock's current time truncated to milliseconds, the precision of
// meta.lastUpdated.
func (s *Store) Now() time.Time { return s.clock().UTC().Truncate(time.Millisecond) }

// AddHook registers a hook run inside every write transaction, after the resource row
// and its index rows are written.
func (s *Store) AddHook(h Hook) {
	s.hooksMu.Lock()
	defer s.hooksMu.Unlock()
	s.hooks = append(s.hooks, h)
}

func (s *Store) currentHooks() []Hook {
	s.hooksMu.RLock()
	defer s.hooksMu.RUnlock()
	return s.hooks
}

// Hook is run inside the write transaction for every change. A hook that returns an error
// rolls the whole transaction back. Hooks may write through tx (e.g. a DetectedIssue, an
// outbox row); changes a hook makes are themselves passed to hooks.
type Hook interface {
	AfterWrite(ctx context.Context, tx *Tx, c Change) error
}

// HookFunc adapts a function to Hook.
type HookFunc func(ctx context.Context, tx *Tx, c Change) error

// AfterWrite calls f.
func (f HookFunc) AfterWrite(ctx context.Context, tx *Tx, c Change) error { return f(ctx, tx, c) }

// Change describes one write inside a transaction.
type Change struct {
	// Resource is the new version (Deleted for a deletion).
	Resource *Resource
	// Previous is the version replaced, nil on create.
	Previous *Resource
	// Created is true when the write created the resource (first version or re-creation
	// after a delete).
	Created bool
	// Content is Resource.Body decoded (nil for a deletion), so that hooks need not decode
	// it again. Hooks must not modify it.
	Content map[string]any
}
