package hl7map_test

// Every resource the mappers produce passes the validation of a client write
// (fhirvalidate); this is the one test file of the package that links the R4
// protos.

import (
	"fmt"
	"testing"

	"github.com/vigil-health/vigil/internal/fhirtest"

	"github.com/vigil-health/vigil/hl7v2"
	hl7map "github.com/vigil-health/vigil/mappers/hl7"
)

func TestR4ValidMappedResources(t *testing.T) {
	total := 0
	types := map[string]int{}
	for _, name := range mappedFixtures {
		for i, r := range mapFixture(t, name).Resources() {
			fhirtest.Valid(t, fmt.Sprintf("%s entry %d", name, i), r)
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
			fhirtest.Valid(t, fmt.Sprintf("round trip %s entry %d", c.name, i), r)
			total++
		}
	}
	// The value types of device rows that are not numbers.
	for i, r := range mapText(t, valueTypesMessage).Resources() {
		fhirtest.Valid(t, fmt.Sprintf("value types entry %d", i), r)
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
	for name, res := range map[string]string{
		"bad encounter status":  `{"resourceType":"Encounter","status":"admitted","class":{"code":"IMP"}}`,
		"bad gender":            `{"resourceType":"Patient","gender":"f"}`,
		"report without status": `{"resourceType":"DiagnosticReport","code":{"text":"x"}}`,
	} {
		if !fhirtest.Rejected([]byte(res)) {
			t.Errorf("%s: accepted", name)
		}
	}
}
