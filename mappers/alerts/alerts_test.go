package alerts_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vigil-health/vigil/mappers"
	"github.com/vigil-health/vigil/mappers/alerts"
)

var (
	now     = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	device  = mappers.DeviceInfo{Identifier: mappers.Identifier{System: "urn:example:dev", Value: "mon-1"}}
	patient = mappers.Identifier{System: "urn:example:mrn", Value: "MRN-1"}
	refs    = mappers.Refs{Subject: "Patient/p1", Device: "Device/d1"}
)

// vital builds a stored Observation (JSON round trip, with an id) the way
// the ingest path would produce it.
func vital(t testing.TB, id, metric, value, unit string, at time.Time) map[string]any {
	t.Helper()
	r := mappers.Reading{Device: device, Patient: patient, Metric: metric, Value: value, Unit: unit, Time: at}
	if metric == "blood-pressure" {
		sys, dia, _ := strings.Cut(value, "/")
		r.Value, r.Parts = "", map[string]string{"systolic": sys, "diastolic": dia}
	}
	if err := mappers.Validate(&r, now, time.Minute); err != nil {
		t.Fatalf("fixture %s: %v", id, err)
	}
	obs, err := mappers.Observation(&r, refs)
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

func evaluate(t testing.TB, rules alerts.Rules, in alerts.Input) []alerts.Action {
	t.Helper()
	if in.Now.IsZero() {
		in.Now = now
	}
	acts, err := rules.Evaluate(in)
	if err != nil {
		t.Fatalf("Evaluate: %v", err)
	}
	return acts
}

// summary is a compact view of actions for comparisons.
func summary(acts []alerts.Action) []string {
	var out []string
	for _, a := range acts {
		s := fmt.Sprintf("%s %s %s %s", a.Kind, a.Condition, a.Code, a.Severity)
		if a.AlertID != "" {
			s += " " + a.AlertID
		}
		out = append(out, s)
	}
	return out
}

// thresholdsOnly are the default rules without NEWS2, to test thresholds alone.
func thresholdsOnly() alerts.Rules {
	r := alerts.DefaultRules()
	r.NEWS2.Enabled = false
	return r
}

func TestThresholds(t *testing.T) {
	tests := []struct {
		name, metric, value, unit string
		want                      []string
	}{
		{"hr normal", "heart-rate", "72", "/min", nil},
		{"hr 39 high", "heart-rate", "39", "/min", []string{"create vital-out-of-range/heart-rate/low vital-out-of-range high"}},
		{"hr 45 moderate", "heart-rate", "45", "/min", []string{"create vital-out-of-range/heart-rate/low vital-out-of-range moderate"}},
		{"hr 40 at the limit", "heart-rate", "40", "/min", []string{"create vital-out-of-range/heart-rate/low vital-out-of-range moderate"}},
		{"hr 115 moderate", "heart-rate", "115", "/min", []string{"create vital-out-of-range/heart-rate/high vital-out-of-range moderate"}},
		{"hr 131 high", "heart-rate", "131", "/min", []string{"create vital-out-of-range/heart-rate/high vital-out-of-range high"}},
		{"hr 130 not high", "heart-rate", "130", "/min", []string{"create vital-out-of-range/heart-rate/high vital-out-of-range moderate"}},
		{"spo2 89 moderate", "spo2", "89", "%", []string{"create vital-out-of-range/spo2/low vital-out-of-range moderate"}},
		{"spo2 84 high", "spo2", "84", "%", []string{"create vital-out-of-range/spo2/low vital-out-of-range high"}},
		{"spo2 90 ok", "spo2", "90", "%", nil},
		{"systolic 85 high", "blood-pressure", "85/50", "mm[Hg]", []string{"create vital-out-of-range/systolic-bp/low vital-out-of-range high"}},
		{"systolic 95 moderate", "blood-pressure", "95/60", "mm[Hg]", []string{"create vital-out-of-range/systolic-bp/low vital-out-of-range moderate"}},
		{"systolic 185 moderate", "blood-pressure", "185/100", "mm[Hg]", []string{"create vital-out-of-range/systolic-bp/high vital-out-of-range moderate"}},
		{"systolic 225 diastolic 125 high", "blood-pressure", "225/125", "mm[Hg]", []string{
			"create vital-out-of-range/systolic-bp/high vital-out-of-range high",
			"create vital-out-of-range/diastolic-bp/high vital-out-of-range high",
		}},
		{"bp normal", "blood-pressure", "120/80", "mm[Hg]", nil},
		{"rr 7 high", "respiratory-rate", "7", "/min", []string{"create vital-out-of-range/respiratory-rate/low vital-out-of-range high"}},
		{"rr 26 moderate", "respiratory-rate", "26", "/min", []string{"create vital-out-of-range/respiratory-rate/high vital-out-of-range moderate"}},
		{"rr 31 high", "respiratory-rate", "31", "/min", []string{"create vital-out-of-range/respiratory-rate/high vital-out-of-range high"}},
		{"temp 34.5 moderate", "body-temperature", "34.5", "Cel", []string{"create vital-out-of-range/body-temperature/low vital-out-of-range moderate"}},
		{"temp 31.5 high", "body-temperature", "31.5", "Cel", []string{"create vital-out-of-range/body-temperature/low vital-out-of-range high"}},
		{"temp 39.2 moderate", "body-temperature", "39.2", "Cel", []string{"create vital-out-of-range/body-temperature/high vital-out-of-range moderate"}},
		{"temp 39.1 ok", "body-temperature", "39.1", "Cel", nil},
		{"temp 41 high", "body-temperature", "41", "Cel", []string{"create vital-out-of-range/body-temperature/high vital-out-of-range high"}},
		{"temp 103 F moderate", "body-temperature", "103", "[degF]", []string{"create vital-out-of-range/body-temperature/high vital-out-of-range moderate"}},
		{"glucose 50 mg/dL high", "blood-glucose", "50", "mg/dL", []string{"create vital-out-of-range/blood-glucose/low vital-out-of-range high"}},
		{"glucose 65 mg/dL moderate", "blood-glucose", "65", "mg/dL", []string{"create vital-out-of-range/blood-glucose/low vital-out-of-range moderate"}},
		{"glucose 450 mg/dL high", "blood-glucose", "450", "mg/dL", []string{"create vital-out-of-range/blood-glucose/high vital-out-of-range high"}},
		{"glucose 3.5 mmol/L moderate", "blood-glucose", "3.5", "mmol/L", []string{"create vital-out-of-range/blood-glucose/low vital-out-of-range moderate"}},
		{"glucose 5.5 mmol/L ok", "blood-glucose", "5.5", "mmol/L", nil},
		{"weight has no threshold", "body-weight", "250", "kg", nil},
	}
	rules := thresholdsOnly()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := vital(t, "o1", tt.metric, tt.value, tt.unit, now.Add(-time.Minute))
			acts := evaluate(t, rules, alerts.Input{Observation: o})
			if diff := cmp.Diff(tt.want, summary(acts)); diff != "" {
				t.Errorf("actions (-want +got):\n%s", diff)
			}
			for _, a := range acts {
				di := a.Resource
				if di["patient"].(map[string]any)["reference"] != "Patient/p1" || di["author"].(map[string]any)["reference"] != "Device/d1" {
					t.Errorf("patient/author = %v / %v", di["patient"], di["author"])
				}
				if imp := di["implicated"].([]any); len(imp) != 1 || imp[0].(map[string]any)["reference"] != "Observation/o1" {
					t.Errorf("implicated = %v", imp)
				}
				d, _ := di["detail"].(string)
				sys, dia, _ := strings.Cut(tt.value, "/")
				if !strings.Contains(d, " "+sys+" ") && (dia == "" || !strings.Contains(d, " "+dia+" ")) {
					t.Errorf("detail %q does not state the value", d)
				}
			}
		})
	}
}

// open turns the resource of an action into a stored open alert with id.
func open(t testing.TB, a alerts.Action, id string) alerts.OpenAlert {
	t.Helper()
	b, _ := json.Marshal(a.Resource)
	var res map[string]any
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	res["id"] = id
	oa, ok := alerts.OpenAlertFromResource(res)
	if !ok {
		t.Fatalf("resource of %s is not an open alert: %v", a.Kind, res)
	}
	return oa
}

func TestNoDuplicateWhileConditionPersists(t *testing.T) {
	rules := thresholdsOnly()
	first := evaluate(t, rules, alerts.Input{Observation: vital(t, "o1", "heart-rate", "135", "/min", now.Add(-3*time.Minute))})
	if diff := cmp.Diff([]string{"create vital-out-of-range/heart-rate/high vital-out-of-range high"}, summary(first)); diff != "" {
		t.Fatalf("first (-want +got):\n%s", diff)
	}
	oa := open(t, first[0], "a1")
	var last alerts.Action
	for i, v := range []string{"138", "141", "133"} {
		id := fmt.Sprintf("o%d", i+2)
		acts := evaluate(t, rules, alerts.Input{
			Observation: vital(t, id, "heart-rate", v, "/min", now.Add(time.Duration(i-2)*time.Minute)),
			Open:        []alerts.OpenAlert{oa},
		})
		if diff := cmp.Diff([]string{"update vital-out-of-range/heart-rate/high vital-out-of-range high a1"}, summary(acts)); diff != "" {
			t.Fatalf("reading %s (-want +got):\n%s", v, diff)
		}
		last = acts[0]
		oa = open(t, last, "a1")
	}
	var refs []string
	for _, r := range last.Resource["implicated"].([]any) {
		refs = append(refs, r.(map[string]any)["reference"].(string))
	}
	if diff := cmp.Diff([]string{"Observation/o1", "Observation/o2", "Observation/o3", "Observation/o4"}, refs); diff != "" {
		t.Errorf("implicated (-want +got):\n%s", diff)
	}
	if d := last.Resource["detail"].(string); !strings.Contains(d, "133") {
		t.Errorf("detail not updated to the latest value: %q", d)
	}
	if last.Resource["id"] != "a1" || last.Resource["identifiedDateTime"] != first[0].Resource["identifiedDateTime"] {
		t.Errorf("update lost id or identifiedDateTime: %v %v", last.Resource["id"], last.Resource["identifiedDateTime"])
	}
	// A retry of the same observation does not grow the list.
	again := evaluate(t, rules, alerts.Input{Observation: vital(t, "o4", "heart-rate", "133", "/min", now), Open: []alerts.OpenAlert{oa}})
	if n := len(again[0].Resource["implicated"].([]any)); n != 4 {
		t.Errorf("retry grew implicated to %d", n)
	}
}

func TestEscalationRaisesNewAlert(t *testing.T) {
	rules := thresholdsOnly()
	first := evaluate(t, rules, alerts.Input{Observation: vital(t, "o1", "heart-rate", "115", "/min", now.Add(-2*time.Minute))})
	oa := open(t, first[0], "a1")
	acts := evaluate(t, rules, alerts.Input{Observation: vital(t, "o2", "heart-rate", "145", "/min", now), Open: []alerts.OpenAlert{oa}})
	want := []string{
		"create vital-out-of-range/heart-rate/high vital-out-of-range high",
		"resolve vital-out-of-range/heart-rate/high vital-out-of-range moderate a1",
	}
	if diff := cmp.Diff(want, summary(acts)); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	if code := mitigationCode(acts[1].Resource); code != "escalated" {
		t.Errorf("mitigation = %q, want escalated", code)
	}
	// De-escalation while the high alert is open updates it.
	high := open(t, acts[0], "a2")
	acts = evaluate(t, rules, alerts.Input{Observation: vital(t, "o3", "heart-rate", "120", "/min", now), Open: []alerts.OpenAlert{high}})
	if diff := cmp.Diff([]string{"update vital-out-of-range/heart-rate/high vital-out-of-range high a2"}, summary(acts)); diff != "" {
		t.Errorf("de-escalation (-want +got):\n%s", diff)
	}
}

func mitigationCode(res map[string]any) string {
	ms, _ := res["mitigation"].([]any)
	if len(ms) == 0 {
		return ""
	}
	m := ms[len(ms)-1].(map[string]any)
	return m["action"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"].(string)
}

func TestResolution(t *testing.T) {
	rules := thresholdsOnly()
	first := evaluate(t, rules, alerts.Input{Observation: vital(t, "o1", "spo2", "86", "%", now.Add(-5*time.Minute))})
	oa := open(t, first[0], "a1")

	t.Run("back in range resolves", func(t *testing.T) {
		acts := evaluate(t, rules, alerts.Input{Observation: vital(t, "o2", "spo2", "95", "%", now), Open: []alerts.OpenAlert{oa}})
		if diff := cmp.Diff([]string{"resolve vital-out-of-range/spo2/low vital-out-of-range moderate a1"}, summary(acts)); diff != "" {
			t.Fatalf("(-want +got):\n%s", diff)
		}
		if code := mitigationCode(acts[0].Resource); code != "resolved" {
			t.Errorf("mitigation = %q", code)
		}
		if _, ok := alerts.OpenAlertFromResource(acts[0].Resource); ok {
			t.Error("a resolved alert still reads as open")
		}
	})
	t.Run("other vital leaves it open", func(t *testing.T) {
		acts := evaluate(t, rules, alerts.Input{Observation: vital(t, "o2", "heart-rate", "70", "/min", now), Open: []alerts.OpenAlert{oa}})
		if len(acts) != 0 {
			t.Errorf("actions = %v", summary(acts))
		}
	})
	t.Run("auto-resolve off", func(t *testing.T) {
		r := thresholdsOnly()
		r.AutoResolve = false
		acts := evaluate(t, r, alerts.Input{Observation: vital(t, "o2", "spo2", "95", "%", now), Open: []alerts.OpenAlert{oa}})
		if len(acts) != 0 {
			t.Errorf("actions = %v", summary(acts))
		}
	})
	t.Run("entered in error does nothing", func(t *testing.T) {
		o := vital(t, "o2", "spo2", "70", "%", now)
		o["status"] = "entered-in-error"
		if acts := evaluate(t, rules, alerts.Input{Observation: o, Open: []alerts.OpenAlert{oa}}); len(acts) != 0 {
			t.Errorf("actions = %v", summary(acts))
		}
	})
	t.Run("backfill outside the window does nothing", func(t *testing.T) {
		o := vital(t, "o2", "spo2", "70", "%", now.Add(-3*time.Hour))
		if acts := evaluate(t, rules, alerts.Input{Observation: o}); len(acts) != 0 {
			t.Errorf("actions = %v", summary(acts))
		}
	})
}

func TestMaxImplicated(t *testing.T) {
	rules := thresholdsOnly()
	rules.MaxImplicated = 3
	acts := evaluate(t, rules, alerts.Input{Observation: vital(t, "o0", "heart-rate", "140", "/min", now.Add(-10*time.Minute))})
	oa := open(t, acts[0], "a1")
	for i := 1; i <= 5; i++ {
		acts = evaluate(t, rules, alerts.Input{Observation: vital(t, fmt.Sprintf("o%d", i), "heart-rate", "140", "/min", now.Add(time.Duration(i-10)*time.Minute)), Open: []alerts.OpenAlert{oa}})
		oa = open(t, acts[0], "a1")
	}
	var refs []string
	for _, r := range acts[0].Resource["implicated"].([]any) {
		refs = append(refs, r.(map[string]any)["reference"].(string))
	}
	if diff := cmp.Diff([]string{"Observation/o0", "Observation/o4", "Observation/o5"}, refs); diff != "" {
		t.Errorf("implicated (-want +got):\n%s", diff)
	}
}

func TestEvaluateErrors(t *testing.T) {
	rules := alerts.DefaultRules()
	o := vital(t, "o1", "heart-rate", "70", "/min", now)
	noID := map[string]any{}
	for k, v := range o {
		noID[k] = v
	}
	delete(noID, "id")
	if _, err := rules.Evaluate(alerts.Input{Observation: noID, Now: now}); err == nil {
		t.Error("no error for an Observation without id")
	}
	if _, err := rules.Evaluate(alerts.Input{Observation: o}); err == nil {
		t.Error("no error without Now")
	}
	noSubject := vital(t, "o1", "heart-rate", "70", "/min", now)
	delete(noSubject, "subject")
	if _, err := rules.Evaluate(alerts.Input{Observation: noSubject, Now: now}); err == nil {
		t.Error("no error for an Observation without patient")
	}
}
