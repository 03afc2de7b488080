// Package storetest holds the conformance suite every fhirstore backend must pass and the
// helpers tests use to get a fresh database: a SQLite file in a temporary directory, or a
// PostgreSQL database cloned from a migrated template (when VIGIL_TEST_DATABASE_URL is set).
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/vigil-health/vigil/fhirstore"
)

// EnvDatabaseURL names the variable that points tests at a PostgreSQL server.
const EnvDatabaseURL = "VIGIL_TEST_DATABASE_URL"

// Backend is a named way to get the URL of a fresh, empty database.
type Backend struct {
	Name string
	// NewURL returns the URL of a new database for the calling test, dropped at cleanup.
	NewURL func(t testing.TB) string
}

// Backends returns SQLite always and PostgreSQL when VIGIL_TEST_DATABASE_URL is set. When
// it is unset, the PostgreSQL case is still listed and skips with a message, so a run
// without PostgreSQL says so instead of silently testing less.
func Backends() []Backend {
	return []Backend{
		{Name: "sqlite", NewURL: SQLiteURL},
		{Name: "postgres", NewURL: PostgresURL},
	}
}

// SQLiteURL returns a sqlite: URL in a fresh temporary directory.
func SQLiteURL(t testing.TB) string {
	t.Helper()
	return "sqlite:" + filepath.Join(t.TempDir(), "vigil.db")
}

var (
	templateOnce sync.Once
	templateName string
	templateErr  error
)

// PostgresURL creates a new database cloned from a migrated template and returns its URL;
// the database is dropped when the test ends. It skips the test when
// VIGIL_TEST_DATABASE_URL is unset.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvDatabaseURL)
	if base == "" {
		t.Skipf("PostgreSQL tests skipped: set %s (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable)", EnvDatabaseURL)
	}
	templateOnce.Do(func() { templateName, templateErr = ensureTemplate(base) })
	if templateErr != nil {
		t.Fatalf("postgres template: %v", templateErr)
	}
	admin, err := sql.Open("postgres", withSSL(base))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	name := "vigil_t_" + randHex(8)
	if _, err := admin.Exec(fmt.Sprintf(`CREATE DATABASE %s TEMPLATE %s`, name, templateName)); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		admin, err := sql.Open("postgres", withSSL(base))
		if err != nil {
			return
		}
		defer admin.Close()
		admin.Exec(fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, name))
	})
	return dbURL(base, name)
}

// ensureTemplate creates (once per schema) a migrated template database and returns its
// name. The name carries the schema version and fhirstore.SchemaFingerprint, a hash of
// every migration's DDL, so a new migration, or an edited one, gets a new template and
// runs never share a stale one.
func ensureTemplate(base string) (string, error) {
	name := templateNameFor(fhirstore.SchemaVersion(), fhirstore.SchemaFingerprint())
	admin, err := sql.Open("postgres", withSSL(base))
	if err != nil {
		return "", err
	}
	defer admin.Close()
	conn, err := admin.Conn(context.Background())
	if err != nil {
		return "", fmt.Errorf("connect %s: %w", redact(base), err)
	}
	defer conn.Close()
	// Serialise template creation across test binaries running in parallel.
	if _, err := conn.ExecContext(context.Background(), `SELECT pg_advisory_lock(7408312)`); err != nil {
		return "", err
	}
	defer conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock(7408312)`)
	var exists bool
	if err := conn.QueryRowContext(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return "", err
	}
	if exists {
		return name, nil
	}
	building := name + "_build"
	conn.ExecContext(context.Background(), fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, building))
	if _, err := conn.ExecContext(context.Background(), fmt.Sprintf(`CREATE DATABASE %s`, building)); err != nil {
		return "", err
	}
	st, err := fhirstore.Open(context.Background(), dbURL(base, building), fhirstore.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return "", fmt.Errorf("migrate template: %w", err)
	}
	st.Close()
	if _, err := conn.ExecContext(context.Background(), fmt.Sprintf(`ALTER DATABASE %s RENAME TO %s`, building, name)); err != nil {
		return "", err
	}
	return name, nil
}

func dbURL(base, name string) string {
	u, err := url.Parse(base)
	if err != nil {
		return base
	}
	u.Path = "/" + name
	return withSSL(u.String())
}

func withSSL(raw string) string {
	if strings.Contains(raw, "sslmode=") {
		return raw
	}
	if strings.Contains(raw, "?") {
		return raw + "&sslmode=disable"
	}
	return raw + "?sslmode=disable"
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Open opens a store on a fresh database of backend b and closes it at cleanup.
func Open(t testing.TB, b Backend) (*fhirstore.Store, string) {
	t.Helper()
	u := b.NewURL(t)
	st, err := fhirstore.Open(context.Background(), u, fhirstore.Options{Logger: QuietLogger()})
	if err != nil {
		t.Fatalf("open %s store: %v", b.Name, err)
	}
	t.Cleanup(func() { st.Close() })
	return st, u
}

// QuietLogger discards logs below warnings.
func QuietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// templateNameFor is the template database name of a schema version and fingerprint.
func templateNameFor(version int, fingerprint string) string {
	return fmt.Sprintf("vigil_tmpl_v%d_%s", version, fingerprint)
}
