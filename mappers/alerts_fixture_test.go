package mappers_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/vigil-health/vigil/mappers"
	"github.com/vigil-health/vigil/mappers/alerts"
)

// storedObservation maps a reading and gives it a store id, as the write
// path does before the alert hook runs.
func storedObservation(t testing.TB, id string, r mappers.Reading) map[string]any {
	t.Helper()
	r.Device = mappers.DeviceInfo{Identifier: mappers.Identifier{System: "urn:example:dev", Value: "mon-1"}}
	r.Patient = mappers.Identifier{System: "urn:example:mrn", Value: "MRN-1"}
	if err := mappers.Validate(&r, goldenNow, goldenSkew); err != nil {
		t.Fatalf("fixture %s: %v", id, err)
	}
	obs, err := mappers.Observation(&r, goldenRefs)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(obs)
	var stored map[string]any
	if err := json.Unmarshal(b, &stored); err != nil {
		t.Fatal(err)
	}
	stored["id"] = id
	return stored
}

// detectedIssueFixtures runs alert scenarios (create, update, escalate,
// resolve, NEWS2) and returns every DetectedIssue they produce.
func detectedIssueFixtures(t testing.TB) []map[string]any {
	t.Helper()
	rules := alerts.DefaultRules()
	at := func(m int) time.Time { return goldenNow.Add(time.Duration(m) * time.Minute) }
	var out []map[string]any
	run := func(in alerts.Input) []alerts.Action {
		in.Now = goldenNow
		acts, err := rules.Evaluate(in)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range acts {
			out = append(out, a.Resource)
		}
		return acts
	}
	reopen := func(a alerts.Action, id string) alerts.OpenAlert {
		b, _ := json.Marshal(a.Resource)
		var res map[string]any
		_ = json.Unmarshal(b, &res)
		res["id"] = id
		oa, ok := alerts.OpenAlertFromResource(res)
		if !ok {
			t.Fatalf("not an open alert: %v", res)
		}
		return oa
	}

	hr1 := storedObservation(t, "hr1", mappers.Reading{Metric: "heart-rate", Value: "118", Unit: "/min", Time: at(-30)})
	created := run(alerts.Input{Observation: hr1})
	if len(created) == 0 {
		t.Fatal("no alert for HR 118")
	}
	var hrAlert alerts.OpenAlert
	for _, a := range created {
		if a.Condition == "vital-out-of-range/heart-rate/high" {
			hrAlert = reopen(a, "da-hr")
		}
	}
	hr2 := storedObservation(t, "hr2", mappers.Reading{Metric: "heart-rate", Value: "121", Unit: "/min", Time: at(-20), Status: "preliminary"})
	run(alerts.Input{Observation: hr2, Open: []alerts.OpenAlert{hrAlert}})
	hr3 := storedObservation(t, "hr3", mappers.Reading{Metric: "heart-rate", Value: "138", Unit: "/min", Time: at(-10)})
	var highAlert alerts.OpenAlert
	for _, a := range run(alerts.Input{Observation: hr3, Open: []alerts.OpenAlert{hrAlert}}) {
		if a.Kind == alerts.ActionCreate && a.Condition == "vital-out-of-range/heart-rate/high" {
			highAlert = reopen(a, "da-hr-high")
		}
	}
	hr4 := storedObservation(t, "hr4", mappers.Reading{Metric: "heart-rate", Value: "80", Unit: "/min", Time: at(-5)})
	run(alerts.Input{Observation: hr4, Open: []alerts.OpenAlert{highAlert}})

	recent := []map[string]any{
		storedObservation(t, "rr1", mappers.Reading{Metric: "respiratory-rate", Value: "26", Unit: "/min", Time: at(-15)}),
		storedObservation(t, "bp1", mappers.Reading{Metric: "blood-pressure", Parts: map[string]string{"systolic": "98", "diastolic": "60"}, Unit: "mm[Hg]", Time: at(-14)}),
		storedObservation(t, "t1", mappers.Reading{Metric: "body-temperature", Value: "38.6", Unit: "Cel", Time: at(-13)}),
		hr3,
	}
	spo2 := storedObservation(t, "sp1", mappers.Reading{Metric: "spo2", Value: "91", Unit: "%", Time: at(-1),
		Qualifiers: []mappers.Qualifier{{Name: "inhaled-oxygen-flow", Value: "2", Unit: "L/min"}}})
	run(alerts.Input{Observation: spo2, Recent: recent, Consciousness: "A"})
	return out
}
