package fhirpath

import (
	"errors"
	"strings"
	"testing"
)

// fuzzSeeds returns the expressions of the unit tests and a few resources.
func fuzzSeeds() []string {
	seeds := []string{
		"Observation.value.as(Quantity).value > 100 'mm[Hg]'",
		"Patient.name.where(use = 'official').given.first() & ' ' & family",
		"@2020-01-01T10:00:00.000+01:00 + 3 'wk' - 1 month",
		"%`vs-x` | %'y' | $this | $index | $total",
		"iif(1 > 2, {}, (1 | 2).aggregate($this + $total, 0))",
		"/* c */ a.`b c`.d[0] // x",
		"-(-1.5).abs().round(1)",
	}
	for _, group := range oracleCorpus {
		seeds = append(seeds, group.exprs...)
	}
	return seeds
}

func FuzzCompile(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		e, err := Compile(src)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("Compile(%q) error %v does not wrap ErrSyntax", src, err)
			}
			return
		}
		if e.String() != src {
			t.Fatalf("String() = %q, want %q", e.String(), src)
		}
	})
}

func FuzzEvaluate(f *testing.F) {
	inputs := []string{pat, bp, qst, edge, rbndl}
	for i, s := range fuzzSeeds() {
		f.Add(s, uint8(i))
	}
	f.Fuzz(func(t *testing.T, src string, which uint8) {
		e, err := Compile(src)
		if err != nil {
			return
		}
		r := fixture(t, inputs[int(which)%len(inputs)])
		out, err := e.Evaluate(r, &Env{MaxItems: 10000, MaxDepth: 20})
		if err != nil {
			if !errors.Is(err, ErrEvaluation) {
				t.Fatalf("Evaluate(%q) error %v does not wrap ErrEvaluation", src, err)
			}
			if strings.Contains(err.Error(), "internal error") {
				t.Fatalf("Evaluate(%q) panicked: %v", src, err)
			}
			return
		}
		for _, v := range out {
			_ = v.String()
			_ = v.Path()
			_ = v.Type()
		}
	})
}

func FuzzApplyPatch(f *testing.F) {
	seeds := []string{
		params(op(`{"name":"type","valueCode":"add"}`, `{"name":"path","valueString":"Patient"}`, `{"name":"name","valueString":"gender"}`, `{"name":"value","valueCode":"female"}`)),
		params(op(`{"name":"type","valueCode":"insert"}`, `{"name":"path","valueString":"Patient.identifier"}`, `{"name":"index","valueInteger":1}`, `{"name":"value","valueIdentifier":{"system":"z"}}`)),
		params(op(`{"name":"type","valueCode":"delete"}`, `{"name":"path","valueString":"Patient.name[0].given[1]"}`)),
		params(op(`{"name":"type","valueCode":"replace"}`, `{"name":"path","valueString":"Patient.deceased"}`, `{"name":"value","valueDateTime":"2020"}`)),
		params(op(`{"name":"type","valueCode":"move"}`, `{"name":"path","valueString":"Patient.identifier"}`, `{"name":"source","valueInteger":2}`, `{"name":"destination","valueInteger":0}`)),
		params(op(`{"name":"type","valueCode":"add"}`, `{"name":"path","valueString":"Patient"}`, `{"name":"name","valueString":"contact"}`, `{"name":"value","part":[{"name":"name","valueHumanName":{"family":"P"}}]}`)),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, patch string) {
		p, err := ParseJSON([]byte(patch))
		if err != nil {
			return
		}
		res, err := ParseJSON([]byte(patchPatient))
		if err != nil {
			t.Fatal(err)
		}
		out, err := ApplyPatch(res, p)
		if err != nil {
			var pe *PatchError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T %v is not a *PatchError", err, err)
			}
			return
		}
		if _, ok := out.(map[string]any); !ok {
			t.Fatalf("ApplyPatch returned %T", out)
		}
	})
}
