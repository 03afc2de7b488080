package mappers_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vigil-health/vigil/mappers"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/mappers")

var (
	goldenNow  = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	goldenSkew = 5 * time.Minute
	goldenRefs = mappers.Refs{Subject: "Patient/p-123", Device: "Device/d-42"}
)

const (
	ingestDir = "../testdata/ingest"
	goldenDir = "../testdata/mappers"
)

// omhOptions is what the ingest endpoint would know about the sender of the
// Open mHealth examples.
var omhOptions = mappers.OMHOptions{
	Device: mappers.DeviceInfo{
		Identifier:   mappers.Identifier{System: "urn:example:apps", Value: "acme-band-0001"},
		Type:         "pulse-oximeter",
		Manufacturer: "Acme Wearables",
	},
	PatientSystem: "urn:example:omh-users",
}

type goldenCase struct {
	name  string
	input string
	parse func([]byte) (mappers.Batch, error)
}

var goldenCases = []goldenCase{
	{name: "vigil-vitals", input: "vigil-vitals.json", parse: mappers.ParseVigil},
	{name: "vigil-unknown", input: "vigil-unknown.json", parse: mappers.ParseVigil},
	{name: "vigil-invalid", input: "vigil-invalid.json", parse: mappers.ParseVigil},
	{name: "omh-datapoints", input: "omh-datapoints.json", parse: func(b []byte) (mappers.Batch, error) {
		return mappers.ParseOpenMHealth(b, omhOptions)
	}},
}

type goldenError struct {
	Index int    `json:"index"`
	Error string `json:"error"`
}

type goldenDoc struct {
	Observations []map[string]any `json:"observations"`
	Devices      []map[string]any `json:"devices,omitempty"`
	Errors       []goldenError    `json:"errors"`
}

// render parses, validates and maps one input file the way the ingest
// endpoint does.
func render(t testing.TB, c goldenCase) goldenDoc {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(ingestDir, c.input))
	if err != nil {
		t.Fatal(err)
	}
	batch, err := c.parse(b)
	if err != nil {
		t.Fatalf("parse %s: %v", c.input, err)
	}
	valid := batch.Validate(goldenNow, goldenSkew)
	doc := goldenDoc{Observations: []map[string]any{}, Errors: []goldenError{}}
	seenDevice := map[string]bool{}
	for i := range valid.Readings {
		r := &valid.Readings[i]
		obs, err := mappers.Observation(r, goldenRefs)
		if err != nil {
			t.Fatalf("%s item %d: Observation: %v", c.input, r.Index, err)
		}
		doc.Observations = append(doc.Observations, obs)
		if k := r.Device.Key(); !seenDevice[k] {
			seenDevice[k] = true
			doc.Devices = append(doc.Devices, mappers.Device(r.Device, goldenRefs.Subject))
		}
	}
	for _, e := range valid.Errors {
		doc.Errors = append(doc.Errors, goldenError{Index: e.Index, Error: e.Err.Error()})
	}
	return doc
}

func checkGolden(t *testing.T, name string, v any) {
	t.Helper()
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join(goldenDir, name+".golden.json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./mappers -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden (-want +got):\n%s", path, cmp.Diff(string(want), string(got)))
	}
}

func TestGolden(t *testing.T) {
	for _, c := range goldenCases {
		t.Run(c.name, func(t *testing.T) {
			checkGolden(t, c.name, render(t, c))
		})
	}
}

// TestGoldenDeterministic maps every input twice and checks the output is
// byte-identical: a retried batch must produce the same resources.
func TestGoldenDeterministic(t *testing.T) {
	for _, c := range goldenCases {
		t.Run(c.name, func(t *testing.T) {
			a, _ := json.Marshal(render(t, c))
			b, _ := json.Marshal(render(t, c))
			if !bytes.Equal(a, b) {
				t.Error("two runs over the same input differ")
			}
		})
	}
}

// deviceMetricCases are the channels of the multi-parameter monitor.
var deviceMetricCases = []struct{ metric, unit string }{
	{"heart-rate", "/min"},
	{"pulse-rate", "/min"},
	{"spo2", "%"},
	{"blood-pressure", "mm[Hg]"},
	{"respiratory-rate", "/min"},
	{"body-temperature", "Cel"},
	{"step-count", ""},
}

func renderDeviceMetrics(t testing.TB) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, c := range deviceMetricCases {
		dm, err := mappers.DeviceMetric("Device/d-42", c.metric, c.unit)
		if err != nil {
			t.Fatalf("DeviceMetric(%s, %s): %v", c.metric, c.unit, err)
		}
		out = append(out, dm)
	}
	return out
}

func TestGoldenDeviceMetrics(t *testing.T) {
	checkGolden(t, "device-metrics", renderDeviceMetrics(t))
}

func TestGoldenDetectedIssues(t *testing.T) {
	checkGolden(t, "detected-issues", detectedIssueFixtures(t))
}
