package mappers_test

// This is the one test file that links the google/fhir/go R4 protos (slow to
// build): every resource the mappers and alert rules produce goes through
// the validating parser here.

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
)

func newValidator(t *testing.T) *jsonformat.Unmarshaller {
	t.Helper()
	u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		t.Fatal(err)
	}
	u.MaxNestingDepth = 64
	return u
}

// checkR4 marshals res and runs it through the validating R4 parser.
func checkR4(t *testing.T, u *jsonformat.Unmarshaller, name string, res map[string]any) {
	t.Helper()
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatalf("%s: marshal: %v", name, err)
	}
	if _, err := u.Unmarshal(b); err != nil {
		t.Errorf("%s: not a valid R4 %v: %v\n%s", name, res["resourceType"], err, b)
	}
}

func TestR4ValidObservationsAndDevices(t *testing.T) {
	u := newValidator(t)
	total := 0
	for _, c := range goldenCases {
		doc := render(t, c)
		for i, obs := range doc.Observations {
			checkR4(t, u, fmt.Sprintf("%s observation %d", c.name, i), obs)
			total++
		}
		for i, dev := range doc.Devices {
			checkR4(t, u, fmt.Sprintf("%s device %d", c.name, i), dev)
			total++
		}
	}
	for i, dm := range renderDeviceMetrics(t) {
		checkR4(t, u, fmt.Sprintf("device metric %d", i), dm)
		total++
	}
	if total < 30 {
		t.Errorf("validated only %d resources; the fixtures shrank", total)
	}
}

func TestR4ValidDetectedIssues(t *testing.T) {
	u := newValidator(t)
	issues := detectedIssueFixtures(t)
	if len(issues) < 4 {
		t.Fatalf("only %d DetectedIssues from the alert scenarios", len(issues))
	}
	for i, di := range issues {
		checkR4(t, u, fmt.Sprintf("detected issue %d (%v)", i, di["code"]), di)
	}
}

// TestR4ValidatorRejects guards the harness: a broken resource must fail.
func TestR4ValidatorRejects(t *testing.T) {
	u := newValidator(t)
	for name, res := range map[string]string{
		"bad status":           `{"resourceType":"Observation","status":"done","code":{"text":"x"}}`,
		"missing code":         `{"resourceType":"Observation","status":"final"}`,
		"bad reference target": `{"resourceType":"DetectedIssue","status":"final","patient":{"reference":"Device/x"}}`,
		"bad device name type": `{"resourceType":"Device","deviceName":[{"name":"x","type":"nickname"}]}`,
	} {
		if _, err := u.Unmarshal([]byte(res)); err == nil {
			t.Errorf("%s: accepted %s", name, res)
		}
	}
}
