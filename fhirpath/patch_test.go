package fhirpath

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func mustJSON(t *testing.T, s string) any {
	t.Helper()
	v, err := ParseJSON([]byte(s))
	if err != nil {
		t.Fatalf("bad test JSON %s: %v", s, err)
	}
	return v
}

// op builds one operation parameter from its parts (JSON fragments).
func op(parts ...string) string {
	out := `{"name":"operation","part":[`
	for i, p := range parts {
		if i > 0 {
			out += ","
		}
		out += p
	}
	return out + "]}"
}

func params(ops ...string) string {
	out := `{"resourceType":"Parameters","parameter":[`
	for i, o := range ops {
		if i > 0 {
			out += ","
		}
		out += o
	}
	return out + "]}"
}

const patchPatient = `{
  "resourceType": "Patient",
  "id": "p",
  "identifier": [{"system": "a", "value": "1"}, {"system": "b", "value": "2"}, {"system": "c", "value": "3"}],
  "name": [{"family": "Doe", "given": ["Jane", "Q"]}],
  "birthDate": "1980-01-01",
  "_birthDate": {"extension": [{"url": "http://example.org/t", "valueString": "x"}]},
  "deceasedBoolean": false,
  "contact": [{"name": {"family": "Roe"}}]
}`

func TestApplyPatch(t *testing.T) {
	tests := []struct {
		name  string
		patch string
		check string // a FHIRPath expression that must be true on the result
		want  string // or: the expected JSON of the result (when check is empty)
	}{
		{
			name:  "add primitive",
			patch: params(op(`{"name":"type","valueCode":"add"}`, `{"name":"path","valueString":"Patient"}`, `{"name":"name","valueString":"gender"}`, `{"name":"value","valueCode":"female"}`)),
			check: "Patient.gender = 'female'",
		},
		{
			name:  "add to list appends",
			patch: params(op(`{"name":"type","valueCode":"add"}`, `{"name":"path","valueString":"Patient"}`, `{"name":"name","valueString":"identifier"}`, `{"name":"value","valueIdentifier":{"system":"d","value":"4"}}`)),
			check: "Patient.identifier.system = ('a' | 'b' | 'c' | 'd')",
		},
		{
			name:  "add new list",
			patch: params(op(`{"name":"type","valueCode":"add"}`, `{"name":"path","valueString":"Patient"}`, `{"name":"name","valueString":"telecom"}`, `{"name":"value","valueContactPoint":{"system":"phone","value":"555"}}`)),
			check: "Patient.telecom.count() = 1 and Patient.telecom.value = '555'",
		},
		{
			name:  "add choice element",
			patch: params(op(`{"name":"type","valueCode":"add"}`, `{"name":"path","valueString":"Patient"}`, `{"name":"name","valueString":"multipleBirth"}`, `{"name":"value","valueInteger":2}`)),
			check: "Patient.multipleBirth = 2 and Patient.multipleBirth is integer",
		},
		{
			name: "add complex value from parts",
			patch: params(op(`{"name":"type","valueCode":"add"}`, `{"name":"path","valueString":"Patient"}`, `{"name":"name","valueString":"contact"}`,
				`{"name":"value","part":[{"name":"name","valueHumanName":{"family":"Poe"}},{"name":"telecom","valueContactPoint":{"value":"1"}},{"name":"telecom","valueContactPoint":{"value":"2"}}]}`)),
			check: "Patient.contact.count() = 2 and Patient.contact[1].name.family = 'Poe' and Patient.contact[1].telecom.value = ('1' | '2')",
		},
		{
			name:  "add nested path",
			patch: params(op(`{"name":"type","valueCode":"add"}`, `{"name":"path","valueString":"Patient.name[0]"}`, `{"name":"name","valueString":"given"}`, `{"name":"value","valueString":"Ann"}`)),
			check: "Patient.name[0].given = ('Jane' | 'Q' | 'Ann')",
		},
		{
			name:  "insert at start",
			patch: params(op(`{"name":"type","valueCode":"insert"}`, `{"name":"path","valueString":"Patient.identifier"}`, `{"name":"index","valueInteger":0}`, `{"name":"value","valueIdentifier":{"system":"z"}}`)),
			check: "Patient.identifier.system = ('z' | 'a' | 'b' | 'c')",
		},
		{
			name:  "insert at end",
			patch: params(op(`{"name":"type","valueCode":"insert"}`, `{"name":"path","valueString":"Patient.identifier"}`, `{"name":"index","valueInteger":3}`, `{"name":"value","valueIdentifier":{"system":"z"}}`)),
			check: "Patient.identifier.system = ('a' | 'b' | 'c' | 'z')",
		},
		{
			name:  "insert into empty list",
			patch: params(op(`{"name":"type","valueCode":"insert"}`, `{"name":"path","valueString":"Patient.telecom"}`, `{"name":"index","valueInteger":0}`, `{"name":"value","valueContactPoint":{"value":"9"}}`)),
			check: "Patient.telecom.value = '9'",
		},
		{
			name:  "delete single element",
			patch: params(op(`{"name":"type","valueCode":"delete"}`, `{"name":"path","valueString":"Patient.birthDate"}`)),
			check: "Patient.birthDate.empty() and Patient.children().count() = 7",
		},
		{
			name:  "delete list item",
			patch: params(op(`{"name":"type","valueCode":"delete"}`, `{"name":"path","valueString":"Patient.identifier.where(system = 'b')"}`)),
			check: "Patient.identifier.system = ('a' | 'c')",
		},
		{
			name:  "delete last list item removes list",
			patch: params(op(`{"name":"type","valueCode":"delete"}`, `{"name":"path","valueString":"Patient.contact[0]"}`)),
			check: "Patient.contact.empty()",
		},
		{
			name:  "delete nothing is allowed",
			patch: params(op(`{"name":"type","valueCode":"delete"}`, `{"name":"path","valueString":"Patient.gender"}`)),
			check: "Patient.identifier.count() = 3",
		},
		{
			name:  "replace primitive",
			patch: params(op(`{"name":"type","valueCode":"replace"}`, `{"name":"path","valueString":"Patient.birthDate"}`, `{"name":"value","valueDate":"1930-01-01"}`)),
			check: "Patient.birthDate = @1930-01-01 and Patient.birthDate.extension.exists()",
		},
		{
			name:  "replace list item",
			patch: params(op(`{"name":"type","valueCode":"replace"}`, `{"name":"path","valueString":"Patient.name[0].given[1]"}`, `{"name":"value","valueString":"R"}`)),
			check: "Patient.name.given = ('Jane' | 'R')",
		},
		{
			name:  "replace complex",
			patch: params(op(`{"name":"type","valueCode":"replace"}`, `{"name":"path","valueString":"Patient.identifier[1]"}`, `{"name":"value","valueIdentifier":{"system":"q","value":"7"}}`)),
			check: "Patient.identifier.system = ('a' | 'q' | 'c')",
		},
		{
			name:  "replace choice changes type",
			patch: params(op(`{"name":"type","valueCode":"replace"}`, `{"name":"path","valueString":"Patient.deceased"}`, `{"name":"value","valueDateTime":"2020-01-01"}`)),
			check: "Patient.deceased is dateTime and Patient.deceased.count() = 1",
		},
		{
			name:  "move forward",
			patch: params(op(`{"name":"type","valueCode":"move"}`, `{"name":"path","valueString":"Patient.identifier"}`, `{"name":"source","valueInteger":0}`, `{"name":"destination","valueInteger":2}`)),
			check: "Patient.identifier.system = ('b' | 'c' | 'a')",
		},
		{
			name:  "move backward",
			patch: params(op(`{"name":"type","valueCode":"move"}`, `{"name":"path","valueString":"Patient.identifier"}`, `{"name":"source","valueInteger":2}`, `{"name":"destination","valueInteger":0}`)),
			check: "Patient.identifier.system = ('c' | 'a' | 'b')",
		},
		{
			name: "operations apply in order",
			patch: params(
				op(`{"name":"type","valueCode":"delete"}`, `{"name":"path","valueString":"Patient.identifier[0]"}`),
				op(`{"name":"type","valueCode":"replace"}`, `{"name":"path","valueString":"Patient.identifier[0].value"}`, `{"name":"value","valueString":"two"}`),
			),
			check: "Patient.identifier.value = ('two' | '3')",
		},
		{
			name:  "empty patch",
			patch: `{"resourceType":"Parameters"}`,
			check: "Patient.identifier.count() = 3",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := mustJSON(t, patchPatient)
			before, _ := json.Marshal(res)
			got, err := ApplyPatch(res, mustJSON(t, tc.patch))
			if err != nil {
				t.Fatalf("ApplyPatch: %v", err)
			}
			after, _ := json.Marshal(res)
			if string(before) != string(after) {
				t.Errorf("ApplyPatch modified its input")
			}
			ok, err := MustCompile(tc.check).Evaluate(got, nil)
			if err != nil {
				t.Fatal(err)
			}
			if b, known := ok.Bool(); !known || !b {
				out, _ := json.Marshal(got)
				t.Errorf("%s is not true on the result %s", tc.check, out)
			}
		})
	}
}

func TestApplyPatchErrors(t *testing.T) {
	tests := []struct {
		name  string
		patch string
		kind  error
	}{
		{"not parameters", `{"resourceType":"Patient"}`, ErrPatchInvalid},
		{"parameter not operation", `{"resourceType":"Parameters","parameter":[{"name":"op"}]}`, ErrPatchInvalid},
		{"unknown type", params(op(`{"name":"type","valueCode":"upsert"}`, `{"name":"path","valueString":"Patient"}`)), ErrPatchInvalid},
		{"missing path", params(op(`{"name":"type","valueCode":"delete"}`)), ErrPatchInvalid},
		{"add without name", params(op(`{"name":"type","valueCode":"add"}`, `{"name":"path","valueString":"Patient"}`, `{"name":"value","valueCode":"x"}`)), ErrPatchInvalid},
		{"replace without value", params(op(`{"name":"type","valueCode":"replace"}`, `{"name":"path","valueString":"Patient.birthDate"}`)), ErrPatchInvalid},
		{"insert without index", params(op(`{"name":"type","valueCode":"insert"}`, `{"name":"path","valueString":"Patient.identifier"}`, `{"name":"value","valueIdentifier":{}}`)), ErrPatchInvalid},
		{"negative index", params(op(`{"name":"type","valueCode":"insert"}`, `{"name":"path","valueString":"Patient.identifier"}`, `{"name":"index","valueInteger":-1}`, `{"name":"value","valueIdentifier":{}}`)), ErrPatchInvalid},
		{"move without destination", params(op(`{"name":"type","valueCode":"move"}`, `{"name":"path","valueString":"Patient.identifier"}`, `{"name":"source","valueInteger":0}`)), ErrPatchInvalid},
		{"unknown part", params(op(`{"name":"type","valueCode":"delete"}`, `{"name":"path","valueString":"Patient.id"}`, `{"name":"colour","valueString":"x"}`)), ErrPatchInvalid},
		{"invalid path syntax", params(op(`{"name":"type","valueCode":"delete"}`, `{"name":"path","valueString":"Patient.("}`)), ErrPatchInvalid},
		{"replace matches nothing", params(op(`{"name":"type","valueCode":"replace"}`, `{"name":"path","valueString":"Patient.gender"}`, `{"name":"value","valueCode":"male"}`)), ErrPatchUnprocessable},
		{"delete matches many", params(op(`{"name":"type","valueCode":"delete"}`, `{"name":"path","valueString":"Patient.identifier"}`)), ErrPatchUnprocessable},
		{"replace matches many", params(op(`{"name":"type","valueCode":"replace"}`, `{"name":"path","valueString":"Patient.name.given"}`, `{"name":"value","valueString":"x"}`)), ErrPatchUnprocessable},
		{"add to missing path", params(op(`{"name":"type","valueCode":"add"}`, `{"name":"path","valueString":"Patient.photo"}`, `{"name":"name","valueString":"url"}`, `{"name":"value","valueUrl":"x"}`)), ErrPatchUnprocessable},
		{"add existing single element", params(op(`{"name":"type","valueCode":"add"}`, `{"name":"path","valueString":"Patient"}`, `{"name":"name","valueString":"birthDate"}`, `{"name":"value","valueDate":"2000-01-01"}`)), ErrPatchUnprocessable},
		{"add unknown element", params(op(`{"name":"type","valueCode":"add"}`, `{"name":"path","valueString":"Patient"}`, `{"name":"name","valueString":"colour"}`, `{"name":"value","valueString":"x"}`)), ErrPatchUnprocessable},
		{"insert index beyond list", params(op(`{"name":"type","valueCode":"insert"}`, `{"name":"path","valueString":"Patient.identifier"}`, `{"name":"index","valueInteger":4}`, `{"name":"value","valueIdentifier":{}}`)), ErrPatchUnprocessable},
		{"insert into non list", params(op(`{"name":"type","valueCode":"insert"}`, `{"name":"path","valueString":"Patient.birthDate"}`, `{"name":"index","valueInteger":0}`, `{"name":"value","valueDate":"2000-01-01"}`)), ErrPatchUnprocessable},
		{"move source beyond list", params(op(`{"name":"type","valueCode":"move"}`, `{"name":"path","valueString":"Patient.identifier"}`, `{"name":"source","valueInteger":3}`, `{"name":"destination","valueInteger":0}`)), ErrPatchUnprocessable},
		{"replace with wrong type", params(op(`{"name":"type","valueCode":"replace"}`, `{"name":"path","valueString":"Patient.identifier[0]"}`, `{"name":"value","valueCoding":{"code":"x"}}`)), ErrPatchUnprocessable},
		{"replace primitive with complex", params(op(`{"name":"type","valueCode":"replace"}`, `{"name":"path","valueString":"Patient.birthDate"}`, `{"name":"value","valuePeriod":{"start":"2000"}}`)), ErrPatchUnprocessable},
		{"path fails to evaluate", params(op(`{"name":"type","valueCode":"delete"}`, `{"name":"path","valueString":"Patient.identifier.single()"}`)), ErrPatchUnprocessable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ApplyPatch(mustJSON(t, patchPatient), mustJSON(t, tc.patch))
			if err == nil {
				t.Fatal("ApplyPatch succeeded, want an error")
			}
			var pe *PatchError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T %v is not a *PatchError", err, err)
			}
			if !errors.Is(err, tc.kind) {
				t.Errorf("error %v is not %v", err, tc.kind)
			}
		})
	}
}

func TestApplyPatchReportsOperation(t *testing.T) {
	patch := params(
		op(`{"name":"type","valueCode":"delete"}`, `{"name":"path","valueString":"Patient.birthDate"}`),
		op(`{"name":"type","valueCode":"replace"}`, `{"name":"path","valueString":"Patient.birthDate"}`, `{"name":"value","valueDate":"2000-01-01"}`),
	)
	_, err := ApplyPatch(mustJSON(t, patchPatient), mustJSON(t, patch))
	var pe *PatchError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want *PatchError", err)
	}
	got := struct {
		Op   int
		Path string
	}{pe.Operation, pe.Path}
	want := struct {
		Op   int
		Path string
	}{1, "Patient.birthDate"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
	const msg = "fhirpath: patch cannot be applied: operation 1 (Patient.birthDate): path matches nothing"
	if err.Error() != msg {
		t.Errorf("Error() = %q, want %q", err.Error(), msg)
	}
}
