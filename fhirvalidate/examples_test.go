package fhirvalidate

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vigil-health/vigil/internal/specexamples"
)

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
	wantExpr, invalid := specexamples.Invalid[name]
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
		if _, ok := specexamples.Invalid[filepath.Base(f)]; ok {
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
	files := specexamples.All(t)
	v := New(Options{})
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			checkExample(t, v, f)
		})
	}
}
