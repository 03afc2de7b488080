package hl7map_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vigil-health/vigil/mappers"
	"github.com/vigil-health/vigil/mappers/alerts"
)

// sixOBXAsIngest is the 6-OBX PCD-01 fixture as a device would post it to
// the ingest endpoint in Vigil's compact JSON.
const sixOBXAsIngest = `{
  "device": {"eui64": "0012A1FFFE3C4D5E"},
  "patient": {"identifier": {"system": "urn:oid:2.16.840.1.113883.3.9999", "value": "MRN0012345"}},
  "readings": [
    {"code": {"system": "urn:iso:std:iso:11073:10101", "code": "147842", "display": "MDC_ECG_HEART_RATE"}, "value": 72, "unit": "/min", "time": "2026-11-25T09:30:00Z", "status": "preliminary"},
    {"code": {"system": "urn:iso:std:iso:11073:10101", "code": "150456", "display": "MDC_PULS_OXIM_SAT_O2"}, "value": 97, "unit": "%", "time": "2026-11-25T09:30:00Z", "status": "preliminary"},
    {"metric": "blood-pressure", "systolic": 120, "diastolic": 80, "unit": "mmHg", "time": "2026-11-25T09:30:00Z", "status": "preliminary"},
    {"code": {"system": "urn:iso:std:iso:11073:10101", "code": "151562", "display": "MDC_RESP_RATE"}, "value": 16, "unit": "/min", "time": "2026-11-25T09:30:00Z", "status": "preliminary"},
    {"code": {"system": "urn:iso:std:iso:11073:10101", "code": "150344", "display": "MDC_TEMP"}, "value": "37.20", "unit": "Cel", "time": "2026-11-25T09:30:00Z", "status": "preliminary"}
  ]
}`

// hl7Only are the elements an OBX row carries that the ingest format has
// no field for.
var hl7Only = []string{"referenceRange", "interpretation", "method", "encounter", "bodySite", "note"}

// TestDeviceObservationsMatchIngest checks that a PCD-01 report and the
// same readings posted to ingest give the same Observations (identifier,
// codes, profile, value, time, status) and so the same alerts.
func TestDeviceObservationsMatchIngest(t *testing.T) {
	res := mapFixture(t, "pcd01_oru_r01_6obx")
	var refs mappers.Refs
	for _, e := range res.Entries {
		switch e.Resource["resourceType"] {
		case "Patient":
			refs.Subject = e.FullURL
		case "Device":
			refs.Device = e.FullURL
		}
	}
	batch, err := mappers.ParseVigil([]byte(sixOBXAsIngest))
	if err != nil {
		t.Fatal(err)
	}
	batch = batch.Validate(goldenNow, 0)
	if len(batch.Errors) > 0 {
		t.Fatalf("ingest rejects the readings: %v", batch.Errors[0])
	}
	var want []map[string]any
	for i := range batch.Readings {
		o, err := mappers.Observation(&batch.Readings[i], refs)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, o)
	}
	var got []map[string]any
	for _, o := range byType(res, "Observation") {
		cp := map[string]any{}
		for k, v := range o {
			cp[k] = v
		}
		for _, k := range hl7Only {
			delete(cp, k)
		}
		if comps, ok := cp["component"].([]any); ok {
			var cs []any
			for _, c := range comps {
				cc := map[string]any{}
				for k, v := range c.(map[string]any) {
					cc[k] = v
				}
				for _, k := range hl7Only {
					delete(cc, k)
				}
				cs = append(cs, cc)
			}
			cp["component"] = cs
		}
		got = append(got, cp)
	}
	if diff := cmp.Diff(normalize(t, want), normalize(t, got)); diff != "" {
		t.Errorf("HL7 and ingest Observations differ (-ingest +hl7):\n%s", diff)
	}
}

// TestDeviceObservationsRaiseAlerts runs the default alert rules on the
// Observations of a monitor report with a fast heart rate.
func TestDeviceObservationsRaiseAlerts(t *testing.T) {
	msg := pcdHeader +
		"OBX|1|NM|147842^MDC_ECG_HEART_RATE^MDC|1.1.1.1|135|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||F|||20261125093000+0000||||0012A1FFFE3C4D5E^EUI-64\n" +
		"OBX|2|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.2.1.1|97|262688^MDC_DIM_PERCENT^MDC|||||F|||20261125093000+0000||||0012A1FFFE3C4D5E^EUI-64"
	res := mapText(t, msg)
	rules := alerts.DefaultRules()
	var codes []string
	for i, o := range byType(res, "Observation") {
		stored := map[string]any{"id": "o" + string(rune('1'+i))}
		for k, v := range o {
			stored[k] = v
		}
		acts, err := rules.Evaluate(alerts.Input{Observation: normalize(t, stored).(map[string]any), Now: time.Date(2026, 11, 25, 9, 31, 0, 0, time.UTC)})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range acts {
			codes = append(codes, string(a.Kind)+" "+a.Condition)
		}
	}
	want := []string{"create vital-out-of-range/heart-rate/high"}
	if diff := cmp.Diff(want, codes); diff != "" {
		t.Errorf("alert actions (-want +got):\n%s", diff)
	}
}
