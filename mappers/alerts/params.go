package alerts

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-health/vigil/mappers/codes"
)

// Param is one vital-sign value read from an Observation.
type Param struct {
	// Name is the parameter (heart-rate, spo2, systolic-bp, ...).
	Name string
	// Value is the numeric value; Text is its exact decimal text.
	Value float64
	Text  string
	// Unit is the UCUM code of the value.
	Unit string
	// Time is the effective time of the Observation (the end of a period).
	Time time.Time
	// Ref is the reference to the Observation ("Observation/123").
	Ref string
	// Coding is the LOINC (else first) coding of the parameter, for evidence.
	Coding map[string]any
}

// componentParams names the parameters of panel components.
var componentParams = map[string]string{"systolic": "systolic-bp", "diastolic": "diastolic-bp", "mean": "mean-bp"}

// ObservationRef returns the reference to use for an Observation map:
// "Observation/<id>" when it has an id, else "".
func ObservationRef(obs map[string]any) string {
	if id, _ := obs["id"].(string); id != "" {
		return "Observation/" + id
	}
	return ""
}

// skipStatus are Observation statuses that carry no usable value.
var skipStatus = map[string]bool{"entered-in-error": true, "cancelled": true, "registered": true}

// ExtractParams reads the vital-sign parameters of an Observation map (as
// built by mappers.Observation or decoded from stored JSON): its value for a
// single vital, each component of a panel, and the inhaled oxygen flow
// component of an SpO2 reading. ref is the reference recorded in Param.Ref.
// Observations entered in error or cancelled yield nothing.
func ExtractParams(obs map[string]any, ref string) []Param {
	if st, _ := obs["status"].(string); skipStatus[st] {
		return nil
	}
	t := effectiveTime(obs)
	var out []Param
	name, coding := paramOf(obs["code"])
	if name != "" {
		if p, ok := quantityParam(name, obs["valueQuantity"]); ok {
			p.Time, p.Ref, p.Coding = t, ref, coding
			out = append(out, p)
		}
	}
	comps, _ := obs["component"].([]any)
	for _, c := range comps {
		cm, _ := c.(map[string]any)
		cname, ccoding := paramOf(cm["code"])
		if cname == "" {
			continue
		}
		if p, ok := quantityParam(cname, cm["valueQuantity"]); ok {
			p.Time, p.Ref, p.Coding = t, ref, ccoding
			out = append(out, p)
		}
	}
	return out
}

// paramOf finds the parameter a CodeableConcept denotes and the coding to
// cite for it (LOINC when present).
func paramOf(cc any) (string, map[string]any) {
	m, _ := cc.(map[string]any)
	codings, _ := m["coding"].([]any)
	name := ""
	var cite map[string]any
	for _, c := range codings {
		cm, _ := c.(map[string]any)
		sys, _ := cm["system"].(string)
		code, _ := cm["code"].(string)
		metric, comp, _, ok := codes.MetricByCoding(sys, code)
		if !ok {
			continue
		}
		n := metric.Name
		if comp != "" {
			n = componentParams[comp]
		} else if metric.IsPanel() {
			continue // the panel itself has no value
		}
		if name == "" {
			name, cite = n, cm
		}
		if sys == codes.SystemLOINC && n == name {
			cite = cm
			break
		}
	}
	return name, cite
}

func quantityParam(name string, q any) (Param, bool) {
	qm, _ := q.(map[string]any)
	if qm == nil {
		return Param{}, false
	}
	text, v, ok := number(qm["value"])
	if !ok {
		return Param{}, false
	}
	unit, _ := qm["code"].(string)
	if unit == "" {
		u, _ := qm["unit"].(string)
		unit, _ = codes.NormalizeUnit(u)
	}
	return Param{Name: name, Value: v, Text: text, Unit: unit}, true
}

func number(v any) (string, float64, bool) {
	switch n := v.(type) {
	case json.Number:
		f, err := n.Float64()
		return string(n), f, err == nil
	case float64:
		return strconv.FormatFloat(n, 'f', -1, 64), n, true
	case int:
		return strconv.Itoa(n), float64(n), true
	case string:
		f, err := strconv.ParseFloat(n, 64)
		return n, f, err == nil
	}
	return "", 0, false
}

// effectiveTime reads effectiveDateTime, effectiveInstant or the end (else
// start) of effectivePeriod. Partial dates count as their first instant.
func effectiveTime(obs map[string]any) time.Time {
	for _, k := range []string{"effectiveDateTime", "effectiveInstant"} {
		if s, ok := obs[k].(string); ok {
			return parseFHIRTime(s)
		}
	}
	if p, ok := obs["effectivePeriod"].(map[string]any); ok {
		if s, ok := p["end"].(string); ok {
			return parseFHIRTime(s)
		}
		if s, ok := p["start"].(string); ok {
			return parseFHIRTime(s)
		}
	}
	return time.Time{}
}

func parseFHIRTime(s string) time.Time {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02", "2006-01", "2006"} {
		if t, err := time.Parse(layout, strings.TrimSpace(s)); err == nil {
			return t
		}
	}
	return time.Time{}
}
