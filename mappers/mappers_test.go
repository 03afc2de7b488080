package mappers_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vigil-health/vigil/mappers"
	"github.com/vigil-health/vigil/mappers/codes"
)

func goodReading() mappers.Reading {
	return mappers.Reading{
		Device:  mappers.DeviceInfo{Identifier: mappers.Identifier{System: "urn:example:dev", Value: "d1"}},
		Patient: mappers.Identifier{System: "urn:example:mrn", Value: "MRN-1"},
		Metric:  "heart-rate",
		Value:   "72",
		Unit:    "/min",
		Time:    goldenNow.Add(-time.Minute),
	}
}

func TestValidateReasons(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*mappers.Reading)
		kind   error
		field  string
		reason string
	}{
		{"missing device", func(r *mappers.Reading) { r.Device = mappers.DeviceInfo{Model: "X"} }, mappers.ErrMissingDevice, "device", "identifier, EUI-64 or serial"},
		{"missing patient", func(r *mappers.Reading) { r.Patient = mappers.Identifier{System: "urn:x"} }, mappers.ErrMissingPatient, "patient", "patient identifier is required"},
		{"unsupported metric", func(r *mappers.Reading) { r.Metric = "mood" }, mappers.ErrUnsupportedMetric, "metric", `"mood" is not a supported metric`},
		{"no metric", func(r *mappers.Reading) { r.Metric = "" }, mappers.ErrUnsupportedMetric, "metric", "metric name or a code is required"},
		{"unknown unit", func(r *mappers.Reading) { r.Unit, r.UnitText = "", "furlongs" }, mappers.ErrUnknownUnit, "unit", `"furlongs" is not a known unit (accepted for heart-rate: /min)`},
		{"unit of another metric", func(r *mappers.Reading) { r.Unit, r.UnitText = "mm[Hg]", "mmHg" }, mappers.ErrUnknownUnit, "unit", `"mmHg" is not a unit of heart-rate`},
		{"missing unit", func(r *mappers.Reading) { r.Unit = "" }, mappers.ErrUnknownUnit, "unit", "a unit is required"},
		{"heart rate too high", func(r *mappers.Reading) { r.Value = "351" }, mappers.ErrOutOfRange, "value", "outside the physical range 0..350 /min"},
		{"negative heart rate", func(r *mappers.Reading) { r.Value = "-1" }, mappers.ErrOutOfRange, "value", "0..350"},
		{"spo2 over 100", func(r *mappers.Reading) { r.Metric, r.Value, r.Unit = "spo2", "100.5", "%" }, mappers.ErrOutOfRange, "value", "0..100 %"},
		{"temperature 24", func(r *mappers.Reading) { r.Metric, r.Value, r.Unit = "body-temperature", "24.9", "Cel" }, mappers.ErrOutOfRange, "value", "25..45 Cel"},
		{"fahrenheit 120", func(r *mappers.Reading) { r.Metric, r.Value, r.Unit = "body-temperature", "120", "[degF]" }, mappers.ErrOutOfRange, "value", "77..113 [degF]"},
		{"systolic 400", func(r *mappers.Reading) {
			r.Metric, r.Value, r.Unit, r.Parts = "blood-pressure", "", "mm[Hg]", map[string]string{"systolic": "400", "diastolic": "80"}
		}, mappers.ErrOutOfRange, "systolic", "0..300 mm[Hg]"},
		{"bp missing diastolic", func(r *mappers.Reading) {
			r.Metric, r.Value, r.Unit, r.Parts = "blood-pressure", "", "mm[Hg]", map[string]string{"systolic": "120"}
		}, mappers.ErrInvalidValue, "diastolic", "requires a diastolic value"},
		{"bp with a single value", func(r *mappers.Reading) {
			r.Metric, r.Value, r.Unit, r.Parts = "blood-pressure", "120", "mm[Hg]", map[string]string{"systolic": "120", "diastolic": "80"}
		}, mappers.ErrInvalidValue, "value", "is a panel"},
		{"bp unknown part", func(r *mappers.Reading) {
			r.Metric, r.Value, r.Unit, r.Parts = "blood-pressure", "", "mm[Hg]", map[string]string{"systolic": "120", "diastolic": "80", "pulse": "70"}
		}, mappers.ErrInvalidValue, "pulse", `"pulse" is not a part of blood-pressure`},
		{"not a number", func(r *mappers.Reading) { r.Value = "seventy" }, mappers.ErrInvalidValue, "value", `"seventy" is not a decimal number`},
		{"missing value", func(r *mappers.Reading) { r.Value = "" }, mappers.ErrInvalidValue, "value", "a value is required"},
		{"missing time", func(r *mappers.Reading) { r.Time = time.Time{} }, mappers.ErrMissingTime, "time", "measurement time is required"},
		{"future time", func(r *mappers.Reading) { r.Time = goldenNow.Add(6 * time.Minute) }, mappers.ErrFutureTime, "time", "plus 5m0s of allowed clock skew"},
		{"interval backwards", func(r *mappers.Reading) { r.End = r.Time.Add(-time.Hour) }, mappers.ErrInvalidTime, "end", "ends before it starts"},
		{"bad status", func(r *mappers.Reading) { r.Status = "done" }, mappers.ErrInvalidStatus, "status", `"done" is not a known status`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := goodReading()
			tt.modify(&r)
			err := mappers.Validate(&r, goldenNow, goldenSkew)
			if !errors.Is(err, tt.kind) {
				t.Fatalf("Validate() = %v, want kind %v", err, tt.kind)
			}
			var ve *mappers.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %T is not a *ValidationError", err)
			}
			found := false
			for _, p := range ve.Problems {
				if errors.Is(p, tt.kind) && p.Field == tt.field && strings.Contains(p.Reason, tt.reason) {
					found = true
				}
			}
			if !found {
				t.Errorf("no problem on %s with reason containing %q in %v", tt.field, tt.reason, ve.Problems)
			}
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*mappers.Reading)
	}{
		{"heart rate", func(*mappers.Reading) {}},
		{"within skew", func(r *mappers.Reading) { r.Time = goldenNow.Add(4 * time.Minute) }},
		{"range edge", func(r *mappers.Reading) { r.Value = "350" }},
		{"eui64 only", func(r *mappers.Reading) { r.Device = mappers.DeviceInfo{EUI64: "001A2BFFFE3C4D5E"} }},
		{"serial only", func(r *mappers.Reading) { r.Device = mappers.DeviceInfo{Serial: "SN1"} }},
		{"unknown code passes through", func(r *mappers.Reading) {
			r.Metric, r.Unit, r.UnitText = "", "", "zorks"
			r.Code = &codes.Coding{System: "urn:example:acme", Code: "X-1"}
		}},
		{"exponent decimal", func(r *mappers.Reading) { r.Value = "7.2e1" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := goodReading()
			tt.modify(&r)
			if err := mappers.Validate(&r, goldenNow, goldenSkew); err != nil {
				t.Errorf("Validate() = %v", err)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	r := mappers.Reading{Metric: "spo2", Value: "120", Unit: "%", Time: goldenNow.Add(time.Hour)}
	err := mappers.Validate(&r, goldenNow, goldenSkew)
	for _, kind := range []error{mappers.ErrMissingDevice, mappers.ErrMissingPatient, mappers.ErrOutOfRange, mappers.ErrFutureTime} {
		if !errors.Is(err, kind) {
			t.Errorf("error %v does not report %v", err, kind)
		}
	}
}

func TestParseVigilBatchItemErrors(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(ingestDir, "vigil-invalid.json"))
	if err != nil {
		t.Fatal(err)
	}
	batch, err := mappers.ParseVigil(b)
	if err != nil {
		t.Fatal(err)
	}
	parseErrs := map[int]error{}
	for _, e := range batch.Errors {
		parseErrs[e.Index] = e.Err
	}
	want := map[int]error{1: mappers.ErrMalformed, 2: mappers.ErrInvalidTime, 9: mappers.ErrMalformed, 11: mappers.ErrInvalidStatus}
	if len(parseErrs) != len(want) {
		t.Errorf("parse errors at %v, want at %v", parseErrs, want)
	}
	for i, kind := range want {
		if !errors.Is(parseErrs[i], kind) {
			t.Errorf("item %d: %v, want %v", i, parseErrs[i], kind)
		}
	}
	valid := batch.Validate(goldenNow, goldenSkew)
	var okIdx []int
	for _, r := range valid.Readings {
		okIdx = append(okIdx, r.Index)
	}
	if diff := cmp.Diff([]int{0, 12}, okIdx); diff != "" {
		t.Errorf("good siblings (-want +got):\n%s", diff)
	}
	wantKinds := map[int]error{3: mappers.ErrOutOfRange, 4: mappers.ErrOutOfRange, 5: mappers.ErrOutOfRange,
		6: mappers.ErrFutureTime, 7: mappers.ErrUnknownUnit, 8: mappers.ErrInvalidValue, 10: mappers.ErrMissingPatient}
	for _, e := range valid.Errors {
		if k, ok := wantKinds[e.Index]; ok && !errors.Is(e, k) {
			t.Errorf("item %d: %v, want %v", e.Index, e, k)
		}
		if !strings.HasPrefix(e.Error(), "item ") {
			t.Errorf("error %q does not name the item", e.Error())
		}
	}
	if len(valid.Errors) != 11 {
		t.Errorf("%d errors, want 11", len(valid.Errors))
	}
	for i := 1; i < len(valid.Errors); i++ {
		if valid.Errors[i-1].Index > valid.Errors[i].Index {
			t.Error("errors not in item order")
		}
	}
}

func TestParseDocumentErrors(t *testing.T) {
	tests := []struct {
		name  string
		parse func([]byte) (mappers.Batch, error)
		in    string
	}{
		{"vigil not json", mappers.ParseVigil, `{"readings": [`},
		{"vigil no readings", mappers.ParseVigil, `{"device": {"serial": "1"}}`},
		{"vigil unknown top field", mappers.ParseVigil, `{"readings": [], "extra": 1}`},
		{"vigil trailing data", mappers.ParseVigil, `{"readings": []} {}`},
		{"vigil readings not array", mappers.ParseVigil, `{"readings": {}}`},
		{"omh not json", parseOMH, `[{"header": `},
		{"omh scalar", parseOMH, `42`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.parse([]byte(tt.in)); !errors.Is(err, mappers.ErrMalformed) {
				t.Errorf("error = %v, want ErrMalformed", err)
			}
		})
	}
}

func parseOMH(b []byte) (mappers.Batch, error) { return mappers.ParseOpenMHealth(b, omhOptions) }

func TestParseVigilKeepsExactDecimals(t *testing.T) {
	batch, err := mappers.ParseVigil([]byte(`{"device": {"serial": "S1"}, "patient": {"identifier": {"value": "p"}},
		"readings": [{"metric": "body-temperature", "value": "36.60", "unit": "Cel", "time": "2026-03-01T09:00:00.250+05:30"},
		             {"metric": "body-weight", "value": 72.50, "unit": "kg", "time": "2026-03-01T09:00:00Z"}]}`))
	if err != nil || len(batch.Readings) != 2 {
		t.Fatalf("ParseVigil = %+v, %v", batch, err)
	}
	obs, err := mappers.Observation(&batch.Readings[0], goldenRefs)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(obs)
	for _, want := range []string{`"value":36.60`, `"effectiveDateTime":"2026-03-01T09:00:00.25+05:30"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s not in %s", want, b)
		}
	}
	if got := batch.Readings[1].Value; got != "72.50" {
		t.Errorf("number literal became %q, want 72.50", got)
	}
}

func TestReadingIDStableAcrossOffsets(t *testing.T) {
	a := goodReading()
	b := goodReading()
	b.Time = a.Time.In(time.FixedZone("", 5*3600+1800))
	b.Value = "99" // a corrected value for the same instant is the same reading
	if a.ReadingID() != b.ReadingID() {
		t.Error("the same instant in another offset gave another id")
	}
	c := goodReading()
	c.Time = a.Time.Add(time.Second)
	d := goodReading()
	d.Metric = "spo2"
	e := goodReading()
	e.Device.Identifier.Value = "d2"
	f := goodReading()
	f.MDC = 149530 // pulse oximeter heart rate at the same instant as ECG heart rate
	for name, r := range map[string]mappers.Reading{"time": c, "metric": d, "device": e, "sensor": f} {
		if r.ReadingID() == a.ReadingID() {
			t.Errorf("different %s gave the same id", name)
		}
	}
}

func TestMapStatus(t *testing.T) {
	tests := map[string]string{
		"": "final", "final": "final", "F": "final", "preliminary": "preliminary", "P": "preliminary",
		"amended": "amended", "corrected": "corrected", "C": "corrected", "entered-in-error": "entered-in-error",
		"W": "entered-in-error", "cancelled": "cancelled", "X": "cancelled",
	}
	for in, want := range tests {
		got, err := mappers.MapStatus(in)
		if err != nil || got != want {
			t.Errorf("MapStatus(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := mappers.MapStatus("maybe"); !errors.Is(err, mappers.ErrInvalidStatus) {
		t.Errorf("MapStatus(maybe) error = %v", err)
	}
}

func TestObservationErrors(t *testing.T) {
	r := goodReading()
	r.Metric = "mood"
	if _, err := mappers.Observation(&r, goldenRefs); !errors.Is(err, mappers.ErrUnsupportedMetric) {
		t.Errorf("unknown metric: %v", err)
	}
	r = goodReading()
	r.Value = "NaN"
	if _, err := mappers.Observation(&r, goldenRefs); !errors.Is(err, mappers.ErrInvalidValue) {
		t.Errorf("NaN value: %v", err)
	}
	r = goodReading()
	r.Metric, r.Value, r.Unit = "blood-pressure", "", "mm[Hg]"
	if _, err := mappers.Observation(&r, goldenRefs); !errors.Is(err, mappers.ErrInvalidValue) {
		t.Errorf("panel without parts: %v", err)
	}
}

func TestDeviceMetricErrors(t *testing.T) {
	if _, err := mappers.DeviceMetric("Device/d", "mood", ""); !errors.Is(err, mappers.ErrUnsupportedMetric) {
		t.Errorf("unknown metric: %v", err)
	}
	if _, err := mappers.DeviceMetric("Device/d", "spo2", "kg"); !errors.Is(err, mappers.ErrUnknownUnit) {
		t.Errorf("wrong unit: %v", err)
	}
}

func TestDeviceIdentifier(t *testing.T) {
	tests := []struct {
		name string
		in   mappers.DeviceInfo
		want mappers.Identifier
	}{
		{"caller identifier first", mappers.DeviceInfo{Identifier: mappers.Identifier{System: "urn:x", Value: "1"}, EUI64: "00-1a-2b-ff-fe-3c-4d-5e"}, mappers.Identifier{System: "urn:x", Value: "1"}},
		{"eui64 normalised", mappers.DeviceInfo{EUI64: "00-1a-2b-ff-fe-3c-4d-5e", Serial: "S"}, mappers.Identifier{System: mappers.EUI64System, Value: "001A2BFFFE3C4D5E"}},
		{"serial last", mappers.DeviceInfo{Serial: "S"}, mappers.Identifier{Value: "S"}},
		{"none", mappers.DeviceInfo{Model: "M"}, mappers.Identifier{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, mappers.DeviceIdentifier(tt.in)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParseVigil(f *testing.F) {
	for _, name := range []string{"vigil-vitals.json", "vigil-unknown.json", "vigil-invalid.json"} {
		b, err := os.ReadFile(filepath.Join(ingestDir, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"readings":[{"metric":"bp","systolic":"1e400","unit":"mmHg","time":"2026-01-01T00:00:00Z"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		batch, err := mappers.ParseVigil(b)
		if err != nil {
			return
		}
		checkBatch(t, batch)
	})
}

func FuzzParseOpenMHealth(f *testing.F) {
	b, err := os.ReadFile(filepath.Join(ingestDir, "omh-datapoints.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"header":{"schema_id":{"name":"step-count"}},"body":{"step_count":5,"effective_time_frame":{"time_interval":{"end_date_time":"2026-01-01T00:00:00Z","duration":{"value":1e300,"unit":"wk"}}}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		batch, err := parseOMH(b)
		if err != nil {
			return
		}
		checkBatch(t, batch)
	})
}

// checkBatch maps every valid reading: no panic, and the Observation encodes.
func checkBatch(t *testing.T, batch mappers.Batch) {
	valid := batch.Validate(goldenNow, goldenSkew)
	for i := range valid.Readings {
		obs, err := mappers.Observation(&valid.Readings[i], goldenRefs)
		if err != nil {
			t.Fatalf("valid reading %d did not map: %v", i, err)
		}
		if _, err := json.Marshal(obs); err != nil {
			t.Fatalf("observation does not encode: %v", err)
		}
	}
}

func BenchmarkObservation(b *testing.B) {
	r := goodReading()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := mappers.Observation(&r, goldenRefs); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkObservationBloodPressureJSON(b *testing.B) {
	r := goodReading()
	r.Metric, r.Value, r.Unit, r.Parts = "blood-pressure", "", "mm[Hg]", map[string]string{"systolic": "120", "diastolic": "80", "mean": "93"}
	b.ReportAllocs()
	for b.Loop() {
		obs, err := mappers.Observation(&r, goldenRefs)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := json.Marshal(obs); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseValidateMapBatch(b *testing.B) {
	raw, err := os.ReadFile(filepath.Join(ingestDir, "vigil-vitals.json"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		batch, err := mappers.ParseVigil(raw)
		if err != nil {
			b.Fatal(err)
		}
		valid := batch.Validate(goldenNow, goldenSkew)
		for i := range valid.Readings {
			if _, err := mappers.Observation(&valid.Readings[i], goldenRefs); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func TestDetectFormat(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want mappers.Format
		ok   bool
	}{
		{"vigil", `{"readings": []}`, mappers.FormatVigil, true},
		{"omh object", `{"header": {}, "body": {}}`, mappers.FormatOpenMHealth, true},
		{"omh array", ` [{"header": {}}]`, mappers.FormatOpenMHealth, true},
		{"other object", `{"resourceType": "Bundle"}`, "", false},
		{"not json", `readings`, "", false},
		{"empty", ``, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, ok := mappers.DetectFormat([]byte(tt.in))
			if f != tt.want || ok != tt.ok {
				t.Errorf("DetectFormat = %q %v, want %q %v", f, ok, tt.want, tt.ok)
			}
		})
	}
	for _, name := range []string{"vigil-vitals.json", "omh-datapoints.json"} {
		b, _ := os.ReadFile(filepath.Join(ingestDir, name))
		batch, f, err := mappers.Parse(b, omhOptions)
		if err != nil || len(batch.Readings) == 0 {
			t.Errorf("Parse(%s) = %s, %d readings, %v", name, f, len(batch.Readings), err)
		}
	}
	if _, _, err := mappers.Parse([]byte(`{"resourceType": "Bundle"}`), omhOptions); !errors.Is(err, mappers.ErrMalformed) {
		t.Errorf("Parse(Bundle) error = %v", err)
	}
}
