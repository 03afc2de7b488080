package fhirvalidate

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
)

func readExample(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "examples", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// transactionBundle builds a transaction Bundle of n POST entries cycling through the
// vendored vital-sign Observations, Patient, Device and Encounter examples.
func transactionBundle(tb testing.TB, n int) []byte {
	tb.Helper()
	names := []string{"Observation-heart-rate.json", "Observation-blood-pressure.json",
		"Observation-satO2.json", "Patient-example.json", "Device-example.json", "Encounter-example.json"}
	var b strings.Builder
	b.WriteString(`{"resourceType":"Bundle","type":"transaction","entry":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		name := names[i%len(names)]
		fmt.Fprintf(&b, `{"fullUrl":"urn:uuid:00000000-0000-4000-8000-%012d","resource":%s,"request":{"method":"POST","url":%q}}`,
			i, readExample(tb, name), strings.SplitN(name, "-", 2)[0])
	}
	b.WriteString("]}")
	return []byte(b.String())
}

func TestBenchmarkInputsAreValid(t *testing.T) {
	v := New(Options{})
	for name, body := range map[string][]byte{
		"observation": readExample(t, "Observation-heart-rate.json"),
		"bundle50":    transactionBundle(t, 50),
		"offsets":     offsetObservation(t, 8, "+02:00"),
	} {
		_, issues, err := v.Validate(body)
		if err != nil || HasErrors(issues) {
			t.Errorf("%s: err=%v issues=%+v", name, err, issues)
		}
	}
}

// BenchmarkValidate measures Validate, and separately its two parts: our walk and the
// google/fhir/go parse and validation.
//
//	go test -run '^$' -bench Validate -benchmem ./fhirvalidate/
func BenchmarkValidate(b *testing.B) {
	inputs := []struct {
		name string
		body []byte
	}{
		{"observation-vital-sign", readExample(b, "Observation-heart-rate.json")},
		{"transaction-bundle-50", transactionBundle(b, 50)},
	}
	v := New(Options{})
	for _, in := range inputs {
		b.Run(in.name+"/full", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(in.body)))
			for b.Loop() {
				if _, issues, err := v.Validate(in.body); err != nil || HasErrors(issues) {
					b.Fatalf("err=%v issues=%+v", err, issues)
				}
			}
		})
		b.Run(in.name+"/walk-only", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(in.body)))
			for b.Loop() {
				w := newWalker(in.body, DefaultMaxNestingDepth)
				w.run()
				if len(w.issues) > 0 {
					b.Fatalf("issues: %+v", w.issues)
				}
			}
		})
		b.Run(in.name+"/library-only", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(in.body)))
			for b.Loop() {
				if _, _, err := v.um.UnmarshalWithOutcome(in.body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// offsetObservation returns a valid Observation with n dateTime/instant values carrying the
// given zone suffix ("Z" or a numeric offset such as "+02:00").
func offsetObservation(tb testing.TB, n int, zone string) []byte {
	tb.Helper()
	var comps []string
	for i := range n {
		comps = append(comps, fmt.Sprintf(`{"code":{"text":"c%d"},"valueDateTime":"2024-05-01T10:%02d:00%s"}`, i, i, zone))
	}
	return []byte(`{"resourceType":"Observation","status":"final","code":{"text":"x"},` +
		`"effectiveDateTime":"2024-05-01T10:00:00` + zone + `","issued":"2024-05-01T10:00:00.123` + zone + `",` +
		`"component":[` + strings.Join(comps, ",") + `]}`)
}

// BenchmarkTimestampZone compares timestamps in UTC ("Z") with numeric offsets ("+02:00"),
// 10 per resource, for Validate (which only unmarshals) and for a marshal back to JSON,
// which is where google/fhir/go looks the offset up as a time-zone name.
//
//	go test -run '^$' -bench TimestampZone -benchmem ./fhirvalidate/
func BenchmarkTimestampZone(b *testing.B) {
	v := New(Options{})
	m, err := jsonformat.NewMarshaller(false, "", "", fhirversion.R4)
	if err != nil {
		b.Fatal(err)
	}
	for _, zone := range []string{"Z", "+02:00"} {
		body := offsetObservation(b, 8, zone)
		b.Run("validate/"+zone, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, issues, err := v.Validate(body); err != nil || HasErrors(issues) {
					b.Fatalf("err=%v issues=%+v", err, issues)
				}
			}
		})
		res, err := v.um.Unmarshal(body)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("marshal/"+zone, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Marshal(res); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkZoneLookup isolates what a numeric offset costs google/fhir/go's marshaller: it
// calls time.LoadLocation with the offset ("+02:00"), which fails only after trying the
// system zoneinfo directories and $GOROOT/lib/time/zoneinfo.zip. Building with -trimpath
// (runtime.GOROOT() == "") skips the zip, the bulk of the cost.
//
//	go test -run '^$' -bench ZoneLookup -benchmem ./fhirvalidate/
//	go test -trimpath -run '^$' -bench ZoneLookup -benchmem ./fhirvalidate/
func BenchmarkZoneLookup(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := time.LoadLocation("+02:00"); err == nil {
			b.Fatal("an offset is not a zone name")
		}
	}
}
