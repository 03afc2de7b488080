// Package codes holds the code tables Vigil uses to describe device readings:
// IEEE 11073-10101 (MDC) observation, unit and device-type codes, the LOINC
// codes of the FHIR vital signs profile, and the UCUM units each metric
// accepts with its physically plausible range.
//
// The tables are vendored in data/codes.json (sources in data/README.md) and
// embedded into the binary. Every lookup is a read of immutable maps built
// once at package initialisation, so the functions are safe for concurrent use.
package codes

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Code system URIs used in FHIR codings.
const (
	// SystemMDC is the FHIR URI of the ISO/IEEE 11073-10101 nomenclature.
	SystemMDC = "urn:iso:std:iso:11073:10101"
	// SystemLOINC is the FHIR URI of LOINC.
	SystemLOINC = "http://loinc.org"
	// SystemUCUM is the FHIR URI of UCUM.
	SystemUCUM = "http://unitsofmeasure.org"
	// SystemObservationCategory is the FHIR observation-category code system.
	SystemObservationCategory = "http://terminology.hl7.org/CodeSystem/observation-category"
)

// Coding is a code in a code system with its display text.
type Coding struct {
	System  string
	Code    string
	Display string
}

// MDCCode is one IEEE 11073-10101 term: its 32-bit numeric code (partition
// in the upper 16 bits, term code in the lower 16) and its reference id.
type MDCCode struct {
	Code  uint32 `json:"code"`
	RefID string `json:"refid"`
}

// Coding returns the term as a FHIR coding in SystemMDC.
func (m MDCCode) Coding() Coding {
	return Coding{System: SystemMDC, Code: strconv.FormatUint(uint64(m.Code), 10), Display: m.RefID}
}

// LOINCCode is a LOINC code with its display name.
type LOINCCode struct {
	Code    string `json:"code"`
	Display string `json:"display"`
}

// Coding returns the code as a FHIR coding in SystemLOINC.
func (l LOINCCode) Coding() Coding {
	return Coding{System: SystemLOINC, Code: l.Code, Display: l.Display}
}

// Unit is a UCUM unit known to Vigil, with its human display and the
// spellings devices and apps use for it.
type Unit struct {
	UCUM    string   `json:"ucum"`
	Display string   `json:"display"`
	Aliases []string `json:"aliases"`
}

// MDCUnit is an IEEE 11073 dimension code and the UCUM unit it denotes.
type MDCUnit struct {
	Code  uint32 `json:"code"`
	RefID string `json:"refid"`
	UCUM  string `json:"ucum"`
}

// MetricUnit is one unit a metric accepts, the MDC dimension code used for it
// with this metric, and the physically possible range of values in that unit
// (inclusive). LOINC, when set, is the LOINC code to use with this unit
// (glucose has one code for mass and one for moles per volume).
type MetricUnit struct {
	UCUM string `json:"ucum"`
	// Display is the human unit text for this metric ("beats/minute"),
	// when it differs from the unit's general display.
	Display string  `json:"display,omitempty"`
	MDC     uint32  `json:"mdc,omitempty"`
	LOINC   string  `json:"loinc,omitempty"`
	Min     float64 `json:"min"`
	Max     float64 `json:"max"`
}

// Component is a part of a panel metric, such as the systolic pressure of
// the blood pressure panel.
type Component struct {
	Name     string      `json:"name"`
	Display  string      `json:"display"`
	Required bool        `json:"required"`
	LOINC    []LOINCCode `json:"loinc"`
	MDC      []MDCCode   `json:"mdc"`
}

// Alias is another name of a metric; MDC, when set, is the MDC code that the
// alias implies (for example "pulse-rate" is heart rate measured by a pulse
// oximeter, MDC_PULS_OXIM_PULS_RATE).
type Alias struct {
	Name string `json:"name"`
	MDC  uint32 `json:"mdc,omitempty"`
}

// Metric is a kind of reading Vigil understands: heart rate, SpO2, blood
// pressure, ... with its codes, category, profile and accepted units.
// The first LOINC and MDC codes are the primary ones.
type Metric struct {
	Name       string       `json:"name"`
	Display    string       `json:"display"`
	Category   string       `json:"category"`
	Profile    string       `json:"profile,omitempty"`
	Interval   bool         `json:"interval,omitempty"`
	Aliases    []Alias      `json:"aliases,omitempty"`
	LOINC      []LOINCCode  `json:"loinc"`
	MDC        []MDCCode    `json:"mdc,omitempty"`
	Units      []MetricUnit `json:"units"`
	Components []Component  `json:"components,omitempty"`
}

// Unit returns the accepted unit with UCUM code ucum.
func (m *Metric) Unit(ucum string) (MetricUnit, bool) {
	for _, u := range m.Units {
		if u.UCUM == ucum {
			return u, true
		}
	}
	return MetricUnit{}, false
}

// UnitCodes lists the UCUM codes the metric accepts, the preferred first.
func (m *Metric) UnitCodes() []string {
	out := make([]string, len(m.Units))
	for i, u := range m.Units {
		out[i] = u.UCUM
	}
	return out
}

// Component returns the component named name.
func (m *Metric) Component(name string) (Component, bool) {
	for _, c := range m.Components {
		if c.Name == name {
			return c, true
		}
	}
	return Component{}, false
}

// IsPanel reports whether the metric is a panel of components (blood pressure).
func (m *Metric) IsPanel() bool { return len(m.Components) > 0 }

// DeviceType is an MDC device specialization or system type.
type DeviceType struct {
	Name    string `json:"name"`
	Display string `json:"display"`
	Code    uint32 `json:"code"`
	RefID   string `json:"refid"`
}

// Coding returns the device type as a FHIR coding in SystemMDC.
func (d DeviceType) Coding() Coding {
	return Coding{System: SystemMDC, Code: strconv.FormatUint(uint64(d.Code), 10), Display: d.RefID}
}

// MDCTerm is the answer of a lookup by MDC code or reference id: the term,
// and what it denotes in Vigil's tables. Exactly one of Metric, Unit and
// Device is set; Component is set with Metric when the term is a panel part.
type MDCTerm struct {
	MDCCode
	Metric    *Metric
	Component string
	Unit      *MDCUnit
	Device    *DeviceType
}

type table struct {
	Units    []Unit       `json:"units"`
	MDCUnits []MDCUnit    `json:"mdcUnits"`
	Metrics  []Metric     `json:"metrics"`
	Devices  []DeviceType `json:"devices"`
}

//go:embed data/codes.json
var rawTable []byte

var (
	tbl         table
	unitByUCUM  = map[string]*Unit{}
	unitAlias   = map[string]string{} // lower-cased alias -> UCUM
	metricNames = map[string]nameHit{}
	byMDC       = map[uint32]MDCTerm{}
	byRefID     = map[string]MDCTerm{}
	byLOINC     = map[string]loincHit{}
	deviceNames = map[string]*DeviceType{}
)

type nameHit struct {
	metric *Metric
	mdc    uint32
}

type loincHit struct {
	metric    *Metric
	component string
}

func init() {
	if err := load(rawTable); err != nil {
		// The table is compiled into the binary and covered by tests; a
		// failure here is a build defect, not bad input.
		panic(err)
	}
}

func load(b []byte) error {
	if err := json.Unmarshal(b, &tbl); err != nil {
		return fmt.Errorf("codes: parse embedded table: %w", err)
	}
	for i := range tbl.Units {
		u := &tbl.Units[i]
		unitByUCUM[u.UCUM] = u
		for _, a := range append([]string{u.UCUM}, u.Aliases...) {
			unitAlias[strings.ToLower(a)] = u.UCUM
		}
	}
	// Exact UCUM codes win over case-folded aliases ("m" is metre, never "M").
	for i := range tbl.MDCUnits {
		u := &tbl.MDCUnits[i]
		if _, ok := unitByUCUM[u.UCUM]; !ok {
			return fmt.Errorf("codes: MDC unit %s: unknown UCUM %q", u.RefID, u.UCUM)
		}
		if err := addMDC(MDCTerm{MDCCode: MDCCode{Code: u.Code, RefID: u.RefID}, Unit: u}); err != nil {
			return err
		}
	}
	for i := range tbl.Metrics {
		m := &tbl.Metrics[i]
		for _, n := range append([]Alias{{Name: m.Name}}, m.Aliases...) {
			if _, dup := metricNames[n.Name]; dup {
				return fmt.Errorf("codes: duplicate metric name %q", n.Name)
			}
			metricNames[n.Name] = nameHit{metric: m, mdc: n.MDC}
		}
		for _, l := range m.LOINC {
			if _, dup := byLOINC[l.Code]; !dup {
				byLOINC[l.Code] = loincHit{metric: m}
			}
		}
		for _, c := range m.MDC {
			if err := addMDC(MDCTerm{MDCCode: c, Metric: m}); err != nil {
				return err
			}
		}
		for _, comp := range m.Components {
			for _, l := range comp.LOINC {
				byLOINC[l.Code] = loincHit{metric: m, component: comp.Name}
			}
			for _, c := range comp.MDC {
				if err := addMDC(MDCTerm{MDCCode: c, Metric: m, Component: comp.Name}); err != nil {
					return err
				}
			}
		}
		for _, u := range m.Units {
			if _, ok := unitByUCUM[u.UCUM]; !ok {
				return fmt.Errorf("codes: metric %s: unknown UCUM %q", m.Name, u.UCUM)
			}
			if u.Min > u.Max {
				return fmt.Errorf("codes: metric %s unit %s: min > max", m.Name, u.UCUM)
			}
		}
	}
	for i := range tbl.Devices {
		d := &tbl.Devices[i]
		deviceNames[d.Name] = d
		if err := addMDC(MDCTerm{MDCCode: MDCCode{Code: d.Code, RefID: d.RefID}, Device: d}); err != nil {
			return err
		}
	}
	return nil
}

func addMDC(t MDCTerm) error {
	if _, dup := byMDC[t.Code]; dup {
		return fmt.Errorf("codes: duplicate MDC code %d", t.Code)
	}
	if _, dup := byRefID[t.RefID]; dup {
		return fmt.Errorf("codes: duplicate MDC reference id %s", t.RefID)
	}
	byMDC[t.Code] = t
	byRefID[t.RefID] = t
	return nil
}

// Metrics returns every metric in table order.
func Metrics() []Metric {
	return append([]Metric(nil), tbl.Metrics...)
}

// MetricByName finds a metric by its name or an alias ("heart-rate",
// "pulse-rate", "spo2", ...). preferredMDC is the MDC code the name implies,
// or 0 to use the metric's primary code. The returned Metric is shared: read
// it, never modify it (as for every pointer a lookup returns).
func MetricByName(name string) (m *Metric, preferredMDC uint32, ok bool) {
	h, ok := metricNames[strings.ToLower(strings.TrimSpace(name))]
	if !ok {
		return nil, 0, false
	}
	return h.metric, h.mdc, true
}

// LookupMDC finds the term with numeric code c among metrics, panel
// components, units and device types.
func LookupMDC(c uint32) (MDCTerm, bool) {
	t, ok := byMDC[c]
	return t, ok
}

// LookupMDCString is LookupMDC for a code in decimal text, as it appears in
// FHIR codings and HL7 v2 fields.
func LookupMDCString(s string) (MDCTerm, bool) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
	if err != nil {
		return MDCTerm{}, false
	}
	return LookupMDC(uint32(n))
}

// LookupRefID finds the term with reference id refid (e.g. "MDC_PULS_OXIM_SAT_O2").
func LookupRefID(refid string) (MDCTerm, bool) {
	t, ok := byRefID[strings.ToUpper(strings.TrimSpace(refid))]
	return t, ok
}

// MetricByLOINC finds the metric a LOINC code belongs to; component is the
// panel component the code denotes ("systolic" for 8480-6), or "".
func MetricByLOINC(code string) (m *Metric, component string, ok bool) {
	h, ok := byLOINC[strings.TrimSpace(code)]
	return h.metric, h.component, ok
}

// MetricByCoding finds the metric a coding denotes, in SystemLOINC or SystemMDC.
// It reports the component for panel parts and the MDC code when the coding is MDC.
func MetricByCoding(system, code string) (m *Metric, component string, mdc uint32, ok bool) {
	switch system {
	case SystemLOINC:
		m, component, ok = MetricByLOINC(code)
		return m, component, 0, ok
	case SystemMDC:
		t, found := LookupMDCString(code)
		if !found || t.Metric == nil {
			return nil, "", 0, false
		}
		return t.Metric, t.Component, t.Code, true
	}
	return nil, "", 0, false
}

// UnitByUCUM returns the unit with UCUM code c (exact, case-sensitive as UCUM is).
func UnitByUCUM(c string) (Unit, bool) {
	u, ok := unitByUCUM[c]
	if !ok {
		return Unit{}, false
	}
	return *u, true
}

// NormalizeUnit maps a unit as a device or app writes it ("bpm", "beats/min",
// "mmHg", "°C", "lbs") to its UCUM code. Exact UCUM codes are accepted as is.
func NormalizeUnit(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if _, ok := unitByUCUM[s]; ok {
		return s, true
	}
	u, ok := unitAlias[strings.ToLower(s)]
	return u, ok
}

// UnitByMDC returns the UCUM unit of an MDC dimension code.
func UnitByMDC(c uint32) (MDCUnit, bool) {
	t, ok := byMDC[c]
	if !ok || t.Unit == nil {
		return MDCUnit{}, false
	}
	return *t.Unit, true
}

// DeviceTypeByName finds a device type by name ("pulse-oximeter"), by MDC
// reference id, or by numeric MDC code in decimal text.
func DeviceTypeByName(s string) (DeviceType, bool) {
	s = strings.TrimSpace(s)
	if d, ok := deviceNames[strings.ToLower(s)]; ok {
		return *d, true
	}
	if t, ok := LookupRefID(s); ok && t.Device != nil {
		return *t.Device, true
	}
	if t, ok := LookupMDCString(s); ok && t.Device != nil {
		return *t.Device, true
	}
	return DeviceType{}, false
}

// MDCFor returns the MDC code of metric m to emit: preferred when it is one
// of the metric's codes, else the primary code. ok is false when the metric
// has no MDC code.
func (m *Metric) MDCFor(preferred uint32) (MDCCode, bool) {
	for _, c := range m.MDC {
		if c.Code == preferred {
			return c, true
		}
	}
	if len(m.MDC) == 0 {
		return MDCCode{}, false
	}
	return m.MDC[0], true
}

// LOINCFor returns the LOINC codes to emit for the metric measured in unit
// ucum: the unit's own LOINC code when it has one, else all the metric's
// codes (primary first).
func (m *Metric) LOINCFor(ucum string) []LOINCCode {
	if u, ok := m.Unit(ucum); ok && u.LOINC != "" {
		for _, l := range m.LOINC {
			if l.Code == u.LOINC {
				return []LOINCCode{l}
			}
		}
	}
	return m.LOINC
}
