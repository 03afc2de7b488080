package mappers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// OMHOptions supplies what an Open mHealth data point does not carry: the
// device that produced it (the ingest endpoint knows it from the client or
// request) and the namespace of the header's user id.
type OMHOptions struct {
	// Device is the device that produced the data points.
	Device DeviceInfo
	// PatientSystem is the identifier system of header.user / header.user_id.
	PatientSystem string
	// Patient, when set, overrides the header's user.
	Patient Identifier
}

type omhSchemaID struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Version   string `json:"version"`
}

type omhHeader struct {
	UUID                  string      `json:"uuid"`
	ID                    string      `json:"id"`
	SchemaID              omhSchemaID `json:"schema_id"`
	CreationDateTime      string      `json:"creation_date_time"`
	User                  string      `json:"user"`
	UserID                string      `json:"user_id"`
	AcquisitionProvenance *struct {
		SourceName             string `json:"source_name"`
		SourceCreationDateTime string `json:"source_creation_date_time"`
		Modality               string `json:"modality"`
	} `json:"acquisition_provenance"`
}

type omhPoint struct {
	Header *omhHeader                 `json:"header"`
	Body   map[string]json.RawMessage `json:"body"`
}

type omhUnitValue struct {
	Value decimalText `json:"value"`
	Unit  string      `json:"unit"`
}

type omhTimeFrame struct {
	DateTime     string `json:"date_time"`
	TimeInterval *struct {
		StartDateTime string        `json:"start_date_time"`
		EndDateTime   string        `json:"end_date_time"`
		Duration      *omhUnitValue `json:"duration"`
	} `json:"time_interval"`
}

// omhSchema says how to read the body of one Open mHealth schema.
type omhSchema struct {
	metric string
	// field is the body property holding the value (unit-value object).
	field string
	// parts maps body properties to panel components, in order.
	parts [][2]string
	// qualifiers are string-valued body properties kept as qualifiers.
	qualifiers []string
	// bodySite is the string property naming the measurement site.
	bodySite string
}

var omhSchemas = map[string]omhSchema{
	"heart-rate":        {metric: "heart-rate", field: "heart_rate", qualifiers: []string{"temporal_relationship_to_physical_activity", "descriptive_statistic"}},
	"blood-pressure":    {metric: "blood-pressure", parts: [][2]string{{"systolic_blood_pressure", "systolic"}, {"diastolic_blood_pressure", "diastolic"}}, qualifiers: []string{"position_during_measurement", "descriptive_statistic"}, bodySite: "measurement_location"},
	"oxygen-saturation": {metric: "spo2", field: "oxygen_saturation", qualifiers: []string{"system", "measurement_method", "oxygen_therapy_mode_of_administration", "descriptive_statistic"}},
	"body-temperature":  {metric: "body-temperature", field: "body_temperature", qualifiers: []string{"descriptive_statistic"}, bodySite: "measurement_location"},
	"respiratory-rate":  {metric: "respiratory-rate", field: "respiratory_rate", qualifiers: []string{"temporal_relationship_to_physical_activity", "descriptive_statistic"}},
	"body-weight":       {metric: "body-weight", field: "body_weight", qualifiers: []string{"descriptive_statistic"}},
	"body-height":       {metric: "body-height", field: "body_height"},
	"blood-glucose":     {metric: "blood-glucose", field: "blood_glucose", qualifiers: []string{"specimen_source", "temporal_relationship_to_meal", "temporal_relationship_to_sleep", "descriptive_statistic"}},
	"step-count":        {metric: "step-count", field: "step_count", qualifiers: []string{"descriptive_statistic"}},
}

// ParseOpenMHealth parses Open mHealth / IEEE 1752.1 data points: one
// {"header", "body"} object or an array of them. Supported schemas:
// heart-rate, blood-pressure, oxygen-saturation, body-temperature,
// respiratory-rate, body-weight, body-height, blood-glucose, step-count.
//
// The error is non-nil only when the document as a whole is unusable; a bad
// data point becomes an ItemError with its index and the others still parse.
func ParseOpenMHealth(b []byte, opts OMHOptions) (Batch, error) {
	b = bytes.TrimSpace(b)
	var raws []json.RawMessage
	if len(b) > 0 && b[0] == '[' {
		if err := json.Unmarshal(b, &raws); err != nil {
			return Batch{}, fmt.Errorf("mappers: open mhealth: %w: %v", ErrMalformed, err)
		}
	} else if len(b) == 0 || b[0] != '{' {
		return Batch{}, fmt.Errorf("mappers: open mhealth: %w: expected a data point object or an array of them", ErrMalformed)
	} else {
		var one json.RawMessage
		if err := json.Unmarshal(b, &one); err != nil {
			return Batch{}, fmt.Errorf("mappers: open mhealth: %w: %v", ErrMalformed, err)
		}
		raws = []json.RawMessage{one}
	}
	if len(raws) > maxItems {
		return Batch{}, fmt.Errorf("mappers: open mhealth: %w: %d data points exceed the limit of %d per batch", ErrMalformed, len(raws), maxItems)
	}
	var out Batch
	for i, raw := range raws {
		r, err := parseOMHPoint(raw, opts)
		if err != nil {
			out.Errors = append(out.Errors, &ItemError{Index: i, Err: err})
			continue
		}
		r.Index = i
		out.Readings = append(out.Readings, r)
	}
	return out, nil
}

func parseOMHPoint(raw json.RawMessage, opts OMHOptions) (Reading, error) {
	var p omhPoint
	if err := json.Unmarshal(raw, &p); err != nil {
		return Reading{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if p.Header == nil {
		return Reading{}, fmt.Errorf("%w: header is required", ErrMalformed)
	}
	if p.Body == nil {
		return Reading{}, fmt.Errorf("%w: body is required", ErrMalformed)
	}
	h := p.Header
	schema, ok := omhSchemas[h.SchemaID.Name]
	if !ok {
		return Reading{}, fmt.Errorf("%w: schema %s:%s:%s is not supported", ErrUnsupportedMetric, h.SchemaID.Namespace, h.SchemaID.Name, h.SchemaID.Version)
	}
	r := Reading{Device: opts.Device, Metric: schema.metric, SourceID: h.UUID}
	if r.SourceID == "" {
		r.SourceID = h.ID
	}
	if h.AcquisitionProvenance != nil && r.Device.Name == "" && r.Device.Model == "" {
		r.Device.Name = h.AcquisitionProvenance.SourceName
	}
	r.Patient = opts.Patient
	if r.Patient.IsZero() {
		user := h.User
		if user == "" {
			user = h.UserID
		}
		r.Patient = Identifier{System: opts.PatientSystem, Value: user}
	}

	if schema.field != "" {
		uv, err := omhValue(p.Body, schema.field)
		if err != nil {
			return Reading{}, err
		}
		r.Value, r.UnitText = string(uv.Value), uv.Unit
		if r.UnitText == "" && schema.metric == "step-count" {
			r.UnitText = "steps"
		}
	}
	for _, fp := range schema.parts {
		field, part := fp[0], fp[1]
		uv, err := omhValue(p.Body, field)
		if err != nil {
			return Reading{}, err
		}
		if r.Parts == nil {
			r.Parts = map[string]string{}
		}
		r.Parts[part] = string(uv.Value)
		if r.UnitText != "" && uv.Unit != r.UnitText {
			return Reading{}, fmt.Errorf("%w: body.%s: unit %q differs from %q of the other parts", ErrUnknownUnit, field, uv.Unit, r.UnitText)
		}
		r.UnitText = uv.Unit
	}
	r.Unit = normalizeUnit(r.UnitText)

	for _, q := range schema.qualifiers {
		if s, ok := omhString(p.Body, q); ok {
			r.Qualifiers = append(r.Qualifiers, Qualifier{Name: strings.ReplaceAll(q, "_", " "), Value: s})
		}
	}
	if schema.bodySite != "" {
		r.BodySite, _ = omhString(p.Body, schema.bodySite)
	}
	if rawFlow, ok := p.Body["supplemental_oxygen_flow_rate"]; ok && schema.metric == "spo2" {
		var uv omhUnitValue
		if err := json.Unmarshal(rawFlow, &uv); err != nil || !IsDecimal(string(uv.Value)) {
			return Reading{}, fmt.Errorf("%w: body.supplemental_oxygen_flow_rate: expected {\"value\": number, \"unit\": \"L/min\"}", ErrInvalidValue)
		}
		r.Qualifiers = append(r.Qualifiers, Qualifier{Name: "inhaled-oxygen-flow", Value: string(uv.Value), Unit: normalizeUnit(uv.Unit)})
	}

	rawTF, ok := p.Body["effective_time_frame"]
	if !ok {
		return Reading{}, fmt.Errorf("%w: body.effective_time_frame is required", ErrMissingTime)
	}
	var tf omhTimeFrame
	if err := json.Unmarshal(rawTF, &tf); err != nil {
		return Reading{}, fmt.Errorf("%w: body.effective_time_frame: %v", ErrMalformed, err)
	}
	var err error
	switch {
	case tf.DateTime != "":
		r.Time, err = parseTime("body.effective_time_frame.date_time", tf.DateTime)
	case tf.TimeInterval != nil:
		r.Time, r.End, err = omhInterval(tf)
	default:
		err = fmt.Errorf("%w: body.effective_time_frame needs date_time or time_interval", ErrMissingTime)
	}
	if err != nil {
		return Reading{}, err
	}
	return r, nil
}

func omhValue(body map[string]json.RawMessage, field string) (omhUnitValue, error) {
	raw, ok := body[field]
	if !ok {
		return omhUnitValue{}, fmt.Errorf("%w: body.%s is required", ErrInvalidValue, field)
	}
	raw = bytes.TrimSpace(raw)
	var uv omhUnitValue
	if len(raw) > 0 && raw[0] != '{' {
		// step-count 1.0 gives the count as a bare number.
		if err := json.Unmarshal(raw, &uv.Value); err != nil {
			return omhUnitValue{}, fmt.Errorf("%w: body.%s: %v", ErrInvalidValue, field, err)
		}
		return uv, nil
	}
	if err := json.Unmarshal(raw, &uv); err != nil {
		return omhUnitValue{}, fmt.Errorf("%w: body.%s: expected {\"value\": number, \"unit\": string}: %v", ErrInvalidValue, field, err)
	}
	return uv, nil
}

func omhString(body map[string]json.RawMessage, field string) (string, bool) {
	raw, ok := body[field]
	if !ok {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil || s == "" {
		return "", false
	}
	return s, true
}

var omhDurationUnits = map[string]time.Duration{
	"ms": time.Millisecond, "sec": time.Second, "s": time.Second, "min": time.Minute,
	"h": time.Hour, "hr": time.Hour, "d": 24 * time.Hour, "wk": 7 * 24 * time.Hour,
}

func omhInterval(tf omhTimeFrame) (start, end time.Time, err error) {
	ti := tf.TimeInterval
	if start, err = parseTime("body.effective_time_frame.time_interval.start_date_time", ti.StartDateTime); err != nil {
		return
	}
	if end, err = parseTime("body.effective_time_frame.time_interval.end_date_time", ti.EndDateTime); err != nil {
		return
	}
	if ti.Duration != nil && (start.IsZero() != end.IsZero()) {
		unit, ok := omhDurationUnits[ti.Duration.Unit]
		var n float64
		if ok {
			_, serr := fmt.Sscanf(string(ti.Duration.Value), "%g", &n)
			ok = serr == nil && n >= 0
		}
		if !ok {
			return start, end, fmt.Errorf("%w: body.effective_time_frame.time_interval.duration: %q %q is not a duration", ErrInvalidTime, ti.Duration.Value, ti.Duration.Unit)
		}
		d := time.Duration(n * float64(unit))
		if start.IsZero() {
			start = end.Add(-d)
		} else {
			end = start.Add(d)
		}
	}
	if start.IsZero() || end.IsZero() {
		return start, end, fmt.Errorf("%w: body.effective_time_frame.time_interval needs start and end (or a duration)", ErrMissingTime)
	}
	return start, end, nil
}
