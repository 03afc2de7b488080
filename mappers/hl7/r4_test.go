package hl7map_test

// This is the one test file of the package that links the google/fhir/go R4
// protos (slow to build): every resource the mappers produce goes through
// the validating parser here.

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"

	"github.com/vigil-health/vigil/hl7v2"
	hl7map "github.com/vigil-health/vigil/mappers/hl7"
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

func TestR4ValidMappedResources(t *testing.T) {
	u := newValidator(t)
	total := 0
	types := map[string]int{}
	for _, name := range mappedFixtures {
		for i, r := range mapFixture(t, name).Resources() {
			checkR4(t, u, fmt.Sprintf("%s entry %d", name, i), r)
			types[r["resourceType"].(string)]++
			total++
		}
	}
	// The round trips of the outbound cases, alert rows included.
	for _, c := range outCases(t) {
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
			t.Fatal(err)
		}
		for i, r := range res.Resources() {
			checkR4(t, u, fmt.Sprintf("round trip %s entry %d", c.name, i), r)
			total++
		}
	}
	// The value types of device rows that are not numbers.
	for i, r := range mapText(t, valueTypesMessage).Resources() {
		checkR4(t, u, fmt.Sprintf("value types entry %d", i), r)
		types[r["resourceType"].(string)]++
		total++
	}
	for _, typ := range []string{"Patient", "Encounter", "Device", "Observation", "DiagnosticReport"} {
		if types[typ] == 0 {
			t.Errorf("no %s validated", typ)
		}
	}
	if total < 40 {
		t.Errorf("validated only %d resources; the fixtures shrank", total)
	}
}

// TestR4ValidatorRejects guards the harness: a broken resource must fail.
func TestR4ValidatorRejects(t *testing.T) {
	u := newValidator(t)
	for name, res := range map[string]string{
		"bad encounter status":  `{"resourceType":"Encounter","status":"admitted","class":{"code":"IMP"}}`,
		"bad gender":            `{"resourceType":"Patient","gender":"f"}`,
		"report without status": `{"resourceType":"DiagnosticReport","code":{"text":"x"}}`,
	} {
		if _, err := u.Unmarshal([]byte(res)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
