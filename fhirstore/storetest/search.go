package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vigil-health/vigil/fhirstore"
)

// RunSearch runs the search conformance suite against backend b: every parameter type,
// prefix and modifier on a small hand-made data set whose expected results were worked
// out by hand, plus chains, _has, includes, sorting, paging while writing, _total,
// compartments, $everything, $lastn, custom parameters and strict/lenient errors.
func RunSearch(t *testing.T, b Backend) {
	t.Run("Queries", func(t *testing.T) {
		st, _ := Open(t, b)
		LoadSearchFixture(t, st)
		testSearchQueries(t, st)
	})
	tests := []struct {
		name string
		fn   func(t *testing.T, st *fhirstore.Store, dbURL string)
	}{
		{"Errors", testSearchErrors},
		{"Includes", testSearchIncludes},
		{"Sort", testSearchSort},
		{"Total", testSearchTotal},
		{"PagingWhileWriting", testSearchPaging},
		{"PagingSortedWhileWriting", testSearchPagingSorted},
		{"Compartment", testSearchCompartment},
		{"Everything", testSearchEverything},
		{"LastN", testSearchLastN},
		{"UpdateAndDeleteReindex", testSearchUpdates},
		{"CustomParameter", testSearchCustomParameter},
		{"TxSearch", testTxSearch},
		{"Regressions", testSearchRegressions},
		{"LatestN", testSearchLatestN},
		{"LatestObservations", testLatestObservations},
		{"PatientDate", testPatientDateSearch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st, u := Open(t, b)
			LoadSearchFixture(t, st)
			tc.fn(t, st, u)
		})
	}
}

func coding(system, code, display string) map[string]any {
	m := map[string]any{"system": system, "code": code}
	if display != "" {
		m["display"] = display
	}
	return m
}

func cc(system, code, display string) map[string]any {
	return map[string]any{"coding": []any{coding(system, code, display)}}
}

func qty(v any, unit, code string) map[string]any {
	return map[string]any{"value": v, "unit": unit, "system": "http://unitsofmeasure.org", "code": code}
}

func observation(patient string, code map[string]any, effective string) map[string]any {
	m := map[string]any{
		"resourceType": "Observation",
		"status":       "final",
		"code":         code,
		"subject":      map[string]any{"reference": "Patient/" + patient},
		"category":     []any{cc("http://terminology.hl7.org/CodeSystem/observation-category", "vital-signs", "Vital Signs")},
	}
	if effective != "" {
		m["effectiveDateTime"] = effective
	}
	return m
}

// searchFixture returns the hand-made data set: id -> resource.
func searchFixture() []map[string]any {
	loinc := "http://loinc.org"
	hr := cc(loinc, "8867-4", "Heart rate")
	temp := cc(loinc, "8310-5", "Body temperature")
	bp := cc(loinc, "85354-9", "Blood pressure panel")
	glucose := cc(loinc, "2339-0", "Glucose [Mass/volume] in Blood")
	with := func(m map[string]any, kv ...any) map[string]any {
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	comp := func(code string, v float64) map[string]any {
		return map[string]any{"code": cc(loinc, code, ""), "valueQuantity": qty(v, "mmHg", "mm[Hg]")}
	}
	return []map[string]any{
		{"resourceType": "Organization", "id": "org1", "name": "Acme Hospital", "active": true},
		{"resourceType": "Organization", "id": "org2", "name": "Beta Clinic", "active": true},
		{"resourceType": "Patient", "id": "p1", "gender": "male", "birthDate": "1980-05-12", "active": true,
			"name": []any{map[string]any{"family": "Müller", "given": []any{"Hans"}}},
			"identifier": []any{map[string]any{"system": "urn:mrn", "value": "MRN1",
				"type": cc("http://terminology.hl7.org/CodeSystem/v2-0203", "MR", "Medical record number")}},
			"telecom":              []any{map[string]any{"system": "phone", "value": "555-1234"}},
			"managingOrganization": map[string]any{"reference": "Organization/org1"},
			"address":              []any{map[string]any{"city": "Zürich", "line": []any{"Bahnhofstrasse 1"}}},
		},
		{"resourceType": "Patient", "id": "p2", "gender": "female", "birthDate": "1990", "active": false,
			"name":                 []any{map[string]any{"family": "Muller", "given": []any{"Anna", "Maria"}}},
			"identifier":           []any{map[string]any{"system": "urn:mrn", "value": "MRN2"}},
			"managingOrganization": map[string]any{"reference": "Organization/org2"},
			"meta":                 map[string]any{"tag": []any{coding("urn:vigil:tags", "vip", "")}},
		},
		{"resourceType": "Patient", "id": "p3", "birthDate": "1975-01",
			"name": []any{map[string]any{"family": "Smith", "given": []any{"John"}}},
		},
		with(observation("p1", hr, "2024-01-01T10:00:00Z"), "id", "o1", "valueQuantity", qty(72, "beats/minute", "{beats}/min"),
			"meta", map[string]any{"profile": []any{"http://hl7.org/fhir/StructureDefinition/heartrate"}}),
		with(observation("p1", hr, "2024-01-02T10:00:00+02:00"), "id", "o2", "valueQuantity", qty(80, "/min", "/min"),
			"device", map[string]any{"reference": "Device/d1"}),
		with(observation("p1", temp, "2024-01-02T12:00:00Z"), "id", "o3", "valueQuantity", qty(37.0, "C", "Cel")),
		with(observation("p2", temp, "2024-01-03"), "id", "o4", "valueQuantity", qty(98.6, "F", "[degF]")),
		with(observation("p2", bp, ""), "id", "o5", "effectivePeriod", map[string]any{"start": "2024-01-03T00:00:00Z", "end": "2024-01-03T01:00:00Z"},
			"component", []any{comp("8480-6", 120), comp("8462-4", 80)}),
		with(observation("p3", bp, "2024-01-04T08:00:00Z"), "id", "o6", "component", []any{comp("8480-6", 140), comp("8462-4", 120)}),
		with(observation("p2", glucose, "2024-01-05T07:00:00Z"), "id", "o7", "valueQuantity", qty(100, "mg/dL", "mg/dL")),
		with(observation("p1", glucose, "2024-01-05T07:30:00Z"), "id", "o8", "valueQuantity", qty(5.5, "mmol/L", "mmol/L")),
		with(observation("p3", cc(loinc, "5778-6", "Color of Urine"), ""), "id", "o9", "status", "preliminary", "valueString", "yellow"),
		{"resourceType": "Device", "id": "d1", "patient": map[string]any{"reference": "Patient/p1"},
			"type": cc("urn:iso:std:iso:11073:10101", "528391", "Pulse oximeter")},
		{"resourceType": "RiskAssessment", "id": "ra1", "status": "final", "subject": map[string]any{"reference": "Patient/p1"},
			"prediction": []any{map[string]any{"probabilityDecimal": 0.25}}},
		{"resourceType": "RiskAssessment", "id": "ra2", "status": "final", "subject": map[string]any{"reference": "Patient/p2"},
			"prediction": []any{map[string]any{"probabilityDecimal": 0.8}}},
		{"resourceType": "DetectedIssue", "id": "di1", "status": "final", "patient": map[string]any{"reference": "Patient/p1"},
			"identifiedDateTime": "2024-01-02T10:05:00Z", "implicated": []any{map[string]any{"reference": "Observation/o2"}}},
		{"resourceType": "DetectedIssue", "id": "di2", "status": "final", "patient": map[string]any{"reference": "Patient/p1"},
			"identifiedDateTime": "2024-01-05T08:00:00Z"},
		{"resourceType": "Provenance", "id": "prov1", "target": []any{map[string]any{"reference": "Observation/o1"}},
			"recorded": "2024-01-01T10:00:01Z", "agent": []any{map[string]any{"who": map[string]any{"reference": "Device/d1"}}}},
	}
}

// LoadSearchFixture writes the search fixture with fixed ids.
func LoadSearchFixture(t testing.TB, st *fhirstore.Store) {
	t.Helper()
	err := st.InTx(context.Background(), func(tx *fhirstore.Tx) error {
		for _, r := range searchFixture() {
			id := r["id"].(string)
			if _, err := tx.CreateWithID(context.Background(), r["resourceType"].(string), id, r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("load search fixture: %v", err)
	}
}

func mustQuery(t testing.TB, q string) url.Values {
	t.Helper()
	v, err := url.ParseQuery(q)
	if err != nil {
		t.Fatalf("parse %q: %v", q, err)
	}
	return v
}

// searchIDs runs a search and returns the ids of the matches (sorted unless ordered).
func searchIDs(t testing.TB, st *fhirstore.Store, typ, q string, ordered bool) []string {
	t.Helper()
	res, err := st.Search(context.Background(), fhirstore.SearchRequest{Type: typ, Params: mustQuery(t, q)})
	if err != nil {
		t.Fatalf("search %s?%s: %v", typ, q, err)
	}
	return resultIDs(res.Matches, ordered)
}

func resultIDs(rs []*fhirstore.Resource, ordered bool) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, r.ID)
	}
	if !ordered {
		sort.Strings(out)
	}
	return out
}

func testSearchQueries(t *testing.T, st *fhirstore.Store) {
	tests := []struct {
		name string
		typ  string
		q    string
		want []string
	}{
		// string
		{"string starts with, accents folded", "Patient", "name=muller", []string{"p1", "p2"}},
		{"string case insensitive", "Patient", "name=MÜL", []string{"p1", "p2"}},
		{"string exact keeps accents", "Patient", "name:exact=Müller", []string{"p1"}},
		{"string exact is case sensitive", "Patient", "name:exact=müller", []string{}},
		{"string contains", "Patient", "family:contains=ll", []string{"p1", "p2"}},
		{"string given name", "Patient", "given=mar", []string{"p2"}},
		{"string not prefix of middle", "Patient", "name=aria", []string{}},
		{"string address city", "Patient", "address-city=zurich", []string{"p1"}},
		{"string OR", "Patient", "family=smith,muller", []string{"p1", "p2", "p3"}},
		{"string AND", "Patient", "family=muller&given=anna", []string{"p2"}},
		// token
		{"token code", "Patient", "gender=male", []string{"p1"}},
		{"token not includes missing", "Patient", "gender:not=male", []string{"p2", "p3"}},
		{"token missing true", "Patient", "gender:missing=true", []string{"p3"}},
		{"token missing false", "Patient", "gender:missing=false", []string{"p1", "p2"}},
		{"token boolean", "Patient", "active=true", []string{"p1"}},
		{"token system|code", "Observation", "code=http://loinc.org|8867-4", []string{"o1", "o2"}},
		{"token wrong system", "Observation", "code=http://snomed.info/sct|8867-4", []string{}},
		{"token system only", "Patient", "identifier=urn:mrn|", []string{"p1", "p2"}},
		{"token no system", "Patient", "identifier=|MRN1", []string{}},
		{"token identifier", "Patient", "identifier=urn:mrn|MRN1", []string{"p1"}},
		{"token OR", "Observation", "code=8867-4,8310-5", []string{"o1", "o2", "o3", "o4"}},
		{"token text", "Observation", "code:text=heart", []string{"o1", "o2"}},
		{"token text of display", "Observation", "code:text=GLUCOSE", []string{"o7", "o8"}},
		{"token of-type", "Patient", "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|MRN1", []string{"p1"}},
		{"token ContactPoint", "Patient", "phone=555-1234", []string{"p1"}},
		{"token _tag", "Patient", "_tag=urn:vigil:tags|vip", []string{"p2"}},
		{"token _id", "Patient", "_id=p1,p3", []string{"p1", "p3"}},
		{"token _id not", "Patient", "_id:not=p1", []string{"p2", "p3"}},
		{"token status", "Observation", "status=preliminary", []string{"o9"}},
		// reference
		{"reference Type/id", "Observation", "subject=Patient/p1", []string{"o1", "o2", "o3", "o8"}},
		{"reference bare id", "Observation", "patient=p2", []string{"o4", "o5", "o7"}},
		{"reference type modifier", "Observation", "subject:Patient=p3", []string{"o6", "o9"}},
		{"reference type modifier mismatch", "Observation", "subject:Group=p3", []string{}},
		{"reference missing", "Observation", "device:missing=false", []string{"o2"}},
		{"reference OR", "Patient", "organization=Organization/org1,Organization/org2", []string{"p1", "p2"}},
		// date
		{"date year contains day", "Patient", "birthdate=1980", []string{"p1"}},
		{"date eq year precision resource", "Patient", "birthdate=1990", []string{"p2"}},
		{"date eq month within year value", "Patient", "birthdate=1990-06", []string{}},
		{"date lt", "Patient", "birthdate=lt1980", []string{"p3"}},
		{"date ge", "Patient", "birthdate=ge1980-05-12", []string{"p1", "p2"}},
		{"date gt", "Patient", "birthdate=gt1980-05-12", []string{"p2"}},
		{"date le", "Patient", "birthdate=le1980-05", []string{"p1", "p3"}},
		{"date sa", "Patient", "birthdate=sa1980", []string{"p2"}},
		{"date eb", "Patient", "birthdate=eb1980", []string{"p3"}},
		{"date ne", "Patient", "birthdate=ne1980", []string{"p2", "p3"}},
		{"date ap widens by 10% of distance to now", "Patient", "birthdate=ap1990", []string{"p2"}},
		{"date day with zones", "Observation", "date=2024-01-02", []string{"o2", "o3"}},
		{"date instant in another zone", "Observation", "date=2024-01-02T09:00:00%2B01:00", []string{"o2"}},
		{"date period inside day", "Observation", "date=2024-01-03", []string{"o4", "o5"}},
		{"date period ge", "Observation", "date=ge2024-01-03T00:30:00Z", []string{"o4", "o5", "o6", "o7", "o8"}},
		{"date range AND", "Observation", "date=ge2024-01-02&date=lt2024-01-03", []string{"o2", "o3"}},
		{"date missing", "Observation", "date:missing=true", []string{"o9"}},
		{"date _lastUpdated", "Patient", "_lastUpdated=gt2000-01-01", []string{"p1", "p2", "p3"}},
		{"date _lastUpdated future", "Patient", "_lastUpdated=gt2999", []string{}},
		// number
		{"number eq exact", "RiskAssessment", "probability=0.25", []string{"ra1"}},
		{"number eq by precision", "RiskAssessment", "probability=0.3", []string{"ra1"}},
		{"number eq outside precision", "RiskAssessment", "probability=0.2", []string{}},
		{"number gt", "RiskAssessment", "probability=gt0.5", []string{"ra2"}},
		{"number le", "RiskAssessment", "probability=le0.25", []string{"ra1"}},
		{"number ne", "RiskAssessment", "probability=ne0.25", []string{"ra2"}},
		{"number ap", "RiskAssessment", "probability=ap0.75", []string{"ra2"}},
		// quantity
		{"quantity no unit", "Observation", "value-quantity=72", []string{"o1"}},
		{"quantity annotation ignored", "Observation", "value-quantity=lt75|http://unitsofmeasure.org|/min", []string{"o1"}},
		{"quantity rate", "Observation", "value-quantity=gt60||/min", []string{"o1", "o2"}},
		{"quantity Cel matches degF", "Observation", "value-quantity=37|http://unitsofmeasure.org|Cel", []string{"o3", "o4"}},
		{"quantity degF matches Cel", "Observation", "value-quantity=98.6||[degF]", []string{"o3", "o4"}},
		{"quantity kelvin", "Observation", "value-quantity=ge310|http://unitsofmeasure.org|K", []string{"o3", "o4"}},
		{"quantity glucose mmol/L finds mg/dL", "Observation", "value-quantity=5.55|http://unitsofmeasure.org|mmol/L", []string{"o7"}},
		{"quantity glucose mg/dL finds mmol/L", "Observation", "value-quantity=99|http://unitsofmeasure.org|mg/dL", []string{"o8"}},
		{"quantity glucose ap", "Observation", "value-quantity=ap5.5|http://unitsofmeasure.org|mmol/L", []string{"o7", "o8"}},
		{"quantity unit code without conversion", "Observation", "value-quantity=80|http://unitsofmeasure.org|/min", []string{"o2"}},
		{"quantity missing", "Observation", "value-quantity:missing=true", []string{"o5", "o6", "o9"}},
		// uri
		{"uri exact", "Observation", "_profile=http://hl7.org/fhir/StructureDefinition/heartrate", []string{"o1"}},
		{"uri below", "Observation", "_profile:below=http://hl7.org/fhir/StructureDefinition/", []string{"o1"}},
		{"uri above", "Observation", "_profile:above=http://hl7.org/fhir/StructureDefinition/heartrate/v2", []string{"o1"}},
		{"uri no partial", "Observation", "_profile=http://hl7.org/fhir/StructureDefinition/", []string{}},
		// composite
		{"composite pair same component", "Observation", "component-code-value-quantity=http://loinc.org|8462-4$120|http://unitsofmeasure.org|mm[Hg]", []string{"o6"}},
		{"composite systolic", "Observation", "component-code-value-quantity=8480-6$120", []string{"o5"}},
		{"composite prefix", "Observation", "component-code-value-quantity=8462-4$gt70", []string{"o5", "o6"}},
		{"composite kPa converts", "Observation", "component-code-value-quantity=8480-6$ap18.7|http://unitsofmeasure.org|kPa", []string{"o6"}},
		{"composite code-value on root", "Observation", "code-value-quantity=8867-4$gt75", []string{"o2"}},
		{"composite code-value on root OR", "Observation", "code-value-quantity=8867-4$gt75,8310-5$37|http://unitsofmeasure.org|Cel", []string{"o2", "o3", "o4"}},
		{"composite code-value missing", "Observation", "code-value-quantity:missing=true", []string{"o5", "o6", "o9"}},
		{"combo code on root and components", "Observation", "combo-code=8480-6,8867-4", []string{"o1", "o2", "o5", "o6"}},
		{"combo code missing", "Observation", "combo-code:missing=true", []string{}},
		{"combo code not", "Observation", "combo-code:not=8480-6", []string{"o1", "o2", "o3", "o4", "o7", "o8", "o9"}},
		{"combo value quantity", "Observation", "combo-value-quantity=ge130|http://unitsofmeasure.org|mm[Hg]", []string{"o6"}},
		{"combo code-value pairs components", "Observation", "combo-code-value-quantity=8462-4$120|http://unitsofmeasure.org|mm[Hg]", []string{"o6"}},
		{"combo code-value on root", "Observation", "combo-code-value-quantity=8867-4$80", []string{"o2"}},
		// chains and _has
		{"chain with type", "Observation", "subject:Patient.name=anna", []string{"o4", "o5", "o7"}},
		{"chain without type", "Observation", "patient.gender=male", []string{"o1", "o2", "o3", "o8"}},
		{"chain two levels", "Observation", "patient.organization.name=beta", []string{"o4", "o5", "o7"}},
		{"chain to identifier", "Observation", "patient.identifier=urn:mrn|MRN1", []string{"o1", "o2", "o3", "o8"}},
		{"has", "Patient", "_has:Observation:patient:code=2339-0", []string{"p1", "p2"}},
		{"has with modifier", "Patient", "_has:Observation:patient:code:text=temperature", []string{"p1", "p2"}},
		{"has nested", "Organization", "_has:Patient:organization:_has:Observation:patient:code=85354-9", []string{"org2"}},
		{"has with chain", "Device", "_has:Observation:device:patient.name=hans", []string{"d1"}},
		{"has none", "Patient", "_has:Observation:patient:code=0000-0", []string{}},
		{"reference identifier modifier", "Observation", "patient:identifier=urn:mrn|MRN1", []string{}},
		// special resource-level parameters on a system search
		{"system search _type and _id", "", "_type=Patient,Device&_id=p1,d1,o1", []string{"d1", "p1"}},
		{"system search shared param", "", "_type=Observation,RiskAssessment&patient=p2", []string{"o4", "o5", "o7", "ra2"}},
		{"DetectedIssue by patient", "DetectedIssue", "patient=p1&identified=ge2024-01-03", []string{"di2"}},
		{"Provenance by target", "Provenance", "target=Observation/o1", []string{"prov1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := searchIDs(t, st, tc.typ, tc.q, false)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("%s?%s (-want +got):\n%s", tc.typ, tc.q, diff)
			}
		})
	}
}

func testSearchErrors(t *testing.T, st *fhirstore.Store, _ string) {
	tests := []struct {
		name        string
		typ, q      string
		param       string
		unsupported bool
	}{
		{"unknown parameter", "Patient", "foo=bar", "foo", false},
		{"bad date", "Patient", "birthdate=yesterday", "birthdate", false},
		{"bad number", "RiskAssessment", "probability=abc", "probability", false},
		{"bad modifier", "Patient", "birthdate:exact=1980", "birthdate:exact", false},
		{"bad missing", "Patient", "gender:missing=maybe", "gender:missing", false},
		{"chain on non-reference", "Patient", "name.family=x", "name.family", false},
		{"chain unknown target param", "Observation", "subject:Patient.nosuch=x", "subject:Patient.nosuch", false},
		{"bad _has", "Patient", "_has:Observation:code=x", "_has:Observation:code", false},
		{"bad _count", "Patient", "_count=many", "_count", false},
		{"bad _sort", "Patient", "_sort=nosuch", "_sort", false},
		{"bad include", "Observation", "_include=Observation:nosuch", "_include", false},
		{"composite arity", "Observation", "component-code-value-quantity=8480-6", "component-code-value-quantity", false},
		{"text unsupported", "Patient", "_text=hello", "_text", true},
		{"filter unsupported", "Patient", "_filter=name eq x", "_filter", true},
		{"token below unsupported", "Observation", "code:below=8867-4", "code:below", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := st.Search(context.Background(), fhirstore.SearchRequest{Type: tc.typ, Params: mustQuery(t, tc.q)})
			var se *fhirstore.SearchError
			if !errors.As(err, &se) {
				t.Fatalf("strict %s?%s: got %v, want *SearchError", tc.typ, tc.q, err)
			}
			if se.Param != tc.param || se.Unsupported != tc.unsupported {
				t.Errorf("strict %s?%s: error %+v, want param %q unsupported=%v", tc.typ, tc.q, se, tc.param, tc.unsupported)
			}
			// Lenient: the parameter is ignored and reported; the rest still applies.
			q := mustQuery(t, tc.q)
			q.Set("_id", "p1,o1,ra1")
			res, err := st.Search(context.Background(), fhirstore.SearchRequest{Type: tc.typ, Params: q, Lenient: true})
			if err != nil {
				t.Fatalf("lenient %s?%s: %v", tc.typ, tc.q, err)
			}
			if len(res.Issues) != 1 || res.Issues[0].Param != tc.param {
				t.Errorf("lenient issues = %+v, want one for %q", res.Issues, tc.param)
			}
			if len(res.Matches) != 1 {
				t.Errorf("lenient matches = %v, want the one resource with the _id", resultIDs(res.Matches, false))
			}
			if _, ok := res.SelfParams[tc.param]; ok && tc.param != "_id" {
				t.Errorf("self params keep ignored %q: %v", tc.param, res.SelfParams)
			}
		})
	}
	t.Run("absolute reference under the base", func(t *testing.T) {
		req := fhirstore.SearchRequest{Type: "Observation", Params: mustQuery(t, "subject=https://vigil.example/fhir/Patient/p3"), BaseURL: "https://vigil.example/fhir/"}
		res, err := st.Search(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"o6", "o9"}, resultIDs(res.Matches, false)); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		req.BaseURL = "https://elsewhere.example/fhir"
		if res, err := st.Search(context.Background(), req); err != nil || len(res.Matches) != 0 {
			t.Errorf("URL of another server: %v, %d matches, want none", err, len(res.Matches))
		}
	})
	t.Run("unknown type", func(t *testing.T) {
		_, err := st.Search(context.Background(), fhirstore.SearchRequest{Type: "Nope", Params: url.Values{}})
		var se *fhirstore.SearchError
		if !errors.As(err, &se) {
			t.Fatalf("got %v, want *SearchError", err)
		}
	})
	t.Run("cursor of another search", func(t *testing.T) {
		res, err := st.Search(context.Background(), fhirstore.SearchRequest{Type: "Observation", Params: mustQuery(t, "_count=1")})
		if err != nil || res.Next == "" {
			t.Fatalf("first page: %v, next %q", err, res.Next)
		}
		_, err = st.Search(context.Background(), fhirstore.SearchRequest{Type: "Observation", Params: mustQuery(t, "_count=1&code=8867-4"), Cursor: res.Next})
		var se *fhirstore.SearchError
		if !errors.As(err, &se) {
			t.Fatalf("got %v, want *SearchError for a foreign cursor", err)
		}
		_, err = st.Search(context.Background(), fhirstore.SearchRequest{Type: "Observation", Params: mustQuery(t, "_count=1"), Cursor: "!!garbage"})
		if !errors.As(err, &se) {
			t.Fatalf("got %v, want *SearchError for a garbage cursor", err)
		}
	})
}

func typedIDs(rs []*fhirstore.Resource) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, r.Type+"/"+r.ID)
	}
	sort.Strings(out)
	return out
}

func testSearchIncludes(t *testing.T, st *fhirstore.Store, _ string) {
	tests := []struct {
		name         string
		typ, q       string
		wantMatches  []string
		wantIncluded []string
	}{
		{"include", "Observation", "code=8867-4&_include=Observation:patient",
			[]string{"Observation/o1", "Observation/o2"}, []string{"Patient/p1"}},
		{"include with target type", "Observation", "code=8867-4&_include=Observation:subject:Group",
			[]string{"Observation/o1", "Observation/o2"}, []string{}},
		{"include iterate", "Observation", "code=8867-4&_include=Observation:patient&_include:iterate=Patient:organization",
			[]string{"Observation/o1", "Observation/o2"}, []string{"Organization/org1", "Patient/p1"}},
		{"include without iterate stops", "Observation", "code=8867-4&_include=Observation:patient&_include=Patient:organization",
			[]string{"Observation/o1", "Observation/o2"}, []string{"Patient/p1"}},
		{"include star", "Observation", "_id=o2&_include=*",
			[]string{"Observation/o2"}, []string{"Device/d1", "Patient/p1"}},
		{"revinclude", "Patient", "_id=p1&_revinclude=DetectedIssue:patient",
			[]string{"Patient/p1"}, []string{"DetectedIssue/di1", "DetectedIssue/di2"}},
		{"revinclude iterate", "Patient", "_id=p1&_revinclude=Device:patient&_revinclude:iterate=Provenance:agent",
			[]string{"Patient/p1"}, []string{"Device/d1", "Provenance/prov1"}},
		{"revinclude and include", "Observation", "_id=o1&_revinclude=Provenance:target&_include=Observation:subject",
			[]string{"Observation/o1"}, []string{"Patient/p1", "Provenance/prov1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := st.Search(context.Background(), fhirstore.SearchRequest{Type: tc.typ, Params: mustQuery(t, tc.q)})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.wantMatches, typedIDs(res.Matches)); diff != "" {
				t.Errorf("matches (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantIncluded, typedIDs(res.Included)); diff != "" {
				t.Errorf("included (-want +got):\n%s", diff)
			}
		})
	}
}

func testSearchSort(t *testing.T, st *fhirstore.Store, _ string) {
	tests := []struct {
		name   string
		typ, q string
		want   []string
	}{
		{"date descending", "Observation", "patient=p1&_sort=-date", []string{"o8", "o3", "o2", "o1"}},
		{"date ascending", "Observation", "patient=p1&_sort=date", []string{"o1", "o2", "o3", "o8"}},
		{"latest heart rate", "Observation", "patient=p1&code=8867-4&_sort=-date&_count=1", []string{"o2"}},
		{"missing dates last", "Observation", "patient=p3&_sort=date", []string{"o6", "o9"}},
		{"two keys", "Patient", "_sort=family,-given", []string{"p2", "p1", "p3"}},
		{"string descending", "Patient", "_sort=-family", []string{"p3", "p1", "p2"}},
		{"number", "RiskAssessment", "_sort=-probability", []string{"ra2", "ra1"}},
		{"_id descending", "Organization", "_sort=-_id", []string{"org2", "org1"}},
		{"DetectedIssue newest first", "DetectedIssue", "patient=p1&_sort=-identified", []string{"di2", "di1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := searchIDs(t, st, tc.typ, tc.q, true)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("%s?%s (-want +got):\n%s", tc.typ, tc.q, diff)
			}
		})
	}
}

func testSearchTotal(t *testing.T, st *fhirstore.Store, _ string) {
	tests := []struct {
		name      string
		q         string
		wantTotal int // -1: no total
		wantN     int
	}{
		{"accurate", "patient=p1&_total=accurate&_count=2", 4, 2},
		{"estimate", "patient=p1&_total=estimate&_count=2", 4, 2},
		{"none", "patient=p1&_total=none", -1, 4},
		{"default none", "patient=p1", -1, 4},
		{"summary count", "code=8867-4&_summary=count", 2, 0},
		{"count zero", "_count=0&_total=accurate", 9, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := st.Search(context.Background(), fhirstore.SearchRequest{Type: "Observation", Params: mustQuery(t, tc.q)})
			if err != nil {
				t.Fatal(err)
			}
			got := -1
			if res.Total != nil {
				got = *res.Total
			}
			if got != tc.wantTotal || len(res.Matches) != tc.wantN {
				t.Errorf("total %d, %d matches; want %d, %d", got, len(res.Matches), tc.wantTotal, tc.wantN)
			}
		})
	}
	res, err := st.Search(context.Background(), fhirstore.SearchRequest{Type: "Patient", Params: mustQuery(t, "_summary=true&_elements=name,gender")})
	if err != nil {
		t.Fatal(err)
	}
	if res.Summary != "true" || !cmp.Equal(res.Elements, []string{"name", "gender"}) {
		t.Errorf("summary %q elements %v", res.Summary, res.Elements)
	}
}

func createObs(t testing.TB, st *fhirstore.Store, n int, effective func(i int) string) {
	t.Helper()
	err := st.InTx(context.Background(), func(tx *fhirstore.Tx) error {
		for i := 0; i < n; i++ {
			o := observation("p9", cc("http://loinc.org", "8867-4", "Heart rate"), effective(i))
			o["valueQuantity"] = qty(60+i%40, "/min", "/min")
			if _, err := tx.Create(context.Background(), "Observation", o); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// walk pages through a search, writing more matching resources after each page, and
// returns the ids seen in order.
func walk(t *testing.T, st *fhirstore.Store, q string, between func(page int)) []string {
	t.Helper()
	var seen []string
	cursor := ""
	for page := 0; page < 100; page++ {
		res, err := st.Search(context.Background(), fhirstore.SearchRequest{Type: "Observation", Params: mustQuery(t, q), Cursor: cursor})
		if err != nil {
			t.Fatalf("page %d: %v", page, err)
		}
		for _, r := range res.Matches {
			seen = append(seen, r.ID)
		}
		if res.Next == "" {
			return seen
		}
		cursor = res.Next
		between(page)
	}
	t.Fatal("paging did not end")
	return nil
}

func testSearchPaging(t *testing.T, st *fhirstore.Store, _ string) {
	createObs(t, st, 25, func(i int) string { return fmt.Sprintf("2024-02-01T00:%02d:00Z", i) })
	before := searchIDs(t, st, "Observation", "patient=p9&_count=1000", true)
	seen := walk(t, st, "patient=p9&_count=7", func(int) {
		createObs(t, st, 2, func(i int) string { return "2024-03-01T00:00:00Z" })
	})
	assertWalk(t, before, seen)
}

func testSearchPagingSorted(t *testing.T, st *fhirstore.Store, _ string) {
	// Equal dates in runs of three exercise the rid tie-break.
	createObs(t, st, 25, func(i int) string { return fmt.Sprintf("2024-02-01T00:%02d:00Z", i/3) })
	before := searchIDs(t, st, "Observation", "patient=p9&_count=1000&_sort=-date", true)
	seen := walk(t, st, "patient=p9&_count=4&_sort=-date", func(page int) {
		// Newer ones sort before the cursor, older ones after it: both kinds arrive.
		createObs(t, st, 1, func(int) string { return "2025-01-01T00:00:00Z" })
		createObs(t, st, 1, func(int) string { return "2023-01-01T00:00:00Z" })
	})
	assertWalk(t, before, seen)
	// The order of the walk is the sort order: the pre-existing ones keep their order.
	var pre []string
	in := map[string]bool{}
	for _, id := range before {
		in[id] = true
	}
	for _, id := range seen {
		if in[id] {
			pre = append(pre, id)
		}
	}
	if diff := cmp.Diff(before, pre); diff != "" {
		t.Errorf("walk order differs from one-page order (-want +got):\n%s", diff)
	}
}

// assertWalk checks that every resource present before the walk was seen exactly once.
func assertWalk(t *testing.T, before, seen []string) {
	t.Helper()
	count := map[string]int{}
	for _, id := range seen {
		count[id]++
	}
	for id, n := range count {
		if n > 1 {
			t.Errorf("%s seen %d times", id, n)
		}
	}
	for _, id := range before {
		if count[id] != 1 {
			t.Errorf("%s present before the walk seen %d times", id, count[id])
		}
	}
}

func testSearchCompartment(t *testing.T, st *fhirstore.Store, _ string) {
	tests := []struct {
		name   string
		typ, q string
		want   []string
	}{
		{"observations", "Observation", "", []string{"o1", "o2", "o3", "o8"}},
		{"observations with filter", "Observation", "code=8867-4", []string{"o1", "o2"}},
		{"risk assessments", "RiskAssessment", "", []string{"ra1"}},
		{"detected issues", "DetectedIssue", "", []string{"di1", "di2"}},
		{"patient itself", "Patient", "", []string{"p1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := st.Search(context.Background(), fhirstore.SearchRequest{Type: tc.typ, Params: mustQuery(t, tc.q),
				Compartment: &fhirstore.CompartmentRef{Type: "Patient", ID: "p1"}})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, resultIDs(res.Matches, false)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	// Device is not in the R4 Patient compartment (it has its own).
	_, err := st.Search(context.Background(), fhirstore.SearchRequest{Type: "Device", Compartment: &fhirstore.CompartmentRef{Type: "Patient", ID: "p1"}})
	var se *fhirstore.SearchError
	if !errors.As(err, &se) {
		t.Errorf("Device in the Patient compartment: got %v, want *SearchError", err)
	}
}

func testSearchEverything(t *testing.T, st *fhirstore.Store, _ string) {
	want := []string{"DetectedIssue/di1", "DetectedIssue/di2", "Observation/o1", "Observation/o2", "Observation/o3",
		"Observation/o8", "Patient/p1", "RiskAssessment/ra1"}
	var got []*fhirstore.Resource
	included := map[string]bool{}
	cursor := ""
	for i := 0; i < 10; i++ {
		res, err := st.Everything(context.Background(), "p1", time.Time{}, nil, 4, cursor)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, res.Matches...)
		for _, r := range res.Included {
			included[r.Type+"/"+r.ID] = true
		}
		if cursor = res.Next; cursor == "" {
			break
		}
	}
	if diff := cmp.Diff(want, typedIDs(got)); diff != "" {
		t.Errorf("$everything (-want +got):\n%s", diff)
	}
	// Referenced from the compartment: p1's organization, o2's device, di1's implicated
	// Observation (a match itself, so not repeated unless on another page).
	for _, ref := range []string{"Organization/org1", "Device/d1"} {
		if !included[ref] {
			t.Errorf("$everything did not include referenced %s (included %v)", ref, included)
		}
	}
	if included["Patient/p1"] || included["Organization/org2"] {
		t.Errorf("$everything included unrelated or the patient itself: %v", included)
	}
	res, err := st.Everything(context.Background(), "p1", time.Time{}, []string{"RiskAssessment", "Patient"}, 100, "")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"Patient/p1", "RiskAssessment/ra1"}, typedIDs(res.Matches)); diff != "" {
		t.Errorf("$everything _type (-want +got):\n%s", diff)
	}
	res, err = st.Everything(context.Background(), "p1", time.Now().Add(time.Hour), nil, 100, "")
	if err != nil || len(res.Matches) != 0 {
		t.Errorf("$everything _since future: %v, %d matches", err, len(res.Matches))
	}
	if _, err := st.Everything(context.Background(), "nobody", time.Time{}, nil, 10, ""); !errors.Is(err, fhirstore.ErrNotFound) {
		t.Errorf("$everything of a missing patient: %v, want ErrNotFound", err)
	}
}

func testSearchLastN(t *testing.T, st *fhirstore.Store, _ string) {
	// Every code (no codes given) answers as the per-code searches over the patient's
	// codes in order of first appearance would, undated readings and duplicates included.
	err := st.InTx(context.Background(), func(tx *fhirstore.Tx) error {
		for i, eff := range []string{"2024-01-09T00:00:00Z", "", "2024-01-09T00:00:00Z"} {
			o := observation("p2", cc("http://loinc.org", "8310-5", ""), eff)
			o["id"] = fmt.Sprintf("t%d", i)
			if _, err := tx.CreateWithID(context.Background(), "Observation", o["id"].(string), o); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	loinc := func(codes ...string) []string {
		for i, c := range codes {
			codes[i] = "http://loinc.org|" + c
		}
		return codes
	}
	for _, pc := range []struct {
		patient string
		codes   []string
	}{{"p1", loinc("8867-4", "8310-5", "2339-0")}, {"p2", loinc("8310-5", "85354-9", "2339-0")}} {
		for max := 1; max <= 4; max++ {
			want, err := st.LastN(context.Background(), pc.patient, pc.codes, max)
			if err != nil {
				t.Fatal(err)
			}
			got, err := st.LastN(context.Background(), pc.patient, nil, max)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(resultIDs(want, true), resultIDs(got, true)); diff != "" {
				t.Errorf("$lastn %s max=%d, every code vs the codes listed (-want +got):\n%s", pc.patient, max, diff)
			}
		}
	}

	tests := []struct {
		name  string
		codes []string
		max   int
		want  []string
	}{
		{"latest heart rate", []string{"http://loinc.org|8867-4"}, 1, []string{"o2"}},
		{"two of each", []string{"8867-4", "8310-5"}, 2, []string{"o2", "o1", "o3"}},
		{"all codes", nil, 1, []string{"o2", "o3", "o8"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := st.LastN(context.Background(), "p1", tc.codes, tc.max)
			if err != nil {
				t.Fatal(err)
			}
			g := resultIDs(got, true)
			w := tc.want
			if tc.codes == nil {
				sort.Strings(g)
			}
			if diff := cmp.Diff(w, g); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func testSearchUpdates(t *testing.T, st *fhirstore.Store, _ string) {
	ctx := context.Background()
	err := st.InTx(ctx, func(tx *fhirstore.Tx) error {
		_, _, err := tx.Update(ctx, "Patient", "p3", "PUT", func(cur *fhirstore.Resource) (map[string]any, error) {
			return map[string]any{"resourceType": "Patient", "gender": "other", "name": []any{map[string]any{"family": "Jones"}}}, nil
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := searchIDs(t, st, "Patient", "family=smith", false); len(got) != 0 {
		t.Errorf("old name still found after update: %v", got)
	}
	if diff := cmp.Diff([]string{"p3"}, searchIDs(t, st, "Patient", "family=jones&gender=other", false)); diff != "" {
		t.Errorf("new values (-want +got):\n%s", diff)
	}
	err = st.InTx(ctx, func(tx *fhirstore.Tx) error {
		_, err := tx.Delete(ctx, "Observation", "o1", nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"o2"}, searchIDs(t, st, "Observation", "code=8867-4", false)); diff != "" {
		t.Errorf("deleted resource still found (-want +got):\n%s", diff)
	}
}

func testSearchCustomParameter(t *testing.T, st *fhirstore.Store, dbURL string) {
	ctx := context.Background()
	sp := map[string]any{
		"resourceType": "SearchParameter", "url": "http://vigil.example/SearchParameter/obs-device-display",
		"name": "device-display", "status": "active", "code": "device-display", "base": []any{"Observation"},
		"type": "string", "expression": "Observation.device.display", "description": "Display of the device",
	}
	withDevice := func(id, display string) map[string]any {
		o := observation("p1", cc("http://loinc.org", "8867-4", ""), "2024-06-01")
		o["device"] = map[string]any{"display": display}
		return o
	}
	// Written before the parameter exists: found only after Reindex.
	if err := st.InTx(ctx, func(tx *fhirstore.Tx) error {
		_, err := tx.CreateWithID(ctx, "Observation", "before", withDevice("before", "Oximeter One"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Search(ctx, fhirstore.SearchRequest{Type: "Observation", Params: mustQuery(t, "device-display=oxi")}); err == nil {
		t.Fatal("unknown parameter accepted before registration")
	}
	bad := map[string]any{"resourceType": "SearchParameter", "status": "active", "code": "x", "base": []any{"Observation"},
		"type": "string", "expression": "Observation.(("}
	if err := st.InTx(ctx, func(tx *fhirstore.Tx) error { _, err := tx.Create(ctx, "SearchParameter", bad); return err }); !errors.Is(err, fhirstore.ErrInvalid) {
		t.Errorf("invalid expression: got %v, want ErrInvalid", err)
	}
	if err := st.InTx(ctx, func(tx *fhirstore.Tx) error {
		_, err := tx.CreateWithID(ctx, "SearchParameter", "sp1", sp)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := st.InTx(ctx, func(tx *fhirstore.Tx) error {
		_, err := tx.CreateWithID(ctx, "Observation", "after", withDevice("after", "Oximeter Two"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"after"}, searchIDs(t, st, "Observation", "device-display=oxi", false)); diff != "" {
		t.Errorf("before reindex (-want +got):\n%s", diff)
	}
	var calls []string
	if err := st.Reindex(ctx, "Observation", func(done, total int) { calls = append(calls, fmt.Sprintf("%d/%d", done, total)) }); err != nil {
		t.Fatal(err)
	}
	if len(calls) == 0 || !strings.HasPrefix(calls[len(calls)-1], "11/11") {
		t.Errorf("progress calls %v, want to end at 11/11", calls)
	}
	if diff := cmp.Diff([]string{"after", "before"}, searchIDs(t, st, "Observation", "device-display=oxi", false)); diff != "" {
		t.Errorf("after reindex (-want +got):\n%s", diff)
	}
	if err := st.Reindex(ctx, "", nil); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"o1", "o2"}, searchIDs(t, st, "Observation", "code=8867-4&patient=p1&date=lt2024-02", false)); diff != "" {
		t.Errorf("system reindex changed results (-want +got):\n%s", diff)
	}
	found := false
	for _, p := range st.SearchParams("Observation") {
		if p.Name == "device-display" && p.Type == "string" {
			found = true
		}
	}
	if !found {
		t.Error("SearchParams does not list the custom parameter")
	}
	// A restarted store knows the parameter again.
	st2, err := fhirstore.Open(ctx, dbURL, fhirstore.Options{Logger: QuietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"after", "before"}, searchIDs(t, st2, "Observation", "device-display=oxi", false)); diff != "" {
		t.Errorf("after restart (-want +got):\n%s", diff)
	}
	st2.Close()
	// Deleting the SearchParameter removes the parameter.
	if err := st.InTx(ctx, func(tx *fhirstore.Tx) error {
		_, err := tx.Delete(ctx, "SearchParameter", "sp1", nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Search(ctx, fhirstore.SearchRequest{Type: "Observation", Params: mustQuery(t, "device-display=oxi")}); err == nil {
		t.Error("parameter still known after its SearchParameter was deleted")
	}
}

func testTxSearch(t *testing.T, st *fhirstore.Store, _ string) {
	ctx := context.Background()
	err := st.InTx(ctx, func(tx *fhirstore.Tx) error {
		o := observation("p2", cc("http://loinc.org", "8867-4", ""), "2024-07-01")
		if _, err := tx.CreateWithID(ctx, "Observation", "intx", o); err != nil {
			return err
		}
		res, err := tx.Search(ctx, fhirstore.SearchRequest{Type: "Observation", Params: mustQuery(t, "patient=p2&code=8867-4")})
		if err != nil {
			return err
		}
		if diff := cmp.Diff([]string{"intx"}, resultIDs(res.Matches, false)); diff != "" {
			t.Errorf("transaction search does not see its own write (-want +got):\n%s", diff)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// testSearchRegressions covers bugs the TestScript suite found: a composite with a date
// component, the exclusive upper bound of a number's implicit range, and $everything's
// _type applied to the referenced resources too.
func testSearchRegressions(t *testing.T, st *fhirstore.Store, _ string) {
	ctx := context.Background()
	err := st.InTx(ctx, func(tx *fhirstore.Tx) error {
		for _, r := range []map[string]any{
			{"resourceType": "Observation", "status": "final", "subject": map[string]any{"reference": "Patient/p3"},
				"code": cc("http://loinc.org", "21112-8", "Birth date"), "valueDateTime": "1970-06-15", "effectiveDateTime": "2020-05-08T10:00:00Z"},
			{"resourceType": "Observation", "status": "final", "subject": map[string]any{"reference": "Patient/p3"},
				"code": cc("http://loinc.org", "11779-6", "Delivery date estimated"), "valueDateTime": "2024-03-01T10:00:00Z"},
			{"resourceType": "Observation", "status": "final", "subject": map[string]any{"reference": "Patient/p3"},
				"code": cc("http://loinc.org", "11778-8", "Delivery date"), "valuePeriod": map[string]any{"start": "2024-05-01", "end": "2024-05-03"}},
			{"resourceType": "RiskAssessment", "id": "ra3", "status": "final", "subject": map[string]any{"reference": "Patient/p3"},
				"prediction": []any{map[string]any{"probabilityDecimal": 0.85}}},
			{"resourceType": "RiskAssessment", "id": "ra4", "status": "final", "subject": map[string]any{"reference": "Patient/p3"},
				"prediction": []any{map[string]any{"probabilityDecimal": 0.75}}},
		} {
			var err error
			if id, ok := r["id"].(string); ok {
				_, err = tx.CreateWithID(ctx, r["resourceType"].(string), id, r)
			} else {
				_, err = tx.Create(ctx, r["resourceType"].(string), r)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	codes := func(typ, q string) []string {
		t.Helper()
		res, err := st.Search(ctx, fhirstore.SearchRequest{Type: typ, Params: mustQuery(t, q)})
		if err != nil {
			t.Fatalf("search %s?%s: %v", typ, q, err)
		}
		out := []string{}
		for _, r := range res.Matches {
			var m struct {
				ID   string `json:"id"`
				Code struct {
					Coding []struct{ Code string } `json:"coding"`
				} `json:"code"`
			}
			if err := json.Unmarshal(r.Body, &m); err != nil {
				t.Fatal(err)
			}
			if typ == "Observation" && len(m.Code.Coding) > 0 {
				out = append(out, m.Code.Coding[0].Code)
			} else {
				out = append(out, m.ID)
			}
		}
		sort.Strings(out)
		return out
	}
	tests := []struct {
		name string
		typ  string
		q    string
		want []string
	}{
		{"value-date alone", "Observation", "value-date=2024-03-01", []string{"11779-6"}},
		{"code-value-date as in the TestScript", "Observation", "code-value-date=http://loinc.org|21112-8$1970-06-15", []string{"21112-8"}},
		{"code-value-date day", "Observation", "code-value-date=http://loinc.org|11779-6$2024-03-01", []string{"11779-6"}},
		{"code-value-date prefix", "Observation", "code-value-date=11779-6$ge2024-02", []string{"11779-6"}},
		{"code-value-date instant", "Observation", "code-value-date=11779-6$2024-03-01T10:00:00Z", []string{"11779-6"}},
		{"code-value-date period", "Observation", "code-value-date=11778-8$2024-05", []string{"11778-8"}},
		{"code-value-date OR", "Observation", "code-value-date=11778-8$2024-05,21112-8$1970", []string{"11778-8", "21112-8"}},
		{"code-value-date is not the effective date", "Observation", "code-value-date=21112-8$2020-05-08", []string{}},
		{"code-value-date wrong code", "Observation", "code-value-date=8867-4$1970-06-15", []string{}},
		{"code-value-date wrong date", "Observation", "code-value-date=11779-6$2024-04", []string{}},
		{"code-value-date missing", "Observation", "code-value-date:missing=false", []string{"11778-8", "11779-6", "21112-8"}},
		{"number eq upper bound exclusive, lower inclusive", "RiskAssessment", "probability=0.8", []string{"ra2", "ra4"}},
		{"number eq excludes its upper bound", "RiskAssessment", "probability=0.7", []string{}},
		{"number ne keeps the upper bound", "RiskAssessment", "probability=ne0.8", []string{"ra1", "ra3"}},
		{"number eq more digits", "RiskAssessment", "probability=0.85", []string{"ra3"}},
		{"number eq integer precision", "RiskAssessment", "probability=1", []string{"ra2", "ra3", "ra4"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, codes(tc.typ, tc.q)); diff != "" {
				t.Errorf("%s?%s (-want +got):\n%s", tc.typ, tc.q, diff)
			}
		})
	}
	// _summary=count agrees with the matches, whichever way the count is computed.
	for _, q := range []string{
		"code=8867-4", "code=http://loinc.org|8867-4,8310-5", "patient=p1&code=8867-4", "code=8867-4&date=ge2024-01-02",
		"code:not=8867-4", "patient.gender=male", "_id=o1,o2&code=8867-4", "subject:Patient.name=anna&code=8310-5",
		"_has:Provenance:target:agent=Device/d1", "value-quantity=gt60||/min&code=8867-4", "code-value-date:missing=false",
	} {
		t.Run("count "+q, func(t *testing.T) {
			res, err := st.Search(ctx, fhirstore.SearchRequest{Type: "Observation", Params: mustQuery(t, q+"&_summary=count")})
			if err != nil {
				t.Fatal(err)
			}
			want := len(searchIDs(t, st, "Observation", q+"&_count=1000", false))
			if res.Total == nil || *res.Total != want {
				t.Errorf("Observation?%s&_summary=count = %v, want %d", q, res.Total, want)
			}
		})
	}
	t.Run("everything _type limits included", func(t *testing.T) {
		res, err := st.Everything(ctx, "p1", time.Time{}, []string{"Observation"}, 100, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range append(append([]*fhirstore.Resource{}, res.Matches...), res.Included...) {
			if r.Type != "Observation" {
				t.Errorf("$everything?_type=Observation returned %s/%s", r.Type, r.ID)
			}
		}
		if len(res.Matches) == 0 {
			t.Error("$everything?_type=Observation found no Observations")
		}
	})
}

// testSearchLatestN checks the "latest N" shape (_sort=-date&_count=N) against a walk of
// the whole result: the newest first, resources without a date last, ties by storage order,
// and paging through the cursor.
func testSearchLatestN(t *testing.T, st *fhirstore.Store, _ string) {
	ctx := context.Background()
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	err := st.InTx(ctx, func(tx *fhirstore.Tx) error {
		for i := 0; i < 60; i++ {
			o := observation("p2", cc("http://loinc.org", "8867-4", ""), "")
			o["id"] = fmt.Sprintf("hr%02d", i)
			switch {
			case i%10 == 9: // no date: sorts last
			case i%7 == 0: // a period: its end is the descending key
				o["effectivePeriod"] = map[string]any{"start": instant(start.Add(time.Duration(i) * time.Minute)), "end": instant(start.Add(time.Duration(i)*time.Minute + 90*time.Second))}
			default:
				// Pairs share an instant, so ties are broken by storage order.
				o["effectiveDateTime"] = instant(start.Add(time.Duration(i/2*2) * time.Minute))
			}
			if _, err := tx.CreateWithID(ctx, "Observation", o["id"].(string), o); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The expected orders, worked out from the data: the key of a reading in seconds
	// after start (a period's end descending, its start ascending), undated ones last
	// in creation order, ties in creation order.
	expect := func(desc bool) []string {
		type k struct {
			i, key int
			dated  bool
		}
		var ks []k
		for i := 0; i < 60; i++ {
			switch {
			case i%10 == 9:
				ks = append(ks, k{i, 0, false})
			case i%7 == 0 && desc:
				ks = append(ks, k{i, i*60 + 90, true})
			case i%7 == 0:
				ks = append(ks, k{i, i * 60, true})
			default:
				ks = append(ks, k{i, i / 2 * 2 * 60, true})
			}
		}
		sort.SliceStable(ks, func(a, b int) bool {
			if ks[a].dated != ks[b].dated {
				return ks[a].dated
			}
			if !ks[a].dated || ks[a].key == ks[b].key {
				return ks[a].i < ks[b].i
			}
			return (ks[a].key > ks[b].key) == desc
		})
		out := make([]string, len(ks))
		for n, x := range ks {
			out[n] = fmt.Sprintf("hr%02d", x.i)
		}
		return out
	}
	all := searchIDs(t, st, "Observation", "patient=p2&code=8867-4&_sort=-date&_count=1000", true)
	if diff := cmp.Diff(expect(true), all); diff != "" {
		t.Fatalf("newest first, undated last (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(expect(false), walk(t, st, "patient=p2&code=8867-4&_sort=date&_count=4", func(int) {})); diff != "" {
		t.Errorf("oldest first, paged (-want +got):\n%s", diff)
	}
	// A condition on the resource row itself (_lastUpdated) takes the joined form.
	if diff := cmp.Diff(expect(true), walk(t, st, "patient=p2&code=8867-4&_lastUpdated=gt2000-01-01&_sort=-date&_count=7", func(int) {})); diff != "" {
		t.Errorf("newest first with _lastUpdated, paged (-want +got):\n%s", diff)
	}
	for _, n := range []int{1, 3, 7} {
		t.Run(fmt.Sprintf("count %d", n), func(t *testing.T) {
			q := fmt.Sprintf("patient=p2&code=8867-4&_sort=-date&_count=%d", n)
			if diff := cmp.Diff(all[:n], searchIDs(t, st, "Observation", q, true)); diff != "" {
				t.Errorf("first page (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(all, walk(t, st, q, func(int) {})); diff != "" {
				t.Errorf("paged walk (-want +got):\n%s", diff)
			}
		})
	}
	// A resource with several dates sorts by its newest (descending) or oldest
	// (ascending) one, and appears once.
	err = st.InTx(ctx, func(tx *fhirstore.Tx) error {
		for id, eff := range map[string][2]any{
			"ma": {"effectiveTiming", map[string]any{"event": []any{"2025-02-01T10:00:00Z", "2025-02-01T12:00:00Z", "2025-02-01T11:00:00Z", "2025-02-01T12:00:00Z"}}},
			"mb": {"effectiveDateTime", "2025-02-01T11:30:00Z"},
			"mc": {"effectiveDateTime", "2025-02-01T12:30:00Z"},
		} {
			o := observation("pm", cc("http://loinc.org", "8867-4", ""), "")
			o[eff[0].(string)] = eff[1]
			if _, err := tx.CreateWithID(ctx, "Observation", id, o); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ q, want string }{
		{"patient=pm&_sort=-date&_count=1", "mc ma mb"},
		{"patient=pm&_sort=date&_count=1", "ma mb mc"},
		{"patient=pm&_sort=-date&_count=10", "mc ma mb"},
	} {
		if diff := cmp.Diff(strings.Fields(tc.want), walk(t, st, tc.q, func(int) {})); diff != "" {
			t.Errorf("Observation?%s (-want +got):\n%s", tc.q, diff)
		}
	}
	// Several rows of the parameter (Goal.target is a list; two equal due dates make two
	// equal rows): still once per resource, by its newest or oldest.
	err = st.InTx(ctx, func(tx *fhirstore.Tx) error {
		for id, dues := range map[string][]string{"ga": {"2025-01-01", "2025-06-01", "2025-06-01"}, "gb": {"2025-03-01"}, "gc": {"2025-07-01"}, "gd": nil} {
			g := map[string]any{"resourceType": "Goal", "lifecycleStatus": "active", "description": map[string]any{"text": id},
				"subject": map[string]any{"reference": "Patient/pm"}}
			var targets []any
			for _, d := range dues {
				targets = append(targets, map[string]any{"dueDate": d})
			}
			if targets != nil {
				g["target"] = targets
			}
			if _, err := tx.CreateWithID(ctx, "Goal", id, g); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ q, want string }{
		{"patient=pm&_sort=-target-date&_count=1", "gc ga gb gd"},
		{"patient=pm&_sort=target-date&_count=1", "ga gb gc gd"},
		{"patient=pm&_sort=-target-date&_count=2", "gc ga gb gd"},
	} {
		var got []string
		cursor := ""
		for page := 0; page < 10; page++ {
			res, err := st.Search(ctx, fhirstore.SearchRequest{Type: "Goal", Params: mustQuery(t, tc.q), Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, resultIDs(res.Matches, true)...)
			if cursor = res.Next; cursor == "" {
				break
			}
		}
		if diff := cmp.Diff(strings.Fields(tc.want), got); diff != "" {
			t.Errorf("Goal?%s (-want +got):\n%s", tc.q, diff)
		}
	}
	asc := searchIDs(t, st, "Observation", "patient=p2&code=8867-4&_sort=date&_count=2", true)
	if diff := cmp.Diff([]string{"hr00", "hr01"}, asc); diff != "" {
		t.Errorf("oldest first (-want +got):\n%s", diff)
	}
}

// instant renders t as a FHIR instant in UTC.
func instant(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// testLatestObservations walks the newest-Observation-per-code table through the writes
// that move it (a newer reading, one amended to an older time, the latest deleted, a
// batch with two readings of a code, re-creation, reindex) and checks $lastn max=1 and
// Tx.LatestObservations against per-code searches sorted by date, which do not use it.
func testLatestObservations(t *testing.T, st *fhirstore.Store, _ string) {
	ctx := context.Background()
	const hr, spo2 = "8867-4", "2708-6"
	mdcHR := map[string]any{"coding": []any{coding("http://loinc.org", hr, ""), coding("urn:iso:std:iso:11073:10101", "147842", "")}}
	mk := func(id string, code map[string]any, eff string) {
		t.Helper()
		err := st.InTx(ctx, func(tx *fhirstore.Tx) error {
			_, _, err := tx.Update(ctx, "Observation", id, "PUT", func(*fhirstore.Resource) (map[string]any, error) {
				return observation("lp", code, eff), nil
			})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// bySearch is the answer of the general path: for each code, the newest Observation of
	// the patient (first stored on a tie), each listed once.
	bySearch := func(codes ...string) []string {
		t.Helper()
		var out []string
		for _, c := range codes {
			res, err := st.Search(ctx, fhirstore.SearchRequest{Type: "Observation", Params: url.Values{
				"patient": {"Patient/lp"}, "code": {c}, "_sort": {"-date"}, "_count": {"1"}}})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range res.Matches {
				if !slices.Contains(out, r.ID) {
					out = append(out, r.ID)
				}
			}
		}
		return out
	}
	check := func(step string, want []string) {
		t.Helper()
		codes := []string{"http://loinc.org|" + hr, "urn:iso:std:iso:11073:10101|147842", "http://loinc.org|" + spo2}
		if diff := cmp.Diff(want, bySearch(codes...)); diff != "" {
			t.Fatalf("%s: the general path disagrees with the expectation (-want +got):\n%s", step, diff)
		}
		got, err := st.LastN(ctx, "lp", codes, 1)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, resultIDs(got, true)); diff != "" {
			t.Errorf("%s: $lastn max=1 by code (-want +got):\n%s", step, diff)
		}
		got, err = st.LastN(ctx, "lp", nil, 1)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(slices.Sorted(slices.Values(want)), resultIDs(got, false)); diff != "" {
			t.Errorf("%s: $lastn max=1, every code (-want +got):\n%s", step, diff)
		}
		var latest []*fhirstore.Resource
		if err := st.InTx(ctx, func(tx *fhirstore.Tx) error {
			latest, err = tx.LatestObservations(ctx, "lp", fhirstore.DateMin)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(resultIDs(got, false), resultIDs(latest, false)); diff != "" {
			t.Errorf("%s: Tx.LatestObservations (-want +got):\n%s", step, diff)
		}
	}

	mk("l1", mdcHR, "2024-03-01T10:00:00Z")
	mk("l2", cc("http://loinc.org", spo2, ""), "2024-03-01T10:00:00Z")
	check("first readings", []string{"l1", "l2"})
	mk("l3", mdcHR, "2024-03-01T11:00:00Z")
	check("a newer heart rate", []string{"l3", "l2"})
	mk("l4", mdcHR, "2024-03-01T11:00:00Z")
	check("a tie keeps the first stored", []string{"l3", "l2"})
	mk("l3", mdcHR, "2024-03-01T09:00:00Z")
	check("the latest amended to an older time", []string{"l4", "l2"})
	err := st.InTx(ctx, func(tx *fhirstore.Tx) error {
		_, err := tx.Delete(ctx, "Observation", "l4", nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	check("the latest deleted", []string{"l1", "l2"})
	var batch []*fhirstore.Resource
	err = st.InTx(ctx, func(tx *fhirstore.Tx) error {
		batch, err = tx.CreateMany(ctx, "Observation", nil, []map[string]any{
			observation("lp", mdcHR, "2024-03-02T08:00:00Z"),
			observation("lp", mdcHR, "2024-03-02T09:00:00Z"),
			observation("lp", cc("http://loinc.org", spo2, ""), "2024-03-02T07:00:00Z"),
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	check("a batch with two readings of a code", []string{batch[1].ID, batch[2].ID})
	mk("l4", mdcHR, "2024-03-03T00:00:00Z")
	check("re-created after deletion", []string{"l4", batch[2].ID})
	if err := st.Reindex(ctx, "Observation", nil); err != nil {
		t.Fatal(err)
	}
	check("after reindex", []string{"l4", batch[2].ID})
	var since []*fhirstore.Resource
	if err := st.InTx(ctx, func(tx *fhirstore.Tx) error {
		since, err = tx.LatestObservations(ctx, "lp", time.Date(2024, 3, 2, 12, 0, 0, 0, time.UTC).UnixMicro())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"l4"}, resultIDs(since, false)); diff != "" {
		t.Errorf("LatestObservations since noon of 2 March (-want +got):\n%s", diff)
	}
}

// testPatientDateSearch checks the date span that reference rows carry (a patient-scoped
// date search narrows the patient's readings with it before the exact date conditions):
// for every prefix, patient=X&date=… finds exactly what date=… finds among X's
// Observations, with instants, periods crossing the bounds, partial dates, undated
// readings and a reading that changes its time.
func testPatientDateSearch(t *testing.T, st *fhirstore.Store, _ string) {
	ctx := context.Background()
	obs := map[string]map[string]any{
		"dp1": observation("dpat", cc("http://loinc.org", "8867-4", ""), "2025-02-01T10:00:00Z"),
		"dp2": observation("dpat", cc("http://loinc.org", "8867-4", ""), "2025-02-01T12:30:00+02:00"),
		"dp3": observation("dpat", cc("http://loinc.org", "8867-4", ""), ""),
		"dp4": observation("dpat", cc("http://loinc.org", "8867-4", ""), "2025-02"),
		"dp5": observation("dpat", cc("http://loinc.org", "8867-4", ""), ""),
		"dp6": observation("other", cc("http://loinc.org", "8867-4", ""), "2025-02-01T10:00:00Z"),
	}
	obs["dp5"]["effectivePeriod"] = map[string]any{"start": "2025-01-31T23:00:00Z", "end": "2025-02-01T10:30:00Z"}
	err := st.InTx(ctx, func(tx *fhirstore.Tx) error {
		for id, o := range obs {
			if _, err := tx.CreateWithID(ctx, "Observation", id, o); err != nil {
				return err
			}
		}
		// dp1 moves to the next day: its reference rows must follow.
		_, _, err := tx.Update(ctx, "Observation", "dp1", "PUT", func(*fhirstore.Resource) (map[string]any, error) {
			return observation("dpat", cc("http://loinc.org", "8867-4", ""), "2025-02-02T09:00:00Z"), nil
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	ofPatient := func(rs []*fhirstore.Resource) []string {
		out := []string{}
		for _, r := range rs {
			if strings.HasPrefix(r.ID, "dp") && r.ID != "dp6" {
				out = append(out, r.ID)
			}
		}
		sort.Strings(out)
		return out
	}
	compare := func(step string) {
		t.Helper()
		for _, dates := range patientDateQueries {
			all, err := st.Search(ctx, fhirstore.SearchRequest{Type: "Observation", Params: url.Values{"date": dates, "_count": {"1000"}}})
			if err != nil {
				t.Fatal(err)
			}
			scoped, err := st.Search(ctx, fhirstore.SearchRequest{Type: "Observation", Params: url.Values{
				"patient": {"dpat"}, "date": dates, "_count": {"1000"}}})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(ofPatient(all.Matches), resultIDs(scoped.Matches, false)); diff != "" {
				t.Errorf("%s: date=%v: patient-scoped search disagrees with the unscoped one (-want +got):\n%s", step, dates, diff)
			}
		}
	}
	compare("spans written")
	// Rows without a span (written before migration 7's code, during a rolling upgrade)
	// have the whole time line: never narrowed away.
	if _, err := st.DB().ExecContext(ctx, `UPDATE idx_reference SET dlow = -4611686018427387904, dhigh = 4611686018427387904`); err != nil {
		t.Fatal(err)
	}
	compare("spans at their default")
}

var patientDateQueries = [][]string{
	{"2025-02-01"}, {"eq2025-02-01T10:00:00Z"}, {"ge2025-02-01T10:00:00Z"}, {"gt2025-02-01T10:15:00Z"},
	{"lt2025-02-01T10:00:00Z"}, {"le2025-02-01"}, {"sa2025-02-01"}, {"eb2025-02-01T10:00:00Z"},
	{"ne2025-02-01"}, {"ap2025-02-01"}, {"ge2025-02-01T09:00:00Z", "lt2025-02-01T11:00:00Z"},
	{"2025-02-01T10:00:00Z,2025-02-02"}, {"ge2025-02-02", "le2025-02-02"},
}
