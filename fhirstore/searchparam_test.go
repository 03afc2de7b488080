package fhirstore

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/vigil-health/vigil/fhirpath"
)

func TestOfficialExpressionsCompile(t *testing.T) {
	raws, err := loadBaseParams()
	if err != nil {
		t.Fatal(err)
	}
	if len(raws) != 1378 {
		t.Fatalf("%d search parameters embedded, want 1378", len(raws))
	}
	withExpr, perBase := 0, 0
	for _, r := range raws {
		if r.Expression == "" {
			// _text, _content, _query and _list-like parameters have no expression.
			continue
		}
		withExpr++
		if _, err := fhirpath.Compile(r.Expression); err != nil {
			t.Errorf("%s: %v", r.URL, err)
		}
		for _, base := range r.Base {
			narrowed := narrowExpression(r.Expression, base)
			if narrowed == "" {
				t.Errorf("%s: nothing left for base %s of %q", r.URL, base, r.Expression)
				continue
			}
			if _, err := fhirpath.Compile(narrowed); err != nil {
				t.Errorf("%s for %s: %v", r.URL, base, err)
			}
			if r.Type != ParamSpecial { // Location near is compiled but not indexed
				perBase++
			}
		}
		for _, c := range r.Component {
			if _, err := fhirpath.Compile(c.Expression); err != nil {
				t.Errorf("%s component %s: %v", r.URL, c.Definition, err)
			}
		}
	}
	reg, err := NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range reg.snapshot().byType {
		for _, p := range m {
			if p.expr != nil {
				n++
			}
		}
	}
	if n != perBase {
		t.Errorf("registry holds %d compiled (parameter, base) pairs, want %d", n, perBase)
	}
	t.Logf("%d of 1378 parameters have an expression; %d (parameter, base) pairs compiled", withExpr, perBase)
}

func TestNarrowExpression(t *testing.T) {
	tests := []struct {
		name, expr, base, want string
	}{
		{"keeps own branch", "AllergyIntolerance.code | AllergyIntolerance.reaction.substance | Condition.code", "Condition", "Condition.code"},
		{"parenthesised", "(DeviceRequest.code as CodeableConcept) | DiagnosticReport.code", "DeviceRequest", "(DeviceRequest.code as CodeableConcept)"},
		{"resource base", "Resource.meta.tag", "Observation", "Resource.meta.tag"},
		{"union inside function stays", "Observation.component.where(code.coding.code = 'a' | 'b')", "Observation", "Observation.component.where(code.coding.code = 'a' | 'b')"},
		{"other type only", "Patient.name", "Observation", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := narrowExpression(tc.expr, tc.base); got != tc.want {
				t.Errorf("narrowExpression(%q, %s) = %q, want %q", tc.expr, tc.base, got, tc.want)
			}
		})
	}
}

// exampleFiles returns the FHIR example resources vendored for tests.
func exampleFiles(t *testing.T) []string {
	var files []string
	for _, pat := range []string{"../testdata/fhirpath/*.json", "../testdata/fhirpath/examples/*.json", "../testdata/examples/*.json"} {
		m, err := filepath.Glob(pat)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		t.Fatal("no example files found")
	}
	return files
}

func TestIndexSpecExamples(t *testing.T) {
	ix, err := NewSearchIndexer()
	if err != nil {
		t.Fatal(err)
	}
	total, resources := 0, 0
	var index func(name string, res map[string]any)
	index = func(name string, res map[string]any) {
		typ, _ := res["resourceType"].(string)
		if typ == "" {
			return
		}
		resources++
		rows, err := ix.index(typ, res, true)
		if err != nil {
			t.Errorf("%s (%s): %v", name, typ, err)
			return
		}
		total += len(rows.Tokens) + len(rows.Strings) + len(rows.References) + len(rows.Dates) + len(rows.Numbers) + len(rows.Quantities) + len(rows.URIs)
		if entries, ok := res["entry"].([]any); ok {
			for _, e := range entries {
				em, _ := e.(map[string]any)
				if r, ok := em["resource"].(map[string]any); ok {
					index(name+" entry", r)
				}
			}
		}
		if contained, ok := res["contained"].([]any); ok {
			for _, c := range contained {
				if r, ok := c.(map[string]any); ok {
					index(name+" contained", r)
				}
			}
		}
	}
	for _, f := range exampleFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		v, err := fhirpath.ParseJSON(b)
		if err != nil {
			continue // some fixtures are deliberately not resources
		}
		if m, ok := v.(map[string]any); ok {
			index(filepath.Base(f), m)
		}
	}
	if total == 0 {
		t.Fatal("no index rows extracted from the examples")
	}
	t.Logf("%d resources indexed into %d rows", resources, total)
}

func TestIndexRowsOfObservation(t *testing.T) {
	ix, err := NewSearchIndexer()
	if err != nil {
		t.Fatal(err)
	}
	body := `{"resourceType":"Observation","id":"bp","status":"final",
		"meta":{"tag":[{"system":"urn:t","code":"x"}],"profile":["http://hl7.org/fhir/StructureDefinition/vitalsigns"]},
		"code":{"coding":[{"system":"http://loinc.org","code":"85354-9","display":"Blood pressure"}],"text":"BP"},
		"subject":{"reference":"Patient/p1","identifier":{"system":"urn:mrn","value":"7"}},
		"effectiveDateTime":"2024-01-02T10:00:00+02:00",
		"component":[
			{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":120,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}},
			{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":80.0,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}`
	v, err := fhirpath.ParseJSON([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := ix.index("Observation", v.(map[string]any), true)
	if err != nil {
		t.Fatal(err)
	}
	pick := func(param string) []any {
		var out []any
		for _, r := range rows.Tokens {
			if r.Param == param {
				out = append(out, r)
			}
		}
		for _, r := range rows.References {
			if r.Param == param {
				out = append(out, r)
			}
		}
		for _, r := range rows.Dates {
			if r.Param == param {
				out = append(out, r)
			}
		}
		for _, r := range rows.Quantities {
			if r.Param == param {
				out = append(out, r)
			}
		}
		for _, r := range rows.URIs {
			if r.Param == param {
				out = append(out, r)
			}
		}
		return out
	}
	lo := time.Date(2024, 1, 2, 8, 0, 0, 0, time.UTC).UnixMicro()
	mmHg := 133.322387415
	tests := []struct {
		param string
		want  []any
	}{
		{"code", []any{TokenRow{Param: "code", System: "http://loinc.org", Code: "85354-9", Text: "bp blood pressure"}}},
		{"subject", []any{ReferenceRow{Param: "subject", TargetType: "Patient", TargetID: "p1"}}},
		{"patient", []any{ReferenceRow{Param: "patient", TargetType: "Patient", TargetID: "p1"}}},
		{"subject:identifier", []any{TokenRow{Param: "subject:identifier", System: "urn:mrn", Code: "7"}}},
		{"date", []any{DateRow{Param: "date", Low: lo, High: lo + 999999}}},
		{"_tag", []any{TokenRow{Param: "_tag", System: "urn:t", Code: "x"}}},
		{"_profile", []any{URIRow{Param: "_profile", URI: "http://hl7.org/fhir/StructureDefinition/vitalsigns"}}},
		{"component-code-value-quantity$0", []any{
			TokenRow{Param: "component-code-value-quantity$0", System: "http://loinc.org", Code: "8480-6", Grp: 1},
			TokenRow{Param: "component-code-value-quantity$0", System: "http://loinc.org", Code: "8462-4", Grp: 2}}},
		{"component-code-value-quantity$1", []any{
			QuantityRow{Param: "component-code-value-quantity$1", Value: 120, Low: 119.5, High: 120.5, System: UCUMSystem, Code: "mm[Hg]",
				CCode: "Pa", CValue: 120 * mmHg, CLow: 119.5 * mmHg, CHigh: 120.5 * mmHg, Grp: 1},
			QuantityRow{Param: "component-code-value-quantity$1", Value: 80, Low: 79.95, High: 80.05, System: UCUMSystem, Code: "mm[Hg]",
				CCode: "Pa", CValue: 80 * mmHg, CLow: 79.95 * mmHg, CHigh: 80.05 * mmHg, Grp: 2}}},
	}
	approx := cmpopts.EquateApprox(1e-9, 1e-6)
	// Group numbers are per resource and only need to pair the components of one element.
	noGrp := cmp.Options{cmpopts.IgnoreFields(TokenRow{}, "Grp"), cmpopts.IgnoreFields(QuantityRow{}, "Grp")}
	for _, tc := range tests {
		t.Run(tc.param, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, pick(tc.param), approx, noGrp); diff != "" {
				t.Errorf("rows (-want +got):\n%s", diff)
			}
		})
	}
	codes, values := pick("component-code-value-quantity$0"), pick("component-code-value-quantity$1")
	for i := range codes {
		if codes[i].(TokenRow).Grp == 0 || codes[i].(TokenRow).Grp != values[i].(QuantityRow).Grp {
			t.Errorf("component %d: code group %d, value group %d", i, codes[i].(TokenRow).Grp, values[i].(QuantityRow).Grp)
		}
	}
	if codes[0].(TokenRow).Grp == codes[1].(TokenRow).Grp {
		t.Error("two components share a group")
	}
}

func TestParseDateRange(t *testing.T) {
	us := func(s string) int64 {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm.UnixMicro()
	}
	tests := []struct {
		in        string
		low, high string
		ok        bool
	}{
		{"2020", "2020-01-01T00:00:00Z", "2020-12-31T23:59:59.999999Z", true},
		{"2020-02", "2020-02-01T00:00:00Z", "2020-02-29T23:59:59.999999Z", true},
		{"2021-02-28", "2021-02-28T00:00:00Z", "2021-02-28T23:59:59.999999Z", true},
		{"2020-03-04T05:06", "2020-03-04T05:06:00Z", "2020-03-04T05:06:59.999999Z", true},
		{"2020-03-04T05:06:07Z", "2020-03-04T05:06:07Z", "2020-03-04T05:06:07.999999Z", true},
		{"2020-03-04T05:06:07.5+02:00", "2020-03-04T03:06:07.5Z", "2020-03-04T03:06:07.599999Z", true},
		{"2020-03-04T05:06:07.123-05:00", "2020-03-04T10:06:07.123Z", "2020-03-04T10:06:07.123999Z", true},
		{"2020-03-04T05:06:07", "2020-03-04T05:06:07Z", "2020-03-04T05:06:07.999999Z", true},
		{"2020-13", "", "", false},
		{"yesterday", "", "", false},
		{"2020-03-04T25:00:00Z", "", "", false},
		{"", "", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			lo, hi, ok := ParseDateRange(tc.in)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			if lo != us(tc.low) || hi != us(tc.high) {
				t.Errorf("got [%s, %s], want [%s, %s]", time.UnixMicro(lo).UTC().Format(time.RFC3339Nano), time.UnixMicro(hi).UTC().Format(time.RFC3339Nano), tc.low, tc.high)
			}
		})
	}
}

func TestNumberRange(t *testing.T) {
	tests := []struct {
		in           string
		v, low, high float64
	}{
		{"100", 100, 99.5, 100.5},
		{"100.0", 100, 99.95, 100.05},
		{"0.25", 0.25, 0.245, 0.255},
		{"-3", -3, -3.5, -2.5},
		// search.html: 1e2 has one significant figure and matches [95, 105).
		{"1e2", 100, 95, 105},
		{"1.5e1", 15, 14.95, 15.05},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			v, lo, hi, err := NumberRange(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(v-tc.v) > 1e-9 || math.Abs(lo-tc.low) > 1e-9 || math.Abs(hi-tc.high) > 1e-9 {
				t.Errorf("got %v [%v, %v), want %v [%v, %v)", v, lo, hi, tc.v, tc.low, tc.high)
			}
		})
	}
	if _, _, _, err := NumberRange("abc"); err == nil {
		t.Error("abc parsed as a number")
	}
}

func TestCanonicalUnit(t *testing.T) {
	tests := []struct {
		name  string
		code  string
		value float64
		want  float64
		canon string
	}{
		{"mmHg to Pa", "mm[Hg]", 120, 15998.6864898, "Pa"},
		{"kPa to Pa", "kPa", 16, 16000, "Pa"},
		{"Cel to K", "Cel", 37, 310.15, "K"},
		{"degF to K", "[degF]", 98.6, 310.15, "K"},
		{"lb to g", "[lb_av]", 1, 453.59237, "g"},
		{"kg to g", "kg", 70, 70000, "g"},
		{"beats per minute", "{beats}/min", 72, 72, "/min"},
		{"per minute", "/min", 72, 72, "/min"},
		{"percent", "%", 97, 97, "%"},
		{"mg/dL", "mg/dL", 100, 1, "g/L"},
		{"mmol/L", "mmol/L", 5.5, 5.5, "mmol/L"},
		{"inch", "[in_i]", 10, 0.254, "m"},
		{"cm", "cm", 180, 1.8, "m"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := CanonicalUnit(tc.code)
			if !ok {
				t.Fatalf("%s not convertible", tc.code)
			}
			if c.Code != tc.canon || math.Abs(c.Convert(tc.value)-tc.want) > 1e-6 {
				t.Errorf("%v %s = %v %s, want %v %s", tc.value, tc.code, c.Convert(tc.value), c.Code, tc.want, tc.canon)
			}
		})
	}
	if _, ok := CanonicalUnit("kg/m2"); ok {
		t.Error("kg/m2 should not convert (not in the device table)")
	}
	g, _ := glucoseAlternate("g/L")
	if got := g.Convert(1); math.Abs(got-100/18.016) > 1e-9 {
		t.Errorf("100 mg/dL glucose = %v mmol/L", got)
	}
}

func TestNormalizeString(t *testing.T) {
	tests := map[string]string{"Müller": "muller", "ÉLODIE": "elodie", "São Paulo": "sao paulo", "plain": "plain", "Zürich": "zurich"}
	for in, want := range tests {
		if got := NormalizeString(in); got != want {
			t.Errorf("NormalizeString(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRegisterRejects(t *testing.T) {
	tests := []struct {
		name string
		sp   string
	}{
		{"not a SearchParameter", `{"resourceType":"Patient"}`},
		{"no code", `{"resourceType":"SearchParameter","status":"active","base":["Patient"],"type":"string","expression":"Patient.name"}`},
		{"bad type", `{"resourceType":"SearchParameter","status":"active","code":"x","base":["Patient"],"type":"special","expression":"Patient.name"}`},
		{"bad expression", `{"resourceType":"SearchParameter","status":"active","code":"x","base":["Patient"],"type":"string","expression":"Patient.name.where("}`},
		{"no expression", `{"resourceType":"SearchParameter","status":"active","code":"x","base":["Patient"],"type":"string"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg, err := NewRegistry()
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(tc.sp), &m); err != nil {
				t.Fatal(err)
			}
			if err := reg.Register(m); err == nil {
				t.Error("accepted")
			}
		})
	}
	// A draft parameter is ignored, not registered.
	reg, _ := NewRegistry()
	draft := map[string]any{"resourceType": "SearchParameter", "status": "draft", "code": "nick", "base": []any{"Patient"}, "type": "string", "expression": "Patient.name.given"}
	if err := reg.Register(draft); err != nil || reg.snapshot().lookup("Patient", "nick") != nil {
		t.Errorf("draft: err %v, registered %v", err, reg.snapshot().lookup("Patient", "nick") != nil)
	}
	// Registering on one registry leaves the shared base untouched.
	draft["status"] = "active"
	if err := reg.Register(draft); err != nil {
		t.Fatal(err)
	}
	other, _ := NewRegistry()
	if other.snapshot().lookup("Patient", "nick") != nil || reg.snapshot().lookup("Patient", "nick") == nil {
		t.Error("registration leaked into another registry or was lost")
	}
}

func TestUnregisterRestoresOfficial(t *testing.T) {
	reg, err := NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	official := reg.snapshot().lookup("Observation", "combo-code")
	custom := map[string]any{"resourceType": "SearchParameter", "url": "urn:x:combo", "status": "active", "code": "combo-code",
		"base": []any{"Observation"}, "type": "token", "expression": "Observation.category"}
	if err := reg.Register(custom); err != nil {
		t.Fatal(err)
	}
	if got := reg.snapshot().lookup("Observation", "combo-code").url; got != "urn:x:combo" {
		t.Fatalf("registered url %q", got)
	}
	if _, ok := reg.snapshot().virtualOf("Observation", "combo-code"); ok {
		t.Error("a registered definition stays virtual")
	}
	if err := reg.Unregister(custom); err != nil {
		t.Fatal(err)
	}
	if got := reg.snapshot().lookup("Observation", "combo-code"); got != official {
		t.Errorf("official definition not restored: %+v", got)
	}
	if _, ok := reg.snapshot().virtualOf("Observation", "combo-code"); !ok {
		t.Error("virtual mapping not restored")
	}
}
