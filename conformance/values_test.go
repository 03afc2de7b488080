package conformance

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vigil-health/vigil/fhirvalidate"
)

const pathDoc = `{"resourceType":"Patient","id":"x","name":[{"family":"A","given":["B","C"]},{"family":"D"}],
 "active":true,"multipleBirthInteger":2,"contact":[{"name":{"family":"E"}}],"odd key":{"v":1}}`

func TestEvalPath(t *testing.T) {
	tree, err := parseTree([]byte(pathDoc))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path string
		want       []string
		wantErr    bool
	}{
		{name: "jsonpath index", path: "$.name[0].family", want: []string{"A"}},
		{name: "jsonpath nested index", path: "$.name[0].given[1]", want: []string{"C"}},
		{name: "jsonpath wildcard", path: "$.name[*].family", want: []string{"A", "D"}},
		{name: "jsonpath bracket key", path: "$['odd key'].v", want: []string{"1"}},
		{name: "root only", path: "$", want: []string{strings.Join(strings.Fields(`{"active":true,"contact":[{"name":{"family":"E"}}],"id":"x","multipleBirthInteger":2,"name":[{"family":"A","given":["B","C"]},{"family":"D"}],"odd key":{"v":1},"resourceType":"Patient"}`), " ")}},
		{name: "dotted with type", path: "Patient.name.given", want: []string{"B", "C"}},
		{name: "dotted without type", path: "name.family", want: []string{"A", "D"}},
		{name: "dotted index", path: "Patient.name[1].family", want: []string{"D"}},
		{name: "boolean", path: "active", want: []string{"true"}},
		{name: "number", path: "$.multipleBirthInteger", want: []string{"2"}},
		{name: "object", path: "contact[0].name", want: []string{`{"family":"E"}`}},
		{name: "index on single value", path: "$.id[0]", want: []string{"x"}},
		{name: "out of range", path: "$.name[5]", want: []string{}},
		{name: "missing", path: "$.birthDate", want: []string{}},
		{name: "through primitive", path: "$.id.value", want: []string{}},
		{name: "xpath", path: "fhir:Patient/fhir:name/fhir:family/@value", want: []string{"A", "D"}},
		{name: "xpath one-based predicate", path: "fhir:Patient/fhir:name[2]/fhir:family/@value", want: []string{"D"}},
		{name: "xpath without prefixes", path: "Patient/id", want: []string{"x"}},
		{name: "xpath attribute-free relative", path: "name/given", want: []string{"B", "C"}},
		{name: "xpath zero predicate", path: "fhir:Patient/fhir:name[0]", wantErr: true},
		{name: "xpath function", path: "fhir:Patient/count(fhir:name)", wantErr: true},
		{name: "unclosed bracket", path: "$.name[0", wantErr: true},
		{name: "bad index", path: "$.name[x]", wantErr: true},
		{name: "empty", path: " ", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := pathStrings(tc.path, tree)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("pathStrings(%q) (-want +got):\n%s", tc.path, d)
			}
		})
	}
}

func TestFinishURL(t *testing.T) {
	tests := []struct {
		name, in string
		encode   bool
		want     string
	}{
		{name: "no query", in: "http://h/fhir/Patient/1", encode: true, want: "http://h/fhir/Patient/1"},
		{name: "token", in: "http://h/fhir/Patient?identifier=urn:x|1", encode: true, want: "http://h/fhir/Patient?identifier=urn%3Ax%7C1"},
		{name: "space and plus", in: "http://h/fhir/Obs?date=ge2020-01-01T00:00:00+02:00&name=a b", encode: true, want: "http://h/fhir/Obs?date=ge2020-01-01T00%3A00%3A00%2B02%3A00&name=a+b"},
		{name: "already encoded", in: "http://h/fhir/Patient?name=a%20b&x=%7C", encode: true, want: "http://h/fhir/Patient?name=a+b&x=%7C"},
		{name: "bare key and empty parts", in: "http://h/fhir/Patient?_summary&&x=1", encode: true, want: "http://h/fhir/Patient?_summary&x=1"},
		{name: "not encoded", in: "http://h/fhir/Patient?identifier=urn:x|1", encode: false, want: "http://h/fhir/Patient?identifier=urn:x|1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := finishURL(tc.in, tc.encode); got != tc.want {
				t.Errorf("finishURL(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseLocation(t *testing.T) {
	tests := []struct {
		name, in        string
		typ, id, verson string
	}{
		{name: "absolute with version", in: "http://h/fhir/Patient/1/_history/3", typ: "Patient", id: "1", verson: "3"},
		{name: "relative with version", in: "Observation/a-b/_history/1", typ: "Observation", id: "a-b", verson: "1"},
		{name: "without version", in: "http://h/fhir/Patient/1", typ: "Patient", id: "1"},
		{name: "query dropped", in: "http://h/fhir/Patient/1?x=y", typ: "Patient", id: "1"},
		{name: "too short", in: "Patient"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			typ, id, v := parseLocation(tc.in)
			if typ != tc.typ || id != tc.id || v != tc.verson {
				t.Errorf("parseLocation(%q) = %q %q %q, want %q %q %q", tc.in, typ, id, v, tc.typ, tc.id, tc.verson)
			}
		})
	}
}

func TestContainsMinimum(t *testing.T) {
	actual, _ := parseTree([]byte(`{"resourceType":"Patient","name":[{"family":"A","given":["B","C"]},{"family":"D"}],"multipleBirthInteger":2}`))
	tests := []struct {
		name, min string
		want      bool
		where     string
	}{
		{name: "subset", min: `{"resourceType":"Patient","name":[{"family":"D"}]}`, want: true},
		{name: "array items in any order", min: `{"name":[{"given":["C","B"]},{"family":"A"}]}`, want: true},
		{name: "numbers by value", min: `{"multipleBirthInteger":2.0}`, want: true},
		{name: "missing element", min: `{"birthDate":"2000"}`, where: "birthDate"},
		{name: "different value", min: `{"name":[{"family":"Z"}]}`, where: "name[0]"},
		{name: "object where array", min: `{"name":{"family":"A"}}`, where: "name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			min, err := parseTree([]byte(tc.min))
			if err != nil {
				t.Fatal(err)
			}
			got, where := containsMinimum(min, actual, "")
			if got != tc.want || where != tc.where {
				t.Errorf("containsMinimum = %v %q, want %v %q", got, where, tc.want, tc.where)
			}
		})
	}
}

func TestSubstitute(t *testing.T) {
	vals := map[string]string{"a": "1", "q": `x"y\z`}
	lookup := func(name string) (string, bool, error) {
		if name == "bad" {
			return "", true, errors.New("bad variable")
		}
		v, ok := vals[name]
		return v, ok, nil
	}
	tests := []struct {
		name, in          string
		json, keepUnknown bool
		want, wantErr     string
	}{
		{name: "none", in: "plain", want: "plain"},
		{name: "several", in: "/${a}/x/${a}", want: "/1/x/1"},
		{name: "json escaped", in: `{"v":"${q}"}`, json: true, want: `{"v":"x\"y\\z"}`},
		{name: "raw", in: "${q}", want: `x"y\z`},
		{name: "unclosed", in: "a${b", want: "a${b"},
		{name: "unknown kept", in: "${zz}-${a}", keepUnknown: true, want: "${zz}-1"},
		{name: "unknown refused", in: "${zz}", wantErr: "unknown variable ${zz}"},
		{name: "lookup error", in: "${bad}", wantErr: "bad variable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := substitute(tc.in, lookup, tc.json, tc.keepUnknown)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("substitute(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

// TestFixtureScriptsParse checks that every TestScript of the suite is valid for the engine
// and that its file fixtures resolve, without a server.
func TestFixtureScriptsParse(t *testing.T) {
	scripts, err := FindScripts(filepath.Join("..", "testdata", "testscripts"))
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	v := fhirvalidate.New(fhirvalidate.Options{})
	for _, path := range scripts {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		s, err := parseScript(b)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		root := filepath.Join("..", "testdata", "testscripts")
		rel, _ := filepath.Rel(root, path)
		if want := strings.ReplaceAll(strings.TrimSuffix(filepath.ToSlash(rel), ".json"), "/", "-"); s.ID != want {
			t.Errorf("%s: id %q, want %q (the path with / as -)", path, s.ID, want)
		}
		if prev, dup := ids[s.ID]; dup {
			t.Errorf("%s and %s share the id %q", prev, path, s.ID)
		}
		ids[s.ID] = path
		x := &run{r: &Runner{}, ctx: context.Background(), script: s, dir: filepath.Dir(path), fixtures: map[string]*fixture{}, vars: map[string]*scriptVariable{}, profiles: map[string]string{}}
		if err := x.load(); err != nil {
			t.Errorf("%s: %v", path, err)
		}
		if _, issues, err := v.Validate(b); err != nil || fhirvalidate.HasErrors(issues) {
			t.Errorf("%s is not a valid R4 TestScript: %v %+v", path, err, issues)
		}
		if s.URL == "" || s.Name == "" || len(s.Test) == 0 {
			t.Errorf("%s: want url, name and at least one test", path)
		}
	}
}
