package mappers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/vigil-health/vigil/mappers/codes"
)

// ErrMalformed is the kind of a parse error: the input is not the JSON the
// format expects.
var ErrMalformed = errors.New("malformed input")

// maxItems bounds the number of items in one batch; larger batches are
// refused as a whole so one request cannot hold unbounded memory.
const maxItems = 10000

// ItemError is the failure of one item of a batch, by its index; the other
// items of the batch are unaffected.
type ItemError struct {
	Index int
	Err   error
}

// Error implements error.
func (e *ItemError) Error() string { return fmt.Sprintf("item %d: %v", e.Index, e.Err) }

// Unwrap returns the cause.
func (e *ItemError) Unwrap() error { return e.Err }

// Batch is the result of parsing a batch: the readings that parsed and an
// error for each item that did not, both in item order.
type Batch struct {
	Readings []Reading
	Errors   []*ItemError
}

// Validate checks every reading of the batch (see Validate) and returns a
// batch holding the valid readings and, besides the parse errors, an
// ItemError wrapping the *ValidationError of each invalid one.
func (b Batch) Validate(now time.Time, skew time.Duration) Batch {
	out := Batch{Errors: append([]*ItemError(nil), b.Errors...)}
	for i := range b.Readings {
		r := &b.Readings[i]
		if err := Validate(r, now, skew); err != nil {
			out.Errors = append(out.Errors, &ItemError{Index: r.Index, Err: err})
			continue
		}
		out.Readings = append(out.Readings, *r)
	}
	sort.SliceStable(out.Errors, func(i, j int) bool { return out.Errors[i].Index < out.Errors[j].Index })
	return out
}

// decimalText is a JSON number or string kept as its exact text.
type decimalText string

func (d *decimalText) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*d = decimalText(strings.TrimSpace(s))
		return nil
	}
	if bytes.Equal(b, []byte("null")) {
		*d = ""
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("value must be a number or a decimal string")
	}
	*d = decimalText(n)
	return nil
}

// parseTime parses an RFC 3339 date-time that carries a UTC offset.
func parseTime(field, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %s: %q is not an RFC 3339 date-time with a UTC offset (e.g. 2026-01-02T15:04:05+01:00)", ErrInvalidTime, field, s)
	}
	return t, nil
}

// wireIdentifier is an identifier in the compact format.
type wireIdentifier struct {
	System string `json:"system"`
	Value  string `json:"value"`
}

type wireDevice struct {
	Identifier   *wireIdentifier `json:"identifier"`
	Serial       string          `json:"serial"`
	EUI64        string          `json:"eui64"`
	Type         string          `json:"type"`
	Manufacturer string          `json:"manufacturer"`
	Model        string          `json:"model"`
	Name         string          `json:"name"`
}

func (w *wireDevice) info() DeviceInfo {
	if w == nil {
		return DeviceInfo{}
	}
	d := DeviceInfo{Serial: w.Serial, EUI64: w.EUI64, Type: w.Type, Manufacturer: w.Manufacturer, Model: w.Model, Name: w.Name}
	if w.Identifier != nil {
		d.Identifier = Identifier{System: w.Identifier.System, Value: w.Identifier.Value}
	}
	return d
}

type wirePatient struct {
	Identifier *wireIdentifier `json:"identifier"`
}

func (w *wirePatient) identifier() Identifier {
	if w == nil || w.Identifier == nil {
		return Identifier{}
	}
	return Identifier{System: w.Identifier.System, Value: w.Identifier.Value}
}

type wireCoding struct {
	System  string `json:"system"`
	Code    string `json:"code"`
	Display string `json:"display"`
}

type wireReading struct {
	Metric     string            `json:"metric"`
	Code       *wireCoding       `json:"code"`
	Value      decimalText       `json:"value"`
	Systolic   decimalText       `json:"systolic"`
	Diastolic  decimalText       `json:"diastolic"`
	Mean       decimalText       `json:"mean"`
	Unit       string            `json:"unit"`
	Time       string            `json:"time"`
	End        string            `json:"end"`
	Status     string            `json:"status"`
	BodySite   string            `json:"bodySite"`
	Qualifiers map[string]string `json:"qualifiers"`
	ID         string            `json:"id"`
	Device     *wireDevice       `json:"device"`
	Patient    *wirePatient      `json:"patient"`
}

type wireEnvelope struct {
	Device   *wireDevice       `json:"device"`
	Patient  *wirePatient      `json:"patient"`
	Readings []json.RawMessage `json:"readings"`
}

// ParseVigil parses a batch in Vigil's compact JSON format (schema:
// testdata/ingest/vigil-readings.schema.json):
//
//	{"device": {"identifier": {"system", "value"}, "serial", "eui64", "type", "manufacturer", "model"},
//	 "patient": {"identifier": {"system", "value"}},
//	 "readings": [{"metric", "value", "unit", "time", "status"?}, ...]}
//
// The error is non-nil only when the document as a whole is unusable; a bad
// reading becomes an ItemError with its index and the others still parse.
func ParseVigil(b []byte) (Batch, error) {
	var env wireEnvelope
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		return Batch{}, fmt.Errorf("mappers: vigil readings: %w: %v", ErrMalformed, err)
	}
	if dec.More() {
		return Batch{}, fmt.Errorf("mappers: vigil readings: %w: trailing data after the document", ErrMalformed)
	}
	if env.Readings == nil {
		return Batch{}, fmt.Errorf("mappers: vigil readings: %w: \"readings\" array is required", ErrMalformed)
	}
	if len(env.Readings) > maxItems {
		return Batch{}, fmt.Errorf("mappers: vigil readings: %w: %d readings exceed the limit of %d per batch", ErrMalformed, len(env.Readings), maxItems)
	}
	dev := env.Device.info()
	pat := env.Patient.identifier()
	var out Batch
	for i, raw := range env.Readings {
		r, err := parseVigilReading(raw, dev, pat)
		if err != nil {
			out.Errors = append(out.Errors, &ItemError{Index: i, Err: err})
			continue
		}
		r.Index = i
		out.Readings = append(out.Readings, r)
	}
	return out, nil
}

func parseVigilReading(raw json.RawMessage, dev DeviceInfo, pat Identifier) (Reading, error) {
	var w wireReading
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return Reading{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	r := Reading{Device: dev, Patient: pat, Value: string(w.Value), UnitText: w.Unit, BodySite: w.BodySite, SourceID: w.ID}
	if w.Device != nil {
		r.Device = w.Device.info()
	}
	if w.Patient != nil {
		r.Patient = w.Patient.identifier()
	}
	if err := r.setMetric(w.Metric, w.Code); err != nil {
		return Reading{}, err
	}
	r.Unit = normalizeUnit(w.Unit)
	for name, v := range map[string]decimalText{"systolic": w.Systolic, "diastolic": w.Diastolic, "mean": w.Mean} {
		if v != "" {
			if r.Parts == nil {
				r.Parts = map[string]string{}
			}
			r.Parts[name] = string(v)
		}
	}
	var err error
	if r.Time, err = parseTime("time", w.Time); err != nil {
		return Reading{}, err
	}
	if r.End, err = parseTime("end", w.End); err != nil {
		return Reading{}, err
	}
	if r.Status, err = MapStatus(w.Status); err != nil {
		return Reading{}, fmt.Errorf("status: %w", err)
	}
	for _, k := range sortedKeys(w.Qualifiers) {
		r.Qualifiers = append(r.Qualifiers, Qualifier{Name: k, Value: w.Qualifiers[k]})
	}
	return r, nil
}

// setMetric resolves a metric name and/or a coding. A known coding sets the
// metric; an unknown one is kept so it passes through unmapped.
func (r *Reading) setMetric(name string, c *wireCoding) error {
	if c != nil {
		if c.Code == "" {
			return fmt.Errorf("%w: code: \"code\" is required", ErrMalformed)
		}
		r.Code = &codes.Coding{System: c.System, Code: c.Code, Display: c.Display}
		if m, comp, mdc, ok := codes.MetricByCoding(c.System, c.Code); ok && comp == "" {
			if name != "" {
				if nm, _, ok := codes.MetricByName(name); ok && nm.Name != m.Name {
					return fmt.Errorf("%w: metric %q contradicts code %s|%s (%s)", ErrUnsupportedMetric, name, c.System, c.Code, m.Name)
				}
			}
			r.Metric, r.MDC = m.Name, mdc
			return nil
		}
	}
	if name != "" {
		if m, mdc, ok := codes.MetricByName(name); ok {
			r.Metric, r.MDC = m.Name, mdc
			return nil
		}
		r.Metric = name // left for Validate to report as unsupported
	}
	return nil
}

func normalizeUnit(s string) string {
	if s == "" {
		return ""
	}
	u, _ := codes.NormalizeUnit(s)
	return u
}

// Format is an ingest format.
type Format string

// The ingest formats Parse recognises.
const (
	FormatVigil       Format = "vigil"
	FormatOpenMHealth Format = "openmhealth"
)

// DetectFormat tells the ingest format of a JSON document: an object with
// "readings" is Vigil's compact format; an object with "header" and "body",
// or an array, is Open mHealth. ok is false for anything else.
func DetectFormat(b []byte) (f Format, ok bool) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return "", false
	}
	if b[0] == '[' {
		return FormatOpenMHealth, true
	}
	if b[0] != '{' {
		return "", false
	}
	var probe struct {
		Readings json.RawMessage `json:"readings"`
		Header   json.RawMessage `json:"header"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return "", false
	}
	switch {
	case probe.Readings != nil:
		return FormatVigil, true
	case probe.Header != nil:
		return FormatOpenMHealth, true
	}
	return "", false
}

// Parse detects the format of b and parses it; opts is used for Open
// mHealth data points (see ParseOpenMHealth).
func Parse(b []byte, opts OMHOptions) (Batch, Format, error) {
	f, ok := DetectFormat(b)
	if !ok {
		return Batch{}, "", fmt.Errorf("mappers: %w: expected a Vigil readings document ({\"readings\": [...]}) or Open mHealth data points", ErrMalformed)
	}
	var (
		batch Batch
		err   error
	)
	if f == FormatVigil {
		batch, err = ParseVigil(b)
	} else {
		batch, err = ParseOpenMHealth(b, opts)
	}
	return batch, f, err
}
