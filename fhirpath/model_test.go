package fhirpath

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestModel(t *testing.T) {
	tests := []struct {
		typ, elem string
		want      ElementInfo
	}{
		{"Observation", "value", ElementInfo{Types: []string{"Quantity", "CodeableConcept", "string", "boolean", "integer", "Range", "Ratio", "SampledData", "time", "dateTime", "Period"}, Choice: true}},
		{"Observation", "component", ElementInfo{Types: []string{"Observation.component"}, Array: true}},
		{"Observation.component", "code", ElementInfo{Types: []string{"CodeableConcept"}}},
		{"Observation.component", "referenceRange", ElementInfo{Types: []string{"Observation.referenceRange"}, Array: true}},
		{"Observation", "subject", ElementInfo{Types: []string{"Reference"}}},
		{"Observation", "status", ElementInfo{Types: []string{"code"}}},
		{"Observation", "issued", ElementInfo{Types: []string{"instant"}}},
		{"Observation", "id", ElementInfo{Types: []string{"id"}}},
		{"Observation", "contained", ElementInfo{Types: []string{"Resource"}, Array: true}},
		{"Questionnaire.item", "item", ElementInfo{Types: []string{"Questionnaire.item"}, Array: true}},
		{"Patient", "birthDate", ElementInfo{Types: []string{"date"}}},
		{"Patient", "deceased", ElementInfo{Types: []string{"boolean", "dateTime"}, Choice: true}},
		{"Extension", "url", ElementInfo{Types: []string{"uri"}}},
		{"Timing", "repeat", ElementInfo{Types: []string{"Timing.repeat"}}},
		{"Bundle.entry", "resource", ElementInfo{Types: []string{"Resource"}}},
		{"Quantity", "value", ElementInfo{Types: []string{"decimal"}}},
		{"Age", "value", ElementInfo{Types: []string{"decimal"}}},
	}
	for _, tc := range tests {
		t.Run(tc.typ+"."+tc.elem, func(t *testing.T) {
			got, ok := LookupElement(tc.typ, tc.elem)
			if !ok {
				t.Fatalf("LookupElement(%q, %q) not found", tc.typ, tc.elem)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
	if _, ok := LookupElement("Observation", "valueQuantity"); ok {
		t.Errorf("valueQuantity is a JSON key, not an element")
	}
	if _, ok := LookupElement("NoSuchType", "id"); ok {
		t.Errorf("unknown type found")
	}
}

func TestTypeHierarchy(t *testing.T) {
	tests := []struct {
		name, ancestor string
		want           bool
	}{
		{"Patient", "DomainResource", true},
		{"Patient", "Resource", true},
		{"Bundle", "DomainResource", false},
		{"Age", "Quantity", true},
		{"code", "string", true},
		{"markdown", "string", true},
		{"canonical", "uri", true},
		{"positiveInt", "integer", true},
		{"instant", "dateTime", false},
		{"Observation.component", "BackboneElement", true},
		{"Quantity", "Age", false},
	}
	for _, tc := range tests {
		if got := IsSubtype(tc.name, tc.ancestor); got != tc.want {
			t.Errorf("IsSubtype(%q, %q) = %v, want %v", tc.name, tc.ancestor, got, tc.want)
		}
	}
	resources := 0
	for name, td := range fhirModel() {
		if td.kind == kindResource && name != "Resource" && name != "DomainResource" {
			resources++
		}
	}
	// 146 R4 resources, plus SubscriptionStatus (R4B, used by the R4 Subscriptions backport) that the source package carries.
	if resources != 147 {
		t.Errorf("model has %d concrete resource types, want 147", resources)
	}
	for _, rt := range []string{"Observation", "Patient", "Device", "DetectedIssue", "Subscription", "Bundle", "Parameters"} {
		if !IsResourceType(rt) {
			t.Errorf("IsResourceType(%q) = false", rt)
		}
	}
	if IsResourceType("HumanName") {
		t.Errorf("IsResourceType(HumanName) = true")
	}
}
