package fhirpath

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const testdataDir = "../testdata/fhirpath"

var (
	fixtureMu sync.Mutex
	fixtures  = map[string]any{}
)

// fixture loads a resource from testdata/fhirpath (cached; tests must not modify it).
func fixture(t testing.TB, name string) any {
	t.Helper()
	fixtureMu.Lock()
	defer fixtureMu.Unlock()
	if r, ok := fixtures[name]; ok {
		return r
	}
	b, err := os.ReadFile(filepath.Join(testdataDir, name))
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseJSON(b)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	fixtures[name] = r
	return r
}

type evalCase struct {
	name    string
	expr    string
	input   string // fixture file; "" evaluates on no input
	want    []string
	wantErr bool
}

// fixedNow is the clock of the tests.
var fixedNow = time.Date(2024, 5, 17, 10, 30, 15, 250e6, time.FixedZone("", 2*3600))

func runEvalCases(t *testing.T, cases []evalCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			expr, err := Compile(tc.expr)
			if err != nil {
				if tc.wantErr {
					return
				}
				t.Fatalf("Compile(%q): %v", tc.expr, err)
			}
			var input any
			if tc.input != "" {
				input = fixture(t, tc.input)
			}
			got, err := expr.Evaluate(input, &Env{Now: fixedNow, Vars: map[string]Collection{"two": {NewValue(int64(2))}}})
			if tc.wantErr {
				if err == nil {
					t.Fatalf("Evaluate(%q) = %v, want an error", tc.expr, got)
				}
				if !errors.Is(err, ErrEvaluation) {
					t.Errorf("error %v does not wrap ErrEvaluation", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Evaluate(%q): %v", tc.expr, err)
			}
			gs := got.Strings()
			if len(gs) == 0 {
				gs = nil
			}
			if diff := cmp.Diff(tc.want, gs); diff != "" {
				t.Errorf("Evaluate(%q) mismatch (-want +got):\n%s", tc.expr, diff)
			}
		})
	}
}

func s(v ...string) []string { return v }

var (
	T = s("true")
	F = s("false")
)

const (
	pat   = "Patient-example.json"
	edge  = "Patient-edge.json"
	obs   = "Observation-example.json"
	bp    = "Observation-blood-pressure.json"
	qst   = "Questionnaire-3141.json"
	bndl  = "Bundle-bundle-transaction.json"
	rbndl = "Bundle-vigil-readings.json"
)

func TestNavigation(t *testing.T) {
	runEvalCases(t, []evalCase{
		{name: "type prefix", expr: "Patient.name.family", input: pat, want: s("Chalmers", "Windsor")},
		{name: "no type prefix", expr: "name.given", input: pat, want: s("Peter", "James", "Jim", "Peter", "James")},
		{name: "wrong type prefix", expr: "Observation.status", input: pat},
		{name: "supertype prefix", expr: "Resource.id", input: pat, want: s("example")},
		{name: "domain resource prefix", expr: "DomainResource.id", input: obs, want: s("example")},
		{name: "missing element", expr: "Patient.foo", input: pat},
		{name: "choice element", expr: "Observation.value.value", input: obs, want: s("185")},
		{name: "choice via as function", expr: "Observation.value.as(Quantity).unit", input: obs, want: s("lbs")},
		{name: "choice as wrong type", expr: "Observation.value.as(string)", input: obs},
		{name: "choice as operator", expr: "(Observation.value as Quantity).code", input: obs, want: s("[lb_av]")},
		{name: "choice ofType", expr: "Observation.effective.ofType(dateTime)", input: obs, want: s("2016-03-28")},
		{name: "choice ofType other", expr: "Observation.effective.ofType(Period)", input: obs},
		{name: "component values", expr: "Observation.component.value.as(Quantity).value", input: bp, want: s("107", "60")},
		{name: "backbone element", expr: "Observation.component.code.coding.where(system = %loinc).code", input: bp, want: s("8480-6", "8462-4")},
		{name: "indexer", expr: "Patient.name[1].given", input: pat, want: s("Jim")},
		{name: "indexer out of range", expr: "Patient.name[5]", input: pat},
		{name: "indexer expression", expr: "Patient.name[1+1].family", input: pat, want: s("Windsor")},
		{name: "backtick identifier", expr: "Patient.`name`.`family`", input: pat, want: s("Chalmers", "Windsor")},
		{name: "content reference", expr: "Questionnaire.item.item.item.linkId", input: qst, want: s("1.1.1", "2.1.2")},
		{name: "contained resource", expr: "Patient.contained.name", input: edge, want: s("Contained Clinic", `{"family":"Careful"}`)},
		{name: "contained type filter", expr: "Patient.contained.ofType(Practitioner).name.family", input: edge, want: s("Careful")},
		{name: "bundle entry resource type", expr: "Bundle.entry.resource.ofType(Patient).id", input: bndl, want: s("123", "123a")},
		{name: "primitive with null and extension", expr: "Patient.name[0].given", input: edge, want: s("Jane", "null", "Q")},
		{name: "primitive without value has no value", expr: "Patient.name[0].given[1].hasValue()", input: edge, want: F},
		{name: "primitive extension", expr: "Patient.name[0].given[1].extension.url", input: edge, want: s("http://example.org/ext/absent")},
		{name: "primitive sibling extension", expr: "Patient.birthDate.extension('http://hl7.org/fhir/StructureDefinition/patient-birthTime').value", input: pat, want: s("1974-12-25T14:35:45-05:00")},
		{name: "choice primitive integer", expr: "Patient.multipleBirth", input: edge, want: s("2")},
		{name: "this at root", expr: "$this.id", input: pat, want: s("example")},
		{name: "context variable", expr: "%context.id", input: pat, want: s("example")},
		{name: "resource variable", expr: "Patient.name.select(%resource.id)", input: pat, want: s("example", "example", "example")},
		{name: "root resource variable", expr: "%rootResource.gender", input: pat, want: s("male")},
		{name: "user variable", expr: "%two + 1", want: s("3")},
		{name: "undefined variable", expr: "%nope", wantErr: true},
		{name: "ucum variable", expr: "%ucum", want: s("http://unitsofmeasure.org")},
		{name: "loinc variable", expr: "%loinc", want: s("http://loinc.org")},
		{name: "sct variable", expr: "%sct", want: s("http://snomed.info/sct")},
		{name: "vs variable", expr: "%`vs-administrative-gender`", want: s("http://hl7.org/fhir/ValueSet/administrative-gender")},
		{name: "ext variable", expr: "%`ext-patient-birthTime`", want: s("http://hl7.org/fhir/StructureDefinition/patient-birthTime")},
		{name: "comments", expr: "Patient.id // trailing\n /* block */", input: pat, want: s("example")},
		{name: "empty literal", expr: "{}"},
		{name: "empty input navigation", expr: "name.given"},
	})
}

func TestLiterals(t *testing.T) {
	runEvalCases(t, []evalCase{
		{name: "true", expr: "true", want: T},
		{name: "false", expr: "false", want: F},
		{name: "string escapes", expr: `'a\'b\n\u0041\\'`, want: s("a'b\nA\\")},
		{name: "integer", expr: "42", want: s("42")},
		{name: "negative integer", expr: "-42", want: s("-42")},
		{name: "decimal", expr: "3.140", want: s("3.140")},
		{name: "date", expr: "@2015-02-04", want: s("2015-02-04")},
		{name: "partial date", expr: "@2015-02", want: s("2015-02")},
		{name: "datetime", expr: "@2015-02-04T14:34:28.123+09:00", want: s("2015-02-04T14:34:28.123+09:00")},
		{name: "datetime utc", expr: "@2015-02-04T14:34:28Z", want: s("2015-02-04T14:34:28Z")},
		{name: "datetime year precision", expr: "@2015T.toString()", want: s("2015")},
		{name: "time", expr: "@T14:34:28", want: s("14:34:28")},
		{name: "time hour", expr: "@T14", want: s("14")},
		{name: "time with zone", expr: "@T14:34:28+10:00.convertsToTime()", want: T},
		{name: "double quoted variable", expr: `%"vs-administrative-gender"`, want: s("http://hl7.org/fhir/ValueSet/administrative-gender")},
		{name: "unary minus on boolean", expr: "-1.convertsToInteger()", wantErr: true},
		{name: "quantity ucum", expr: "4.5 'mg'", want: s("4.5 'mg'")},
		{name: "quantity calendar", expr: "3 days", want: s("3 days")},
		{name: "date literal then function", expr: "@2015-02-04.toString()", want: s("2015-02-04")},
		{name: "invalid date", expr: "@2015-13-01", wantErr: true},
		{name: "invalid day", expr: "@2015-02-30", wantErr: true},
		{name: "integer overflow", expr: "99999999999999999999", wantErr: true},
		{name: "unterminated string", expr: "'abc", wantErr: true},
		{name: "long suffix ignored", expr: "5L + 1", want: s("6")},
	})
}

func TestOperators(t *testing.T) {
	runEvalCases(t, []evalCase{
		// arithmetic
		{name: "precedence", expr: "1 + 2 * 3", want: s("7")},
		{name: "parentheses", expr: "(1 + 2) * 3", want: s("9")},
		{name: "unary minus binds tighter", expr: "-2 + 3", want: s("1")},
		{name: "unary minus expression", expr: "-(Patient.telecom[1].rank)", input: pat, want: s("-1")},
		{name: "subtraction", expr: "5 - 7", want: s("-2")},
		{name: "integer division yields decimal", expr: "7 / 2", want: s("3.5")},
		{name: "repeating decimal", expr: "1 / 3", want: s("0.33333333")},
		{name: "division by zero empty", expr: "1 / 0"},
		{name: "div", expr: "7 div 2", want: s("3")},
		{name: "div negative", expr: "-7 div 2", want: s("-3")},
		{name: "div by zero", expr: "7 div 0"},
		{name: "mod", expr: "7 mod 3", want: s("1")},
		{name: "decimal mod", expr: "5.5 mod 0.7", want: s("0.6")},
		{name: "decimal div", expr: "5.5 div 0.7", want: s("7")},
		{name: "exact decimal sum", expr: "0.1 + 0.2 = 0.3", want: T},
		{name: "decimal sum text", expr: "0.1 + 0.2", want: s("0.3")},
		{name: "decimal product", expr: "1.5 * 2.25", want: s("3.375")},
		{name: "integer plus decimal", expr: "1 + 1.5", want: s("2.5")},
		{name: "fhir decimal arithmetic", expr: "Observation.value.value + 0.5", input: obs, want: s("185.5")},
		{name: "string concatenation plus", expr: "'a' + 'b'", want: s("ab")},
		{name: "plus empty", expr: "1 + {}"},
		{name: "ampersand", expr: "'a' & 'b'", want: s("ab")},
		{name: "ampersand empty", expr: "'a' & {} & 'c'", want: s("ac")},
		{name: "string plus number error", expr: "'a' + 1", wantErr: true},
		{name: "multi item arithmetic error", expr: "Patient.name.given + 'x'", input: pat, wantErr: true},
		{name: "integer overflow", expr: "9223372036854775807 + 1", wantErr: true},
		{name: "quantity add", expr: "2 'mg' + 3 'mg'", want: s("5 'mg'")},
		{name: "quantity add convertible", expr: "1 'g' + 500 'mg'", want: s("1.5 'g'")},
		{name: "quantity add incompatible", expr: "1 'g' + 1 'm'", wantErr: true},
		{name: "quantity times number", expr: "2 'mg' * 3", want: s("6 'mg'")},
		{name: "quantity divide same unit", expr: "6 'mg' / 2 'mg'", want: s("3 '1'")},
		{name: "date plus days", expr: "@2020-01-30 + 3 days", want: s("2020-02-02")},
		{name: "date plus month clamps", expr: "@2020-01-31 + 1 month", want: s("2020-02-29")},
		{name: "date minus year", expr: "@2020-02-29 - 1 year", want: s("2019-02-28")},
		{name: "date plus ucum week", expr: "@2020-01-01 + 2 'wk'", want: s("2020-01-15")},
		{name: "datetime plus hours", expr: "@2020-01-01T23:30:00Z + 2 hours", want: s("2020-01-02T01:30:00Z")},
		{name: "date plus hours truncates", expr: "@2020-01-01 + 25 hours", want: s("2020-01-02")},
		{name: "time plus minutes", expr: "@T23:50 + 20 minutes", want: s("00:10")},
		{name: "date plus bad unit", expr: "@2020-01-01 + 1 'mg'", wantErr: true},
		// equality
		{name: "equal integers", expr: "1 = 1", want: T},
		{name: "integer equals decimal", expr: "1 = 1.0", want: T},
		{name: "decimal precision equality", expr: "1.10 = 1.1", want: T},
		{name: "not equal", expr: "1 != 2", want: T},
		{name: "string equality case", expr: "'a' = 'A'", want: F},
		{name: "equal empty", expr: "1 = {}"},
		{name: "collections equal", expr: "Patient.name[0].given = ('Peter' | 'James')", input: pat, want: T},
		{name: "collections order matters", expr: "Patient.name[0].given = ('James' | 'Peter')", input: pat, want: F},
		{name: "collections different size", expr: "Patient.name.given = 'Peter'", input: pat, want: F},
		{name: "fhir code equals string", expr: "Patient.gender = 'male'", input: pat, want: T},
		{name: "fhir boolean equals", expr: "Patient.active = true", input: pat, want: T},
		{name: "date equal", expr: "@2012-04-15 = @2012-04-15", want: T},
		{name: "date different precision", expr: "@2012-04 = @2012-04-15"},
		{name: "date different precision known", expr: "@2012-03 = @2012-04-15", want: F},
		{name: "datetime timezone equality", expr: "@2012-04-15T15:00:00Z = @2012-04-15T10:00:00-05:00", want: T},
		{name: "seconds and milliseconds one precision", expr: "@T10:00:00 = @T10:00:00.000", want: T},
		{name: "date vs datetime", expr: "@2012-04-15 = @2012-04-15T10:00:00"},
		{name: "fhir date equals literal", expr: "Patient.birthDate = @1974-12-25", input: pat, want: T},
		{name: "quantity equality", expr: "4 'mg' = 4.0 'mg'", want: T},
		{name: "quantity equality converted", expr: "1 'g' = 1000 'mg'", want: T},
		{name: "quantity calendar equality", expr: "1 week = 1 'wk'", want: T},
		{name: "year not equal to ucum a", expr: "1 year = 1 'a'"},
		{name: "fhir quantity equality", expr: "Observation.value = 185 '[lb_av]'", input: obs, want: T},
		{name: "complex equality", expr: "Patient.name[0] = Patient.name[0]", input: pat, want: T},
		{name: "complex inequality", expr: "Patient.name[0] = Patient.name[2]", input: pat, want: F},
		// equivalence
		{name: "string equivalence", expr: "'Hello  World' ~ 'hello world'", want: T},
		{name: "string not equivalent", expr: "'a' !~ 'b'", want: T},
		{name: "decimal equivalence precision", expr: "1.23 ~ 1.2", want: T},
		{name: "empty equivalence", expr: "{} ~ {}", want: T},
		{name: "empty vs value equivalence", expr: "1 ~ {}", want: F},
		{name: "unordered equivalence", expr: "(1 | 2) ~ (2 | 1)", want: T},
		{name: "date different precision equivalence", expr: "@2012-04 ~ @2012-04-15", want: F},
		{name: "quantity equivalence at least precision", expr: "4 'g' ~ 4040 'mg'", want: T},
		{name: "quantity equivalence different", expr: "4 'g' ~ 5 'g'", want: F},
		{name: "year equivalent to ucum a", expr: "1 year ~ 1 'a'", want: T},
		// comparison
		{name: "less", expr: "1 < 2", want: T},
		{name: "greater equal", expr: "2 >= 2.0", want: T},
		{name: "string compare", expr: "'abc' < 'abd'", want: T},
		{name: "date compare", expr: "@2012-01-01 < @2012-01-02", want: T},
		{name: "partial date compare known", expr: "@2012 < @2013-01-01", want: T},
		{name: "partial date compare unknown", expr: "@2012 < @2012-06-01"},
		{name: "datetime compare timezones", expr: "@2012-01-01T10:00:00+02:00 < @2012-01-01T09:00:00Z", want: T},
		{name: "time compare", expr: "@T10:00 > @T09:59", want: T},
		{name: "fhir date compare", expr: "Patient.birthDate > @1970-01-01", input: pat, want: T},
		{name: "quantity compare", expr: "5 'mg' < 1 'g'", want: T},
		{name: "quantity compare incomparable", expr: "5 'mg' < 1 'm'"},
		{name: "fhir quantity compare", expr: "Observation.value > 100 '[lb_av]'", input: obs, want: T},
		{name: "compare empty", expr: "1 < {}"},
		{name: "compare mismatched types", expr: "1 < 'a'", wantErr: true},
		{name: "compare collection", expr: "Patient.name.given < 'z'", input: pat, wantErr: true},
		// boolean logic
		{name: "and", expr: "true and false", want: F},
		{name: "and empty false", expr: "{} and false", want: F},
		{name: "and empty true", expr: "{} and true"},
		{name: "or", expr: "false or true", want: T},
		{name: "or empty true", expr: "{} or true", want: T},
		{name: "or empty false", expr: "{} or false"},
		{name: "xor", expr: "true xor false", want: T},
		{name: "xor same", expr: "true xor true", want: F},
		{name: "xor empty", expr: "true xor {}"},
		{name: "implies false antecedent", expr: "false implies {}", want: T},
		{name: "implies true", expr: "true implies false", want: F},
		{name: "implies empty true consequent", expr: "{} implies true", want: T},
		{name: "implies empty", expr: "{} implies false"},
		{name: "logic multi item error", expr: "(true | false) and true", wantErr: true},
		{name: "not", expr: "true.not()", want: F},
		{name: "not empty", expr: "{}.not()"},
		{name: "not non boolean", expr: "(0).not()", want: F},
		{name: "not collection", expr: "(1 | 2).not()", want: F},
		// membership and union
		{name: "in", expr: "2 in (1 | 2 | 3)", want: T},
		{name: "not in", expr: "4 in (1 | 2 | 3)", want: F},
		{name: "in empty left", expr: "{} in (1 | 2)"},
		{name: "contains", expr: "(1 | 2 | 3) contains 3", want: T},
		{name: "contains in fhir", expr: "Patient.name.given contains 'Jim'", input: pat, want: T},
		{name: "union dedup", expr: "(1 | 2 | 2 | 1)", want: s("1", "2")},
		{name: "union precedence over is", expr: "Patient.name.family | Patient.gender", input: pat, want: s("Chalmers", "Windsor", "male")},
		{name: "union of resource branches", expr: "Observation.code | Patient.gender", input: pat, want: s("male")},
		// type operators
		{name: "is fhir type", expr: "Observation.value is Quantity", input: obs, want: T},
		{name: "is fhir subtype", expr: "Patient.id is string", input: pat, want: T},
		{name: "code is string", expr: "Patient.gender is string", input: pat, want: T},
		{name: "code is code", expr: "Patient.gender is code", input: pat, want: T},
		{name: "string is not code", expr: "Patient.name[0].family is code", input: pat, want: F},
		{name: "fhir boolean is not system boolean", expr: "Patient.active is Boolean", input: pat, want: F},
		{name: "fhir boolean is FHIR.boolean", expr: "Patient.active is FHIR.boolean", input: pat, want: T},
		{name: "system boolean", expr: "true is Boolean", want: T},
		{name: "system qualified", expr: "1 is System.Integer", want: T},
		{name: "integer is not decimal", expr: "1 is Decimal", want: F},
		{name: "resource is DomainResource", expr: "Patient is DomainResource", input: pat, want: T},
		{name: "is on collection error", expr: "Patient.name is HumanName", input: pat, wantErr: true},
		{name: "is function", expr: "Observation.value.is(Quantity)", input: obs, want: T},
		{name: "is function negative", expr: "Observation.value.is(Period).not()", input: obs, want: T},
		{name: "is function qualified", expr: "Patient.is(FHIR.`Patient`)", input: pat, want: T},
		{name: "is function empty", expr: "{}.is(Quantity)"},
		{name: "as function qualified system", expr: "(1 | 'a').as(System.String)", want: s("a")},
		{name: "as filters each", expr: "(Patient.name as HumanName).count()", input: pat, want: s("3")},
		{name: "date is date", expr: "Patient.birthDate is date", input: pat, want: T},
		{name: "date is not dateTime", expr: "Patient.birthDate is dateTime", input: pat, want: F},
		{name: "instant", expr: "Patient.meta.lastUpdated is instant", input: edge, want: T},
		{name: "instant compares with datetime", expr: "Patient.meta.lastUpdated > @2024-01-02T03:04:05Z", input: edge, want: T},
		{name: "backbone type", expr: "Observation.component.first().type().name", input: bp, want: s("Observation.component")},
		{name: "reference type", expr: "Observation.subject is Reference", input: obs, want: T},
		{name: "codeable concept type", expr: "Observation.code is CodeableConcept", input: obs, want: T},
		{name: "status is code", expr: "Observation.status is code", input: obs, want: T},
	})
}

func TestFunctions(t *testing.T) {
	runEvalCases(t, []evalCase{
		// existence
		{name: "empty true", expr: "{}.empty()", want: T},
		{name: "empty false", expr: "Patient.name.empty()", input: pat, want: F},
		{name: "exists", expr: "Patient.name.exists()", input: pat, want: T},
		{name: "exists criteria", expr: "Patient.name.exists(use = 'maiden')", input: pat, want: T},
		{name: "exists criteria none", expr: "Patient.name.exists(use = 'temp')", input: pat, want: F},
		{name: "all", expr: "Patient.telecom.all(use.exists())", input: pat, want: T},
		{name: "all false", expr: "Patient.telecom.all(system = 'phone')", input: pat, want: F},
		{name: "all empty", expr: "{}.all(false)", want: T},
		{name: "allTrue", expr: "(true | true).allTrue()", want: T},
		{name: "allTrue empty", expr: "{}.allTrue()", want: T},
		{name: "anyTrue", expr: "(false | true).anyTrue()", want: T},
		{name: "allFalse", expr: "(false).allFalse()", want: T},
		{name: "anyFalse", expr: "(true).anyFalse()", want: F},
		{name: "allTrue non boolean", expr: "(1 | 2).allTrue()", wantErr: true},
		{name: "subsetOf", expr: "(1 | 2).subsetOf(1 | 2 | 3)", want: T},
		{name: "subsetOf false", expr: "(1 | 4).subsetOf(1 | 2 | 3)", want: F},
		{name: "supersetOf", expr: "(1 | 2 | 3).supersetOf(2 | 3)", want: T},
		{name: "count", expr: "Patient.name.given.count()", input: pat, want: s("5")},
		{name: "count empty", expr: "{}.count()", want: s("0")},
		{name: "distinct", expr: "Patient.name.given.distinct()", input: pat, want: s("Peter", "James", "Jim")},
		{name: "isDistinct", expr: "Patient.name.given.isDistinct()", input: pat, want: F},
		// filtering and projection
		{name: "where", expr: "Patient.telecom.where(system = 'phone' and rank = 1).value", input: pat, want: s("(03) 5555 6473")},
		{name: "where index", expr: "Patient.name.where($index = 1).given", input: pat, want: s("Jim")},
		{name: "where this", expr: "Patient.name.given.where($this = 'Jim')", input: pat, want: s("Jim")},
		{name: "where non boolean error", expr: "Patient.name.where(given)", input: pat, wantErr: true},
		{name: "select", expr: "Patient.name.select(given.first())", input: pat, want: s("Peter", "Jim", "Peter")},
		{name: "select concatenation", expr: "Patient.name.select(use & ':' & family)", input: pat, want: s("official:Chalmers", "usual:", "maiden:Windsor")},
		{name: "repeat", expr: "Questionnaire.repeat(item).linkId.count()", input: qst, want: s("10")},
		{name: "repeat literal terminates", expr: "(1).repeat(2).count()", want: s("1")},
		{name: "ofType", expr: "Patient.contained.ofType(Organization).name", input: edge, want: s("Contained Clinic")},
		{name: "aggregate sum", expr: "(1 | 2 | 3).aggregate($this + $total, 0)", want: s("6")},
		{name: "aggregate max", expr: "(4 | 9 | 2).aggregate(iif($total.empty(), $this, iif($this > $total, $this, $total)))", want: s("9")},
		{name: "sum", expr: "(1 | 2 | 3).sum()", want: s("6")},
		{name: "sum fhir decimals", expr: "Observation.component.value.value.sum()", input: bp, want: s("167")},
		{name: "sum empty", expr: "{}.sum()"},
		{name: "sum strings error", expr: "('a' | 'b').sum()", wantErr: true},
		{name: "min", expr: "(4 | 2 | 9).min()", want: s("2")},
		{name: "max dates", expr: "(@2020-01-01 | @2021-06-01).max()", want: s("2021-06-01")},
		{name: "avg", expr: "(1 | 2 | 4).avg()", want: s("2.33333333")},
		// subsetting
		{name: "single", expr: "Patient.gender.single()", input: pat, want: s("male")},
		{name: "single error", expr: "Patient.name.single()", input: pat, wantErr: true},
		{name: "first", expr: "Patient.name.given.first()", input: pat, want: s("Peter")},
		{name: "last", expr: "Patient.name.given.last()", input: pat, want: s("James")},
		{name: "tail", expr: "Patient.name[0].given.tail()", input: pat, want: s("James")},
		{name: "skip", expr: "Patient.name.given.skip(3)", input: pat, want: s("Peter", "James")},
		{name: "skip negative", expr: "(1 | 2).skip(-1)", want: s("1", "2")},
		{name: "take", expr: "Patient.name.given.take(2)", input: pat, want: s("Peter", "James")},
		{name: "take zero", expr: "(1 | 2).take(0)"},
		{name: "take non integer", expr: "(1 | 2).take('a')", wantErr: true},
		{name: "intersect", expr: "(1 | 2 | 3).intersect(2 | 3 | 4)", want: s("2", "3")},
		{name: "exclude", expr: "(1 | 2 | 3).exclude(2)", want: s("1", "3")},
		// combining
		{name: "union function", expr: "(1 | 2).union(2 | 3)", want: s("1", "2", "3")},
		{name: "combine keeps duplicates", expr: "(1 | 2).combine(2)", want: s("1", "2", "2")},
		{name: "combine uses outer context", expr: "Patient.name.given.first().combine(Patient.gender)", input: pat, want: s("Peter", "male")},
		// conversion
		{name: "iif true", expr: "iif(true, 'a', 'b')", want: s("a")},
		{name: "iif false", expr: "iif(false, 'a', 'b')", want: s("b")},
		{name: "iif empty criterion", expr: "iif({}, 'a', 'b')", want: s("b")},
		{name: "iif no otherwise", expr: "iif(false, 'a')"},
		{name: "iif lazy", expr: "iif(true, 'a', (1 | 2).single())", want: s("a")},
		{name: "iif collection criterion", expr: "iif(1 | 2 | 3, 'many', 'none')", want: s("many")},
		{name: "iif on input", expr: "Patient.gender.iif($this = 'male', 'M', 'F')", input: pat, want: s("M")},
		{name: "toBoolean string", expr: "'yes'.toBoolean()", want: T},
		{name: "toBoolean invalid", expr: "'maybe'.toBoolean()"},
		{name: "convertsToBoolean", expr: "'0'.convertsToBoolean()", want: T},
		{name: "toInteger", expr: "'-12'.toInteger() + 1", want: s("-11")},
		{name: "toInteger decimal string", expr: "'1.5'.toInteger()"},
		{name: "toInteger boolean", expr: "true.toInteger()", want: s("1")},
		{name: "convertsToInteger", expr: "'abc'.convertsToInteger()", want: F},
		{name: "toDecimal", expr: "'1.50'.toDecimal()", want: s("1.50")},
		{name: "convertsToDecimal", expr: "'1e5'.convertsToDecimal()", want: F},
		{name: "toString integer", expr: "12.toString()", want: s("12")},
		{name: "toString quantity", expr: "(5 'mg').toString()", want: s("5 'mg'")},
		{name: "toString boolean", expr: "true.toString()", want: s("true")},
		{name: "convertsToString complex", expr: "Patient.name[0].convertsToString()", input: pat, want: F},
		{name: "toDate", expr: "'2020-02-03'.toDate()", want: s("2020-02-03")},
		{name: "toDate from datetime", expr: "@2020-02-03T10:00:00Z.toDate()", want: s("2020-02-03")},
		{name: "toDate invalid", expr: "'2020-13'.toDate()"},
		{name: "convertsToDate", expr: "'2020-02'.convertsToDate()", want: T},
		{name: "convertsToDate invalid", expr: "'02/03/2020'.convertsToDate()", want: F},
		{name: "toDateTime from date", expr: "@2020-02-03.toDateTime() is DateTime", want: T},
		{name: "toDateTime fhir", expr: "Patient.birthDate.toDateTime()", input: pat, want: s("1974-12-25")},
		{name: "toBoolean integer", expr: "0.toBoolean()", want: F},
		{name: "toBoolean integer out of range", expr: "2.toBoolean()"},
		{name: "toBoolean decimal", expr: "1.0.toBoolean()", want: T},
		{name: "toDecimal boolean", expr: "true.toDecimal()", want: s("1.0")},
		{name: "toDecimal fhir integer", expr: "Patient.telecom[1].rank.toDecimal() is Decimal", input: pat, want: T},
		{name: "toDateTime", expr: "'2020-02-03T10:11:12+01:00'.toDateTime()", want: s("2020-02-03T10:11:12+01:00")},
		{name: "convertsToDateTime", expr: "'xyz'.convertsToDateTime()", want: F},
		{name: "toTime", expr: "'10:11'.toTime()", want: s("10:11")},
		{name: "convertsToTime", expr: "'25:00'.convertsToTime()", want: F},
		{name: "toQuantity string", expr: "'5.5 \\'mg\\''.toQuantity()", want: s("5.5 'mg'")},
		{name: "toQuantity calendar", expr: "'3 days'.toQuantity()", want: s("3 days")},
		{name: "toQuantity number", expr: "5.toQuantity()", want: s("5 '1'")},
		{name: "toQuantity with unit", expr: "(1 'g').toQuantity('mg')", want: s("1000 'mg'")},
		{name: "convertsToQuantity", expr: "'abc'.convertsToQuantity()", want: F},
		{name: "toQuantity fhir", expr: "Observation.value.toQuantity()", input: obs, want: s("185 '[lb_av]'")},
		{name: "conversion multi item error", expr: "(1 | 2).toString()", wantErr: true},
		// strings
		{name: "indexOf", expr: "'abcdef'.indexOf('cd')", want: s("2")},
		{name: "indexOf missing", expr: "'abc'.indexOf('x')", want: s("-1")},
		{name: "indexOf empty arg", expr: "'abc'.indexOf({})"},
		{name: "substring", expr: "'abcdef'.substring(2)", want: s("cdef")},
		{name: "substring length", expr: "'abcdef'.substring(1, 2)", want: s("bc")},
		{name: "substring out of range", expr: "'abc'.substring(5)"},
		{name: "substring unicode", expr: "'héllo'.substring(1, 2)", want: s("él")},
		{name: "startsWith", expr: "Patient.name[0].family.startsWith('Chal')", input: pat, want: T},
		{name: "endsWith", expr: "'abc'.endsWith('bc')", want: T},
		{name: "contains function", expr: "'abc'.contains('b')", want: T},
		{name: "contains empty input", expr: "{}.contains('b')"},
		{name: "upper", expr: "'abc'.upper()", want: s("ABC")},
		{name: "lower", expr: "'ABC'.lower()", want: s("abc")},
		{name: "replace", expr: "'banana'.replace('an', 'o')", want: s("booa")},
		{name: "replace empty pattern", expr: "'abc'.replace('', 'x')", want: s("xaxbxcx")},
		{name: "matches", expr: "'2020-01-02'.matches('^[0-9]{4}-')", want: T},
		{name: "matches false", expr: "'abc'.matches('^b')", want: F},
		{name: "matches invalid regex", expr: "'abc'.matches('(')", wantErr: true},
		{name: "replaceMatches", expr: "'abc123'.replaceMatches('[0-9]+', '#')", want: s("abc#")},
		{name: "replaceMatches groups", expr: "'John Smith'.replaceMatches('(\\\\w+) (\\\\w+)', '$2, $1')", want: s("Smith, John")},
		{name: "length", expr: "'héllo'.length()", want: s("5")},
		{name: "toChars", expr: "'abc'.toChars()", want: s("a", "b", "c")},
		{name: "split", expr: "'a,b,,c'.split(',')", want: s("a", "b", "", "c")},
		{name: "join", expr: "('a' | 'b' | 'c').join('-')", want: s("a-b-c")},
		{name: "join no separator", expr: "Patient.name[0].given.join()", input: pat, want: s("PeterJames")},
		{name: "trim", expr: "'  a b  '.trim()", want: s("a b")},
		{name: "encode base64", expr: "'hello'.encode('base64')", want: s("aGVsbG8=")},
		{name: "decode base64", expr: "'aGVsbG8='.decode('base64')", want: s("hello")},
		{name: "encode hex", expr: "'hi'.encode('hex')", want: s("6869")},
		{name: "decode hex", expr: "'6869'.decode('hex')", want: s("hi")},
		{name: "encode urlbase64", expr: "'??>'.encode('urlbase64')", want: s("Pz8-")},
		{name: "encode unknown", expr: "'a'.encode('rot13')", wantErr: true},
		{name: "string function on number", expr: "1.upper()", wantErr: true},
		{name: "string function on collection", expr: "Patient.name.given.upper()", input: pat, wantErr: true},
		// math
		{name: "abs", expr: "(-5).abs()", want: s("5")},
		{name: "abs decimal", expr: "(-5.5).abs()", want: s("5.5")},
		{name: "abs quantity", expr: "(-5.5 'mg').abs()", want: s("5.5 'mg'")},
		{name: "ceiling", expr: "1.1.ceiling()", want: s("2")},
		{name: "ceiling negative", expr: "(-1.1).ceiling()", want: s("-1")},
		{name: "floor", expr: "(-1.1).floor()", want: s("-2")},
		{name: "truncate", expr: "(-1.9).truncate()", want: s("-1")},
		{name: "exp", expr: "0.exp()", want: s("1")},
		{name: "ln", expr: "1.ln()", want: s("0")},
		{name: "log", expr: "100.log(10)", want: s("2")},
		{name: "power integer", expr: "2.power(10)", want: s("1024")},
		{name: "power overflow", expr: "10.power(30)", wantErr: true},
		{name: "power of one", expr: "1.power(60000)", want: s("1")},
		{name: "power negative base", expr: "(-2).power(3)", want: s("-8")},
		{name: "power decimal", expr: "4.power(0.5)", want: s("2")},
		{name: "power negative root", expr: "(-1).power(0.5)"},
		{name: "round", expr: "3.14159.round(2)", want: s("3.14")},
		{name: "round half up", expr: "2.5.round()", want: s("3")},
		{name: "sqrt", expr: "16.sqrt()", want: s("4")},
		{name: "sqrt negative", expr: "(-1).sqrt()"},
		{name: "math on string", expr: "'a'.abs()", wantErr: true},
		// tree
		{name: "children", expr: "Patient.name[0].children().count()", input: pat, want: s("4")},
		{name: "descendants", expr: "Questionnaire.descendants().where($this is Questionnaire.item).count()", input: qst, want: s("10")},
		{name: "repeat codes", expr: "Questionnaire.repeat(item).code.count()", input: qst, want: s("11")},
		{name: "descendants codes", expr: "Questionnaire.descendants().code.count()", input: qst, want: s("23")},
		{name: "children codes", expr: "Questionnaire.children().code.count()", input: qst, want: s("2")},
		{name: "descendants typed", expr: "Observation.descendants().ofType(Quantity).value", input: bp, want: s("107", "60")},
		// utility
		{name: "trace with projection", expr: "Patient.name.trace('n', given).count()", input: pat, want: s("3")},
		{name: "trace passes input", expr: "Patient.gender.trace('g')", input: pat, want: s("male")},
		{name: "now", expr: "now()", want: s("2024-05-17T10:30:15.250+02:00")},
		{name: "today", expr: "today()", want: s("2024-05-17")},
		{name: "timeOfDay", expr: "timeOfDay()", want: s("10:30:15.250")},
		{name: "now is datetime", expr: "now() is DateTime", want: T},
		{name: "type of integer", expr: "1.type().namespace + '.' + 1.type().name", want: s("System.Integer")},
		{name: "type of fhir", expr: "Patient.active.type().name", input: pat, want: s("boolean")},
		// FHIR additions
		{name: "extension", expr: "Patient.extension('http://example.org/ext/eye-colour').value", input: edge, want: s("blue")},
		{name: "extension missing", expr: "Patient.extension('http://example.org/none')", input: edge},
		{name: "extension decimal keeps precision", expr: "Patient.extension('http://example.org/ext/score').value", input: edge, want: s("2.50")},
		{name: "hasValue", expr: "Patient.birthDate.hasValue()", input: pat, want: T},
		{name: "hasValue complex", expr: "Patient.name[0].hasValue()", input: pat, want: F},
		{name: "getValue", expr: "Patient.active.getValue() is Boolean", input: pat, want: T},
		{name: "getValue string", expr: "Patient.gender.getValue() is String", input: pat, want: T},
		{name: "getValue integer", expr: "Patient.telecom[1].rank.getValue() is Integer", input: pat, want: T},
		{name: "getValue decimal", expr: "Observation.value.value.getValue() is Decimal", input: obs, want: T},
		{name: "getValue date", expr: "Patient.birthDate.getValue() is Date", input: pat, want: T},
		{name: "getValue without value", expr: "Patient.name[0].given[1].getValue()", input: edge},
		{name: "getValue complex", expr: "Patient.name[0].getValue()", input: pat},
		{name: "resolve is Patient", expr: "Observation.subject.where(resolve() is Patient).reference", input: obs, want: s("Patient/example")},
		{name: "resolve not Group", expr: "Observation.subject.where(resolve() is Group)", input: obs},
		{name: "resolve stub id", expr: "Observation.subject.resolve().id", input: obs, want: s("example")},
		{name: "resolve absolute with history", expr: "Patient.generalPractitioner[1].resolve().type().name", input: edge, want: s("Practitioner")},
		{name: "resolve contained", expr: "Patient.managingOrganization.resolve().name", input: edge, want: s("Contained Clinic")},
		{name: "resolve contained type", expr: "Patient.generalPractitioner.where(resolve() is Practitioner).count()", input: edge, want: s("2")},
		{name: "resolve urn uuid outside bundle", expr: "Patient.generalPractitioner[2].resolve()", input: edge},
		{name: "resolve urn in bundle", expr: "Bundle.entry.resource.ofType(Observation).subject.resolve().gender", input: rbndl, want: s("female")},
		{name: "resolve relative in bundle", expr: "Bundle.entry.resource.ofType(Observation).device.resolve().status", input: rbndl, want: s("active")},
		{name: "resolve with rootResource bundle", expr: "Bundle.entry[2].resource.subject.where(resolve() is Patient).exists()", input: rbndl, want: T},
		{name: "resolve reference string", expr: "'Encounter/1'.resolve() is Encounter", want: T},
		{name: "memberOf empty", expr: "Patient.gender.memberOf('http://hl7.org/fhir/ValueSet/administrative-gender')", input: pat},
		{name: "conformsTo base type", expr: "Patient.conformsTo('http://hl7.org/fhir/StructureDefinition/Patient')", input: pat, want: T},
		{name: "conformsTo supertype", expr: "conformsTo('http://hl7.org/fhir/StructureDefinition/DomainResource')", input: pat, want: T},
		{name: "conformsTo other type", expr: "conformsTo('http://hl7.org/fhir/StructureDefinition/Person')", input: pat, want: F},
		{name: "conformsTo unknown profile", expr: "conformsTo('http://example.org/StructureDefinition/my-patient')", input: pat},
		{name: "htmlChecks", expr: "Patient.text.div.htmlChecks()", input: pat, want: T},
	})
}

func TestCompileErrors(t *testing.T) {
	long := make([]byte, MaxExpressionLength+1)
	for i := range long {
		long[i] = 'a'
	}
	deep := ""
	for i := 0; i < MaxNesting+5; i++ {
		deep += "("
	}
	deep += "1"
	for i := 0; i < MaxNesting+5; i++ {
		deep += ")"
	}
	tests := []struct {
		name, expr string
	}{
		{"empty", ""},
		{"unknown function", "Patient.frobnicate()"},
		{"wrong arity", "Patient.name.where()"},
		{"too many args", "'a'.upper(1)"},
		{"unbalanced paren", "(1 + 2"},
		{"trailing operator", "1 +"},
		{"dangling dot", "Patient."},
		{"bad character", "Patient # name"},
		{"unknown special variable", "$foo"},
		{"ofType needs type", "Patient.ofType(1 + 2)"},
		{"too long", string(long)},
		{"too deep", deep},
		{"unterminated comment", "1 /* x"},
		{"bad escape", `'\q'`},
		{"empty variable", "% + 1"},
		{"trailing tokens", "1 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(tc.expr)
			if err == nil {
				t.Fatalf("Compile(%.40q) succeeded, want an error", tc.expr)
			}
			if !errors.Is(err, ErrSyntax) {
				t.Errorf("error %v does not wrap ErrSyntax", err)
			}
		})
	}
}

func TestExpressionString(t *testing.T) {
	const src = "Patient.name.where(use = 'official')"
	if got := MustCompile(src).String(); got != src {
		t.Errorf("String() = %q, want %q", got, src)
	}
}

func TestValueAccessors(t *testing.T) {
	r := fixture(t, bp)
	got, err := MustCompile("Observation.component.value.as(Quantity)").Evaluate(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	type item struct{ Type, Path, Key string }
	var items []item
	for _, v := range got {
		items = append(items, item{v.Type(), v.Path(), v.Key()})
	}
	want := []item{
		{"Quantity", "Observation.component[0].valueQuantity", "valueQuantity"},
		{"Quantity", "Observation.component[1].valueQuantity", "valueQuantity"},
	}
	if diff := cmp.Diff(want, items); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
	if _, ok := got[0].Data().(map[string]any); !ok {
		t.Errorf("Data() = %T, want map[string]any", got[0].Data())
	}
	b, ok := MustCompile("Observation.status = 'final'").mustEval(t, r).Bool()
	if !ok || !b {
		t.Errorf("Bool() = %v, %v; want true, true", b, ok)
	}
	if _, ok := (Collection{}).Bool(); ok {
		t.Errorf("empty Bool() ok = true, want false")
	}
	sys, _ := MustCompile("1 + 1").Evaluate(nil, nil)
	if sys[0].Type() != TypeInteger || sys[0].Data() != int64(2) || sys[0].Path() != "" {
		t.Errorf("system value = %s %v %q", sys[0].Type(), sys[0].Data(), sys[0].Path())
	}
}

func (e *Expression) mustEval(t *testing.T, input any) Collection {
	t.Helper()
	c, err := e.Evaluate(input, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestEnvResolverAndBounds(t *testing.T) {
	obsR := fixture(t, obs)
	env := &Env{Resolve: func(ref string) (any, bool) {
		if ref == "Patient/example" {
			return map[string]any{"resourceType": "Patient", "id": "example", "gender": "male"}, true
		}
		return nil, false
	}}
	got, err := MustCompile("Observation.subject.resolve().gender").Evaluate(obsR, env)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"male"}, got.Strings()); diff != "" {
		t.Errorf("resolver (-want +got):\n%s", diff)
	}
	got, err = MustCompile("Observation.encounter.resolve()").Evaluate(obsR, env)
	if err != nil || len(got) != 0 {
		t.Errorf("unresolvable with resolver = %v, %v; want empty", got, err)
	}

	q := fixture(t, qst)
	_, err = MustCompile("Questionnaire.descendants()").Evaluate(q, &Env{MaxItems: 10})
	if !errors.Is(err, ErrLimit) {
		t.Errorf("MaxItems: err = %v, want ErrLimit", err)
	}
	_, err = MustCompile("Questionnaire.repeat(item)").Evaluate(q, &Env{MaxDepth: 2})
	if !errors.Is(err, ErrLimit) {
		t.Errorf("MaxDepth: err = %v, want ErrLimit", err)
	}
	_, err = MustCompile("(1|2|3).combine(4|5|6).combine(7|8|9)").Evaluate(nil, &Env{MaxItems: 5})
	if !errors.Is(err, ErrLimit) {
		t.Errorf("combine MaxItems: err = %v, want ErrLimit", err)
	}
}

func TestConcurrentEvaluate(t *testing.T) {
	r := fixture(t, bp)
	expr := MustCompile("Observation.component.where(code.coding.where(code = '8480-6').exists()).value.as(Quantity).value")
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				got, err := expr.Evaluate(r, nil)
				if err != nil || len(got) != 1 || got[0].String() != "107" {
					t.Errorf("got %v, %v", got, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestSizeLimits(t *testing.T) {
	tests := []struct{ name, expr string }{
		{"string doubling", "(1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | 10 | 11 | 12 | 13 | 14 | 15 | 16 | 17 | 18 | 19 | 20 | 21 | 22 | 23 | 24 | 25).aggregate($total & $total, 'abcd')"},
		{"replace growth", "'abcdefgh'.replace('', 'abcdefgh').replace('', 'abcdefgh').replace('', 'abcdefgh').replace('', 'abcdefgh').replace('', 'abcdefgh').replace('', 'abcdefgh').replace('', 'abcdefgh')"},
		{"decimal growth", "(1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | 10 | 11 | 12 | 13 | 14 | 15 | 16 | 17 | 18 | 19 | 20).aggregate($total * $total, 1.5)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := MustCompile(tc.expr).Evaluate(nil, nil)
			if !errors.Is(err, ErrLimit) {
				t.Errorf("err = %v, want ErrLimit", err)
			}
		})
	}
}

func TestTemporalBounds(t *testing.T) {
	tests := []struct {
		lit       string
		low, high string
	}{
		{"@2020", "2020-01-01T00:00:00Z", "2020-12-31T23:59:59.999999999Z"},
		{"@2020-02", "2020-02-01T00:00:00Z", "2020-02-29T23:59:59.999999999Z"},
		{"@2020-02-03", "2020-02-03T00:00:00Z", "2020-02-03T23:59:59.999999999Z"},
		{"@2020-02-03T10:00:00+02:00", "2020-02-03T08:00:00Z", "2020-02-03T08:00:00.999999999Z"},
		{"@2020-02-03T10:00:00.250Z", "2020-02-03T10:00:00.25Z", "2020-02-03T10:00:00.250999999Z"},
	}
	for _, tc := range tests {
		t.Run(tc.lit, func(t *testing.T) {
			c, err := MustCompile(tc.lit).Evaluate(nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			tm, ok := c[0].Data().(Temporal)
			if !ok {
				t.Fatalf("Data() = %T, want Temporal", c[0].Data())
			}
			low, high, ok := tm.Bounds()
			if !ok {
				t.Fatal("no bounds")
			}
			got := [2]string{low.Format(time.RFC3339Nano), high.Format(time.RFC3339Nano)}
			if diff := cmp.Diff([2]string{tc.low, tc.high}, got); diff != "" {
				t.Errorf("Bounds mismatch (-want +got):\n%s", diff)
			}
		})
	}
	c, _ := MustCompile("@T10:00").Evaluate(nil, nil)
	if _, _, ok := c[0].Data().(Temporal).Bounds(); ok {
		t.Errorf("a time has bounds")
	}
}

func TestValueLocation(t *testing.T) {
	got, err := MustCompile("Patient.name[0].given[1]").Evaluate(fixture(t, pat), nil)
	if err != nil || len(got) != 1 {
		t.Fatalf("got %v, %v", got, err)
	}
	v := got[0]
	parent := v.Parent()
	if parent == nil || v.Key() != "given" || v.Index() != 1 || parent.Key() != "name" || parent.Index() != 0 {
		t.Fatalf("location = %v %q %d", parent, v.Key(), v.Index())
	}
	if pm, ok := parent.Data().(map[string]any); !ok || pm["family"] != "Chalmers" {
		t.Errorf("parent data = %v", parent.Data())
	}
	if v.Path() != "Patient.name[0].given[1]" {
		t.Errorf("Path() = %q", v.Path())
	}
}

func TestValueConversions(t *testing.T) {
	eval := func(expr, in string) Value {
		t.Helper()
		c, err := MustCompile(expr).Evaluate(fixture(t, in), nil)
		if err != nil || len(c) != 1 {
			t.Fatalf("%s = %v, %v", expr, c, err)
		}
		return c[0]
	}
	if s, ok := eval("Patient.gender", pat).AsString(); !ok || s != "male" {
		t.Errorf("AsString = %q, %v", s, ok)
	}
	if _, ok := eval("Patient.active", pat).AsString(); ok {
		t.Errorf("boolean AsString ok")
	}
	if b, ok := eval("Patient.active", pat).AsBool(); !ok || !b {
		t.Errorf("AsBool = %v, %v", b, ok)
	}
	if n, ok := eval("Patient.telecom[1].rank", pat).AsInteger(); !ok || n != 1 {
		t.Errorf("AsInteger = %v, %v", n, ok)
	}
	if d, ok := eval("Observation.value.value", obs).AsDecimal(); !ok || d.String() != "185" {
		t.Errorf("AsDecimal = %v, %v", d, ok)
	}
	if tm, ok := eval("Patient.birthDate", pat).AsTemporal(); !ok || tm.String() != "1974-12-25" || !tm.IsDate() || tm.Precision() != PrecDay {
		t.Errorf("AsTemporal = %v, %v", tm, ok)
	}
	q, ok := eval("Observation.value", obs).AsQuantity()
	if !ok || q.Unit != "[lb_av]" || q.Value.String() != "185" {
		t.Errorf("AsQuantity = %v, %v", q, ok)
	}
	if _, ok := eval("Observation.code", obs).AsQuantity(); ok {
		t.Errorf("CodeableConcept AsQuantity ok")
	}
}
