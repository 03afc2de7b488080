package mappers

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/vigil-health/vigil/mappers/codes"
)

// Identifier systems and profile URLs used in the resources Vigil builds.
const (
	// EUI64System is the identifier system of IEEE EUI-64 device identifiers
	// (IHE PCD / HL7 PHD usage).
	EUI64System = "urn:oid:1.2.840.10004.1.1.1.0.0.1.0.0.1.2680"
	// DeviceMetricIdentifierSystem is the system of the deterministic
	// identifier of DeviceMetric resources.
	DeviceMetricIdentifierSystem = "urn:vigil:device-metric"
	// VitalSignsProfile is the FHIR R4 vital signs base profile.
	VitalSignsProfile    = "http://hl7.org/fhir/StructureDefinition/vitalsigns"
	identifierTypeSystem = "http://terminology.hl7.org/CodeSystem/v2-0203"
)

// Refs are the references the caller has assigned to the resources around
// an Observation, e.g. "Patient/123" and "Device/abc". Empty ones are omitted.
type Refs struct {
	Subject string
	Device  string
}

var categoryDisplay = map[string]string{
	"vital-signs": "Vital Signs",
	"laboratory":  "Laboratory",
	"activity":    "Activity",
}

// Observation maps a reading to a FHIR R4 Observation that follows the vital
// signs profile for vital-sign metrics: category, LOINC coding first then
// the MDC coding, UCUM valueQuantity with the exact decimal text, the
// effective time with its original offset (or a period for interval
// readings), subject and device references, status, and the deterministic
// identifier of the reading (system ReadingIdentifierSystem). Blood pressure
// is the panel 85354-9 with one component per part.
//
// A reading identified only by a code Vigil does not know passes through
// with its original coding and unit. Observation does not range-check: call
// Validate first.
func Observation(r *Reading, refs Refs) (map[string]any, error) {
	status, err := MapStatus(r.Status)
	if err != nil {
		return nil, fmt.Errorf("mappers: observation: %w", err)
	}
	if r.Time.IsZero() {
		return nil, fmt.Errorf("mappers: observation: %w", ErrMissingTime)
	}
	obs := make(map[string]any, 14)
	obs["resourceType"] = "Observation"
	obs["identifier"] = []any{map[string]any{"system": ReadingIdentifierSystem, "value": r.ReadingID()}}
	obs["status"] = status
	if refs.Subject != "" {
		obs["subject"] = map[string]any{"reference": refs.Subject}
	}
	if refs.Device != "" {
		obs["device"] = map[string]any{"reference": refs.Device}
	}
	if r.End.IsZero() {
		obs["effectiveDateTime"] = formatTime(r.Time)
	} else {
		obs["effectivePeriod"] = map[string]any{"start": formatTime(r.Time), "end": formatTime(r.End)}
	}
	if r.BodySite != "" {
		obs["bodySite"] = map[string]any{"text": r.BodySite}
	}

	m, _, known := codes.MetricByName(r.Metric)
	var components []any
	switch {
	case known:
		obs["category"] = []any{category(m.Category)}
		if m.Profile != "" {
			obs["meta"] = map[string]any{"profile": []any{VitalSignsProfile, m.Profile}}
		}
		obs["code"] = metricCode(m.Display, m.LOINCFor(r.Unit), mdcFor(m.MDCFor(r.MDC)), r.Code)
		if m.IsPanel() {
			if len(r.Parts) == 0 {
				return nil, fmt.Errorf("mappers: observation: %w: %s needs its parts", ErrInvalidValue, m.Name)
			}
			for _, c := range m.Components {
				v, ok := r.Parts[c.Name]
				if !ok {
					continue
				}
				q, err := quantity(v, r.Unit, r.UnitText, m)
				if err != nil {
					return nil, fmt.Errorf("mappers: observation: %s: %w", c.Name, err)
				}
				var mdc []codes.MDCCode
				if len(c.MDC) > 0 {
					mdc = c.MDC[:1]
				}
				components = append(components, map[string]any{
					"code":          metricCode(c.Display, c.LOINC, mdc, nil),
					"valueQuantity": q,
				})
			}
		} else {
			q, err := quantity(r.Value, r.Unit, r.UnitText, m)
			if err != nil {
				return nil, fmt.Errorf("mappers: observation: %w", err)
			}
			obs["valueQuantity"] = q
		}
	case r.Code != nil && r.Code.Code != "":
		c := map[string]any{"code": r.Code.Code}
		if r.Code.System != "" {
			c["system"] = r.Code.System
		}
		if r.Code.Display != "" {
			c["display"] = r.Code.Display
		}
		text := r.Code.Display
		if text == "" {
			text = r.Metric
		}
		cc := map[string]any{"coding": []any{c}}
		if text != "" {
			cc["text"] = text
		}
		obs["code"] = cc
		q, err := quantity(r.Value, r.Unit, r.UnitText, nil)
		if err != nil {
			return nil, fmt.Errorf("mappers: observation: %w", err)
		}
		obs["valueQuantity"] = q
	default:
		return nil, fmt.Errorf("mappers: observation: %w: %q", ErrUnsupportedMetric, r.Metric)
	}

	for _, q := range r.Qualifiers {
		comp, err := qualifierComponent(q)
		if err != nil {
			return nil, fmt.Errorf("mappers: observation: qualifier %s: %w", q.Name, err)
		}
		components = append(components, comp)
	}
	if len(components) > 0 {
		obs["component"] = components
	}
	return obs, nil
}

func formatTime(t time.Time) string { return t.Format(time.RFC3339Nano) }

func category(c string) map[string]any {
	coding := map[string]any{"system": codes.SystemObservationCategory, "code": c}
	cc := map[string]any{"coding": []any{coding}}
	if d, ok := categoryDisplay[c]; ok {
		coding["display"] = d
		cc["text"] = d
	}
	return cc
}

func mdcFor(c codes.MDCCode, ok bool) []codes.MDCCode {
	if !ok {
		return nil
	}
	return []codes.MDCCode{c}
}

// metricCode builds the CodeableConcept: LOINC codings, then MDC, then the
// original coding when it is neither.
func metricCode(text string, loinc []codes.LOINCCode, mdc []codes.MDCCode, orig *codes.Coding) map[string]any {
	out := make([]any, 0, len(loinc)+len(mdc)+1)
	var seen []codes.Coding
	add := func(c codes.Coding) {
		for _, s := range seen {
			if s.System == c.System && s.Code == c.Code {
				return
			}
		}
		seen = append(seen, c)
		m := map[string]any{"system": c.System, "code": c.Code}
		if c.Display != "" {
			m["display"] = c.Display
		}
		out = append(out, m)
	}
	for _, l := range loinc {
		add(l.Coding())
	}
	for _, c := range mdc {
		add(c.Coding())
	}
	if orig != nil && orig.Code != "" && orig.System != "" {
		add(*orig)
	}
	cc := map[string]any{"text": text}
	if len(out) > 0 {
		cc["coding"] = out
	}
	return cc
}

// quantity builds a UCUM valueQuantity; value keeps its exact decimal text.
func quantity(value, ucum, unitText string, m *codes.Metric) (map[string]any, error) {
	if !IsDecimal(value) {
		return nil, fmt.Errorf("%w: %q is not a decimal number", ErrInvalidValue, value)
	}
	q := map[string]any{"value": json.Number(value)}
	if ucum == "" {
		if unitText != "" {
			q["unit"] = unitText
		}
		return q, nil
	}
	display := ucum
	if u, ok := codes.UnitByUCUM(ucum); ok {
		display = u.Display
	}
	if m != nil {
		if mu, ok := m.Unit(ucum); ok && mu.Display != "" {
			display = mu.Display
		}
	}
	q["unit"] = display
	q["system"] = codes.SystemUCUM
	q["code"] = ucum
	return q, nil
}

func qualifierComponent(q Qualifier) (map[string]any, error) {
	if q.Unit != "" {
		if m, mdc, ok := codes.MetricByName(q.Name); ok && !m.IsPanel() {
			v, err := quantity(q.Value, q.Unit, q.Unit, m)
			if err != nil {
				return nil, err
			}
			return map[string]any{
				"code":          metricCode(m.Display, m.LOINCFor(q.Unit), mdcFor(m.MDCFor(mdc)), nil),
				"valueQuantity": v,
			}, nil
		}
	}
	return map[string]any{
		"code":        map[string]any{"text": q.Name},
		"valueString": q.Value,
	}, nil
}

// DeviceIdentifier returns the identifier by which the device should be
// looked up (conditional create "Device?identifier=system|value"): the
// caller's identifier, else the EUI-64, else the serial number (no system).
func DeviceIdentifier(d DeviceInfo) Identifier {
	switch {
	case !d.Identifier.IsZero():
		return d.Identifier
	case strings.TrimSpace(d.EUI64) != "":
		return Identifier{System: EUI64System, Value: normalizeEUI64(d.EUI64)}
	case strings.TrimSpace(d.Serial) != "":
		return Identifier{Value: d.Serial}
	}
	return Identifier{}
}

// eui64Separators are the separators written between EUI-64 octets; built once because a
// Replacer is costly to build and normalizeEUI64 runs for every reading.
var eui64Separators = strings.NewReplacer("-", "", ":", "", " ", "")

func normalizeEUI64(s string) string {
	return strings.ToUpper(eui64Separators.Replace(strings.TrimSpace(s)))
}

// Device maps device information to a FHIR R4 Device: identifiers (the
// caller's, the serial number typed SNO, the EUI-64 under EUI64System), MDC
// type, manufacturer, model number, names, and the patient reference when
// patientRef is not empty.
func Device(d DeviceInfo, patientRef string) map[string]any {
	dev := map[string]any{"resourceType": "Device", "status": "active"}
	var ids []any
	if !d.Identifier.IsZero() {
		id := map[string]any{"value": d.Identifier.Value}
		if d.Identifier.System != "" {
			id["system"] = d.Identifier.System
		}
		ids = append(ids, id)
	}
	if d.Serial != "" {
		ids = append(ids, map[string]any{
			"type": map[string]any{
				"coding": []any{map[string]any{"system": identifierTypeSystem, "code": "SNO", "display": "Serial Number"}},
				"text":   "Serial Number",
			},
			"value": d.Serial,
		})
		dev["serialNumber"] = d.Serial
	}
	if strings.TrimSpace(d.EUI64) != "" {
		ids = append(ids, map[string]any{"system": EUI64System, "value": normalizeEUI64(d.EUI64)})
	}
	if len(ids) > 0 {
		dev["identifier"] = ids
	}
	if d.Type != "" {
		if t, ok := codes.DeviceTypeByName(d.Type); ok {
			c := t.Coding()
			dev["type"] = map[string]any{
				"coding": []any{map[string]any{"system": c.System, "code": c.Code, "display": c.Display}},
				"text":   t.Display,
			}
		} else {
			dev["type"] = map[string]any{"text": d.Type}
		}
	}
	if d.Manufacturer != "" {
		dev["manufacturer"] = d.Manufacturer
	}
	var names []any
	if d.Name != "" {
		names = append(names, map[string]any{"name": d.Name, "type": "user-friendly-name"})
	}
	if d.Model != "" {
		dev["modelNumber"] = d.Model
		names = append(names, map[string]any{"name": d.Model, "type": "model-name"})
	}
	if len(names) > 0 {
		dev["deviceName"] = names
	}
	if patientRef != "" {
		dev["patient"] = map[string]any{"reference": patientRef}
	}
	return dev
}

// DeviceMetric builds a FHIR R4 DeviceMetric for one measurement channel of
// a monitor: the metric's MDC and LOINC type, its UCUM unit, the source
// Device, operational status "on" and category "measurement". Its
// identifier is derived from the device reference and metric, so the same
// channel maps to the same identifier.
func DeviceMetric(deviceRef, metric, ucum string) (map[string]any, error) {
	m, mdc, ok := codes.MetricByName(metric)
	if !ok {
		return nil, fmt.Errorf("mappers: device metric: %w: %q", ErrUnsupportedMetric, metric)
	}
	if ucum == "" {
		ucum = m.Units[0].UCUM
	}
	if _, ok := m.Unit(ucum); !ok {
		return nil, fmt.Errorf("mappers: device metric: %w: %q is not a unit of %s (accepted: %s)", ErrUnknownUnit, ucum, m.Name, strings.Join(m.UnitCodes(), ", "))
	}
	sum := sha256.Sum256([]byte("vigil-device-metric-v1\x00" + deviceRef + "\x00" + m.Name))
	unitDisplay := ucum
	if u, ok := codes.UnitByUCUM(ucum); ok {
		unitDisplay = u.Display
	}
	// DeviceMetric.type is MDC first: it names the device channel.
	var codings []any
	for _, c := range mdcFor(m.MDCFor(mdc)) {
		cd := c.Coding()
		codings = append(codings, map[string]any{"system": cd.System, "code": cd.Code, "display": cd.Display})
	}
	for _, l := range m.LOINCFor(ucum) {
		codings = append(codings, map[string]any{"system": codes.SystemLOINC, "code": l.Code, "display": l.Display})
	}
	typ := map[string]any{"coding": codings, "text": m.Display}
	dm := map[string]any{
		"resourceType":      "DeviceMetric",
		"identifier":        []any{map[string]any{"system": DeviceMetricIdentifierSystem, "value": hex.EncodeToString(sum[:])}},
		"type":              typ,
		"unit":              map[string]any{"coding": []any{map[string]any{"system": codes.SystemUCUM, "code": ucum, "display": unitDisplay}}, "text": unitDisplay},
		"operationalStatus": "on",
		"category":          "measurement",
	}
	if deviceRef != "" {
		dm["source"] = map[string]any{"reference": deviceRef}
	}
	return dm, nil
}
