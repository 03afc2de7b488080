package fhirstore

import "strings"

// UCUMSystem is the code system URI of UCUM units.
const UCUMSystem = "http://unitsofmeasure.org"

// Canonical is the conversion of a unit to the canonical unit of its dimension:
// canonical = value*Factor + Offset.
type Canonical struct {
	// Code is the canonical UCUM code ("Pa", "K", "g", "/min", "%", "mmol/L", "g/L", "m").
	Code   string
	Factor float64
	Offset float64
}

// Convert maps a value in the source unit to the canonical unit.
func (c Canonical) Convert(v float64) float64 { return v*c.Factor + c.Offset }

// ucumUnits is the table of device units Vigil compares across units. It is deliberately
// small: the units connected devices report (blood pressure, temperature, weight, rates,
// saturation, glucose, length).
var ucumUnits = map[string]Canonical{
	// Pressure.
	"Pa":      {"Pa", 1, 0},
	"kPa":     {"Pa", 1000, 0},
	"mm[Hg]":  {"Pa", 133.322387415, 0},
	"cm[H2O]": {"Pa", 98.0665, 0},
	// Temperature.
	"K":      {"K", 1, 0},
	"Cel":    {"K", 1, 273.15},
	"[degF]": {"K", 5.0 / 9.0, 273.15 - 32*5.0/9.0},
	// Mass.
	"g":       {"g", 1, 0},
	"kg":      {"g", 1000, 0},
	"mg":      {"g", 0.001, 0},
	"ug":      {"g", 1e-6, 0},
	"[lb_av]": {"g", 453.59237, 0},
	"[oz_av]": {"g", 28.349523125, 0},
	// Rates.
	"/min": {"/min", 1, 0},
	"/s":   {"/min", 60, 0},
	"/h":   {"/min", 1.0 / 60, 0},
	"Hz":   {"/min", 60, 0},
	// Fractions.
	"%": {"%", 1, 0},
	"1": {"%", 100, 0},
	// Substance and mass concentration.
	"mmol/L": {"mmol/L", 1, 0},
	"umol/L": {"mmol/L", 0.001, 0},
	"mol/L":  {"mmol/L", 1000, 0},
	"g/L":    {"g/L", 1, 0},
	"mg/dL":  {"g/L", 0.01, 0},
	"g/dL":   {"g/L", 10, 0},
	"mg/L":   {"g/L", 0.001, 0},
	// Length.
	"m":      {"m", 1, 0},
	"cm":     {"m", 0.01, 0},
	"mm":     {"m", 0.001, 0},
	"km":     {"m", 1000, 0},
	"[in_i]": {"m", 0.0254, 0},
	"[ft_i]": {"m", 0.3048, 0},
	// Time.
	"s":   {"s", 1, 0},
	"ms":  {"s", 0.001, 0},
	"min": {"s", 60, 0},
	"h":   {"s", 3600, 0},
	"d":   {"s", 86400, 0},
	// Volume.
	"L":  {"L", 1, 0},
	"mL": {"L", 0.001, 0},
	"dL": {"L", 0.1, 0},
}

// glucoseFactor converts glucose mmol/L to mg/dL.
const glucoseFactor = 18.016

// CanonicalUnit returns the canonical form of a UCUM code. Curly-brace annotations are
// ignored ({beats}/min is /min, {breaths}/min too), as UCUM says they carry no meaning.
func CanonicalUnit(code string) (Canonical, bool) {
	code = strings.TrimSpace(code)
	if c, ok := ucumUnits[code]; ok {
		return c, true
	}
	if strings.Contains(code, "{") {
		var b strings.Builder
		depth := 0
		for _, r := range code {
			switch {
			case r == '{':
				depth++
			case r == '}':
				depth--
			case depth == 0:
				b.WriteRune(r)
			}
		}
		stripped := b.String()
		if stripped == "" {
			stripped = "1"
		}
		if c, ok := ucumUnits[stripped]; ok {
			return c, true
		}
	}
	return Canonical{}, false
}

// glucoseAlternate converts a glucose value from one canonical form to the other:
// mmol/L -> g/L and g/L -> mmol/L.
func glucoseAlternate(code string) (Canonical, bool) {
	switch code {
	case "mmol/L":
		// 1 mmol/L = 18.016 mg/dL = 0.18016 g/L.
		return Canonical{Code: "g/L", Factor: glucoseFactor / 100}, true
	case "g/L":
		return Canonical{Code: "mmol/L", Factor: 100 / glucoseFactor}, true
	}
	return Canonical{}, false
}
