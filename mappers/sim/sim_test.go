package sim

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/vigil-health/vigil/mappers"
)

// Every document the simulator makes must be accepted by the ingest parser and validator.
func TestDocumentsAreValidIngest(t *testing.T) {
	g := New(5, 1, 0.5)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for step := 0; step < 200; step++ {
		ts := now.Add(time.Duration(step) * time.Minute)
		for i := range g.Patients {
			b, err := json.Marshal(g.Next(i, ts, time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			batch, err := mappers.ParseVigil(b)
			if err != nil {
				t.Fatalf("document rejected: %v\n%s", err, b)
			}
			v := batch.Validate(ts, time.Minute)
			if len(v.Errors) > 0 {
				t.Fatalf("reading rejected: %v\n%s", v.Errors[0], b)
			}
			if len(v.Readings) != 5 {
				t.Fatalf("%d readings, want 5", len(v.Readings))
			}
		}
	}
}

// A deterioration episode moves the vitals the way clinicians expect: heart rate up,
// SpO2 down.
func TestDeteriorationEpisode(t *testing.T) {
	g := New(1, 7, 0)
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	calm := g.Next(0, start, time.Minute)
	if g.Deteriorating(0, start) {
		t.Fatal("deterioration with probability 0")
	}
	g.deteriorate = 1e9 // certain to start on the next step
	g.Next(0, start.Add(time.Minute), time.Minute)
	p := g.Patients[0]
	mid := p.episodeStart.Add(p.episodeEnd.Sub(p.episodeStart) / 2)
	if !g.Deteriorating(0, mid) {
		t.Fatal("no episode in progress")
	}
	sick := g.Next(0, mid, time.Minute)
	val := func(d Document, metric string) float64 {
		for _, r := range d.Readings {
			if r.Metric == metric {
				f, _ := strconv.ParseFloat(r.Value, 64)
				return f
			}
		}
		t.Fatalf("no %s reading", metric)
		return 0
	}
	if val(sick, "heart-rate") < val(calm, "heart-rate")+15 {
		t.Errorf("heart rate %v during the episode, %v before: want a clear rise", val(sick, "heart-rate"), val(calm, "heart-rate"))
	}
	if val(sick, "spo2") > val(calm, "spo2")-3 {
		t.Errorf("SpO2 %v during the episode, %v before: want a clear fall", val(sick, "spo2"), val(calm, "spo2"))
	}
	if g.Deteriorating(0, p.episodeEnd.Add(time.Minute)) {
		t.Error("the episode does not end")
	}
}

// The same seed gives the same patients (a reproducible demo and load).
func TestDeterministic(t *testing.T) {
	a, b := New(3, 42, 0.1), New(3, 42, 0.1)
	ts := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	ja, _ := json.Marshal(a.Next(2, ts, time.Minute))
	jb, _ := json.Marshal(b.Next(2, ts, time.Minute))
	if string(ja) != string(jb) {
		t.Fatalf("same seed, different output:\n%s\n%s", ja, jb)
	}
}
