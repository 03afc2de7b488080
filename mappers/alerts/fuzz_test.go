package alerts_test

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/vigil-health/vigil/mappers/alerts"
)

func FuzzParseRules(f *testing.F) {
	b, err := os.ReadFile("../../testdata/mappers/alert-rules.example.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"thresholds":[{"parameter":"spo2","unit":"%","below":1e308,"severity":"low"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := alerts.ParseRules(b)
		if err != nil {
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("ParseRules accepted rules that do not validate: %v", err)
		}
	})
}

// FuzzEvaluate feeds arbitrary JSON as a stored Observation, a recent
// vital and an open alert: Evaluate must never panic on stored data.
func FuzzEvaluate(f *testing.F) {
	seed := vital(f, "o1", "blood-pressure", "85/50", "mm[Hg]", now)
	b, _ := json.Marshal(seed)
	f.Add(b)
	f.Add([]byte(`{"id":"x","subject":{"reference":"Patient/p"},"code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"valueQuantity":{"value":"NaN","code":"/min"},"effectivePeriod":{"start":"2026"}}`))
	f.Add([]byte(`{"resourceType":"DetectedIssue","code":{"coding":[1,{"system":"http://vigil.health/fhir/CodeSystem/alert","code":"news2-high"}]},"identifier":[{"system":"urn:vigil:alert-condition","value":"news2"}],"mitigation":[{"action":3}]}`))
	rules := alerts.DefaultRules()
	f.Fuzz(func(t *testing.T, b []byte) {
		var m map[string]any
		if json.Unmarshal(b, &m) != nil {
			return
		}
		var open []alerts.OpenAlert
		if a, ok := alerts.OpenAlertFromResource(m); ok {
			open = append(open, a)
		}
		_, _ = rules.Evaluate(alerts.Input{Observation: m, Recent: []map[string]any{m, seed}, Open: open, Now: now, Patient: "Patient/p"})
	})
}
