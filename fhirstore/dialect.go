package fhirstore

import (
	"errors"
	"strconv"
	"strings"

	"github.com/lib/pq"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// dialect is the small per-backend rewrite of the one SQL text the store uses (the dex
// shape): placeholders, row locks and the DDL type names.
type dialect interface {
	name() string
	// rebind turns the store's `?` placeholders into the backend's.
	rebind(q string) string
	// forUpdate is appended to a SELECT that must lock the rows it reads.
	forUpdate() string
	// ddl rewrites the portable DDL names (ROWID_PK, REAL8, COVERING) into the backend's;
	// a statement marked "POSTGRES " runs on PostgreSQL only ("" elsewhere).
	ddl(q string) string
	// retryable reports whether a failed transaction may simply be run again.
	retryable(err error) bool
}

type postgresDialect struct{}

func (postgresDialect) name() string { return "postgres" }

func (postgresDialect) rebind(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	inQuote := false
	for i := 0; i < len(q); i++ {
		c := q[i]
		if c == '\'' {
			inQuote = !inQuote
		}
		if c == '?' && !inQuote {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func (postgresDialect) forUpdate() string { return " FOR UPDATE" }

func (postgresDialect) ddl(q string) string {
	q = strings.TrimPrefix(q, "POSTGRES ")
	return strings.NewReplacer("ROWID_PK", "BIGSERIAL PRIMARY KEY", "REAL8", "DOUBLE PRECISION", " COVERING ", ") INCLUDE (").Replace(q)
}

func (postgresDialect) retryable(err error) bool {
	var pe *pq.Error
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case "40001", "40P01": // serialization_failure, deadlock_detected
		return true
	case "23505": // unique_violation: a concurrent create of the same id; the retry sees it
		return pe.Constraint == "resource_type_id_key" || pe.Constraint == "resource_history_type_id_version_key"
	}
	return false
}

type sqliteDialect struct{}

func (sqliteDialect) name() string             { return "sqlite" }
func (sqliteDialect) rebind(q string) string   { return q }
func (sqliteDialect) forUpdate() string        { return "" }
func (sqliteDialect) retryable(err error) bool { return false }

func (sqliteDialect) ddl(q string) string {
	if strings.HasPrefix(q, "POSTGRES ") {
		return ""
	}
	return strings.NewReplacer("ROWID_PK", "INTEGER PRIMARY KEY AUTOINCREMENT", "REAL8", "REAL", " COVERING ", ", ").Replace(q)
}
