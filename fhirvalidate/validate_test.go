package fhirvalidate

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// obs is a valid heart-rate Observation; cases derive invalid ones from it.
const obs = `{"resourceType":"Observation","id":"hr1","status":"final",` +
	`"code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}]},` +
	`"subject":{"reference":"Patient/p1"},"effectiveDateTime":"2024-05-01T10:00:00Z",` +
	`"valueQuantity":{"value":72,"unit":"beats/minute","system":"http://unitsofmeasure.org","code":"/min"}}`

// withObs returns obs with the given JSON members added at the end.
func withObs(members string) string {
	return strings.TrimSuffix(obs, "}") + "," + members + "}"
}

// narrative returns obs with a narrative whose div is the given XHTML.
func narrative(div string) string {
	return withObs(`"text":{"status":"generated","div":` + quote(div) + `}`)
}

func quote(s string) string { return fmt.Sprintf("%q", s) }

// bundle returns a Bundle of the given type with the given entries (JSON objects).
func bundle(typ string, entries ...string) string {
	return `{"resourceType":"Bundle","type":"` + typ + `","entry":[` + strings.Join(entries, ",") + `]}`
}

const patient = `{"resourceType":"Patient","id":"p1","active":true}`

// want is the part of an Issue a test pins down; diagnostics are checked for a substring.
type want struct {
	Severity   string
	Code       string
	Expression string
}

func issueKeys(issues []Issue) []want {
	var out []want
	for _, is := range issues {
		w := want{Severity: is.Severity, Code: is.Code}
		if len(is.Expression) > 0 {
			w.Expression = is.Expression[0]
		}
		out = append(out, w)
	}
	return out
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		wantType string
		want     []want
		diag     string // a substring of the first issue's diagnostics
	}{
		{name: "valid vital sign", body: obs, wantType: "Observation"},
		{name: "valid with offset timestamp", body: strings.Replace(obs, "10:00:00Z", "10:00:00+02:00", 1), wantType: "Observation"},
		{name: "valid primitive extension", body: `{"resourceType":"Patient","birthDate":"1970-01-01","_birthDate":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/patient-birthTime","valueDateTime":"1970-01-01T08:00:00Z"}]}}`, wantType: "Patient"},

		// Documents that are not a resource at all.
		{name: "empty body", body: "  ", want: []want{{SeverityFatal, CodeStructure, ""}}, diag: "empty"},
		{name: "not JSON", body: "MSH|^~\\&|", want: []want{{SeverityFatal, CodeStructure, ""}}, diag: "not a JSON object"},
		{name: "bad JSON trailing comma", body: `{"resourceType":"Patient","active":true,}`, wantType: "Patient", want: []want{{SeverityFatal, CodeStructure, ""}}, diag: "invalid JSON at byte offset 40"},
		{name: "bad JSON truncated", body: obs[:60], wantType: "Observation", want: []want{{SeverityFatal, CodeStructure, ""}}, diag: "invalid JSON"},
		{name: "bad JSON after object", body: obs + "{}", wantType: "Observation", want: []want{{SeverityFatal, CodeStructure, ""}}, diag: "after the top-level object"},
		{name: "invalid UTF-8", body: `{"resourceType":"Patient","name":[{"family":"M` + "\xff" + `"}]}`, wantType: "Patient", want: []want{{SeverityFatal, CodeStructure, ""}}, diag: "invalid string"},
		{name: "byte order mark", body: "\xEF\xBB\xBF" + obs, want: []want{{SeverityFatal, CodeStructure, ""}}, diag: "byte order mark"},
		{name: "top-level array", body: "[" + obs + "]", want: []want{{SeverityFatal, CodeStructure, ""}}, diag: "JSON array"},
		{name: "missing resourceType", body: `{"status":"final"}`, want: []want{{SeverityFatal, CodeRequired, ""}}, diag: "resourceType"},
		{name: "resourceType not a string", body: `{"resourceType":7}`, want: []want{{SeverityFatal, CodeRequired, ""}}, diag: "resourceType"},
		{name: "unknown resourceType", body: `{"resourceType":"Vital"}`, wantType: "Vital", want: []want{{SeverityFatal, CodeNotSupported, ""}}, diag: `"Vital"`},
		{name: "empty object", body: `{}`, want: []want{{SeverityFatal, CodeRequired, ""}, {SeverityError, CodeStructure, ""}}, diag: "resourceType"},

		// Structure errors reported by google/fhir/go's parser.
		{name: "unknown field", body: withObs(`"foo":1`), wantType: "Observation", want: []want{{SeverityError, CodeStructure, "Observation.foo"}}, diag: `unknown element "foo"`},
		{name: "unknown nested field", body: withObs(`"component":[{"code":{"text":"x"},"valueQuantity":{"value":1,"bar":2}}]`), wantType: "Observation", want: []want{{SeverityError, CodeStructure, "Observation.component[0].valueQuantity.bar"}}},
		{name: "wrong primitive syntax dateTime", body: strings.Replace(obs, "2024-05-01T10:00:00Z", "2024-13-01", 1), wantType: "Observation", want: []want{{SeverityError, CodeStructure, "Observation.effectiveDateTime"}}, diag: "expected datetime"},
		{name: "wrong primitive type decimal", body: strings.Replace(obs, `"value":72`, `"value":"72"`, 1), wantType: "Observation", want: []want{{SeverityError, CodeStructure, "Observation.valueQuantity.value"}}, diag: "expected decimal"},
		{name: "wrong primitive type boolean", body: `{"resourceType":"Patient","active":"yes"}`, wantType: "Patient", want: []want{{SeverityError, CodeStructure, "Patient.active"}}, diag: "expected boolean"},
		{name: "object where array expected", body: `{"resourceType":"Patient","name":{"family":"X"}}`, wantType: "Patient", want: []want{{SeverityError, CodeStructure, "Patient.name"}}, diag: "expected array"},
		{name: "two choice types", body: withObs(`"valueString":"x"`), wantType: "Observation", want: []want{{SeverityError, CodeStructure, "Observation"}}, diag: "multiple values"},
		{name: "wrong code in required binding", body: strings.Replace(obs, `"status":"final"`, `"status":"done"`, 1), wantType: "Observation", want: []want{{SeverityError, CodeCodeInvalid, "Observation.status"}}, diag: "ObservationStatusCode"},

		// Validation errors reported by google/fhir/go.
		{name: "missing required element", body: strings.Replace(obs, `"status":"final",`, "", 1), wantType: "Observation", want: []want{{SeverityError, CodeRequired, "Observation.status"}}, diag: `"status"`},
		{name: "missing required element in backbone", body: withObs(`"component":[{"valueQuantity":{"value":1}}]`), wantType: "Observation", want: []want{{SeverityError, CodeRequired, "Observation.component[0].code"}}},
		{name: "wrong reference target type", body: strings.Replace(obs, "Patient/p1", "Medication/m1", 1), wantType: "Observation", want: []want{{SeverityError, CodeValue, "Observation.subject"}}, diag: "Medication"},
		{name: "wrong reference target in a choice", body: `{"resourceType":"MedicationRequest","status":"active","intent":"order","subject":{"reference":"Patient/p1"},"medicationReference":{"reference":"Patient/p1"}}`, wantType: "MedicationRequest", want: []want{{SeverityError, CodeValue, "MedicationRequest.medicationReference"}}},
		{name: "missing required element in a choice", body: withObs(`"extension":[{"url":"http://example.org/note","valueAnnotation":{"authorString":"x"}}]`), wantType: "Observation", want: []want{{SeverityError, CodeRequired, "Observation.extension[0].valueAnnotation.text"}}},
		{name: "missing required element in a primitive extension", body: withObs(`"_status":{"extension":[{"valueString":"x"}]}`), wantType: "Observation", want: []want{{SeverityError, CodeRequired, "Observation.status.extension[0].url"}}},
		{name: "choice in a bundle entry", body: bundle("batch", `{"resource":{"resourceType":"MedicationRequest","status":"active","intent":"order","subject":{"reference":"Patient/p1"},"medicationReference":{"reference":"Patient/p1"}},"request":{"method":"POST","url":"MedicationRequest"}}`), wantType: "Bundle", want: []want{{SeverityError, CodeValue, "Bundle.entry[0].resource.medicationReference"}}},
		{name: "invalid id", body: `{"resourceType":"Patient","id":"a b"}`, wantType: "Patient", want: []want{{SeverityError, CodeValue, "Patient.id"}}, diag: "Id"},

		// Our walk: empty values, nulls, property names.
		{name: "empty string", body: strings.Replace(obs, `"display":"Heart rate"`, `"display":""`, 1), wantType: "Observation", want: []want{{SeverityError, CodeValue, "Observation.code.coding[0].display"}}, diag: "empty string"},
		{name: "empty string in array", body: `{"resourceType":"Patient","name":[{"given":["A",""]}]}`, wantType: "Patient", want: []want{{SeverityError, CodeValue, "Patient.name[0].given[1]"}}},
		{name: "empty object member", body: withObs(`"method":{}`), wantType: "Observation", want: []want{{SeverityError, CodeStructure, "Observation.method"}}, diag: "empty object"},
		{name: "empty object in array", body: withObs(`"performer":[{}]`), wantType: "Observation", want: []want{{SeverityError, CodeStructure, "Observation.performer[0]"}}},
		{name: "empty array", body: withObs(`"performer":[]`), wantType: "Observation", want: []want{{SeverityError, CodeStructure, "Observation.performer"}}, diag: "empty array"},
		{name: "null property", body: withObs(`"issued":null`), wantType: "Observation", want: []want{{SeverityError, CodeStructure, "Observation.issued"}}, diag: "null"},
		{name: "duplicate property", body: withObs(`"status":"amended"`), wantType: "Observation", want: []want{{SeverityError, CodeStructure, "Observation.status"}}, diag: "duplicate"},
		{name: "wrongly cased property", body: strings.Replace(obs, `"status"`, `"Status"`, 1), wantType: "Observation", want: []want{{SeverityError, CodeStructure, "Observation.Status"}}, diag: "case-sensitive"},
		{name: "nesting too deep", body: `{"resourceType":"Patient","extension":[` + strings.Repeat(`{"url":"u","extension":[`, 40) + `{"url":"u","valueString":"x"}` + strings.Repeat("]}", 40) + `]}`, wantType: "Patient", want: []want{{SeverityFatal, CodeStructure, ""}}, diag: "deeper than 64"},

		// Extensions (ext-1).
		{name: "extension with value and extensions", body: withObs(`"extension":[{"url":"http://example.org/a","valueString":"x","extension":[{"url":"b","valueInteger":1}]}]`), wantType: "Observation", want: []want{{SeverityError, CodeInvariant, "Observation.extension[0]"}}, diag: "ext-1"},
		{name: "extension with neither", body: withObs(`"modifierExtension":[{"url":"http://example.org/a"}]`), wantType: "Observation", want: []want{{SeverityError, CodeInvariant, "Observation.modifierExtension[0]"}}, diag: "ext-1"},
		{name: "complex extension", body: withObs(`"extension":[{"url":"http://example.org/a","extension":[{"url":"b","valueInteger":1},{"url":"c","valueCode":"x"}]}]`), wantType: "Observation"},
		{name: "primitive extension ext-1", body: withObs(`"_status":{"extension":[{"url":"http://example.org/a"}]}`), wantType: "Observation", want: []want{{SeverityError, CodeInvariant, "Observation.status.extension[0]"}}},
		{name: "primitive extension parse error", body: withObs(`"_status":{"extension":[{"url":"http://example.org/a","valueFoo":1}]}`), wantType: "Observation", want: []want{{SeverityError, CodeStructure, "Observation.status.extension[0].valueFoo"}}},

		// Narrative.
		{name: "valid narrative", body: narrative(`<div xmlns="http://www.w3.org/1999/xhtml"><p>Heart rate <b>72</b> /min</p><img src="data:image/png;base64,iVBORw0KGgo=" alt="chart"/><a href="https://example.org/x">more</a></div>`), wantType: "Observation"},
		{name: "script in narrative", body: narrative(`<div xmlns="http://www.w3.org/1999/xhtml"><p>x</p><script>alert(1)</script></div>`), wantType: "Observation", want: []want{{SeverityError, CodeSecurity, "Observation.text.div"}}, diag: "<script>"},
		{name: "event handler attribute", body: narrative(`<div xmlns="http://www.w3.org/1999/xhtml"><p onclick="alert(1)">x</p></div>`), wantType: "Observation", want: []want{{SeverityError, CodeSecurity, "Observation.text.div"}}, diag: "onclick"},
		{name: "event handler on img", body: narrative(`<div xmlns="http://www.w3.org/1999/xhtml"><img src="x.png" OnError="alert(1)"/></div>`), wantType: "Observation", want: []want{{SeverityError, CodeSecurity, "Observation.text.div"}}, diag: "OnError"},
		{name: "javascript URL", body: narrative(`<div xmlns="http://www.w3.org/1999/xhtml"><a href=" java&#x09;script:alert(1)">x</a></div>`), wantType: "Observation", want: []want{{SeverityError, CodeSecurity, "Observation.text.div"}}, diag: "script URL"},
		{name: "vbscript URL", body: narrative(`<div xmlns="http://www.w3.org/1999/xhtml"><a href="VBScript:x">x</a></div>`), wantType: "Observation", want: []want{{SeverityError, CodeSecurity, "Observation.text.div"}}},
		{name: "data text/html URL", body: narrative(`<div xmlns="http://www.w3.org/1999/xhtml"><a href="data:text/html;base64,PHNjcmlwdD4=">x</a></div>`), wantType: "Observation", want: []want{{SeverityError, CodeSecurity, "Observation.text.div"}}},
		{name: "svg image data URL", body: narrative(`<div xmlns="http://www.w3.org/1999/xhtml"><img src="data:image/svg+xml;base64,PHN2Zz4="/></div>`), wantType: "Observation", want: []want{{SeverityError, CodeSecurity, "Observation.text.div"}}},
		{name: "script in style attribute", body: narrative(`<div xmlns="http://www.w3.org/1999/xhtml"><p style="width: expression(alert(1))">x</p></div>`), wantType: "Observation", want: []want{{SeverityError, CodeSecurity, "Observation.text.div"}}, diag: "style"},
		{name: "iframe", body: narrative(`<div xmlns="http://www.w3.org/1999/xhtml"><p>x</p><iframe src="https://evil.example"></iframe></div>`), wantType: "Observation", want: []want{{SeverityError, CodeSecurity, "Observation.text.div"}}, diag: "<iframe>"},
		{name: "object element", body: narrative(`<div xmlns="http://www.w3.org/1999/xhtml"><object data="x.swf">x</object></div>`), wantType: "Observation", want: []want{{SeverityError, CodeSecurity, "Observation.text.div"}}},
		{name: "form", body: narrative(`<div xmlns="http://www.w3.org/1999/xhtml"><form action="https://evil.example"><input name="pw"/></form>x</div>`), wantType: "Observation", want: []want{{SeverityError, CodeSecurity, "Observation.text.div"}, {SeverityError, CodeSecurity, "Observation.text.div"}}},
		{name: "style element", body: narrative(`<div xmlns="http://www.w3.org/1999/xhtml"><style>p{}</style><p>x</p></div>`), wantType: "Observation", want: []want{{SeverityError, CodeSecurity, "Observation.text.div"}}},
		{name: "base and meta", body: narrative(`<div xmlns="http://www.w3.org/1999/xhtml"><base href="https://evil.example/"/><meta http-equiv="refresh"/>x</div>`), wantType: "Observation", want: []want{{SeverityError, CodeSecurity, "Observation.text.div"}, {SeverityError, CodeSecurity, "Observation.text.div"}}},
		{name: "xlink attribute", body: narrative(`<div xmlns="http://www.w3.org/1999/xhtml" xmlns:xlink="http://www.w3.org/1999/xlink"><a xlink:href="https://x.example">x</a></div>`), wantType: "Observation", want: []want{{SeverityError, CodeSecurity, "Observation.text.div"}}},
		{name: "element outside txt-1", body: narrative(`<div xmlns="http://www.w3.org/1999/xhtml"><font color="red">x</font></div>`), wantType: "Observation", want: []want{{SeverityError, CodeInvariant, "Observation.text.div"}}, diag: "<font>"},
		{name: "attribute outside txt-1", body: narrative(`<div xmlns="http://www.w3.org/1999/xhtml"><p data-x="1">x</p></div>`), wantType: "Observation", want: []want{{SeverityError, CodeInvariant, "Observation.text.div"}}, diag: "data-x"},
		{name: "div without XHTML namespace", body: narrative(`<div><p>x</p></div>`), wantType: "Observation", want: []want{{SeverityError, CodeInvariant, "Observation.text.div"}, {SeverityError, CodeInvariant, "Observation.text.div"}}, diag: "XHTML namespace"},
		{name: "narrative not a div", body: narrative(`<p xmlns="http://www.w3.org/1999/xhtml">x</p>`), wantType: "Observation", want: []want{{SeverityError, CodeInvariant, "Observation.text.div"}}, diag: "single XHTML <div>"},
		{name: "narrative plain text", body: narrative(`Heart rate 72`), wantType: "Observation", want: []want{{SeverityError, CodeInvariant, "Observation.text.div"}}},
		{name: "narrative not well-formed", body: narrative(`<div xmlns="http://www.w3.org/1999/xhtml"><p>x</div>`), wantType: "Observation", want: []want{{SeverityError, CodeStructure, "Observation.text.div"}}, diag: "not well-formed"},
		{name: "narrative HTML entity", body: narrative(`<div xmlns="http://www.w3.org/1999/xhtml">a&nbsp;b</div>`), wantType: "Observation", want: []want{{SeverityError, CodeStructure, "Observation.text.div"}}},
		{name: "narrative DOCTYPE", body: narrative(`<!DOCTYPE x [<!ENTITY e "x">]><div xmlns="http://www.w3.org/1999/xhtml">x</div>`), wantType: "Observation", want: []want{{SeverityError, CodeSecurity, "Observation.text.div"}}},
		{name: "empty narrative is a warning", body: narrative(`<div xmlns="http://www.w3.org/1999/xhtml"> <p> </p> </div>`), wantType: "Observation", want: []want{{SeverityWarning, CodeInvariant, "Observation.text.div"}}, diag: "txt-2"},
		{name: "narrative with only an image", body: narrative(`<div xmlns="http://www.w3.org/1999/xhtml"><img src="chart.png"/></div>`), wantType: "Observation"},
		{name: "script in contained narrative", body: `{"resourceType":"Patient","contained":[{"resourceType":"Practitioner","id":"d1","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x<script>1</script></div>"}}],"generalPractitioner":[{"reference":"#d1"}]}`, wantType: "Patient", want: []want{{SeverityError, CodeSecurity, "Patient.contained[0].text.div"}}},

		// Contained resources.
		{name: "contained validated", body: `{"resourceType":"Patient","contained":[{"resourceType":"Observation","code":{"text":"x"}}]}`, wantType: "Patient", want: []want{{SeverityError, CodeRequired, "Patient.contained[0].status"}}},
		{name: "contained wrong reference", body: `{"resourceType":"Patient","contained":[` + patient + `,{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Medication/1"}}]}`, wantType: "Patient", want: []want{{SeverityError, CodeValue, "Patient.contained[1].subject"}}},
		{name: "contained unknown field", body: `{"resourceType":"Patient","contained":[{"resourceType":"Practitioner","foo":1}]}`, wantType: "Patient", want: []want{{SeverityError, CodeStructure, "Patient.contained[0].foo"}}},
		{name: "contained with version", body: `{"resourceType":"Patient","contained":[{"resourceType":"Practitioner","id":"a","meta":{"versionId":"2","lastUpdated":"2024-01-01T00:00:00Z","security":[{"code":"R"}]}}]}`, wantType: "Patient", want: []want{
			{SeverityError, CodeInvariant, "Patient.contained[0].meta.lastUpdated"},
			{SeverityError, CodeInvariant, "Patient.contained[0].meta.security"},
			{SeverityError, CodeInvariant, "Patient.contained[0].meta.versionId"},
		}, diag: "dom-4"},
		{name: "contained with profile", body: `{"resourceType":"Patient","contained":[{"resourceType":"Practitioner","id":"a","meta":{"profile":["http://example.org/p"]}}]}`, wantType: "Patient"},
		{name: "nested contained", body: `{"resourceType":"Patient","contained":[{"resourceType":"Practitioner","id":"a","contained":[{"resourceType":"Organization","id":"b"}]}]}`, wantType: "Patient", want: []want{{SeverityError, CodeInvariant, "Patient.contained[0].contained"}}, diag: "dom-2"},

		// Parameters.parameter.resource, which google/fhir/go cannot parse by itself.
		{name: "parameter resource valid", body: `{"resourceType":"Parameters","parameter":[{"name":"resource","resource":` + obs + `},{"name":"mode","valueCode":"create"}]}`, wantType: "Parameters"},
		{name: "parameter resource validated", body: `{"resourceType":"Parameters","parameter":[{"name":"mode","valueCode":"create"},{"name":"resource","resource":` + strings.Replace(obs, `"status":"final",`, "", 1) + `}]}`, wantType: "Parameters", want: []want{{SeverityError, CodeRequired, "Parameters.parameter[1].resource.status"}}},
		{name: "parameter resource unknown field", body: `{"resourceType":"Parameters","parameter":[{"name":"r","resource":` + withObs(`"foo":1`) + `}]}`, wantType: "Parameters", want: []want{{SeverityError, CodeStructure, "Parameters.parameter[0].resource.foo"}}},
		{name: "part resource validated", body: `{"resourceType":"Parameters","parameter":[{"name":"p","part":[{"name":"r","resource":{"resourceType":"Observation","code":{"text":"x"}}}]}]}`, wantType: "Parameters", want: []want{{SeverityError, CodeRequired, "Parameters.parameter[0].part[0].resource.status"}}},
		{name: "parameter resource unknown type", body: `{"resourceType":"Parameters","parameter":[{"name":"r","resource":{"resourceType":"Vital"}}]}`, wantType: "Parameters", want: []want{{SeverityError, CodeNotSupported, "Parameters.parameter[0].resource"}}},
		{name: "parameter resource with contained", body: `{"resourceType":"Parameters","parameter":[{"name":"r","resource":{"resourceType":"Patient","contained":[{"resourceType":"Observation","code":{"text":"x"}}]}}]}`, wantType: "Parameters", want: []want{{SeverityError, CodeRequired, "Parameters.parameter[0].resource.contained[0].status"}}},
		{name: "parameters in a bundle", body: bundle("collection", `{"resource":{"resourceType":"Parameters","parameter":[{"name":"r","resource":{"resourceType":"Encounter","status":"finished"}}]}}`), wantType: "Bundle", want: []want{{SeverityError, CodeRequired, "Bundle.entry[0].resource.parameter[0].resource.class"}}},
		{name: "parameter outer error kept", body: `{"resourceType":"Parameters","parameter":[{"resource":` + patient + `}]}`, wantType: "Parameters", want: []want{{SeverityError, CodeRequired, "Parameters.parameter[0].name"}}},

		// Bundles.
		{name: "valid transaction", body: bundle("transaction",
			`{"fullUrl":"urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a","resource":`+patient+`,"request":{"method":"POST","url":"Patient"}}`,
			`{"resource":`+obs+`,"request":{"method":"PUT","url":"Observation/hr1"}}`,
			`{"request":{"method":"DELETE","url":"Observation/old"}}`,
			`{"request":{"method":"GET","url":"Patient?name=peter"}}`,
			`{"resource":{"resourceType":"Binary","contentType":"application/json-patch+json","data":"W10="},"request":{"method":"PATCH","url":"Patient/p1"}}`),
			wantType: "Bundle"},
		{name: "transaction entry without request", body: bundle("transaction", `{"resource":`+patient+`}`), wantType: "Bundle", want: []want{{SeverityError, CodeRequired, "Bundle.entry[0].request"}}, diag: "bdl-3"},
		{name: "batch entry without request", body: bundle("batch", `{"resource":`+patient+`,"request":{"method":"POST","url":"Patient"}}`, `{"resource":`+patient+`}`), wantType: "Bundle", want: []want{{SeverityError, CodeRequired, "Bundle.entry[1].request"}}},
		{name: "request without method", body: bundle("transaction", `{"resource":`+patient+`,"request":{"url":"Patient"}}`), wantType: "Bundle", want: []want{{SeverityError, CodeRequired, "Bundle.entry[0].request.method"}}},
		{name: "request without url", body: bundle("transaction", `{"resource":`+patient+`,"request":{"method":"POST"}}`), wantType: "Bundle", want: []want{{SeverityError, CodeRequired, "Bundle.entry[0].request.url"}}},
		{name: "request with unknown method", body: bundle("transaction", `{"resource":`+patient+`,"request":{"method":"FETCH","url":"Patient"}}`), wantType: "Bundle", want: []want{{SeverityError, CodeCodeInvalid, "Bundle.entry[0].request.method"}}},
		{name: "POST without resource", body: bundle("transaction", `{"request":{"method":"POST","url":"Patient"}}`), wantType: "Bundle", want: []want{{SeverityError, CodeRequired, "Bundle.entry[0].resource"}}, diag: "POST"},
		{name: "PUT without resource", body: bundle("batch", `{"request":{"method":"PUT","url":"Patient/p1"}}`), wantType: "Bundle", want: []want{{SeverityError, CodeRequired, "Bundle.entry[0].resource"}}},
		{name: "POST url of another type", body: bundle("transaction", `{"resource":`+patient+`,"request":{"method":"POST","url":"Observation"}}`), wantType: "Bundle", want: []want{{SeverityError, CodeInvalid, "Bundle.entry[0].request.url"}}, diag: "Observation"},
		{name: "PUT url of another type", body: bundle("batch", `{"resource":`+patient+`,"request":{"method":"PUT","url":"/Practitioner/p1"}}`), wantType: "Bundle", want: []want{{SeverityError, CodeInvalid, "Bundle.entry[0].request.url"}}},
		{name: "conditional PUT and operation POST", body: bundle("transaction",
			`{"resource":`+patient+`,"request":{"method":"PUT","url":"Patient?identifier=http://x.org|1"}}`,
			`{"resource":{"resourceType":"Parameters","parameter":[{"name":"code","valueCode":"x"}]},"request":{"method":"POST","url":"ValueSet/$lookup"}}`),
			wantType: "Bundle"},
		{name: "DELETE with resource", body: bundle("transaction", `{"resource":`+patient+`,"request":{"method":"DELETE","url":"Patient/p1"}}`), wantType: "Bundle", want: []want{{SeverityError, CodeInvalid, "Bundle.entry[0].resource"}}, diag: "must not carry a resource"},
		{name: "GET with resource", body: bundle("batch", `{"resource":`+patient+`,"request":{"method":"GET","url":"Patient/p1"}}`), wantType: "Bundle", want: []want{{SeverityError, CodeInvalid, "Bundle.entry[0].resource"}}},
		{name: "PATCH with a non-patch resource", body: bundle("transaction", `{"resource":`+patient+`,"request":{"method":"PATCH","url":"Patient/p1"}}`), wantType: "Bundle", want: []want{{SeverityError, CodeInvalid, "Bundle.entry[0].resource"}}, diag: "Binary or Parameters"},
		{name: "duplicate fullUrl", body: bundle("transaction",
			`{"fullUrl":"urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a","resource":`+patient+`,"request":{"method":"POST","url":"Patient"}}`,
			`{"fullUrl":"urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a","resource":`+patient+`,"request":{"method":"POST","url":"Patient"}}`),
			wantType: "Bundle", want: []want{{SeverityError, CodeInvariant, "Bundle.entry[1].fullUrl"}}, diag: "bdl-7"},
		{name: "same fullUrl different versions", body: bundle("collection",
			`{"fullUrl":"http://x.org/fhir/Patient/p1","resource":{"resourceType":"Patient","meta":{"versionId":"1"}}}`,
			`{"fullUrl":"http://x.org/fhir/Patient/p1","resource":{"resourceType":"Patient","meta":{"versionId":"2"}}}`),
			wantType: "Bundle"},
		{name: "version specific fullUrl", body: bundle("collection", `{"fullUrl":"http://x.org/fhir/Patient/p1/_history/2","resource":`+patient+`}`), wantType: "Bundle", want: []want{{SeverityError, CodeInvariant, "Bundle.entry[0].fullUrl"}}, diag: "bdl-8"},
		{name: "transaction-response entry without response", body: bundle("transaction-response", `{"response":{"status":"201 Created"}}`, `{"resource":`+patient+`}`), wantType: "Bundle", want: []want{{SeverityError, CodeRequired, "Bundle.entry[1].response"}}, diag: "bdl-4"},
		{name: "batch-response entry without response", body: bundle("batch-response", `{"resource":`+patient+`}`), wantType: "Bundle", want: []want{{SeverityError, CodeRequired, "Bundle.entry[0].response"}}},
		{name: "response in a transaction", body: bundle("transaction", `{"resource":`+patient+`,"request":{"method":"POST","url":"Patient"},"response":{"status":"201"}}`), wantType: "Bundle", want: []want{{SeverityError, CodeInvariant, "Bundle.entry[0].response"}}, diag: "bdl-4"},
		{name: "searchset entry with request", body: bundle("searchset", `{"resource":`+patient+`,"search":{"mode":"match"},"request":{"method":"GET","url":"Patient/p1"}}`), wantType: "Bundle", want: []want{{SeverityError, CodeInvariant, "Bundle.entry[0].request"}}, diag: "bdl-3"},
		{name: "search outside searchset", body: bundle("collection", `{"resource":`+patient+`,"search":{"mode":"match"}}`), wantType: "Bundle", want: []want{{SeverityError, CodeInvariant, "Bundle.entry[0].search"}}, diag: "bdl-2"},
		{name: "total outside search", body: `{"resourceType":"Bundle","type":"collection","total":1,"entry":[{"resource":` + patient + `}]}`, wantType: "Bundle", want: []want{{SeverityError, CodeInvariant, "Bundle.total"}}, diag: "bdl-1"},
		{name: "entry without content", body: bundle("collection", `{"fullUrl":"urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"}`), wantType: "Bundle", want: []want{{SeverityError, CodeInvariant, "Bundle.entry[0]"}}, diag: "bdl-5"},
		{name: "document rules", body: bundle("document", `{"fullUrl":"urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a","resource":`+patient+`}`), wantType: "Bundle", want: []want{
			{SeverityError, CodeInvariant, "Bundle.entry[0].resource"},
			{SeverityError, CodeInvariant, "Bundle.identifier"},
			{SeverityError, CodeRequired, "Bundle.timestamp"},
		}},
		{name: "message without MessageHeader", body: bundle("message", `{"fullUrl":"urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a","resource":`+patient+`}`), wantType: "Bundle", want: []want{{SeverityError, CodeInvariant, "Bundle.entry[0].resource"}}, diag: "bdl-12"},
		{name: "entry resource validated", body: bundle("transaction", `{"resource":`+strings.Replace(obs, `"status":"final",`, "", 1)+`,"request":{"method":"POST","url":"Observation"}}`), wantType: "Bundle", want: []want{{SeverityError, CodeRequired, "Bundle.entry[0].resource.status"}}},
		{name: "entry resource wrong reference", body: bundle("batch", `{"resource":`+patient+`,"request":{"method":"POST","url":"Patient"}}`, `{"resource":`+strings.Replace(obs, "Patient/p1", "Medication/m1", 1)+`,"request":{"method":"POST","url":"Observation"}}`), wantType: "Bundle", want: []want{{SeverityError, CodeValue, "Bundle.entry[1].resource.subject"}}},
		{name: "entry resource unknown field", body: bundle("transaction", `{"resource":`+withObs(`"foo":1`)+`,"request":{"method":"POST","url":"Observation"}}`), wantType: "Bundle", want: []want{{SeverityError, CodeStructure, "Bundle.entry[0].resource.foo"}}},
		{name: "entry resource bad code", body: bundle("transaction", `{"resource":`+strings.Replace(obs, `"status":"final"`, `"status":"done"`, 1)+`,"request":{"method":"POST","url":"Observation"}}`), wantType: "Bundle", want: []want{{SeverityError, CodeCodeInvalid, "Bundle.entry[0].resource.status"}}},
		{name: "entry resource unknown type", body: bundle("collection", `{"resource":{"resourceType":"Vital"}}`), wantType: "Bundle", want: []want{{SeverityError, CodeNotSupported, "Bundle.entry[0].resource"}}},
		{name: "entry resource empty string", body: bundle("transaction", `{"resource":{"resourceType":"Patient","gender":""},"request":{"method":"POST","url":"Patient"}}`), wantType: "Bundle", want: []want{{SeverityError, CodeValue, "Bundle.entry[0].resource.gender"}}},
		{name: "entry resource script", body: bundle("transaction", `{"resource":`+narrative(`<div xmlns="http://www.w3.org/1999/xhtml"><script>1</script>x</div>`)+`,"request":{"method":"POST","url":"Observation"}}`), wantType: "Bundle", want: []want{{SeverityError, CodeSecurity, "Bundle.entry[0].resource.text.div"}}},
		{name: "entries of a List are no Bundle entries", body: `{"resourceType":"List","status":"current","mode":"working","entry":[{"item":{"reference":"Patient/p1"}},{"item":{"reference":"Patient/p2"},"deleted":true}]}`, wantType: "List"},
		{name: "Bundle with no entries", body: `{"resourceType":"Bundle","type":"searchset","total":0}`, wantType: "Bundle"},
		{name: "Bundle without type", body: `{"resourceType":"Bundle","entry":[{"resource":` + patient + `,"request":{"method":"POST","url":"Patient"}}]}`, wantType: "Bundle", want: []want{{SeverityError, CodeRequired, "Bundle.type"}}},
		{name: "nested bundle rules", body: bundle("batch-response", `{"resource":`+bundle("searchset", `{"resource":`+patient+`,"request":{"method":"GET","url":"Patient/p1"}}`)+`,"response":{"status":"200"}}`), wantType: "Bundle", want: []want{{SeverityError, CodeInvariant, "Bundle.entry[0].resource.entry[0].request"}}},
	}
	v := New(Options{})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rt, issues, err := v.Validate([]byte(tc.body))
			if err != nil {
				t.Fatalf("Validate: unexpected error %v", err)
			}
			if rt != tc.wantType {
				t.Errorf("resourceType = %q, want %q", rt, tc.wantType)
			}
			if diff := cmp.Diff(tc.want, issueKeys(issues), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("issues mismatch (-want +got):\n%s\nissues: %+v", diff, issues)
			}
			wantErr := false
			for _, w := range tc.want {
				wantErr = wantErr || w.Severity == SeverityError || w.Severity == SeverityFatal
			}
			if HasErrors(issues) != wantErr {
				t.Errorf("HasErrors = %v, want %v", HasErrors(issues), wantErr)
			}
			if tc.diag != "" && (len(issues) == 0 || !strings.Contains(issues[0].Diagnostics, tc.diag)) {
				t.Errorf("first issue's diagnostics do not mention %q: %+v", tc.diag, issues)
			}
			for _, is := range issues {
				if is.Diagnostics == "" {
					t.Errorf("issue without diagnostics: %+v", is)
				}
			}
		})
	}
}

// TestNoValuesInDiagnostics makes sure diagnostics name elements, never their values.
func TestNoValuesInDiagnostics(t *testing.T) {
	const secret = "Zebedee"
	bodies := []string{
		`{"resourceType":"Patient","name":[{"family":"` + secret + `"}],"gender":"` + secret + `"}`,
		`{"resourceType":"Patient","birthDate":"` + secret + `"}`,
		`{"resourceType":"Patient","active":"` + secret + `"}`,
		`{"resourceType":"Patient","multipleBirthInteger":"` + secret + `"}`,
		`{"resourceType":"Patient","managingOrganization":{"reference":"Patient/` + secret + `"}}`,
		`{"resourceType":"Patient","name":[{"family":"` + secret + `",}]}`,
		narrative(`<div xmlns="http://www.w3.org/1999/xhtml"><p>` + secret + `</div>`),
		narrative(`<div xmlns="http://www.w3.org/1999/xhtml"><a href="javascript:` + secret + `">x</a></div>`),
	}
	v := New(Options{})
	for i, body := range bodies {
		_, issues, err := v.Validate([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		if !HasErrors(issues) {
			t.Errorf("body %d: expected errors", i)
		}
		for _, is := range issues {
			if strings.Contains(is.Diagnostics, secret) || strings.Contains(strings.Join(is.Expression, " "), secret) {
				t.Errorf("body %d: issue leaks a value: %+v", i, is)
			}
		}
	}
}

func TestOptions(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		body    string
		wantLen int
		wantErr bool
		last    want
		diag    string // a substring of the last issue's diagnostics
	}{
		{
			name: "custom nesting depth", opts: Options{MaxNestingDepth: 3},
			body:    withObs(`"component":[{"code":{"coding":[{"code":"x"}]}}]`),
			wantLen: 1, wantErr: true, last: want{SeverityFatal, CodeStructure, ""},
		},
		{
			name: "issue cap", opts: Options{MaxIssues: 3},
			body:    `{"resourceType":"Patient","name":[{"given":["","","","","",""]}]}`,
			wantLen: 4, wantErr: true, last: want{SeverityInformation, CodeTooCostly, ""},
		},
		{
			name: "cap bounds the walk", opts: Options{MaxIssues: 2},
			body:    `{"resourceType":"Patient","name":[{"given":[` + strings.Repeat(`"",`, 10000) + `""]}]}`,
			wantLen: 3, wantErr: true, last: want{SeverityInformation, CodeTooCostly, ""}, diag: "9999 further",
		},
		{
			name: "default cap not reached", opts: Options{},
			body:    `{"resourceType":"Patient","name":[{"given":["","","","","",""]}]}`,
			wantLen: 6, wantErr: true, last: want{SeverityError, CodeValue, "Patient.name[0].given[5]"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, issues, err := New(tc.opts).Validate([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if len(issues) != tc.wantLen {
				t.Fatalf("got %d issues, want %d: %+v", len(issues), tc.wantLen, issues)
			}
			if got := issueKeys(issues[len(issues)-1:])[0]; got != tc.last {
				t.Errorf("last issue = %+v, want %+v", got, tc.last)
			}
			if HasErrors(issues) != tc.wantErr {
				t.Errorf("HasErrors = %v, want %v", HasErrors(issues), tc.wantErr)
			}
			if !strings.Contains(issues[len(issues)-1].Diagnostics, tc.diag) {
				t.Errorf("last issue %+v does not mention %q", issues[len(issues)-1], tc.diag)
			}
		})
	}
}

// TestConcurrentUse shares one Validator between goroutines (run with -race).
func TestConcurrentUse(t *testing.T) {
	v := New(Options{})
	bodies := []string{obs, withObs(`"foo":1`), bundle("transaction", `{"resource":`+patient+`}`)}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				body := bodies[(g+i)%len(bodies)]
				_, issues, err := v.Validate([]byte(body))
				if err != nil {
					t.Error(err)
					return
				}
				if HasErrors(issues) != (body != obs) {
					t.Errorf("unexpected result for body %d: %+v", (g+i)%len(bodies), issues)
				}
			}
		})
	}
	wg.Wait()
}

func TestHasErrors(t *testing.T) {
	tests := []struct {
		name   string
		issues []Issue
		want   bool
	}{
		{"none", nil, false},
		{"warnings only", []Issue{{Severity: SeverityWarning}, {Severity: SeverityInformation}}, false},
		{"error", []Issue{{Severity: SeverityWarning}, {Severity: SeverityError}}, true},
		{"fatal", []Issue{{Severity: SeverityFatal}}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := HasErrors(tc.issues); got != tc.want {
				t.Errorf("HasErrors = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPaths(t *testing.T) {
	tests := []struct {
		name, in, prefix, want string
	}{
		{"plain", "Observation.subject", "", "Observation.subject"},
		{"choice", "MedicationRequest.medication.reference", "", "MedicationRequest.medicationReference"},
		{"choice in array element", "Observation.component[1].value.quantity.code", "", "Observation.component[1].valueQuantity.code"},
		{"reserved word field", "Encounter.class.code", "", "Encounter.class.code"},
		{"nested resource", "Bundle.entry[0].resource.observation.value.quantity", "", "Bundle.entry[0].resource.valueQuantity"},
		{"outcome resource", "Bundle.entry[0].response.outcome.operationOutcome.issue[0]", "", "Bundle.entry[0].response.outcome.issue[0]"},
		{"parse error path", "Bundle.entry[1].resource.Observation.status", "", "Bundle.entry[1].resource.status"},
		{"prefix", "Observation.status", "Patient.contained[0]", "Patient.contained[0].status"},
		{"prefix only", "Observation", "Patient.contained[0]", "Patient.contained[0]"},
		{"field named like a resource", "Observation.specimen", "", "Observation.specimen"},
		{"unknown field left alone", "Observation.bogus.value.quantity", "", "Observation.bogus.value.quantity"},
		{"not a resource", "Nope.x", "", "Nope.x"},
		{"primitive extension", "Patient._birthDate.extension[0]", "", "Patient.birthDate.extension[0]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := normalizePath(jsonChoicePath(tc.in), tc.prefix); got != tc.want {
				t.Errorf("path(%q, %q) = %q, want %q", tc.in, tc.prefix, got, tc.want)
			}
		})
	}
}
