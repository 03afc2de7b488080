// Package fhirtest holds test helpers shared by packages that build FHIR resources: every
// resource Vigil makes itself (mappers, alert rules, HL7 mapping) must pass the same
// validation as a client's write (package fhirvalidate: google/fhir/go plus Vigil's checks).
package fhirtest

import (
	"encoding/json"
	"sync"
	"testing"

	"github.com/vigil-health/vigil/fhirvalidate"
)

var validator = sync.OnceValue(func() *fhirvalidate.Validator { return fhirvalidate.New(fhirvalidate.Options{}) })

// Rejected reports whether the validator refuses the JSON b (for tests that guard the
// harness itself with broken resources).
func Rejected(b []byte) bool {
	_, issues, err := validator().Validate(b)
	return err != nil || fhirvalidate.HasErrors(issues)
}

// Valid fails the test (without stopping it) unless res is a valid FHIR R4 resource.
func Valid(t testing.TB, name string, res map[string]any) {
	t.Helper()
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatalf("%s: marshal: %v", name, err)
	}
	_, issues, err := validator().Validate(b)
	if err != nil {
		t.Fatalf("%s: validate: %v", name, err)
	}
	if fhirvalidate.HasErrors(issues) {
		t.Errorf("%s: not a valid R4 %v: %+v\n%s", name, res["resourceType"], issues, b)
	}
}
