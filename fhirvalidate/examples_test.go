package fhirvalidate

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// invalidExamples are the FHIR R4 specification examples that google/fhir/go's validating
// parser rightly rejects, each with the element an issue must name.
var invalidExamples = map[string]string{
	"DeviceMetric-example.json":        "DeviceMetric.parent",
	"DeviceUseStatement-example.json":  "DeviceUseStatement.reasonReference[0]",
	"MedicationRequest-medrx0301.json": "MedicationRequest.dispenseRequest.performer",
	"Observation-clinical-gender.json": "Observation.performer[0]",
	"Questionnaire-qs1.json":           "Questionnaire.item[0].item[0].linkId",
	"ig-r4.json":                       "ImplementationGuide.name",
}

// checkExample validates one example file: the invalid ones must be rejected with an issue
// naming the element, every other one accepted.
func checkExample(t *testing.T, v *Validator, path string) {
	t.Helper()
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rt, issues, err := v.Validate(body)
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	name := filepath.Base(path)
	if want := strings.SplitN(name, "-", 2)[0]; rt != want && name != "ig-r4.json" {
		t.Errorf("resourceType = %q, want %q", rt, want)
	}
	wantExpr, invalid := invalidExamples[name]
	if !invalid {
		if HasErrors(issues) {
			t.Errorf("valid example rejected: %+v", issues)
		}
		return
	}
	if !HasErrors(issues) {
		t.Fatalf("invalid example accepted; issues: %+v", issues)
	}
	for _, is := range issues {
		if slices.Contains(is.Expression, wantExpr) && (is.Severity == SeverityError || is.Severity == SeverityFatal) {
			return
		}
	}
	t.Errorf("no error issue names %s; issues: %+v", wantExpr, issues)
}

// TestVendoredExamples validates the examples vendored in testdata/examples on every run.
func TestVendoredExamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "testdata", "examples", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 12 {
		t.Fatalf("found %d vendored examples, want at least 12", len(files))
	}
	v := New(Options{})
	invalid := 0
	for _, f := range files {
		if _, ok := invalidExamples[filepath.Base(f)]; ok {
			invalid++
		}
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			checkExample(t, v, f)
		})
	}
	if invalid < 2 {
		t.Errorf("found %d invalid vendored examples, want 2", invalid)
	}
}

// TestSpecExamples validates all 713 FHIR R4 examples when VIGIL_EXAMPLES_DIR names their
// folder (CI sets it to ../shared/data/fhir-r4-examples, relative to the repository root).
func TestSpecExamples(t *testing.T) {
	dir := os.Getenv("VIGIL_EXAMPLES_DIR")
	if dir == "" {
		t.Skip("VIGIL_EXAMPLES_DIR is not set; set it to the folder of the 713 FHIR R4 examples (e.g. ../shared/data/fhir-r4-examples) to validate them all")
	}
	candidates := []string{dir}
	if !filepath.IsAbs(dir) {
		// Tests run in fhirvalidate/; the variable is usually relative to the repo root.
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
		t.Fatalf("VIGIL_EXAMPLES_DIR=%q: no *.json files found (tried %q)", dir, candidates)
	}
	if len(files) != 713 {
		t.Errorf("found %d examples, want 713", len(files))
	}
	found := 0
	for _, f := range files {
		if _, ok := invalidExamples[filepath.Base(f)]; ok {
			found++
		}
	}
	if found != len(invalidExamples) {
		t.Errorf("found %d of the %d known invalid examples", found, len(invalidExamples))
	}
	v := New(Options{})
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			checkExample(t, v, f)
		})
	}
}
