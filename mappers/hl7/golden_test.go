package hl7map_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vigil-health/vigil/hl7v2"
	hl7map "github.com/vigil-health/vigil/mappers/hl7"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/hl7map")

const (
	fixtureDir = "../../testdata/hl7"
	goldenDir  = "../../testdata/hl7map"
)

// goldenNow is the clock of the golden runs: shortly after the fixtures'
// readings, so the range and future-time checks run.
var goldenNow = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

var goldenOpts = hl7map.Options{Now: goldenNow}

// mappedFixtures are the fixtures that map to FHIR: those of testdata/hl7
// and adt_a03_discharge (testdata/hl7map), a copy of testdata/hl7/adt_a03.hl7
// with the admit and discharge times in PV1-44 and PV1-45 (the original has
// them one field early; TestMapMessageErrors covers it).
var mappedFixtures = []string{
	"pcd01_oru_r01_monitor",
	"pcd01_oru_r01_6obx",
	"lab_oru_r01",
	"adt_a01",
	"adt_a04",
	"adt_a08",
	"adt_a03_discharge",
}

// goldenEntry is the JSON form of an Entry in the golden files.
type goldenEntry struct {
	FullURL        string         `json:"fullUrl"`
	IfNoneExist    string         `json:"ifNoneExist,omitempty"`
	UpdateIfExists bool           `json:"updateIfExists,omitempty"`
	Resource       map[string]any `json:"resource"`
}

func readMessage(t testing.TB, name string) *hl7v2.Message {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtureDir, name+".hl7"))
	if os.IsNotExist(err) {
		b, err = os.ReadFile(filepath.Join(goldenDir, name+".hl7"))
	}
	if err != nil {
		t.Fatal(err)
	}
	m, err := hl7v2.Parse(b)
	if err != nil {
		t.Fatalf("parse %s: %v", name, err)
	}
	return m
}

func mapFixture(t testing.TB, name string) *hl7map.Result {
	t.Helper()
	res, err := hl7map.MapMessage(readMessage(t, name), goldenOpts)
	if err != nil {
		t.Fatalf("MapMessage(%s): %v", name, err)
	}
	return res
}

// marshalEntries renders a result as indented JSON through encoding/json,
// so json.Number values keep their text.
func marshalEntries(t testing.TB, res *hl7map.Result) []byte {
	t.Helper()
	var out []goldenEntry
	for _, e := range res.Entries {
		out = append(out, goldenEntry{FullURL: e.FullURL, IfNoneExist: e.IfNoneExist, UpdateIfExists: e.UpdateIfExists, Resource: e.Resource})
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// checkGolden compares got with the golden file, or rewrites it with -update.
func checkGolden(t *testing.T, file string, got []byte) {
	t.Helper()
	path := filepath.Join(goldenDir, file)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (-want +got):\n%s", file, cmp.Diff(string(want), string(got)))
	}
}

func TestMapMessageGolden(t *testing.T) {
	for _, name := range mappedFixtures {
		t.Run(name, func(t *testing.T) {
			res := mapFixture(t, name)
			checkGolden(t, name+".golden.json", marshalEntries(t, res))
		})
	}
}
