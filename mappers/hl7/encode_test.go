package hl7map_test

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vigil-health/vigil/hl7v2"
	"github.com/vigil-health/vigil/mappers"
	hl7map "github.com/vigil-health/vigil/mappers/hl7"
)

var outOpts = hl7map.OutboundOptions{
	SendingApplication:   hl7v2.HD{NamespaceID: "VIGIL", UniversalID: "0012A1FFFE000001", UniversalIDType: "EUI-64"},
	SendingFacility:      hl7v2.HD{NamespaceID: "VIGIL_HOSP"},
	ReceivingApplication: hl7v2.HD{NamespaceID: "EHR"},
	ReceivingFacility:    hl7v2.HD{NamespaceID: "VIGIL_HOSP"},
	ControlID:            "VGL0001",
	Now:                  time.Date(2026, 11, 25, 9, 31, 0, 0, time.FixedZone("", -5*3600)),
}

// byType returns the resources of a result with the given type.
func byType(res *hl7map.Result, typ string) []map[string]any {
	var out []map[string]any
	for _, r := range res.Resources() {
		if r["resourceType"] == typ {
			out = append(out, r)
		}
	}
	return out
}

// observationWithCode finds the Observation whose code has the coding.
func observationWithCode(t testing.TB, res *hl7map.Result, code string) map[string]any {
	t.Helper()
	for _, o := range byType(res, "Observation") {
		b, _ := json.Marshal(o["code"])
		if strings.Contains(string(b), `"code":"`+code+`"`) {
			return o
		}
	}
	t.Fatalf("no Observation with code %s", code)
	return nil
}

// ingestVitals is an Observation, Patient and Device as ingest builds them
// from testdata/ingest/vigil-vitals.json (the body temperature reading).
func ingestVitals(t testing.TB) (obs, patient, device map[string]any) {
	t.Helper()
	b, err := os.ReadFile("../../testdata/ingest/vigil-vitals.json")
	if err != nil {
		t.Fatal(err)
	}
	batch, err := mappers.ParseVigil(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range batch.Readings {
		r := &batch.Readings[i]
		if r.Metric != "body-temperature" || r.Status != "final" {
			continue
		}
		obs, err = mappers.Observation(r, mappers.Refs{Subject: "Patient/p1", Device: "Device/d1"})
		if err != nil {
			t.Fatal(err)
		}
		patient = map[string]any{"resourceType": "Patient", "identifier": []any{map[string]any{"system": r.Patient.System, "value": r.Patient.Value}}}
		return obs, patient, mappers.Device(r.Device, "")
	}
	t.Fatal("no body temperature reading in vigil-vitals.json")
	return nil, nil, nil
}

type outCase struct {
	name                 string
	obs, patient, device map[string]any
	alert                map[string]any
	exact                bool // the round trip gives back the same Observation
}

func outCases(t testing.TB) []outCase {
	t.Helper()
	mon := mapFixture(t, "pcd01_oru_r01_monitor")
	pat := byType(mon, "Patient")[0]
	dev := byType(mon, "Device")[0]
	iobs, ipat, idev := ingestVitals(t)
	var issue map[string]any
	b, err := os.ReadFile("../../testdata/mappers/detected-issues.golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var issues []map[string]any
	if err := json.Unmarshal(b, &issues); err != nil {
		t.Fatal(err)
	}
	issue = issues[0]
	return []outCase{
		{name: "heart_rate", obs: observationWithCode(t, mon, "147842"), patient: pat, device: dev, exact: true},
		{name: "blood_pressure", obs: observationWithCode(t, mon, "85354-9"), patient: pat, device: dev, exact: true},
		{name: "temperature", obs: observationWithCode(t, mon, "150344"), patient: pat, device: dev, exact: true},
		{name: "heart_rate_alert", obs: observationWithCode(t, mon, "147842"), patient: pat, device: dev, alert: issue},
		{name: "ingest_temperature", obs: iobs, patient: ipat, device: idev},
	}
}

func encodeCase(t testing.TB, c outCase) *hl7v2.Message {
	t.Helper()
	opts := outOpts
	opts.Alert = c.alert
	m, err := hl7map.EncodeORU(c.obs, c.patient, c.device, opts)
	if err != nil {
		t.Fatalf("EncodeORU: %v", err)
	}
	return m
}

func TestEncodeORUGolden(t *testing.T) {
	for _, c := range outCases(t) {
		t.Run(c.name, func(t *testing.T) {
			m := encodeCase(t, c)
			b, err := m.Encode()
			if err != nil {
				t.Fatal(err)
			}
			// One segment a line in the golden file, for reading and diffs.
			checkGolden(t, "out_"+c.name+".hl7", []byte(strings.ReplaceAll(string(b), "\r", "\n")))
			if _, err := hl7v2.Parse(b); err != nil {
				t.Fatalf("the encoded message does not parse: %v", err)
			}
			if err := (hl7v2.Acceptance{MessageTypes: map[string][]string{"ORU": {"R01"}}}).Check(m); err != nil {
				t.Errorf("header check: %v", err)
			}
			if !m.HasProfile("IHE_PCD_001") || m.Version() != "2.6" {
				t.Errorf("profile/version = %v/%q", m.HasProfile("IHE_PCD_001"), m.Version())
			}
		})
	}
}

// essentials are what a receiver must get back: code, value, unit, time,
// status.
func essentials(obs map[string]any) map[string]any {
	out := map[string]any{}
	for _, k := range []string{"code", "valueQuantity", "valueString", "valueCodeableConcept", "effectiveDateTime", "status"} {
		if v, ok := obs[k]; ok {
			out[k] = v
		}
	}
	if comps, ok := obs["component"].([]any); ok {
		var cs []any
		for _, c := range comps {
			cm := c.(map[string]any)
			cs = append(cs, map[string]any{"code": cm["code"], "valueQuantity": cm["valueQuantity"]})
		}
		out["component"] = cs
	}
	return out
}

// normalize round-trips a tree through JSON so numbers compare as text.
func normalize(t testing.TB, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestEncodeORURoundTrip(t *testing.T) {
	for _, c := range outCases(t) {
		t.Run(c.name, func(t *testing.T) {
			b, err := encodeCase(t, c).Encode()
			if err != nil {
				t.Fatal(err)
			}
			m, err := hl7v2.Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			res, err := hl7map.MapMessage(m, goldenOpts)
			if err != nil {
				t.Fatalf("MapMessage of the encoded ORU: %v\n%s", err, b)
			}
			var back map[string]any
			code := c.obs["code"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"].(string)
			back = observationWithCode(t, res, code)
			if diff := cmp.Diff(normalize(t, essentials(c.obs)), normalize(t, essentials(back))); diff != "" {
				t.Errorf("round trip changed the Observation (-sent +received):\n%s", diff)
			}
			if c.exact {
				strip := func(o map[string]any) map[string]any {
					cp := map[string]any{}
					for k, v := range o {
						if k != "subject" && k != "device" {
							cp[k] = v
						}
					}
					return cp
				}
				if diff := cmp.Diff(normalize(t, strip(c.obs)), normalize(t, strip(back))); diff != "" {
					t.Errorf("round trip changed the Observation (-sent +received):\n%s", diff)
				}
			}
			if c.alert != nil {
				if got := len(byType(res, "Observation")); got != 2 {
					t.Errorf("%d Observations, want the reading and the alert row", got)
				}
			}
			pats := byType(res, "Patient")
			if len(pats) != 1 {
				t.Fatalf("%d Patients", len(pats))
			}
			if diff := cmp.Diff(normalize(t, c.patient["identifier"]), normalize(t, pats[0]["identifier"])); diff != "" {
				t.Errorf("patient identifiers (-sent +received):\n%s", diff)
			}
		})
	}
}

func TestEncodeORUErrors(t *testing.T) {
	mon := mapFixture(t, "pcd01_oru_r01_monitor")
	hr := observationWithCode(t, mon, "147842")
	noValue := map[string]any{"resourceType": "Observation", "status": "final", "code": hr["code"], "effectiveDateTime": "2026-11-25T09:30:00Z"}
	badStatus := map[string]any{}
	for k, v := range hr {
		badStatus[k] = v
	}
	badStatus["status"] = "unknown"
	noControl := outOpts
	noControl.ControlID = ""
	tests := []struct {
		name string
		obs  map[string]any
		opts hl7map.OutboundOptions
	}{
		{"not an Observation", map[string]any{"resourceType": "Patient"}, outOpts},
		{"no value", noValue, outOpts},
		{"status without a table 0085 code", badStatus, outOpts},
		{"no control id", hr, noControl},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := hl7map.EncodeORU(tc.obs, nil, nil, tc.opts)
			if !errors.Is(err, hl7map.ErrEncode) {
				t.Errorf("err = %v, want ErrEncode", err)
			}
		})
	}
}
