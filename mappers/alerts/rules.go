// Package alerts evaluates Vigil's alert rules on new vital-sign
// Observations: per-vital thresholds and the NEWS2 early warning score
// (Royal College of Physicians, 2017). It is pure: the caller passes the new
// Observation, the patient's recent vitals and the alerts already open, and
// receives the DetectedIssue resources to create or update.
//
// One condition (a vital above its limit, a NEWS2 band) has at most one open
// alert: while it persists the alert is updated with the new evidence, a
// worse severity or band raises a new alert and closes the old one, and an
// observation back in range resolves it.
package alerts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/vigil-health/vigil/mappers/codes"
)

// Severities of an alert, from the DetectedIssue severity value set.
const (
	SeverityLow      = "low"
	SeverityModerate = "moderate"
	SeverityHigh     = "high"
)

var severityRank = map[string]int{SeverityLow: 1, SeverityModerate: 2, SeverityHigh: 3}

// NEWS2 clinical risk bands, named as in the alert codes.
const (
	BandNone      = "none"
	BandLow       = "low"
	BandLowMedium = "low-medium"
	BandMedium    = "medium"
	BandHigh      = "high"
)

var bandRank = map[string]int{BandNone: 0, BandLow: 1, BandLowMedium: 2, BandMedium: 3, BandHigh: 4}

// Threshold is one limit on one vital-sign parameter in one unit: a value
// strictly below Below (or strictly above Above) raises an alert of the
// given severity. Exactly one of Below and Above is set. When several
// thresholds of one direction trigger, the most severe wins.
type Threshold struct {
	// Parameter is a vital-sign parameter: heart-rate, spo2, systolic-bp,
	// diastolic-bp, mean-bp, respiratory-rate, body-temperature,
	// blood-glucose, body-weight, inhaled-oxygen-flow.
	Parameter string   `json:"parameter"`
	Unit      string   `json:"unit"`
	Below     *float64 `json:"below,omitempty"`
	Above     *float64 `json:"above,omitempty"`
	Severity  string   `json:"severity"`
	// Disabled turns a default threshold off from a rules file.
	Disabled bool `json:"disabled,omitempty"`
	// Note documents the clinical reason for the limit.
	Note string `json:"note,omitempty"`
}

func (t Threshold) direction() string {
	if t.Below != nil {
		return "low"
	}
	return "high"
}

func (t Threshold) limit() float64 {
	if t.Below != nil {
		return *t.Below
	}
	return *t.Above
}

// key identifies the threshold for overrides from a rules file.
func (t Threshold) key() string {
	return t.Parameter + "|" + t.Unit + "|" + t.direction() + "|" + t.Severity
}

// NEWS2Settings configures the NEWS2 score.
type NEWS2Settings struct {
	// Enabled turns NEWS2 scoring on.
	Enabled bool `json:"enabled"`
	// SpO2Scale is 1 (default) or 2 (hypercapnic respiratory failure, target
	// 88-92 %, set by a clinician). Input.SpO2Scale overrides it per patient.
	SpO2Scale int `json:"spo2Scale"`
	// MinParameters is how many of the seven NEWS2 parameters must be known
	// (within the window) before a score is computed.
	MinParameters int `json:"minParameters"`
	// MinBand is the lowest band that raises an alert (low, low-medium,
	// medium or high); a score below it resolves an open NEWS2 alert.
	MinBand string `json:"minBand"`
}

// Rules are the alert rules: thresholds, NEWS2 settings and the window of
// recent vitals that count.
type Rules struct {
	// Window is how old a vital may be and still count for NEWS2.
	Window time.Duration
	// AutoResolve resolves an open alert when its condition clears.
	AutoResolve bool
	// MaxImplicated caps the Observations listed on one alert (the first
	// one and the most recent are kept).
	MaxImplicated int
	Thresholds    []Threshold
	NEWS2         NEWS2Settings
}

func f(v float64) *float64 { return &v }

// DefaultRules returns Vigil's default rules. Thresholds mark values that
// need a clinician's attention in adult remote monitoring; most are aligned
// with the points where a NEWS2 parameter scores 3 (high severity) or 2
// (moderate):
//
//	heart-rate /min        < 40 high, < 50 moderate, > 110 moderate, > 130 high
//	spo2 %                 < 85 high, < 90 moderate
//	systolic-bp mm[Hg]     < 90 high, < 100 moderate, > 180 moderate, > 220 high
//	diastolic-bp mm[Hg]    > 110 moderate, > 120 high
//	respiratory-rate /min  < 8 high, > 25 moderate, > 30 high
//	body-temperature Cel   < 35 moderate, < 32 high, > 39.1 moderate, > 40.5 high
//	body-temperature [degF] the same limits in Fahrenheit
//	blood-glucose mg/dL    < 54 high, < 70 moderate, > 300 moderate, > 400 high
//	blood-glucose mmol/L   < 3.0 high, < 3.9 moderate, > 16.7 moderate, > 22.2 high
//
// NEWS2 is on with SpO2 scale 1, at least 3 parameters, alerts from the low
// band, over a one-hour window.
func DefaultRules() Rules {
	return Rules{
		Window:        time.Hour,
		AutoResolve:   true,
		MaxImplicated: 20,
		Thresholds: []Threshold{
			{Parameter: "heart-rate", Unit: "/min", Below: f(40), Severity: SeverityHigh, Note: "bradycardia; NEWS2 pulse <= 40 scores 3"},
			{Parameter: "heart-rate", Unit: "/min", Below: f(50), Severity: SeverityModerate, Note: "bradycardia"},
			{Parameter: "heart-rate", Unit: "/min", Above: f(110), Severity: SeverityModerate, Note: "tachycardia; NEWS2 pulse 111-130 scores 2"},
			{Parameter: "heart-rate", Unit: "/min", Above: f(130), Severity: SeverityHigh, Note: "tachycardia; NEWS2 pulse >= 131 scores 3"},
			{Parameter: "spo2", Unit: "%", Below: f(85), Severity: SeverityHigh, Note: "severe hypoxaemia"},
			{Parameter: "spo2", Unit: "%", Below: f(90), Severity: SeverityModerate, Note: "hypoxaemia"},
			{Parameter: "systolic-bp", Unit: "mm[Hg]", Below: f(90), Severity: SeverityHigh, Note: "hypotension; NEWS2 systolic <= 90 scores 3"},
			{Parameter: "systolic-bp", Unit: "mm[Hg]", Below: f(100), Severity: SeverityModerate, Note: "low systolic; NEWS2 91-100 scores 2"},
			{Parameter: "systolic-bp", Unit: "mm[Hg]", Above: f(180), Severity: SeverityModerate, Note: "severe hypertension"},
			{Parameter: "systolic-bp", Unit: "mm[Hg]", Above: f(220), Severity: SeverityHigh, Note: "hypertensive crisis; NEWS2 >= 220 scores 3"},
			{Parameter: "diastolic-bp", Unit: "mm[Hg]", Above: f(110), Severity: SeverityModerate, Note: "severe hypertension"},
			{Parameter: "diastolic-bp", Unit: "mm[Hg]", Above: f(120), Severity: SeverityHigh, Note: "hypertensive crisis"},
			{Parameter: "respiratory-rate", Unit: "/min", Below: f(8), Severity: SeverityHigh, Note: "bradypnoea; NEWS2 <= 8 scores 3"},
			{Parameter: "respiratory-rate", Unit: "/min", Above: f(25), Severity: SeverityModerate, Note: "tachypnoea; NEWS2 >= 25 scores 3"},
			{Parameter: "respiratory-rate", Unit: "/min", Above: f(30), Severity: SeverityHigh, Note: "severe tachypnoea"},
			{Parameter: "body-temperature", Unit: "Cel", Below: f(35), Severity: SeverityModerate, Note: "hypothermia; NEWS2 <= 35.0 scores 3"},
			{Parameter: "body-temperature", Unit: "Cel", Below: f(32), Severity: SeverityHigh, Note: "moderate hypothermia"},
			{Parameter: "body-temperature", Unit: "Cel", Above: f(39.1), Severity: SeverityModerate, Note: "fever; NEWS2 >= 39.1 scores 2"},
			{Parameter: "body-temperature", Unit: "Cel", Above: f(40.5), Severity: SeverityHigh, Note: "hyperpyrexia"},
			{Parameter: "body-temperature", Unit: "[degF]", Below: f(95), Severity: SeverityModerate, Note: "hypothermia"},
			{Parameter: "body-temperature", Unit: "[degF]", Below: f(89.6), Severity: SeverityHigh, Note: "moderate hypothermia"},
			{Parameter: "body-temperature", Unit: "[degF]", Above: f(102.4), Severity: SeverityModerate, Note: "fever"},
			{Parameter: "body-temperature", Unit: "[degF]", Above: f(104.9), Severity: SeverityHigh, Note: "hyperpyrexia"},
			{Parameter: "blood-glucose", Unit: "mg/dL", Below: f(54), Severity: SeverityHigh, Note: "level 2 hypoglycaemia"},
			{Parameter: "blood-glucose", Unit: "mg/dL", Below: f(70), Severity: SeverityModerate, Note: "level 1 hypoglycaemia"},
			{Parameter: "blood-glucose", Unit: "mg/dL", Above: f(300), Severity: SeverityModerate, Note: "severe hyperglycaemia"},
			{Parameter: "blood-glucose", Unit: "mg/dL", Above: f(400), Severity: SeverityHigh, Note: "hyperglycaemic emergency"},
			{Parameter: "blood-glucose", Unit: "mmol/L", Below: f(3.0), Severity: SeverityHigh, Note: "level 2 hypoglycaemia"},
			{Parameter: "blood-glucose", Unit: "mmol/L", Below: f(3.9), Severity: SeverityModerate, Note: "level 1 hypoglycaemia"},
			{Parameter: "blood-glucose", Unit: "mmol/L", Above: f(16.7), Severity: SeverityModerate, Note: "severe hyperglycaemia"},
			{Parameter: "blood-glucose", Unit: "mmol/L", Above: f(22.2), Severity: SeverityHigh, Note: "hyperglycaemic emergency"},
		},
		NEWS2: NEWS2Settings{Enabled: true, SpO2Scale: 1, MinParameters: 3, MinBand: BandLow},
	}
}

// parameters are the names a threshold may use.
var parameters = map[string]bool{
	"heart-rate": true, "spo2": true, "systolic-bp": true, "diastolic-bp": true, "mean-bp": true,
	"respiratory-rate": true, "body-temperature": true, "blood-glucose": true, "body-weight": true,
	"body-height": true, "inhaled-oxygen-flow": true,
}

// Validate checks the rules and names the first bad field.
func (r *Rules) Validate() error {
	if r.Window <= 0 {
		return errors.New("window: must be a positive duration")
	}
	if r.MaxImplicated < 2 {
		return errors.New("maxImplicated: must be at least 2")
	}
	for i, t := range r.Thresholds {
		if err := t.validate(); err != nil {
			return fmt.Errorf("thresholds[%d].%w", i, err)
		}
	}
	n := r.NEWS2
	if n.SpO2Scale != 1 && n.SpO2Scale != 2 {
		return fmt.Errorf("news2.spo2Scale: %d is not 1 or 2", n.SpO2Scale)
	}
	if n.MinParameters < 1 || n.MinParameters > 7 {
		return fmt.Errorf("news2.minParameters: %d is not between 1 and 7", n.MinParameters)
	}
	if bandRank[n.MinBand] < 1 {
		return fmt.Errorf("news2.minBand: %q is not low, low-medium, medium or high", n.MinBand)
	}
	return nil
}

func (t Threshold) validate() error {
	if !parameters[t.Parameter] {
		return fmt.Errorf("parameter: %q is not one of %s", t.Parameter, strings.Join(sortedParameters(), ", "))
	}
	if t.Unit == "" {
		return errors.New("unit: is required (a UCUM code)")
	}
	if _, ok := codes.UnitByUCUM(t.Unit); !ok {
		return fmt.Errorf("unit: %q is not a UCUM unit Vigil knows", t.Unit)
	}
	if (t.Below == nil) == (t.Above == nil) {
		return errors.New("below: exactly one of below and above is required")
	}
	if severityRank[t.Severity] == 0 {
		return fmt.Errorf("severity: %q is not low, moderate or high", t.Severity)
	}
	return nil
}

func sortedParameters() []string {
	out := make([]string, 0, len(parameters))
	for p := range parameters {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// rulesFile is the JSON form of a rules file; absent fields keep defaults.
type rulesFile struct {
	Window            *string     `json:"window"`
	AutoResolve       *bool       `json:"autoResolve"`
	MaxImplicated     *int        `json:"maxImplicated"`
	ReplaceThresholds bool        `json:"replaceThresholds"`
	Thresholds        []Threshold `json:"thresholds"`
	NEWS2             *news2File  `json:"news2"`
	Comment           any         `json:"comment"`
}

type news2File struct {
	Enabled       *bool   `json:"enabled"`
	SpO2Scale     *int    `json:"spo2Scale"`
	MinParameters *int    `json:"minParameters"`
	MinBand       *string `json:"minBand"`
}

// ParseRules reads a rules file (the --alert-rules flag) over DefaultRules:
//
//	{"window": "2h", "autoResolve": true, "maxImplicated": 20,
//	 "replaceThresholds": false,
//	 "thresholds": [{"parameter": "heart-rate", "unit": "/min", "above": 120, "severity": "high"}],
//	 "news2": {"enabled": true, "spo2Scale": 2, "minParameters": 3, "minBand": "low-medium"}}
//
// A threshold with the same parameter, unit, direction and severity as a
// default replaces it ("disabled": true removes it); others are added;
// "replaceThresholds": true starts from none. Errors name the bad field.
func ParseRules(b []byte) (Rules, error) {
	var rf rulesFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rf); err != nil {
		return Rules{}, fmt.Errorf("alerts: rules: %s", describeJSONError(err))
	}
	if dec.More() {
		return Rules{}, errors.New("alerts: rules: trailing data after the JSON object")
	}
	r := DefaultRules()
	if rf.Window != nil {
		d, err := time.ParseDuration(*rf.Window)
		if err != nil {
			return Rules{}, fmt.Errorf("alerts: rules: window: %q is not a duration such as \"90m\" or \"2h\"", *rf.Window)
		}
		r.Window = d
	}
	if rf.AutoResolve != nil {
		r.AutoResolve = *rf.AutoResolve
	}
	if rf.MaxImplicated != nil {
		r.MaxImplicated = *rf.MaxImplicated
	}
	if rf.ReplaceThresholds {
		r.Thresholds = nil
	}
	for i, t := range rf.Thresholds {
		if err := t.validate(); err != nil {
			return Rules{}, fmt.Errorf("alerts: rules: thresholds[%d].%w", i, err)
		}
		replaced := false
		for j := range r.Thresholds {
			if r.Thresholds[j].key() == t.key() {
				r.Thresholds[j], replaced = t, true
				break
			}
		}
		if !replaced {
			r.Thresholds = append(r.Thresholds, t)
		}
	}
	kept := r.Thresholds[:0]
	for _, t := range r.Thresholds {
		if !t.Disabled {
			kept = append(kept, t)
		}
	}
	r.Thresholds = kept
	if n := rf.NEWS2; n != nil {
		if n.Enabled != nil {
			r.NEWS2.Enabled = *n.Enabled
		}
		if n.SpO2Scale != nil {
			r.NEWS2.SpO2Scale = *n.SpO2Scale
		}
		if n.MinParameters != nil {
			r.NEWS2.MinParameters = *n.MinParameters
		}
		if n.MinBand != nil {
			r.NEWS2.MinBand = *n.MinBand
		}
	}
	if err := r.Validate(); err != nil {
		return Rules{}, fmt.Errorf("alerts: rules: %w", err)
	}
	return r, nil
}

// LoadRules reads a rules file from r; see ParseRules.
func LoadRules(r io.Reader) (Rules, error) {
	b, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return Rules{}, fmt.Errorf("alerts: rules: read: %w", err)
	}
	return ParseRules(b)
}

func describeJSONError(err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "(document)"
		}
		return fmt.Sprintf("%s: expected %s, got JSON %s", field, te.Type, te.Value)
	case errors.As(err, &se):
		return fmt.Sprintf("invalid JSON at byte %d: %v", se.Offset, se)
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return "invalid JSON: the document ends early"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return strings.TrimPrefix(err.Error(), "json: ")
	}
	return err.Error()
}
