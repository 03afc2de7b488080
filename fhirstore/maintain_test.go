package fhirstore_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/vigil-health/vigil/fhirstore"
	"github.com/vigil-health/vigil/fhirstore/storetest"
)

// TestMaintainAnalyzes checks that the maintenance round gives the planner statistics of
// freshly filled index tables (PostgreSQL: ANALYZE ran on idx_token; SQLite: PRAGMA
// optimize runs without error).
func TestMaintainAnalyzes(t *testing.T) {
	t.Parallel()
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			st, _ := storetest.Open(t, b)
			ctx := context.Background()
			bodies := make([]map[string]any, 1000)
			for i := range bodies {
				bodies[i] = map[string]any{"resourceType": "Observation", "status": "final",
					"code":              map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "8867-4"}}},
					"subject":           map[string]any{"reference": "Patient/m1"},
					"effectiveDateTime": time.Date(2024, 1, 1, 0, 0, i, 0, time.UTC).Format(time.RFC3339),
				}
			}
			if err := st.InTx(ctx, func(tx *fhirstore.Tx) error {
				_, err := tx.CreateMany(ctx, "Observation", nil, bodies)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if b.Name != "postgres" {
				if err := st.MaintainOnce(ctx); err != nil {
					t.Fatal(err)
				}
				return
			}
			// A backend publishes its table statistics at most once a second, or after ten
			// seconds idle: the writing connection, idle now, does so within ten.
			deadline := time.Now().Add(30 * time.Second)
			for {
				if err := st.MaintainOnce(ctx); err != nil {
					t.Fatal(err)
				}
				var last sql.NullTime
				if err := st.DB().QueryRowContext(ctx, `SELECT last_analyze FROM pg_stat_user_tables
					WHERE schemaname = current_schema() AND relname = 'idx_token'`).Scan(&last); err != nil {
					t.Fatal(err)
				}
				if last.Valid {
					return
				}
				if time.Now().After(deadline) {
					t.Fatal("idx_token was not analyzed after 2,000 new rows")
				}
				time.Sleep(200 * time.Millisecond)
			}
		})
	}
}
