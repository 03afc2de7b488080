package fhirstore_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil/fhirstore"
	"github.com/vigil-health/vigil/fhirstore/storetest"
)

// TestQueryPlans checks on PostgreSQL that the B-tree indexes serve the device queries:
// planned with sequential scans disabled, no sequential scan of resource or of an index
// table remains (so an index path exists for every condition and sort key). The plans
// the planner picks on its own are logged: on these 8,000 rows it still prefers one scan
// of resource for a patient's 400 Observations (a hash semi join, cheaper at this size)
// and switches to resource_pkey lookups as the table grows.
func TestQueryPlans(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 8,000 resources")
	}
	st, _ := storetest.Open(t, storetest.Backends()[1])
	ctx := context.Background()
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for p := 0; p < 20; p++ {
		pid := fmt.Sprintf("qp%d", p)
		err := st.InTx(ctx, func(tx *fhirstore.Tx) error {
			if _, err := tx.CreateWithID(ctx, "Patient", pid, map[string]any{"resourceType": "Patient"}); err != nil {
				return err
			}
			for i := 0; i < 400; i++ {
				o := deviceObservation(pid, i, start.Add(time.Duration(i)*time.Minute))
				if i%2 == 1 {
					o["code"] = map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "59408-5"}}}
				}
				if _, err := tx.Create(ctx, "Observation", o); err != nil {
					return err
				}
			}
			if _, err := tx.Create(ctx, "DetectedIssue", map[string]any{"resourceType": "DetectedIssue", "status": "final",
				"patient": map[string]any{"reference": "Patient/" + pid}, "identifiedDateTime": "2024-01-01T00:00:00Z"}); err != nil {
				return err
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.DB().Exec("ANALYZE"); err != nil {
		t.Fatal(err)
	}
	queries := []struct{ typ, q string }{
		{"Observation", "patient=qp3&code=8867-4&_sort=-date&_count=1"},
		{"Observation", "patient=qp3&category=vital-signs&date=ge2024-01-01T02:00:00Z&date=lt2024-01-01T03:00:00Z"},
		{"Observation", "code=http://loinc.org|59408-5&date=ge2024-01-01T06:00:00Z&_count=10"},
		{"DetectedIssue", "patient=qp3&_sort=-identified"},
		{"Observation", "patient.identifier=urn:x|1"},
	}
	for _, q := range queries {
		t.Run(q.typ+"?"+q.q, func(t *testing.T) {
			params, _ := url.ParseQuery(q.q)
			req := fhirstore.SearchRequest{Type: q.typ, Params: params}
			natural, err := st.ExplainSearch(ctx, req, false)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("plan chosen on 8,000 rows:\n%s", natural)
			plan, err := st.ExplainSearch(ctx, req, true)
			if err != nil {
				t.Fatal(err)
			}
			for _, table := range []string{"resource", "idx_token", "idx_reference", "idx_date", "idx_string"} {
				if strings.Contains(plan, "Seq Scan on "+table+" ") {
					t.Errorf("sequential scan of %s:\n%s", table, plan)
				}
			}
			if !strings.Contains(plan, "Index") {
				t.Errorf("no index used:\n%s", plan)
			}
		})
	}
}
