// Package specexamples finds the FHIR R4 specification examples for tests: the 713 files
// of VIGIL_EXAMPLES_DIR (CI points it at ../shared/data/fhir-r4-examples) and the handful
// vendored in testdata/examples, and knows which six are invalid.
package specexamples

import (
	"os"
	"path/filepath"
	"testing"
)

// EnvDir names the variable that points at the folder of all 713 examples.
const EnvDir = "VIGIL_EXAMPLES_DIR"

// Invalid are the examples google/fhir/go's validating parser rightly rejects, each with
// the element an issue must name.
var Invalid = map[string]string{
	"DeviceMetric-example.json":        "DeviceMetric.parent",
	"DeviceUseStatement-example.json":  "DeviceUseStatement.reasonReference[0]",
	"MedicationRequest-medrx0301.json": "MedicationRequest.dispenseRequest.performer",
	"Observation-clinical-gender.json": "Observation.performer[0]",
	"Questionnaire-qs1.json":           "Questionnaire.item[0].item[0].linkId",
	"ig-r4.json":                       "ImplementationGuide.name",
}

// All returns the 713 example files, skipping the test with a message when EnvDir is
// unset. A relative EnvDir is tried as given and relative to the repository root (tests
// run one folder below it). It fails the test unless all 713, with the six invalid ones,
// are found.
func All(t testing.TB) []string {
	t.Helper()
	dir := os.Getenv(EnvDir)
	if dir == "" {
		t.Skipf("%s is not set; set it to the folder of the 713 FHIR R4 examples (e.g. ../shared/data/fhir-r4-examples) to run them all", EnvDir)
	}
	candidates := []string{dir}
	if !filepath.IsAbs(dir) {
		candidates = append(candidates, filepath.Join("..", dir))
	}
	var files []string
	for _, c := range candidates {
		files, _ = filepath.Glob(filepath.Join(c, "*.json"))
		if len(files) > 0 {
			break
		}
	}
	if len(files) == 0 {
		t.Fatalf("%s=%q: no *.json files found (tried %q)", EnvDir, dir, candidates)
	}
	if len(files) != 713 {
		t.Errorf("found %d examples, want 713", len(files))
	}
	found := 0
	for _, f := range files {
		if _, ok := Invalid[filepath.Base(f)]; ok {
			found++
		}
	}
	if found != len(Invalid) {
		t.Errorf("found %d of the %d invalid examples", found, len(Invalid))
	}
	return files
}
