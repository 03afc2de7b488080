package fhirpath

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// searchParam is the part of an R4 SearchParameter the tests use.
type searchParam struct {
	Code       string   `json:"code"`
	Base       []string `json:"base"`
	Type       string   `json:"type"`
	Expression string   `json:"expression"`
	Component  []struct {
		Expression string `json:"expression"`
	} `json:"component"`
}

func loadSearchParams(t testing.TB) []searchParam {
	t.Helper()
	b, err := os.ReadFile("../fhirstore/spec/search-parameters.json")
	if err != nil {
		t.Fatal(err)
	}
	var bundle struct {
		Entry []struct {
			Resource searchParam `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(b, &bundle); err != nil {
		t.Fatal(err)
	}
	out := make([]searchParam, 0, len(bundle.Entry))
	for _, e := range bundle.Entry {
		out = append(out, e.Resource)
	}
	return out
}

// loadExamples returns one example resource per resource type from testdata.
func loadExamples(t testing.TB) map[string]any {
	t.Helper()
	out := map[string]any{}
	for _, dir := range []string{testdataDir, filepath.Join(testdataDir, "examples")} {
		files, err := filepath.Glob(filepath.Join(dir, "*.json"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			r, err := ParseJSON(b)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			m, ok := r.(map[string]any)
			if !ok {
				continue
			}
			rt, _ := m["resourceType"].(string)
			if _, seen := out[rt]; !seen && rt != "" {
				out[rt] = r
			}
		}
	}
	return out
}

func TestSearchParameterExpressions(t *testing.T) {
	params := loadSearchParams(t)
	if len(params) != 1378 {
		t.Fatalf("loaded %d search parameters, want 1378", len(params))
	}
	examples := loadExamples(t)
	compiled, evaluated, nonEmpty := 0, 0, 0
	typeless := map[string]bool{}
	for _, sp := range params {
		if sp.Expression == "" {
			continue
		}
		expr, err := Compile(sp.Expression)
		if err != nil {
			t.Errorf("%s %s: Compile(%q): %v", strings.Join(sp.Base, ","), sp.Code, sp.Expression, err)
			continue
		}
		compiled++
		for _, c := range sp.Component {
			if _, err := Compile(c.Expression); err != nil {
				t.Errorf("%s component: Compile(%q): %v", sp.Code, c.Expression, err)
			}
		}
		var targets []string
		for _, base := range sp.Base {
			if base == "Resource" || base == "DomainResource" {
				// Parameters of every resource (_id, _lastUpdated, _profile ...) run on all examples.
				for rt := range examples {
					targets = append(targets, rt)
				}
				continue
			}
			targets = append(targets, base)
		}
		for _, base := range targets {
			r, ok := examples[base]
			if !ok {
				typeless[base] = true
				continue
			}
			got, err := expr.Evaluate(r, nil)
			if err != nil {
				t.Errorf("%s.%s: Evaluate(%q): %v", base, sp.Code, sp.Expression, err)
				continue
			}
			evaluated++
			if len(got) > 0 {
				nonEmpty++
			}
			for _, v := range got {
				if v.Type() == "" {
					t.Errorf("%s.%s: %q gives an untyped item at %s", base, sp.Code, sp.Expression, v.Path())
				}
			}
		}
	}
	missing := make([]string, 0, len(typeless))
	for b := range typeless {
		missing = append(missing, b)
	}
	sort.Strings(missing)
	t.Logf("compiled %d expressions; %d evaluations on examples, %d non-empty; bases without an example: %v", compiled, evaluated, nonEmpty, missing)
	if compiled != 1375 {
		t.Errorf("compiled %d expressions, want 1375", compiled)
	}
	// The examples are real resources: a working evaluator finds values for a good share of the parameters.
	if nonEmpty*3 < evaluated {
		t.Errorf("only %d of %d evaluations found values", nonEmpty, evaluated)
	}
}

// TestSearchParameterValues checks what indexing sees for a few parameters.
func TestSearchParameterValues(t *testing.T) {
	byKey := map[string]string{}
	for _, sp := range loadSearchParams(t) {
		for _, b := range sp.Base {
			byKey[b+"."+sp.Code] = sp.Expression
		}
	}
	tests := []struct {
		param, input string
		wantType     string
		want         []string
	}{
		{"Observation.patient", bp, "Reference", []string{`{"reference":"Patient/example"}`}},
		{"Observation.value-quantity", obs, "Quantity", []string{"185 '[lb_av]'"}},
		{"Observation.component-value-quantity", bp, "Quantity", []string{"107 'mm[Hg]'", "60 'mm[Hg]'"}},
		{"Observation.date", bp, "dateTime", []string{"2012-09-17"}},
		{"Observation.status", obs, "code", []string{"final"}},
		{"Patient.birthdate", pat, "date", []string{"1974-12-25"}},
		{"Patient.family", pat, "string", []string{"Chalmers", "Windsor"}},
		{"Patient.organization", edge, "Reference", []string{`{"reference":"#org1"}`}},
		{"Patient.deceased", edge, TypeBoolean, []string{"false"}},
		{"Patient.deceased", pat, TypeBoolean, []string{"false"}},
	}
	for _, tc := range tests {
		t.Run(tc.param, func(t *testing.T) {
			src, ok := byKey[tc.param]
			if !ok {
				t.Fatalf("no search parameter %s", tc.param)
			}
			got, err := MustCompile(src).Evaluate(fixture(t, tc.input), nil)
			if err != nil {
				t.Fatal(err)
			}
			var gs []string
			for _, v := range got {
				gs = append(gs, v.String())
				if v.Type() != tc.wantType {
					t.Errorf("item %s has type %q, want %q", v.Path(), v.Type(), tc.wantType)
				}
			}
			if strings.Join(gs, "|") != strings.Join(tc.want, "|") {
				t.Errorf("%s = %v, want %v", src, gs, tc.want)
			}
		})
	}
}
