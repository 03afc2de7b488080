// Package sim generates realistic vital signs for simulated patients: a personal baseline,
// circadian drift, measurement noise and occasional deterioration episodes (rising heart
// and respiratory rates, falling SpO2 and blood pressure, fever). It is pure: the caller
// supplies the clock and sends the documents (vigil simulate posts them to the ingest API).
//
// The documents are in Vigil's compact ingest format (testdata/ingest/vigil-readings.schema.json).
package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"
)

// Document is one ingest document: one device, one patient, several readings.
type Document struct {
	Device   Device    `json:"device"`
	Patient  PatientID `json:"patient"`
	Readings []Reading `json:"readings"`
}

// Device describes the simulated bedside monitor.
type Device struct {
	Identifier   Identifier `json:"identifier"`
	Serial       string     `json:"serial,omitempty"`
	EUI64        string     `json:"eui64,omitempty"`
	Type         string     `json:"type,omitempty"`
	Manufacturer string     `json:"manufacturer,omitempty"`
	Model        string     `json:"model,omitempty"`
}

// PatientID identifies the patient.
type PatientID struct {
	Identifier Identifier `json:"identifier"`
}

// Identifier is a system and a value.
type Identifier struct {
	System string `json:"system"`
	Value  string `json:"value"`
}

// Reading is one measurement in the compact format.
type Reading struct {
	Metric    string `json:"metric"`
	Value     string `json:"value,omitempty"`
	Systolic  string `json:"systolic,omitempty"`
	Diastolic string `json:"diastolic,omitempty"`
	Unit      string `json:"unit"`
	Time      string `json:"time"`
}

// PatientSystem and DeviceSystem are the identifier systems of simulated patients and
// devices.
const (
	PatientSystem = "urn:vigil:sim:patient"
	DeviceSystem  = "urn:vigil:sim:device"
)

// baseline is a patient's personal normal values.
type baseline struct {
	hr, spo2, sys, dia, rr, temp float64
}

// Patient is one simulated patient and its monitor.
type Patient struct {
	MRN    string
	Device Device
	base   baseline
	phase  float64 // personal circadian phase shift in hours

	// episode is the deterioration in progress (zero when none).
	episodeStart, episodeEnd time.Time
	severity                 float64
}

// Generator produces readings for a set of patients.
type Generator struct {
	Patients []*Patient
	rng      *rand.Rand
	// deteriorate is the probability that a patient starts a deterioration episode in
	// one hour of simulated time.
	deteriorate float64
}

// New builds n patients from seed. deteriorate is the chance per patient-hour that a
// deterioration episode starts (0.05 gives a few episodes a day on a ward of 20).
func New(n int, seed uint64, deteriorate float64) *Generator {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	g := &Generator{rng: rng, deteriorate: deteriorate}
	for i := 0; i < n; i++ {
		eui := fmt.Sprintf("00-1C-%02X-FF-FE-%02X-%02X-%02X", byte(seed), byte(i>>16), byte(i>>8), byte(i))
		p := &Patient{
			MRN: fmt.Sprintf("SIM-%06d", i+1),
			Device: Device{
				Identifier:   Identifier{System: DeviceSystem, Value: fmt.Sprintf("monitor-%06d", i+1)},
				Serial:       fmt.Sprintf("VS-%08d", 1000000+i),
				EUI64:        eui,
				Type:         "multi-parameter-monitor",
				Manufacturer: "Vigil Simulated Devices",
				Model:        "SimMonitor 1",
			},
			base: baseline{
				hr:   62 + rng.Float64()*24,
				spo2: 95.5 + rng.Float64()*3,
				sys:  112 + rng.Float64()*26,
				dia:  66 + rng.Float64()*16,
				rr:   12 + rng.Float64()*5,
				temp: 36.4 + rng.Float64()*0.7,
			},
			phase: rng.Float64()*4 - 2,
		}
		g.Patients = append(g.Patients, p)
	}
	return g
}

// Deteriorating reports whether patient i is in a deterioration episode at t.
func (g *Generator) Deteriorating(i int, t time.Time) bool {
	p := g.Patients[i]
	return !p.episodeStart.IsZero() && !t.Before(p.episodeStart) && t.Before(p.episodeEnd)
}

// Next returns one set of vital signs for patient i taken at t; step is the time since the
// patient's previous set (it drives the chance of a new deterioration episode).
func (g *Generator) Next(i int, t time.Time, step time.Duration) Document {
	p := g.Patients[i]
	g.maybeStartEpisode(p, t, step)
	// Circadian drift: lowest in the early morning, highest in the late afternoon.
	h := float64(t.Hour()) + float64(t.Minute())/60 + p.phase
	circ := math.Sin((h - 10) / 24 * 2 * math.Pi)
	e := p.episodeLevel(t)
	noise := func(sd float64) float64 { return g.rng.NormFloat64() * sd }

	hr := p.base.hr + 5*circ + 45*e + noise(2.5)
	spo2 := math.Min(100, p.base.spo2-9*e+noise(0.6))
	sys := p.base.sys + 6*circ - 35*e + noise(4)
	dia := p.base.dia + 3*circ - 15*e + noise(3)
	rr := p.base.rr + 1*circ + 12*e + noise(1)
	temp := p.base.temp + 0.3*circ + 1.8*e + noise(0.08)

	ts := t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
	return Document{
		Device:  p.Device,
		Patient: PatientID{Identifier: Identifier{System: PatientSystem, Value: p.MRN}},
		Readings: []Reading{
			{Metric: "heart-rate", Value: num(hr, 0), Unit: "/min", Time: ts},
			{Metric: "spo2", Value: num(spo2, 0), Unit: "%", Time: ts},
			{Metric: "blood-pressure", Systolic: num(sys, 0), Diastolic: num(dia, 0), Unit: "mm[Hg]", Time: ts},
			{Metric: "respiratory-rate", Value: num(rr, 0), Unit: "/min", Time: ts},
			{Metric: "body-temperature", Value: num(temp, 1), Unit: "Cel", Time: ts},
		},
	}
}

func (g *Generator) maybeStartEpisode(p *Patient, t time.Time, step time.Duration) {
	if !p.episodeEnd.IsZero() && t.Before(p.episodeEnd) {
		return
	}
	chance := g.deteriorate * step.Hours()
	if g.rng.Float64() >= chance {
		return
	}
	p.episodeStart = t
	p.episodeEnd = t.Add(time.Duration(30+g.rng.IntN(90)) * time.Minute)
	p.severity = 0.5 + g.rng.Float64()*0.5
}

// episodeLevel is 0 outside an episode and rises to the episode's severity over its first
// third, stays, then recovers over the last third.
func (p *Patient) episodeLevel(t time.Time) float64 {
	if p.episodeStart.IsZero() || t.Before(p.episodeStart) || !t.Before(p.episodeEnd) {
		return 0
	}
	total := p.episodeEnd.Sub(p.episodeStart).Seconds()
	x := t.Sub(p.episodeStart).Seconds() / total
	switch {
	case x < 1.0/3:
		return p.severity * x * 3
	case x > 2.0/3:
		return p.severity * (1 - x) * 3
	}
	return p.severity
}

func num(v float64, decimals int) string {
	if v < 0 {
		v = 0
	}
	return strconv.FormatFloat(v, 'f', decimals, 64)
}
