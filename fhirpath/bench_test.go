package fhirpath

import (
	"testing"
)

func BenchmarkCompile(b *testing.B) {
	const src = "Observation.component.where(code.coding.where(system = 'http://loinc.org' and code = '8480-6').exists()).value.as(Quantity).value > 140"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(src); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEvaluate(b *testing.B) {
	for _, bc := range []struct{ name, expr string }{
		{"value-as-quantity", "Observation.value.as(Quantity)"},
		{"code", "Observation.code"},
		{"subject-resolve-is-patient", "Observation.subject.where(resolve() is Patient)"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := fixture(b, "Observation-heart-rate.json")
			e := MustCompile(bc.expr)
			if got, err := e.Evaluate(r, nil); err != nil || len(got) == 0 {
				b.Fatalf("%s = %v, %v", bc.expr, got, err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.Evaluate(r, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkObservationSearchParams is the indexing cost of one write: every
// R4 search-parameter expression whose base is Observation, evaluated over
// one vital-sign Observation.
func BenchmarkObservationSearchParams(b *testing.B) {
	for _, file := range []string{"Observation-heart-rate.json", "Observation-blood-pressure.json"} {
		b.Run(file, func(b *testing.B) {
			var exprs []*Expression
			for _, sp := range loadSearchParams(b) {
				for _, base := range sp.Base {
					if (base == "Observation" || base == "Resource" || base == "DomainResource") && sp.Expression != "" {
						exprs = append(exprs, MustCompile(sp.Expression))
					}
				}
			}
			r := fixture(b, file)
			b.ReportAllocs()
			cpu0, cpuOK := processCPUTime()
			for b.Loop() {
				for _, e := range exprs {
					if _, err := e.Evaluate(r, nil); err != nil {
						b.Fatal(err)
					}
				}
			}
			// CPU time per write, which stays meaningful on a loaded machine
			// (it includes the garbage collector's work).
			b.ReportMetric(float64(len(exprs)), "exprs")
			if cpu1, ok := processCPUTime(); ok && cpuOK && b.N > 0 {
				b.ReportMetric(float64((cpu1-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
			}
		})
	}
}
