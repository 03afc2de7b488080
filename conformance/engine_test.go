package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vigil-health/vigil/fhirvalidate"
)

// patientJSON is the resource most tests create.
var patientJSON = map[string]any{"resourceType": "Patient", "id": "p", "name": []any{map[string]any{"family": "Chalmers"}}}

// TestOperationRequests checks the HTTP request each operation type sends.
func TestOperationRequests(t *testing.T) {
	contained := []any{
		patientJSON,
		map[string]any{"resourceType": "Patient", "id": "fixed-1", "active": true},
		map[string]any{"resourceType": "Bundle", "id": "tx", "type": "transaction"},
		map[string]any{"resourceType": "Bundle", "id": "batch", "type": "batch"},
		map[string]any{"resourceType": "Parameters", "id": "patch", "parameter": []any{}},
	}
	fixtures := []any{
		map[string]any{"id": "p", "autocreate": false, "autodelete": false, "resource": map[string]any{"reference": "#p"}},
		map[string]any{"id": "fixed", "autocreate": false, "autodelete": false, "resource": map[string]any{"reference": "#fixed-1"}},
		map[string]any{"id": "tx", "autocreate": false, "autodelete": false, "resource": map[string]any{"reference": "#tx"}},
		map[string]any{"id": "batch", "autocreate": false, "autodelete": false, "resource": map[string]any{"reference": "#batch"}},
		map[string]any{"id": "patch", "autocreate": false, "autodelete": false, "resource": map[string]any{"reference": "#patch"}},
	}
	tests := []struct {
		name       string
		op         map[string]any
		wantMethod string
		wantURI    string
		// wantHeader lists headers the request must carry.
		wantHeader map[string]string
		wantBody   string
	}{
		{name: "read", op: opJ("read", "resource", "Patient", "targetId", "created"), wantMethod: "GET", wantURI: "/fhir/Patient/patient-1",
			wantHeader: map[string]string{"Accept": "application/fhir+json"}},
		{name: "read by params", op: opJ("read", "resource", "Patient", "params", "/patient-1"), wantMethod: "GET", wantURI: "/fhir/Patient/patient-1"},
		{name: "vread", op: opJ("vread", "resource", "Patient", "targetId", "created"), wantMethod: "GET", wantURI: "/fhir/Patient/patient-1/_history/1"},
		{name: "create", op: opJ("create", "resource", "Patient", "sourceId", "p"), wantMethod: "POST", wantURI: "/fhir/Patient",
			wantHeader: map[string]string{"Content-Type": "application/fhir+json"}, wantBody: `"family":"Chalmers"`},
		{name: "create type from fixture", op: opJ("create", "sourceId", "p"), wantMethod: "POST", wantURI: "/fhir/Patient"},
		{name: "update target", op: opJ("update", "resource", "Patient", "targetId", "created", "sourceId", "p"), wantMethod: "PUT", wantURI: "/fhir/Patient/patient-1"},
		{name: "updateCreate id from body", op: opJ("updateCreate", "resource", "Patient", "sourceId", "fixed"), wantMethod: "PUT", wantURI: "/fhir/Patient/fixed-1"},
		{name: "conditional update", op: opJ("update", "resource", "Patient", "sourceId", "p", "params", "?identifier=s|v"), wantMethod: "PUT", wantURI: "/fhir/Patient?identifier=s%7Cv"},
		{name: "delete", op: opJ("delete", "resource", "Patient", "targetId", "created"), wantMethod: "DELETE", wantURI: "/fhir/Patient/patient-1"},
		{name: "deleteCondSingle", op: opJ("deleteCondSingle", "resource", "Patient", "params", "?identifier=urn:x|1"), wantMethod: "DELETE", wantURI: "/fhir/Patient?identifier=urn%3Ax%7C1"},
		{name: "deleteCondMultiple", op: opJ("deleteCondMultiple", "resource", "Patient", "params", "?_id=a,b"), wantMethod: "DELETE", wantURI: "/fhir/Patient?_id=a%2Cb"},
		{name: "search", op: opJ("search", "resource", "Patient", "params", "?name=van der&birthdate=ge2020-01-01T00:00:00+02:00"), wantMethod: "GET",
			wantURI: "/fhir/Patient?name=van+der&birthdate=ge2020-01-01T00%3A00%3A00%2B02%3A00"},
		{name: "search already encoded", op: opJ("search", "resource", "Patient", "params", "?name=a%20b"), wantMethod: "GET", wantURI: "/fhir/Patient?name=a+b"},
		{name: "search not encoded", op: opJ("search", "resource", "Patient", "params", "?identifier=s|v", "encodeRequestUrl", false), wantMethod: "GET", wantURI: "/fhir/Patient?identifier=s|v"},
		{name: "system search", op: opJ("search", "params", "?_type=Patient"), wantMethod: "GET", wantURI: "/fhir?_type=Patient"},
		{name: "history type", op: opJ("history", "resource", "Patient"), wantMethod: "GET", wantURI: "/fhir/Patient/_history"},
		{name: "history instance", op: opJ("history", "resource", "Patient", "targetId", "created", "params", "?_count=2"), wantMethod: "GET", wantURI: "/fhir/Patient/patient-1/_history?_count=2"},
		{name: "history system", op: opJ("history"), wantMethod: "GET", wantURI: "/fhir/_history"},
		{name: "transaction", op: opJ("transaction", "sourceId", "tx"), wantMethod: "POST", wantURI: "/fhir", wantBody: `"type":"transaction"`},
		{name: "batch", op: opJ("batch", "sourceId", "batch"), wantMethod: "POST", wantURI: "/fhir", wantBody: `"type":"batch"`},
		{name: "patch", op: opJ("patch", "resource", "Patient", "targetId", "created", "sourceId", "patch", "contentType", "application/fhir+json"), wantMethod: "PATCH",
			wantURI: "/fhir/Patient/patient-1", wantHeader: map[string]string{"Content-Type": "application/fhir+json"}, wantBody: `"resourceType":"Parameters"`},
		{name: "capabilities", op: opJ("capabilities"), wantMethod: "GET", wantURI: "/fhir/metadata"},
		{name: "validate type", op: opJ("validate", "resource", "Patient", "sourceId", "p"), wantMethod: "POST", wantURI: "/fhir/Patient/$validate"},
		{name: "validate instance GET", op: opJ("validate", "resource", "Patient", "targetId", "created", "method", "get", "params", "?mode=delete"), wantMethod: "GET", wantURI: "/fhir/Patient/patient-1/$validate?mode=delete"},
		{name: "everything", op: opJ("everything", "resource", "Patient", "targetId", "created"), wantMethod: "GET", wantURI: "/fhir/Patient/patient-1/$everything"},
		{name: "url relative", op: opJ("read", "url", "Patient/patient-1?_summary=true"), wantMethod: "GET", wantURI: "/fhir/Patient/patient-1?_summary=true"},
		{name: "url without body is a GET", op: opJ("everything", "url", "Patient/patient-1/$everything"), wantMethod: "GET", wantURI: "/fhir/Patient/patient-1/$everything"},
		{name: "operation with body is a POST", op: opJ("meta-add", "resource", "Patient", "targetId", "created", "sourceId", "p"), wantMethod: "POST", wantURI: "/fhir/Patient/patient-1/$meta-add"},
		{name: "method only", op: opJ("", "method", "options", "url", "metadata"), wantMethod: "OPTIONS", wantURI: "/fhir/metadata"},
		{name: "accept and contentType codes", op: opJ("create", "resource", "Patient", "sourceId", "p", "accept", "xml", "contentType", "json"), wantMethod: "POST", wantURI: "/fhir/Patient",
			wantHeader: map[string]string{"Accept": "application/fhir+xml", "Content-Type": "application/fhir+json"}},
		{name: "request headers", op: opJ("read", "resource", "Patient", "targetId", "created", "requestHeader", []any{
			map[string]any{"field": "If-None-Match", "value": `W/"1"`}, map[string]any{"field": "X-Runner", "value": "script"}}),
			wantMethod: "GET", wantURI: "/fhir/Patient/patient-1", wantHeader: map[string]string{"If-None-Match": `W/"1"`, "X-Runner": "script", "Authorization": "Bearer t"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake, base := newFake(t)
			script := ts(t, map[string]any{
				"contained": contained,
				"fixture":   fixtures,
				"setup":     actions(opJ("create", "resource", "Patient", "sourceId", "p", "responseId", "created")),
				"test":      []any{testJ("op", tc.op)},
			})
			r := &Runner{Base: base, Headers: http.Header{"Authorization": {"Bearer t"}, "X-Runner": {"runner"}}}
			res, err := r.RunScript(context.Background(), script, "")
			if err != nil {
				t.Fatal(err)
			}
			if !res.OK() {
				t.Fatalf("script failed:\n%s", summary(res))
			}
			got := fake.last()
			if got.Method != tc.wantMethod || got.URI != tc.wantURI {
				t.Errorf("request = %s %s, want %s %s", got.Method, got.URI, tc.wantMethod, tc.wantURI)
			}
			for k, v := range tc.wantHeader {
				if got.Header.Get(k) != v {
					t.Errorf("header %s = %q, want %q", k, got.Header.Get(k), v)
				}
			}
			if !strings.Contains(got.Body, tc.wantBody) {
				t.Errorf("body %q does not contain %q", got.Body, tc.wantBody)
			}
			if (got.Method == "GET" || got.Method == "DELETE") && got.Body != "" {
				t.Errorf("%s sent a body: %q", got.Method, got.Body)
			}
		})
	}
}

// cannedPatient is what GET /fhir/Patient/x answers in TestAsserts.
const cannedPatient = `{"resourceType":"Patient","id":"x","meta":{"versionId":"3"},"active":true,
 "name":[{"family":"Chalmers","given":["Peter","James"]}],"birthDate":"1974-12-25",
 "identifier":[{"system":"urn:s","value":"12345"}]}`

// TestAsserts checks every assert kind and operator, passing and failing, against a canned
// response; failures must name what was expected and what was found.
func TestAsserts(t *testing.T) {
	profiles := []any{
		map[string]any{"id": "patient", "reference": "http://hl7.org/fhir/StructureDefinition/Patient"},
		map[string]any{"id": "observation", "reference": "http://hl7.org/fhir/StructureDefinition/Observation"},
	}
	contained := []any{
		map[string]any{"resourceType": "Patient", "id": "same", "name": []any{map[string]any{"family": "Chalmers", "given": []any{"James"}}}},
		map[string]any{"resourceType": "Patient", "id": "other", "name": []any{map[string]any{"family": "Windsor"}}},
		map[string]any{"resourceType": "Patient", "id": "invalid", "gender": "robot"},
		map[string]any{"resourceType": "Bundle", "id": "paged", "type": "searchset", "link": []any{
			map[string]any{"relation": "self", "url": "http://s/fhir/Patient"}, map[string]any{"relation": "next", "url": "http://s/fhir/Patient?page=2"}}},
		map[string]any{"resourceType": "Bundle", "id": "single", "type": "searchset", "link": []any{
			map[string]any{"relation": "self", "url": "http://s/fhir/Patient"}}},
	}
	var fixtures []any
	for _, id := range []string{"same", "other", "invalid", "paged", "single"} {
		fixtures = append(fixtures, map[string]any{"id": id, "autocreate": false, "autodelete": false, "resource": map[string]any{"reference": "#" + id}})
	}
	tests := []struct {
		name    string
		assert  map[string]any
		want    string // result
		wantMsg []string
	}{
		{name: "response okay", assert: asJ("response", "okay"), want: ResultPass},
		{name: "response created fails", assert: asJ("response", "created"), want: ResultFail, wantMsg: []string{"expected response created (201)", "got 200"}},
		{name: "response notEquals", assert: asJ("response", "notFound", "operator", "notEquals"), want: ResultPass},
		{name: "responseCode equals", assert: asJ("responseCode", "200"), want: ResultPass},
		{name: "responseCode equals fails", assert: asJ("responseCode", "201"), want: ResultFail, wantMsg: []string{`expected "201"`, `got "200"`}},
		{name: "responseCode list", assert: asJ("responseCode", "200,201"), want: ResultPass},
		{name: "responseCode in", assert: asJ("responseCode", "201, 200", "operator", "in"), want: ResultPass},
		{name: "responseCode notIn", assert: asJ("responseCode", "404,410", "operator", "notIn"), want: ResultPass},
		{name: "responseCode notIn fails", assert: asJ("responseCode", "200,410", "operator", "notIn"), want: ResultFail, wantMsg: []string{"expected no value in [200, 410]", `got "200"`}},
		{name: "responseCode greaterThan", assert: asJ("responseCode", "199", "operator", "greaterThan"), want: ResultPass},
		{name: "responseCode lessThan fails", assert: asJ("responseCode", "200", "operator", "lessThan"), want: ResultFail, wantMsg: []string{`less than "200"`}},
		{name: "contentType json", assert: asJ("contentType", "json"), want: ResultPass},
		{name: "contentType mime", assert: asJ("contentType", "application/fhir+json"), want: ResultPass},
		{name: "contentType xml fails", assert: asJ("contentType", "xml"), want: ResultFail, wantMsg: []string{"expected Content-Type application/fhir+xml", `got "application/fhir+json; charset=utf-8"`}},
		{name: "contentType notEquals", assert: asJ("contentType", "xml", "operator", "notEquals"), want: ResultPass},
		{name: "headerField equals", assert: asJ("headerField", "ETag", "value", `W/"3"`), want: ResultPass},
		{name: "headerField equals fails", assert: asJ("headerField", "ETag", "value", `W/"4"`), want: ResultFail, wantMsg: []string{`header ETag: expected "W/\"4\""`, `got "W/\"3\""`}},
		{name: "headerField case-insensitive name", assert: asJ("headerField", "etag", "operator", "contains", "value", "3"), want: ResultPass},
		{name: "headerField present", assert: asJ("headerField", "Last-Modified"), want: ResultPass},
		{name: "headerField empty", assert: asJ("headerField", "X-Absent", "operator", "empty"), want: ResultPass},
		{name: "headerField missing fails", assert: asJ("headerField", "X-Absent", "value", "v"), want: ResultFail, wantMsg: []string{"got nothing"}},
		{name: "resource", assert: asJ("resource", "Patient"), want: ResultPass},
		{name: "resource fails", assert: asJ("resource", "Observation"), want: ResultFail, wantMsg: []string{`expected "Observation"`, `got "Patient"`}},
		{name: "resource notEquals", assert: asJ("resource", "Observation", "operator", "notEquals"), want: ResultPass},
		{name: "expression true", assert: asJ("expression", "Patient.active and Patient.name.given.count() = 2"), want: ResultPass},
		{name: "expression false", assert: asJ("expression", "Patient.birthDate > @2000-01-01"), want: ResultFail, wantMsg: []string{"expected true", "got \"false\""}},
		{name: "expression empty result fails", assert: asJ("expression", "Patient.deceased"), want: ResultFail, wantMsg: []string{"got nothing"}},
		{name: "expression equals", assert: asJ("expression", "Patient.name.family", "value", "Chalmers"), want: ResultPass},
		{name: "expression equals fails", assert: asJ("expression", "Patient.name.family", "value", "Windsor"), want: ResultFail, wantMsg: []string{`expected "Windsor"`, `got "Chalmers"`}},
		{name: "expression equals many fails", assert: asJ("expression", "Patient.name.given", "value", "Peter"), want: ResultFail, wantMsg: []string{`["Peter", "James"]`}},
		{name: "expression notEquals", assert: asJ("expression", "Patient.name.family", "operator", "notEquals", "value", "Windsor"), want: ResultPass},
		{name: "expression in", assert: asJ("expression", "Patient.name.given", "operator", "in", "value", "James,Peter,John"), want: ResultPass},
		{name: "expression in fails", assert: asJ("expression", "Patient.name.given", "operator", "in", "value", "James,John"), want: ResultFail, wantMsg: []string{"expected a value in [James, John]"}},
		{name: "expression notIn", assert: asJ("expression", "Patient.name.given", "operator", "notIn", "value", "John,Paul"), want: ResultPass},
		{name: "expression greaterThan date", assert: asJ("expression", "Patient.birthDate", "operator", "greaterThan", "value", "1970-01-01"), want: ResultPass},
		{name: "expression greaterThan number", assert: asJ("expression", "Patient.meta.versionId", "operator", "greaterThan", "value", "2"), want: ResultPass},
		{name: "expression lessThan numeric not lexical", assert: asJ("expression", "Patient.meta.versionId", "operator", "lessThan", "value", "10"), want: ResultPass},
		{name: "expression lessThan fails", assert: asJ("expression", "Patient.meta.versionId", "operator", "lessThan", "value", "3"), want: ResultFail, wantMsg: []string{`less than "3"`, `got "3"`}},
		{name: "expression empty", assert: asJ("expression", "Patient.deceased", "operator", "empty"), want: ResultPass},
		{name: "expression empty fails", assert: asJ("expression", "Patient.name", "operator", "empty"), want: ResultFail, wantMsg: []string{"expected nothing"}},
		{name: "expression notEmpty", assert: asJ("expression", "Patient.identifier", "operator", "notEmpty"), want: ResultPass},
		{name: "expression notEmpty fails", assert: asJ("expression", "Patient.photo", "operator", "notEmpty"), want: ResultFail, wantMsg: []string{"expected a value, got nothing"}},
		{name: "expression contains", assert: asJ("expression", "Patient.name.given", "operator", "contains", "value", "Jam"), want: ResultPass},
		{name: "expression notContains fails", assert: asJ("expression", "Patient.name.given", "operator", "notContains", "value", "Pet"), want: ResultFail, wantMsg: []string{`no value containing "Pet"`}},
		{name: "expression eval", assert: asJ("expression", "Patient.active", "operator", "eval"), want: ResultPass},
		{name: "expression syntax error", assert: asJ("expression", "Patient.name.where("), want: ResultError, wantMsg: []string{"expression"}},
		{name: "path jsonpath", assert: asJ("path", "$.name[0].given[1]", "value", "James"), want: ResultPass},
		{name: "path dotted", assert: asJ("path", "Patient.identifier.value", "value", "12345"), want: ResultPass},
		{name: "path wildcard", assert: asJ("path", "$.name[*].given", "operator", "contains", "value", "Peter"), want: ResultPass},
		{name: "path fails", assert: asJ("path", "$.birthDate", "value", "1974"), want: ResultFail, wantMsg: []string{"path $.birthDate", `expected "1974"`, `got "1974-12-25"`}},
		{name: "compareToSource expression", assert: asJ("expression", "Patient.name.family", "compareToSourceId", "same", "compareToSourceExpression", "Patient.name.family"), want: ResultPass},
		{name: "compareToSource expression fails", assert: asJ("expression", "Patient.name.family", "compareToSourceId", "other", "compareToSourceExpression", "Patient.name.family"), want: ResultFail, wantMsg: []string{`expected "Windsor" (from other)`, `got "Chalmers"`}},
		{name: "compareToSource path", assert: asJ("path", "$.name[0].family", "compareToSourceId", "same", "compareToSourcePath", "$.name[0].family"), want: ResultPass},
		{name: "compareToSource notEquals", assert: asJ("expression", "Patient.name.family", "operator", "notEquals", "compareToSourceId", "other", "compareToSourceExpression", "Patient.name.family"), want: ResultPass},
		{name: "compareToSource contains", assert: asJ("expression", "Patient.name.given", "operator", "contains", "compareToSourceId", "same", "compareToSourceExpression", "Patient.name.given.first()"), want: ResultPass},
		{name: "minimumId", assert: asJ("minimumId", "same"), want: ResultPass},
		{name: "minimumId fails", assert: asJ("minimumId", "other"), want: ResultFail, wantMsg: []string{"minimumId other", "lacks name[0]"}},
		{name: "navigationLinks", assert: asJ("navigationLinks", true, "sourceId", "paged"), want: ResultPass},
		{name: "navigationLinks fails", assert: asJ("navigationLinks", true, "sourceId", "single"), want: ResultFail, wantMsg: []string{"expected first/previous/next/last links, got none"}},
		{name: "navigationLinks false", assert: asJ("navigationLinks", false, "sourceId", "single"), want: ResultPass},
		{name: "navigationLinks not a Bundle", assert: asJ("navigationLinks", true), want: ResultFail, wantMsg: []string{"not a Bundle"}},
		{name: "validateProfileId", assert: asJ("validateProfileId", "patient"), want: ResultPass},
		{name: "validateProfileId invalid", assert: asJ("validateProfileId", "patient", "sourceId", "invalid"), want: ResultFail, wantMsg: []string{"Patient.gender"}},
		{name: "validateProfileId wrong type", assert: asJ("validateProfileId", "observation"), want: ResultFail, wantMsg: []string{"expected a Observation, got Patient"}},
		{name: "validateProfileId unknown profile", assert: asJ("validateProfileId", "nope"), want: ResultError, wantMsg: []string{`no profile with id "nope"`}},
		{name: "requestMethod", assert: asJ("requestMethod", "get"), want: ResultPass},
		{name: "requestMethod fails", assert: asJ("requestMethod", "post"), want: ResultFail, wantMsg: []string{`expected "post"`, `got "get"`}},
		{name: "requestURL relative", assert: asJ("requestURL", "Patient/x"), want: ResultPass},
		{name: "requestURL contains", assert: asJ("requestURL", "/fhir/Patient/", "operator", "contains"), want: ResultPass},
		{name: "requestURL fails", assert: asJ("requestURL", "Patient/y"), want: ResultFail, wantMsg: []string{`expected "Patient/y"`, `got "Patient/x"`}},
		{name: "direction request header", assert: asJ("direction", "request", "headerField", "Accept", "value", "application/fhir+json"), want: ResultPass},
		{name: "direction request body empty", assert: asJ("direction", "request", "expression", "true"), want: ResultFail, wantMsg: []string{"body is empty"}},
		{name: "sourceId static fixture", assert: asJ("sourceId", "other", "expression", "Patient.name.family", "value", "Windsor"), want: ResultPass},
		{name: "warningOnly", assert: asJ("response", "created", "warningOnly", true), want: ResultWarning, wantMsg: []string{"expected response created"}},
		{name: "value with variable", assert: asJ("expression", "Patient.id", "value", "${id}"), want: ResultPass},
		{name: "FHIRPath variable", assert: asJ("expression", "Patient.id = %id"), want: ResultPass},
		{name: "substituted expression", assert: asJ("expression", "Patient.id = '${id}'"), want: ResultPass},
		{name: "substituted path", assert: asJ("path", "$.${field}", "value", "1974-12-25"), want: ResultPass},
		{name: "nothing to check", assert: asJ("label", "empty"), want: ResultError, wantMsg: []string{"checks nothing"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake, base := newFake(t)
			fake.can("GET", "/fhir/Patient/x", 200, cannedPatient, map[string]string{
				"ETag": `W/"3"`, "Last-Modified": "Wed, 25 Nov 2026 10:00:00 GMT", "Content-Type": "application/fhir+json; charset=utf-8"})
			script := ts(t, map[string]any{
				"contained": contained,
				"fixture":   fixtures,
				"profile":   profiles,
				"variable": []any{map[string]any{"name": "id", "expression": "Patient.id", "sourceId": "read"},
					map[string]any{"name": "field", "defaultValue": "birthDate"}},
				"test": []any{testJ("assert",
					opJ("read", "resource", "Patient", "params", "/x", "responseId", "read"),
					tc.assert)},
			})
			res := runJ(t, base, script)
			a := res.Actions[len(res.Actions)-1]
			if a.Kind != "assert" {
				t.Fatalf("last action is %s, want the assert:\n%s", a.Kind, summary(res))
			}
			if a.Result != tc.want {
				t.Errorf("result = %s (%s), want %s", a.Result, a.Message, tc.want)
			}
			for _, m := range tc.wantMsg {
				if !strings.Contains(a.Message, m) {
					t.Errorf("message %q does not contain %q", a.Message, m)
				}
			}
		})
	}
}

// TestVariables checks ${name} substitution in every place a script can use it, and the
// kinds of variable source.
func TestVariables(t *testing.T) {
	dir := t.TempDir()
	writeJSON(t, filepath.Join(dir, "fixtures", "update.json"), map[string]any{
		"resourceType": "Patient", "id": "${patientId}", "name": []any{map[string]any{"family": "${family}"}}})
	script := ts(t, map[string]any{
		"contained": []any{patientJSON},
		"fixture": []any{
			map[string]any{"id": "p", "autocreate": false, "autodelete": false, "resource": map[string]any{"reference": "#p"}},
			map[string]any{"id": "update", "autocreate": false, "autodelete": false, "resource": map[string]any{"reference": "fixtures/update.json"}},
		},
		"variable": []any{
			map[string]any{"name": "patientId", "expression": "Patient.id", "sourceId": "created"},
			map[string]any{"name": "location", "headerField": "Location", "sourceId": "created"},
			map[string]any{"name": "pathId", "path": "$.id", "sourceId": "created"},
			map[string]any{"name": "family", "defaultValue": `O"Brien \ Jr`},
			map[string]any{"name": "fallback", "expression": "Patient.deceased", "sourceId": "created", "defaultValue": "none"},
			map[string]any{"name": "lastEtag", "headerField": "ETag"},
		},
		"setup": actions(opJ("create", "resource", "Patient", "sourceId", "p", "responseId", "created")),
		"test": []any{testJ("use",
			opJ("read", "resource", "Patient", "params", "/${patientId}?x=${fallback}"),
			asJ("requestURL", "Patient/${pathId}?x=none"),
			opJ("read", "url", "${location}", "requestHeader", []any{map[string]any{"field": "If-None-Match", "value": "${lastEtag}"}}),
			asJ("requestURL", "/_history/1", "operator", "contains"),
			asJ("direction", "request", "headerField", "If-None-Match", "value", `W/"1"`),
			opJ("update", "resource", "Patient", "sourceId", "update", "responseId", "updated"),
			asJ("response", "okay"),
			asJ("expression", "Patient.name.family", "value", `O"Brien \ Jr`),
			asJ("expression", "Patient.id = %patientId"),
		)},
	})
	fake, base := newFake(t)
	r := &Runner{Base: base}
	res, err := r.RunScript(context.Background(), script, dir)
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() {
		t.Fatalf("script failed:\n%s", summary(res))
	}
	reqs := fake.all()
	if got := reqs[1].URI; got != "/fhir/Patient/patient-1?x=none" {
		t.Errorf("params substitution: got %s", got)
	}
	if got := reqs[3].URI; got != "/fhir/Patient/patient-1" {
		t.Errorf("update URL from the substituted fixture id: got %s", got)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(reqs[3].Body), &body); err != nil {
		t.Fatalf("substituted fixture body is not JSON: %v\n%s", err, reqs[3].Body)
	}
	want := map[string]any{"resourceType": "Patient", "id": "patient-1", "name": []any{map[string]any{"family": `O"Brien \ Jr`}}}
	if d := cmp.Diff(want, body); d != "" {
		t.Errorf("fixture body (-want +got):\n%s", d)
	}
}

// TestVariableErrors checks that unresolvable variables are reported, naming the variable
// and its hint.
func TestVariableErrors(t *testing.T) {
	tests := []struct {
		name    string
		vars    []any
		params  string
		wantMsg []string
	}{
		{name: "unknown", params: "/${nope}", wantMsg: []string{"unknown variable ${nope}"}},
		{name: "no value", vars: []any{map[string]any{"name": "v", "expression": "Patient.deceased", "sourceId": "created", "hint": "create first"}},
			params: "/${v}", wantMsg: []string{"variable v has no value", "hint: create first"}},
		{name: "missing source", vars: []any{map[string]any{"name": "v", "expression": "Patient.id", "sourceId": "later"}},
			params: "/${v}", wantMsg: []string{"variable v has no value", `no fixture "later"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, base := newFake(t)
			parts := map[string]any{
				"contained": []any{patientJSON},
				"fixture":   []any{map[string]any{"id": "p", "autocreate": false, "autodelete": false, "resource": map[string]any{"reference": "#p"}}},
				"setup":     actions(opJ("create", "resource", "Patient", "sourceId", "p", "responseId", "created")),
				"test":      []any{testJ("t", opJ("read", "resource", "Patient", "params", tc.params))},
			}
			if tc.vars != nil {
				parts["variable"] = tc.vars
			}
			res := runJ(t, base, ts(t, parts))
			a := res.Actions[len(res.Actions)-1]
			if a.Result != ResultError {
				t.Fatalf("result = %s, want error:\n%s", a.Result, summary(res))
			}
			for _, m := range tc.wantMsg {
				if !strings.Contains(a.Message, m) {
					t.Errorf("message %q does not contain %q", a.Message, m)
				}
			}
		})
	}
}

// TestFlow checks how results propagate: a failing assert stops its test, warningOnly does
// not, a failing setup skips the tests, teardown always runs.
func TestFlow(t *testing.T) {
	fixture := []any{map[string]any{"id": "p", "autocreate": false, "autodelete": false, "resource": map[string]any{"reference": "#p"}}}
	read := opJ("read", "resource", "Patient", "targetId", "created")
	pass := asJ("response", "okay")
	fail := asJ("response", "created")
	warn := asJ("response", "created", "warningOnly", true)
	create := opJ("create", "resource", "Patient", "sourceId", "p", "responseId", "created")
	teardown := actions(opJ("delete", "resource", "Patient", "targetId", "created"))
	type step struct{ Section, Kind, Result string }
	tests := []struct {
		name   string
		setup  []map[string]any
		tests  []any
		want   []step
		wantOK bool
		// noDelete: the teardown DELETE cannot be sent (its target was never created).
		noDelete bool
	}{
		{
			name:  "failing assert stops its test only",
			setup: []map[string]any{create},
			tests: []any{testJ("a", read, fail, pass, read), testJ("b", read, pass)},
			want: []step{{"setup", "operation", "pass"}, {"test", "operation", "pass"}, {"test", "assert", "fail"}, {"test", "assert", "skip"},
				{"test", "operation", "skip"}, {"test", "operation", "pass"}, {"test", "assert", "pass"}, {"teardown", "operation", "pass"}},
		},
		{
			name:  "warningOnly carries on",
			setup: []map[string]any{create},
			tests: []any{testJ("a", read, warn, pass)},
			want: []step{{"setup", "operation", "pass"}, {"test", "operation", "pass"}, {"test", "assert", "warning"}, {"test", "assert", "pass"},
				{"teardown", "operation", "pass"}},
			wantOK: true,
		},
		{
			name:  "failing setup skips the tests, teardown runs",
			setup: []map[string]any{create, asJ("response", "gone"), read},
			tests: []any{testJ("a", read, pass)},
			want: []step{{"setup", "operation", "pass"}, {"setup", "assert", "fail"}, {"setup", "operation", "skip"},
				{"test", "operation", "skip"}, {"test", "assert", "skip"}, {"teardown", "operation", "pass"}},
		},
		{
			name:  "operation error stops the test",
			setup: []map[string]any{create},
			tests: []any{testJ("a", opJ("read", "resource", "Patient", "targetId", "missing"), pass)},
			want: []step{{"setup", "operation", "pass"}, {"test", "operation", "error"}, {"test", "assert", "skip"},
				{"teardown", "operation", "pass"}},
		},
		{
			name:  "cleanup of what a failed setup never created is skipped",
			setup: []map[string]any{opJ("create", "resource", "Observation", "sourceId", "p", "responseId", "created"), asJ("response", "created")},
			tests: []any{testJ("a", read)},
			want: []step{{"setup", "operation", "pass"}, {"setup", "assert", "fail"}, {"test", "operation", "skip"},
				{"teardown", "operation", "skip"}},
			noDelete: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake, base := newFake(t)
			res := runJ(t, base, ts(t, map[string]any{
				"contained": []any{patientJSON}, "fixture": fixture,
				"setup": actions(tc.setup...), "test": tc.tests, "teardown": teardown,
			}))
			var got []step
			for _, a := range res.Actions {
				got = append(got, step{a.Section, a.Kind, a.Result})
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("actions (-want +got):\n%s\n%s", d, summary(res))
			}
			if res.OK() != tc.wantOK {
				t.Errorf("OK() = %v, want %v", res.OK(), tc.wantOK)
			}
			if last := fake.last(); (last.Method == "DELETE") == tc.noDelete {
				t.Errorf("last request %s %s; teardown DELETE expected: %v", last.Method, last.URI, !tc.noDelete)
			}
		})
	}
}

// TestAutocreate checks that autocreate fixtures are created before setup, usable as
// targets, and deleted after teardown.
func TestAutocreate(t *testing.T) {
	fake, base := newFake(t)
	res := runJ(t, base, ts(t, map[string]any{
		"contained": []any{patientJSON},
		"fixture":   []any{map[string]any{"id": "p", "autocreate": true, "autodelete": true, "resource": map[string]any{"reference": "#p"}}},
		"test": []any{testJ("read",
			opJ("read", "resource", "Patient", "targetId", "p"),
			asJ("response", "okay"),
			asJ("expression", "Patient.name.family", "compareToSourceId", "p", "compareToSourceExpression", "Patient.name.family"))},
	}))
	if !res.OK() {
		t.Fatalf("script failed:\n%s", summary(res))
	}
	var got []string
	for _, r := range fake.all() {
		got = append(got, r.Method+" "+r.URI)
	}
	want := []string{"POST /fhir/Patient", "GET /fhir/Patient/patient-1", "DELETE /fhir/Patient/patient-1"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("requests (-want +got):\n%s", d)
	}
}

// TestSpecStyleScript runs a script written the way the FHIR specification's own example
// is: a fixture that references a resource on the server (Patient/example), a variable
// with an XPath-style path, update by params, and XPath asserts compared with the source.
func TestSpecStyleScript(t *testing.T) {
	fake, base := newFake(t)
	req, _ := http.NewRequest(http.MethodPut, base+"/Patient/example", strings.NewReader(
		`{"resourceType":"Patient","id":"example","name":[{"family":"Chalmers","given":["Peter","James"]}]}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	script := `{
  "resourceType": "TestScript", "id": "spec-style", "url": "urn:spec-style", "name": "SpecStyle", "status": "draft",
  "fixture": [{"id": "fixture-patient-create", "autocreate": false, "autodelete": false, "resource": {"reference": "Patient/example"}}],
  "profile": [{"id": "patient-profile", "reference": "http://hl7.org/fhir/StructureDefinition/Patient"}],
  "variable": [{"name": "createResourceId", "path": "Patient/id", "sourceId": "fixture-patient-create"}],
  "setup": {"action": [
    {"operation": {"type": {"code": "delete"}, "resource": "Patient", "accept": "json", "encodeRequestUrl": true, "params": "/${createResourceId}"}},
    {"assert": {"direction": "response", "operator": "in", "responseCode": "200,204", "warningOnly": false}},
    {"operation": {"type": {"code": "update"}, "resource": "Patient", "accept": "json", "contentType": "json", "encodeRequestUrl": true,
      "params": "/${createResourceId}", "sourceId": "fixture-patient-create"}},
    {"assert": {"direction": "response", "responseCode": "200", "warningOnly": false}},
    {"operation": {"type": {"code": "read"}, "resource": "Patient", "encodeRequestUrl": true, "targetId": "fixture-patient-create"}},
    {"assert": {"compareToSourceId": "fixture-patient-create", "compareToSourceExpression": "Patient.name.first().family", "operator": "equals", "warningOnly": false}}
  ]},
  "test": [{"id": "01-ReadPatient", "name": "Read Patient", "action": [
    {"operation": {"type": {"code": "read"}, "resource": "Patient", "encodeRequestUrl": false, "responseId": "fixture-patient-read", "targetId": "fixture-patient-create"}},
    {"assert": {"label": "01-ReadPatientOK", "direction": "response", "response": "okay", "warningOnly": false}},
    {"assert": {"resource": "Patient", "warningOnly": false}},
    {"assert": {"validateProfileId": "patient-profile", "warningOnly": false}},
    {"assert": {"operator": "equals", "path": "fhir:Patient/fhir:name/fhir:family/@value", "sourceId": "fixture-patient-read", "value": "Chalmers", "warningOnly": false}},
    {"assert": {"compareToSourceId": "fixture-patient-create", "compareToSourcePath": "fhir:Patient/fhir:name/fhir:given/@value",
      "path": "fhir:Patient/fhir:name/fhir:given/@value", "sourceId": "fixture-patient-read", "warningOnly": false}},
    {"assert": {"minimumId": "fixture-patient-create", "warningOnly": true}}
  ]}],
  "teardown": {"action": [{"operation": {"type": {"code": "delete"}, "resource": "Patient", "encodeRequestUrl": true, "targetId": "fixture-patient-create"}}]}
}`
	res := runJ(t, base, []byte(script))
	if !res.OK() || res.Warnings > 0 {
		t.Fatalf("script failed:\n%s", summary(res))
	}
	var got []string
	for _, r := range fake.all()[1:] {
		got = append(got, r.Method+" "+r.URI)
	}
	want := []string{"GET /fhir/Patient/example", "DELETE /fhir/Patient/example", "PUT /fhir/Patient/example",
		"GET /fhir/Patient/example", "GET /fhir/Patient/example", "DELETE /fhir/Patient/example"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("requests (-want +got):\n%s", d)
	}
}

// TestReport checks the TestReport resource built from a run.
func TestReport(t *testing.T) {
	_, base := newFake(t)
	res := runJ(t, base, ts(t, map[string]any{
		"contained": []any{patientJSON},
		"fixture":   []any{map[string]any{"id": "p", "autocreate": false, "autodelete": false, "resource": map[string]any{"reference": "#p"}}},
		"setup":     actions(opJ("create", "resource", "Patient", "sourceId", "p", "responseId", "created")),
		"test": []any{
			testJ("good", opJ("read", "resource", "Patient", "targetId", "created"), asJ("response", "okay")),
			testJ("bad", opJ("read", "resource", "Patient", "targetId", "created"), asJ("response", "gone", "label", "is gone")),
		},
		"teardown": actions(opJ("delete", "resource", "Patient", "targetId", "created")),
	}))
	var rep map[string]any
	if err := json.Unmarshal(res.Report, &rep); err != nil {
		t.Fatal(err)
	}
	if _, issues, err := fhirvalidate.New(fhirvalidate.Options{}).Validate(res.Report); err != nil || fhirvalidate.HasErrors(issues) {
		t.Errorf("the TestReport is not valid R4: %v %+v\n%s", err, issues, res.Report)
	}
	type result struct{ Result, Message string }
	pick := func(a any, kind string) result {
		m := a.(map[string]any)[kind].(map[string]any)
		msg, _ := m["message"].(string)
		return result{m["result"].(string), msg}
	}
	if rep["resourceType"] != "TestReport" || rep["status"] != "completed" || rep["result"] != "fail" {
		t.Errorf("resourceType/status/result = %v/%v/%v", rep["resourceType"], rep["status"], rep["result"])
	}
	if rep["score"] != 50.0 {
		t.Errorf("score = %v, want 50 (one of two asserts passed)", rep["score"])
	}
	if d := cmp.Diff(map[string]any{"reference": "TestScript/unit", "display": "Unit"}, rep["testScript"]); d != "" {
		t.Errorf("testScript (-want +got):\n%s", d)
	}
	parts := rep["participant"].([]any)
	if len(parts) != 2 || parts[1].(map[string]any)["uri"] != base || parts[1].(map[string]any)["type"] != "server" {
		t.Errorf("participant = %v", parts)
	}
	tests := rep["test"].([]any)
	bad := tests[1].(map[string]any)
	if bad["name"] != "bad" {
		t.Fatalf("test[1].name = %v", bad["name"])
	}
	got := pick(bad["action"].([]any)[1], "assert")
	if got.Result != "fail" || !strings.Contains(got.Message, "is gone: expected response gone (410), got 200") {
		t.Errorf("failed assert = %+v", got)
	}
	td := rep["teardown"].(map[string]any)["action"].([]any)
	if pick(td[0], "operation").Result != "pass" {
		t.Errorf("teardown = %v", td)
	}
	if s := rep["setup"].(map[string]any)["action"].([]any); len(s) != 1 {
		t.Errorf("setup actions = %d, want 1", len(s))
	}
}

// TestSummary checks that a failure shows the request line, the response status and a
// truncated body.
func TestSummary(t *testing.T) {
	fake, base := newFake(t)
	long := `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"processing","diagnostics":"` + strings.Repeat("x", 2000) + `"}]}`
	fake.can("GET", "/fhir/Patient/broken", 500, long, nil)
	res := runJ(t, base, ts(t, map[string]any{
		"name": "SummaryScript",
		"test": []any{testJ("read broken", opJ("read", "resource", "Patient", "params", "/broken"), asJ("response", "okay"), asJ("resource", "Patient"))},
	}))
	res.Script = "dir/summary.json"
	s := summary(res)
	for _, want := range []string{
		"FAIL SummaryScript (dir/summary.json): 1 passed, 1 failed, 0 errors, 0 warnings, 1 skipped",
		`FAIL    test "read broken" assert response okay: expected response okay (200), got 500`,
		"request:  GET " + base + "/Patient/broken",
		"response: 500 Internal Server Error",
		`body:     {"resourceType":"OperationOutcome"`,
		"…",
		`SKIP    test "read broken" assert resource Patient`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
	if len(s) > 2000 {
		t.Errorf("summary is %d bytes: the body is not truncated", len(s))
	}
}

// TestRunnerHeadersStayOnBaseHost checks that Runner.Headers (credentials) are not sent to
// another host, and that redirects are reported rather than followed.
func TestRunnerHeadersStayOnBaseHost(t *testing.T) {
	other, otherBase := newFake(t)
	fake, base := newFake(t)
	fake.can("GET", "/fhir/moved", http.StatusFound, "", map[string]string{"Location": otherBase + "/metadata"})
	r := &Runner{Base: base, Headers: http.Header{"Authorization": {"Bearer secret"}}}
	res, err := r.RunScript(context.Background(), ts(t, map[string]any{
		"test": []any{testJ("t",
			opJ("capabilities"), asJ("response", "okay"),
			opJ("capabilities", "url", otherBase+"/metadata"), asJ("response", "okay"),
			opJ("read", "url", "moved"), asJ("responseCode", "302"), asJ("headerField", "Location", "operator", "contains", "/metadata"),
		)},
	}), "")
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() {
		t.Fatalf("script failed:\n%s", summary(res))
	}
	if got := fake.all()[0].Header.Get("Authorization"); got != "Bearer secret" {
		t.Errorf("base host got Authorization %q", got)
	}
	reqs := other.all()
	if len(reqs) != 1 {
		t.Fatalf("other host got %d requests, want 1 (the redirect must not be followed)", len(reqs))
	}
	if got := reqs[0].Header.Get("Authorization"); got != "" {
		t.Errorf("other host got Authorization %q", got)
	}
}

// TestScriptErrors checks that scripts that cannot run are refused with ErrScript.
func TestScriptErrors(t *testing.T) {
	tests := []struct {
		name   string
		script string
		want   string
	}{
		{name: "not JSON", script: `{`, want: "invalid TestScript"},
		{name: "not a TestScript", script: `{"resourceType":"Patient"}`, want: "want TestScript"},
		{name: "unknown operator", script: `{"resourceType":"TestScript","test":[{"action":[{"assert":{"operator":"matches","expression":"true"}}]}]}`, want: `unknown operator "matches"`},
		{name: "unknown response", script: `{"resourceType":"TestScript","test":[{"action":[{"assert":{"response":"fine"}}]}]}`, want: `unknown response code "fine"`},
		{name: "unknown method", script: `{"resourceType":"TestScript","test":[{"action":[{"operation":{"method":"fetch","url":"x"}}]}]}`, want: `unknown method "fetch"`},
		{name: "both operation and assert", script: `{"resourceType":"TestScript","test":[{"action":[{"operation":{"url":"x"},"assert":{"response":"okay"}}]}]}`, want: "exactly one of operation and assert"},
		{name: "assert in teardown", script: `{"resourceType":"TestScript","teardown":{"action":[{"assert":{"response":"okay"}}]}}`, want: "teardown actions cannot be asserts"},
		{name: "missing contained", script: `{"resourceType":"TestScript","fixture":[{"id":"f","resource":{"reference":"#nope"}}]}`, want: "no contained resource #nope"},
		{name: "file fixture without dir", script: `{"resourceType":"TestScript","fixture":[{"id":"f","resource":{"reference":"f.json"}}]}`, want: "needs the script's directory"},
		{name: "duplicate fixture", script: `{"resourceType":"TestScript","fixture":[{"id":"f"},{"id":"f"}]}`, want: `fixture id "f" is used twice`},
		{name: "variable with two sources", script: `{"resourceType":"TestScript","variable":[{"name":"v","expression":"x","path":"y"}]}`, want: "more than one of expression, headerField and path"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &Runner{Base: "http://127.0.0.1:1/fhir"}
			_, err := r.RunScript(context.Background(), []byte(tc.script), "")
			if err == nil || !errors.Is(err, ErrScript) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want ErrScript containing %q", err, tc.want)
			}
		})
	}
}

// TestUnreachableServer checks that a server that cannot be reached errors the operations
// instead of failing the run.
func TestUnreachableServer(t *testing.T) {
	// Port 1 (tcpmux) is not served on test machines: the connection is refused.
	r := &Runner{Base: "http://127.0.0.1:1/fhir"}
	res, err := r.RunScript(context.Background(), ts(t, map[string]any{
		"test": []any{testJ("t", opJ("capabilities"), asJ("response", "okay"))},
	}), "")
	if err != nil {
		t.Fatal(err)
	}
	if res.OK() || res.Errors != 1 || res.Skipped != 1 {
		t.Errorf("errors=%d skipped=%d, want 1 and 1:\n%s", res.Errors, res.Skipped, summary(res))
	}
}

// TestFindScripts checks that directories are walked for TestScripts and fixtures skipped.
func TestFindScripts(t *testing.T) {
	dir := t.TempDir()
	writeJSON(t, filepath.Join(dir, "a", "one.json"), map[string]any{"resourceType": "TestScript"})
	writeJSON(t, filepath.Join(dir, "a", "fixtures", "patient.json"), map[string]any{"resourceType": "Patient"})
	writeJSON(t, filepath.Join(dir, "b", "two.json"), map[string]any{"resourceType": "TestScript"})
	os.WriteFile(filepath.Join(dir, "b", "broken.json"), []byte("{"), 0o644)
	os.WriteFile(filepath.Join(dir, "b", "notes.txt"), []byte("x"), 0o644)
	got, err := FindScripts(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		got[i], _ = filepath.Rel(dir, got[i])
		got[i] = filepath.ToSlash(got[i])
	}
	want := []string{"a/one.json", "b/broken.json", "b/two.json"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("FindScripts (-want +got):\n%s", d)
	}
	if _, err := FindScripts(filepath.Join(dir, "missing")); err == nil {
		t.Error("FindScripts of a missing path succeeded")
	}
}

func writeJSON(t testing.TB, path string, v any) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(v)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
