package fhirstore_test

import (
	"context"
	"fmt"
	"net/url"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-health/vigil/fhirstore"
	"github.com/vigil-health/vigil/fhirstore/storetest"
)

// noIndex indexes nothing: the baseline of the create benchmark.
type noIndex struct{}

func (noIndex) Index(string, map[string]any) (*fhirstore.IndexRows, error) {
	return &fhirstore.IndexRows{}, nil
}

// deviceObservation is a heart rate as a device gateway writes it.
func deviceObservation(patient string, i int, at time.Time) map[string]any {
	return map[string]any{
		"resourceType": "Observation",
		"status":       "final",
		"meta":         map[string]any{"profile": []any{"http://hl7.org/fhir/StructureDefinition/heartrate"}},
		"identifier":   []any{map[string]any{"system": "urn:vigil:device-reading", "value": fmt.Sprintf("%s-%d", patient, i)}},
		"category": []any{map[string]any{"coding": []any{map[string]any{
			"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs", "display": "Vital Signs"}}}},
		"code": map[string]any{"coding": []any{
			map[string]any{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"},
			map[string]any{"system": "urn:iso:std:iso:11073:10101", "code": "147842", "display": "MDC_ECG_HEART_RATE"}}},
		"subject":           map[string]any{"reference": "Patient/" + patient},
		"device":            map[string]any{"reference": "Device/dev-" + patient},
		"effectiveDateTime": at.UTC().Format(time.RFC3339),
		"valueQuantity":     map[string]any{"value": 60 + i%50, "unit": "beats/minute", "system": "http://unitsofmeasure.org", "code": "/min"},
	}
}

func openBench(b *testing.B, be storetest.Backend, ix fhirstore.Indexer) *fhirstore.Store {
	b.Helper()
	st, err := fhirstore.Open(context.Background(), be.NewURL(b), fhirstore.Options{Logger: storetest.QuietLogger(), Indexer: ix})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

// BenchmarkCreate compares the create rate without index, with the identifier index only,
// and with every search parameter indexed; serial (one commit each) and parallel (group
// commit on SQLite).
func BenchmarkCreate(b *testing.B) {
	full, err := fhirstore.NewSearchIndexer()
	if err != nil {
		b.Fatal(err)
	}
	indexers := []struct {
		name string
		ix   fhirstore.Indexer
	}{{"none", noIndex{}}, {"identifier", fhirstore.IdentifierIndexer{}}, {"full", full}}
	for _, be := range storetest.Backends() {
		for _, mode := range []string{"serial", "parallel"} {
			for _, ixc := range indexers {
				b.Run(be.Name+"/"+mode+"/"+ixc.name, func(b *testing.B) {
					st := openBench(b, be, ixc.ix)
					ctx := context.Background()
					at := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
					// Readings of 1,000 patients interleaved, as a hospital's devices send them
					// (one patient's readings serialise on its latest-value rows).
					var seq atomic.Int64
					create := func(int) {
						i := int(seq.Add(1))
						err := st.InTx(ctx, func(tx *fhirstore.Tx) error {
							_, err := tx.Create(ctx, "Observation", deviceObservation(fmt.Sprintf("p%d", i%1000), i, at.Add(time.Duration(i)*time.Second)))
							return err
						})
						if err != nil {
							b.Error(err)
						}
					}
					b.ReportAllocs()
					b.ResetTimer()
					// The process CPU time per create is steadier than wall time on a
					// shared machine; report both.
					cpu0 := processCPU()
					defer func() { b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N)/1e3, "cpu-µs/op") }()
					if mode == "serial" {
						for i := 0; i < b.N; i++ {
							create(i)
						}
						return
					}
					b.SetParallelism(8)
					b.RunParallel(func(pb *testing.PB) {
						i := 0
						for pb.Next() {
							create(i)
							i++
						}
					})
				})
			}
		}
	}
}

// processCPU returns the user+system CPU time of the process in nanoseconds.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkIndexObservation measures the extraction alone (no database).
func BenchmarkIndexObservation(b *testing.B) {
	ix, err := fhirstore.NewSearchIndexer()
	if err != nil {
		b.Fatal(err)
	}
	o := deviceObservation("p1", 1, time.Now())
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := ix.Index("Observation", o); err != nil {
			b.Fatal(err)
		}
	}
}

const (
	benchPatients = 20
	benchReadings = 500 // heart rates per patient
)

// loadDeviceData writes benchPatients patients, each with a device, benchReadings heart
// rates a minute apart, a blood pressure every ten readings and a DetectedIssue every
// fifty.
func loadDeviceData(b *testing.B, st *fhirstore.Store) {
	b.Helper()
	ctx := context.Background()
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for p := 0; p < benchPatients; p++ {
		pid := fmt.Sprintf("bp%d", p)
		err := st.InTx(ctx, func(tx *fhirstore.Tx) error {
			if _, err := tx.CreateWithID(ctx, "Patient", pid, map[string]any{"resourceType": "Patient", "gender": "female"}); err != nil {
				return err
			}
			if _, err := tx.CreateWithID(ctx, "Device", "dev-"+pid, map[string]any{"resourceType": "Device",
				"patient": map[string]any{"reference": "Patient/" + pid}}); err != nil {
				return err
			}
			for i := 0; i < benchReadings; i++ {
				at := start.Add(time.Duration(i) * time.Minute)
				if _, err := tx.Create(ctx, "Observation", deviceObservation(pid, i, at)); err != nil {
					return err
				}
				if i%10 == 0 {
					bp := deviceObservation(pid, i, at)
					bp["code"] = map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "85354-9"}}}
					delete(bp, "valueQuantity")
					bp["component"] = []any{
						map[string]any{"code": map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "8480-6"}}},
							"valueQuantity": map[string]any{"value": 120 + i%20, "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
						map[string]any{"code": map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "8462-4"}}},
							"valueQuantity": map[string]any{"value": 80 + i%10, "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}}
					if _, err := tx.Create(ctx, "Observation", bp); err != nil {
						return err
					}
				}
				if i%50 == 0 {
					if _, err := tx.Create(ctx, "DetectedIssue", map[string]any{"resourceType": "DetectedIssue", "status": "final",
						"patient": map[string]any{"reference": "Patient/" + pid}, "identifiedDateTime": at.Format(time.RFC3339)}); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDeviceQueries runs the queries a device dashboard makes on 20 patients with
// 500 heart rates, 50 blood pressures and 10 detected issues each (11,220 resources).
func BenchmarkDeviceQueries(b *testing.B) {
	queries := []struct {
		name, typ, q string
		want         int // matches (or total for _summary=count)
	}{
		{"latest-hr", "Observation", "patient=bp7&code=8867-4&_sort=-date&_count=1", 1},
		{"window-category", "Observation", "patient=bp7&category=vital-signs&date=ge2024-01-01T02:00:00Z&date=lt2024-01-01T03:00:00Z&_count=100", 66},
		{"devices-of-patient", "Device", "patient=bp7", 1},
		{"detected-issues", "DetectedIssue", "patient=bp7&_sort=-identified", 10},
		{"count-hr", "Observation", "code=8867-4&_summary=count", benchPatients * benchReadings},
		{"bp-systolic-130-or-more", "Observation", "patient=bp7&component-code-value-quantity=8480-6$ge130|http://unitsofmeasure.org|mm[Hg]&_count=100", 25},
		{"chain-patient-gender", "Observation", "patient.gender=female&code=85354-9&_count=10", 10},
	}
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			st := openBench(b, be, nil)
			loadDeviceData(b, st)
			if st.Backend() == "postgres" {
				if _, err := st.DB().Exec("ANALYZE"); err != nil {
					b.Fatal(err)
				}
			}
			for _, q := range queries {
				b.Run(q.name, func(b *testing.B) {
					params, _ := url.ParseQuery(q.q)
					req := fhirstore.SearchRequest{Type: q.typ, Params: params}
					ctx := context.Background()
					b.ReportAllocs()
					for i := 0; i < b.N; i++ {
						res, err := st.Search(ctx, req)
						if err != nil {
							b.Fatal(err)
						}
						got := len(res.Matches)
						if res.Total != nil {
							got = *res.Total
						}
						if got != q.want {
							b.Fatalf("%s?%s: %d results, want %d", q.typ, q.q, got, q.want)
						}
					}
				})
			}
		})
	}
}
