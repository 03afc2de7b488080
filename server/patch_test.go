package server_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/vigil-health/vigil/fhirstore/storetest"
)

// fhirpathPatch builds a FHIRPath Patch Parameters resource from operations, each a list
// of parts (name, value-key, value).
func fhirpathPatch(ops ...[]any) map[string]any {
	var params []any
	for _, parts := range ops {
		params = append(params, map[string]any{"name": "operation", "part": parts})
	}
	return map[string]any{"resourceType": "Parameters", "parameter": params}
}

func part(name, key string, value any) map[string]any {
	return map[string]any{"name": name, key: value}
}

// TestPatch covers JSON Patch and FHIRPath Patch: the patched resource, its new version,
// and the 400, 404, 410, 415 and 422 answers.
func TestPatch(t *testing.T) {
	forBackends(t, func(t *testing.T, b storetest.Backend) {
		ts := newTestServer(t, b)
		const jp = "application/json-patch+json"
		obsID := ts.create(t, heartRate("72.0", ""))
		patID := ts.create(t, patient("Goodall", mrn+"|g1"))
		goneID := ts.create(t, patient("Gone"))
		r := ts.do(t, http.MethodDelete, "Patient/"+goneID, nil)
		if r.Status != http.StatusNoContent && r.Status != http.StatusOK {
			t.Fatalf("delete: %d", r.Status)
		}

		// Each success case applies to the result of the previous one.
		successes := []struct {
			name, path, contentType string
			body                    any
			check                   func(t *testing.T, got map[string]any)
		}{
			{"JSON Patch replace keeps decimal digits", "Observation/" + obsID, jp,
				`[{"op":"test","path":"/status","value":"final"},{"op":"replace","path":"/valueQuantity/value","value":80.50}]`,
				func(t *testing.T, got map[string]any) {
					vq := got["valueQuantity"].(map[string]any)
					if vq["value"] != json.Number("80.50") {
						t.Errorf("valueQuantity.value = %v, want 80.50 exactly", vq["value"])
					}
				}},
			{"JSON Patch add, copy, move, remove", "Patient/" + patID, jp,
				`[{"op":"add","path":"/name/-","value":{"family":"Second"}},
				  {"op":"copy","from":"/name/0/given","path":"/name/1/given"},
				  {"op":"move","from":"/birthDate","path":"/deceasedDateTime"},
				  {"op":"remove","path":"/active"}]`,
				func(t *testing.T, got map[string]any) {
					want := []any{
						map[string]any{"family": "Goodall", "given": []any{"Ada"}},
						map[string]any{"family": "Second", "given": []any{"Ada"}},
					}
					if d := diff(want, got["name"]); d != "" {
						t.Errorf("name (-want +got):\n%s", d)
					}
					if got["birthDate"] != nil || got["deceasedDateTime"] != "1970-01-02" || got["active"] != nil {
						t.Errorf("move/remove not applied: birthDate %v deceasedDateTime %v active %v", got["birthDate"], got["deceasedDateTime"], got["active"])
					}
				}},
			{"FHIRPath Patch add and replace", "Patient/" + patID, "application/fhir+json",
				fhirpathPatch(
					[]any{part("type", "valueCode", "add"), part("path", "valueString", "Patient"), part("name", "valueString", "gender"), part("value", "valueCode", "female")},
					[]any{part("type", "valueCode", "replace"), part("path", "valueString", "Patient.name[0].family"), part("value", "valueString", "Goodall-Patched")},
				),
				func(t *testing.T, got map[string]any) {
					if got["gender"] != "female" {
						t.Errorf("gender = %v, want female", got["gender"])
					}
					if fam := got["name"].([]any)[0].(map[string]any)["family"]; fam != "Goodall-Patched" {
						t.Errorf("name[0].family = %v", fam)
					}
				}},
			{"FHIRPath Patch delete", "Patient/" + patID, "application/fhir+json",
				fhirpathPatch([]any{part("type", "valueCode", "delete"), part("path", "valueString", "Patient.name[1]")}),
				func(t *testing.T, got map[string]any) {
					if n := len(got["name"].([]any)); n != 1 {
						t.Errorf("%d names after delete, want 1", n)
					}
				}},
		}
		versions := map[string]int{"Observation/" + obsID: 1, "Patient/" + patID: 1}
		for _, tc := range successes {
			t.Run(tc.name, func(t *testing.T) {
				r := ts.do(t, http.MethodPatch, tc.path, tc.body, "Content-Type", tc.contentType)
				r.wantStatus(t, http.StatusOK)
				versions[tc.path]++
				if r.Header.Get("ETag") != etag(versions[tc.path]) {
					t.Errorf("ETag = %q, want %s", r.Header.Get("ETag"), etag(versions[tc.path]))
				}
				got := r.json(t)
				tc.check(t, got)
				if d := diff(got, ts.do(t, http.MethodGet, tc.path, nil).json(t)); d != "" {
					t.Errorf("read after patch differs from the patch response:\n%s", d)
				}
			})
		}

		failures := []struct {
			name, path, contentType string
			body                    any
			status                  int
			expr                    string
		}{
			{"failed test op", "Patient/" + patID, jp, `[{"op":"test","path":"/gender","value":"male"}]`, http.StatusUnprocessableEntity, ""},
			{"path does not exist", "Patient/" + patID, jp, `[{"op":"replace","path":"/nope/0","value":1}]`, http.StatusUnprocessableEntity, ""},
			{"result is invalid", "Patient/" + patID, jp, `[{"op":"replace","path":"/gender","value":"sometimes"}]`, http.StatusUnprocessableEntity, "Patient.gender"},
			{"changes the id", "Patient/" + patID, jp, `[{"op":"replace","path":"/id","value":"other"}]`, http.StatusUnprocessableEntity, ""},
			{"changes the resourceType", "Patient/" + patID, jp, `[{"op":"replace","path":"/resourceType","value":"Group"}]`, http.StatusUnprocessableEntity, ""},
			{"malformed JSON Patch", "Patient/" + patID, jp, `{"op":"add"}`, http.StatusBadRequest, ""},
			{"unknown op", "Patient/" + patID, jp, `[{"op":"frobnicate","path":"/active"}]`, http.StatusBadRequest, ""},
			{"op without value", "Patient/" + patID, jp, `[{"op":"add","path":"/active"}]`, http.StatusBadRequest, ""},
			{"FHIRPath Patch that is not Parameters", "Patient/" + patID, "application/fhir+json", patient("X"), http.StatusBadRequest, ""},
			{"FHIRPath Patch on a missing element", "Patient/" + patID, "application/fhir+json",
				fhirpathPatch([]any{part("type", "valueCode", "replace"), part("path", "valueString", "Patient.maritalStatus"), part("value", "valueString", "x")}),
				http.StatusUnprocessableEntity, ""},
			{"unsupported patch format", "Patient/" + patID, "application/merge-patch+json", `{"active":true}`, http.StatusUnsupportedMediaType, ""},
			{"unknown id", "Patient/no-such-patient", jp, `[{"op":"remove","path":"/active"}]`, http.StatusNotFound, ""},
			{"deleted resource", "Patient/" + goneID, jp, `[{"op":"remove","path":"/active"}]`, http.StatusGone, ""},
		}
		for _, tc := range failures {
			t.Run(tc.name, func(t *testing.T) {
				ts.do(t, http.MethodPatch, tc.path, tc.body, "Content-Type", tc.contentType).wantOutcome(t, tc.status, tc.expr)
			})
		}
		// No failed patch wrote a version.
		if r := ts.do(t, http.MethodGet, "Patient/"+patID, nil); r.Header.Get("ETag") != etag(versions["Patient/"+patID]) {
			t.Errorf("after failed patches ETag = %q, want %s", r.Header.Get("ETag"), etag(versions["Patient/"+patID]))
		}
	})
}
