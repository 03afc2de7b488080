// Package mappers turns device readings into FHIR R4 resources.
//
// It is a set of pure functions: no I/O, no database, no HTTP. The ingest
// formats (Open mHealth / IEEE 1752.1 data points and Vigil's compact JSON)
// are parsed into a normalised Reading; Validate checks a Reading against the
// code tables of package codes; Observation, Device and DeviceMetric build
// FHIR resources as map[string]any trees ready for encoding/json, with
// deterministic content so a retried reading maps to the same resource and
// the same identifier. Alert rules live in the subpackage alerts.
package mappers

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-health/vigil/mappers/codes"
)

// Identifier is a FHIR-style business identifier: a namespace URI and a value.
type Identifier struct {
	System string `json:"system,omitempty"`
	Value  string `json:"value"`
}

// IsZero reports whether the identifier has no value.
func (i Identifier) IsZero() bool { return strings.TrimSpace(i.Value) == "" }

// DeviceInfo identifies and describes the device that took a reading.
type DeviceInfo struct {
	// Identifier is the caller's identifier for the device (e.g. the
	// gateway's device registry id).
	Identifier Identifier
	// Serial is the manufacturer serial number.
	Serial string
	// EUI64 is the IEEE EUI-64 of the device, 16 hex digits.
	EUI64 string
	// Type is a device type name ("pulse-oximeter"), MDC reference id or
	// MDC code; unknown types are kept as text.
	Type         string
	Manufacturer string
	Model        string
	// Name is a user-friendly name ("Ward 3 bed 2 monitor").
	Name string
}

// Key returns the most specific identity of the device, used to derive
// reading identifiers: the caller's identifier, else the EUI-64, else the
// serial number. It is "" when the device carries no identity.
func (d DeviceInfo) Key() string {
	switch {
	case !d.Identifier.IsZero():
		return d.Identifier.System + "|" + d.Identifier.Value
	case strings.TrimSpace(d.EUI64) != "":
		return "eui64|" + normalizeEUI64(d.EUI64)
	case strings.TrimSpace(d.Serial) != "":
		return "sno|" + d.Manufacturer + "|" + d.Serial
	}
	return ""
}

// Qualifier is a named property of a reading that is not its value, such
// as the relationship of a glucose reading to a meal. A qualifier whose Name
// is a metric of package codes and that has a Unit (the supplemental oxygen
// flow of an SpO2 reading: "inhaled-oxygen-flow") is a coded quantity;
// others are text.
type Qualifier struct {
	Name  string
	Value string
	Unit  string
}

// Reading is one normalised device measurement.
type Reading struct {
	// Index is the position of the item in its batch (for error reports).
	Index   int
	Device  DeviceInfo
	Patient Identifier

	// Metric is the name of a metric in package codes ("heart-rate");
	// it is "" for a reading identified only by an unknown code.
	Metric string
	// Code is the coding the reading arrived with, when it arrived with one
	// (an MDC or LOINC code from a device); it is kept in the output even
	// when Vigil does not know it.
	Code *codes.Coding
	// MDC is the MDC observation code to emit, when the input chose one
	// among the metric's codes (pulse rate rather than ECG heart rate).
	MDC uint32

	// Value is the measured value as exact decimal text ("36.60" keeps its
	// precision). Panel readings (blood pressure) use Parts instead.
	Value string
	// Unit is the UCUM code of the value once normalised; UnitText is the
	// unit as received.
	Unit     string
	UnitText string
	// Parts are the components of a panel reading keyed by component name
	// ("systolic", "diastolic", "mean"), each exact decimal text in Unit.
	Parts map[string]string

	// Time is when the measurement was taken, with the offset the device
	// reported. End is set for readings over an interval (step count).
	Time time.Time
	End  time.Time

	// Status is the FHIR observation status ("" means final).
	Status string
	// BodySite is the measurement site as text (e.g. "oral", "wrist").
	BodySite string
	// Qualifiers are extra facts about the reading, kept as components.
	Qualifiers []Qualifier
	// SourceID is the id the sender gave the item (an Open mHealth header uuid).
	SourceID string
}

var decimalRE = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

// IsDecimal reports whether s is a valid FHIR decimal literal.
func IsDecimal(s string) bool { return len(s) <= 64 && decimalRE.MatchString(s) }

// ReadingIdentifierSystem is the identifier system of the deterministic
// identifier Vigil gives each Observation made from a reading.
const ReadingIdentifierSystem = "urn:vigil:reading"

// ReadingID returns the deterministic identifier value of the reading: a
// hex SHA-256 over the device identity, the metric (or the original coding
// when the metric is unknown) and the measurement instant in UTC. A retried
// reading has the same id, whatever offset it was sent with.
func (r *Reading) ReadingID() string {
	h := sha256.New()
	h.Write([]byte("vigil-reading-v1\x00"))
	h.Write([]byte(r.Device.Key()))
	h.Write([]byte{0})
	h.Write([]byte(r.metricKey()))
	h.Write([]byte{0})
	h.Write([]byte(r.Time.UTC().Format(time.RFC3339Nano)))
	if !r.End.IsZero() {
		h.Write([]byte{0})
		h.Write([]byte(r.End.UTC().Format(time.RFC3339Nano)))
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (r *Reading) metricKey() string {
	if r.Metric != "" {
		if m, _, ok := codes.MetricByName(r.Metric); ok {
			if r.MDC != 0 && (len(m.MDC) == 0 || m.MDC[0].Code != r.MDC) {
				// Two sensors of one device (ECG and pulse oximeter heart
				// rate) measure at the same instant: keep both.
				return m.Name + "|" + strconv.FormatUint(uint64(r.MDC), 10)
			}
			return m.Name
		}
		return r.Metric
	}
	if r.Code != nil {
		return r.Code.System + "|" + r.Code.Code
	}
	return ""
}
