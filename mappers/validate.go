package mappers

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-health/vigil/mappers/codes"
)

// Kinds of invalid readings; a *ValidationError unwraps to the kinds of its
// problems so callers can test them with errors.Is.
var (
	ErrMissingDevice     = errors.New("missing device")
	ErrMissingPatient    = errors.New("missing patient")
	ErrUnsupportedMetric = errors.New("unsupported metric")
	ErrUnknownUnit       = errors.New("unknown unit for the metric")
	ErrInvalidValue      = errors.New("invalid value")
	ErrOutOfRange        = errors.New("value outside the physical range")
	ErrMissingTime       = errors.New("missing time")
	ErrInvalidTime       = errors.New("invalid time")
	ErrFutureTime        = errors.New("time in the future")
	ErrInvalidStatus     = errors.New("invalid status")
)

// Problem is one reason a reading is invalid: the field at fault (as named
// in the Vigil compact format), the kind, and a human-readable reason.
type Problem struct {
	Field  string
	Kind   error
	Reason string
}

// Error implements error.
func (p Problem) Error() string { return p.Field + ": " + p.Reason }

// Unwrap returns the kind of the problem.
func (p Problem) Unwrap() error { return p.Kind }

// ValidationError lists every problem found in one reading.
type ValidationError struct {
	Index    int
	Problems []Problem
}

// Error implements error.
func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("invalid reading: ")
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.Error())
	}
	return b.String()
}

// Unwrap returns the problems, so errors.Is(err, ErrOutOfRange) works.
func (e *ValidationError) Unwrap() []error {
	out := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		out[i] = p
	}
	return out
}

// MapStatus maps a reading status, as FHIR or HL7 v2 (OBX-11) spells it, to
// the FHIR observation status. "" is final.
func MapStatus(s string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "final", "f":
		return "final", nil
	case "preliminary", "prelim", "p":
		return "preliminary", nil
	case "amended", "a":
		return "amended", nil
	case "corrected", "c":
		return "corrected", nil
	case "entered-in-error", "error", "w", "d":
		return "entered-in-error", nil
	case "cancelled", "canceled", "x":
		return "cancelled", nil
	case "registered", "r":
		return "registered", nil
	}
	return "", fmt.Errorf("%w: %q is not final, preliminary, amended, corrected, entered-in-error or cancelled", ErrInvalidStatus, s)
}

// Validate checks a reading: device and patient present, metric known (or
// an explicit coding to pass through), unit accepted by the metric, value a
// decimal inside the metric's physical range, time present and not later
// than now+skew. It returns nil or a *ValidationError naming every problem.
func Validate(r *Reading, now time.Time, skew time.Duration) error {
	var ps []Problem
	add := func(field string, kind error, format string, args ...any) {
		ps = append(ps, Problem{Field: field, Kind: kind, Reason: fmt.Sprintf(format, args...)})
	}
	if r.Device.Key() == "" {
		add("device", ErrMissingDevice, "the device needs an identifier, EUI-64 or serial number")
	}
	if r.Patient.IsZero() {
		add("patient", ErrMissingPatient, "the patient identifier is required")
	}
	var metric *codes.Metric
	if r.Metric != "" {
		m, _, ok := codes.MetricByName(r.Metric)
		if ok {
			metric = m
		} else if r.Code == nil {
			add("metric", ErrUnsupportedMetric, "%q is not a supported metric (supported: %s)", r.Metric, strings.Join(metricNames(), ", "))
		}
	} else if r.Code == nil || r.Code.Code == "" {
		add("metric", ErrUnsupportedMetric, "a metric name or a code is required")
	}

	switch {
	case r.Time.IsZero():
		add("time", ErrMissingTime, "the measurement time is required")
	case r.Time.After(now.Add(skew)):
		add("time", ErrFutureTime, "%s is later than the server time plus %s of allowed clock skew", r.Time.Format(time.RFC3339), skew)
	}
	if !r.End.IsZero() {
		if r.End.Before(r.Time) {
			add("end", ErrInvalidTime, "the interval ends before it starts")
		} else if r.End.After(now.Add(skew)) {
			add("end", ErrFutureTime, "%s is later than the server time plus %s of allowed clock skew", r.End.Format(time.RFC3339), skew)
		}
	}
	if r.Status != "" {
		if _, err := MapStatus(r.Status); err != nil {
			add("status", ErrInvalidStatus, "%q is not a known status", r.Status)
		}
	}

	var unit codes.MetricUnit
	unitOK := false
	if metric != nil {
		unitText := r.UnitText
		if unitText == "" {
			unitText = r.Unit
		}
		if r.Unit == "" {
			if unitText == "" {
				add("unit", ErrUnknownUnit, "a unit is required for %s (accepted: %s)", metric.Name, strings.Join(metric.UnitCodes(), ", "))
			} else {
				add("unit", ErrUnknownUnit, "%q is not a known unit (accepted for %s: %s)", unitText, metric.Name, strings.Join(metric.UnitCodes(), ", "))
			}
		} else if u, ok := metric.Unit(r.Unit); ok {
			unit, unitOK = u, true
		} else {
			add("unit", ErrUnknownUnit, "%q is not a unit of %s (accepted: %s)", unitText, metric.Name, strings.Join(metric.UnitCodes(), ", "))
		}
	}

	checkValue := func(field, v string) {
		switch {
		case strings.TrimSpace(v) == "":
			add(field, ErrInvalidValue, "a value is required")
		case !IsDecimal(v):
			add(field, ErrInvalidValue, "%q is not a decimal number", v)
		case unitOK:
			f, _ := strconv.ParseFloat(v, 64)
			if f < unit.Min || f > unit.Max {
				add(field, ErrOutOfRange, "%s %s is outside the physical range %s..%s %s for %s", v, unit.UCUM,
					fmtFloat(unit.Min), fmtFloat(unit.Max), unit.UCUM, metric.Name)
			}
		}
	}
	if metric != nil && metric.IsPanel() {
		if r.Value != "" {
			add("value", ErrInvalidValue, "%s is a panel: give its parts (%s), not one value", metric.Name, strings.Join(componentNames(metric), ", "))
		}
		for _, c := range metric.Components {
			v, ok := r.Parts[c.Name]
			if !ok {
				if c.Required {
					add(c.Name, ErrInvalidValue, "%s requires a %s value", metric.Name, c.Name)
				}
				continue
			}
			checkValue(c.Name, v)
		}
		for _, name := range sortedKeys(r.Parts) {
			if _, ok := metric.Component(name); !ok {
				add(name, ErrInvalidValue, "%q is not a part of %s (parts: %s)", name, metric.Name, strings.Join(componentNames(metric), ", "))
			}
		}
	} else {
		if len(r.Parts) > 0 {
			add("parts", ErrInvalidValue, "only panel metrics (blood-pressure) have parts")
		}
		checkValue("value", r.Value)
	}
	if len(ps) == 0 {
		return nil
	}
	return &ValidationError{Index: r.Index, Problems: ps}
}

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

func metricNames() []string {
	ms := codes.Metrics()
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Name
	}
	return out
}

func componentNames(m *codes.Metric) []string {
	out := make([]string, len(m.Components))
	for i, c := range m.Components {
		out[i] = c.Name
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
