package mappers_test

// Every resource the mappers and alert rules produce passes the validation of a
// client write (fhirvalidate: google/fhir/go and Vigil's own checks); this is the
// one test file that links the R4 protos.

import (
	"fmt"
	"testing"

	"github.com/vigil-health/vigil/internal/fhirtest"
)

func TestR4ValidObservationsAndDevices(t *testing.T) {
	total := 0
	for _, c := range goldenCases {
		doc := render(t, c)
		for i, obs := range doc.Observations {
			fhirtest.Valid(t, fmt.Sprintf("%s observation %d", c.name, i), obs)
			total++
		}
		for i, dev := range doc.Devices {
			fhirtest.Valid(t, fmt.Sprintf("%s device %d", c.name, i), dev)
			total++
		}
	}
	for i, dm := range renderDeviceMetrics(t) {
		fhirtest.Valid(t, fmt.Sprintf("device metric %d", i), dm)
		total++
	}
	if total < 30 {
		t.Errorf("validated only %d resources; the fixtures shrank", total)
	}
}

func TestR4ValidDetectedIssues(t *testing.T) {
	issues := detectedIssueFixtures(t)
	if len(issues) < 4 {
		t.Fatalf("only %d DetectedIssues from the alert scenarios", len(issues))
	}
	for i, di := range issues {
		fhirtest.Valid(t, fmt.Sprintf("detected issue %d (%v)", i, di["code"]), di)
	}
}

// TestR4ValidatorRejects guards the harness: a broken resource must fail.
func TestR4ValidatorRejects(t *testing.T) {
	for name, res := range map[string]string{
		"bad status":           `{"resourceType":"Observation","status":"done","code":{"text":"x"}}`,
		"missing code":         `{"resourceType":"Observation","status":"final"}`,
		"bad reference target": `{"resourceType":"DetectedIssue","status":"final","patient":{"reference":"Device/x"}}`,
		"bad device name type": `{"resourceType":"Device","deviceName":[{"name":"x","type":"nickname"}]}`,
	} {
		if !fhirtest.Rejected([]byte(res)) {
			t.Errorf("%s: accepted %s", name, res)
		}
	}
}
