package hl7map

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vigil-health/vigil/hl7v2"
	"github.com/vigil-health/vigil/mappers"
	"github.com/vigil-health/vigil/mappers/codes"
)

// ErrEncode is the kind of an error of EncodeORU: the resources lack what
// the message needs or hold what it cannot carry.
var ErrEncode = errors.New("cannot encode")

// OutboundOptions are what EncodeORU needs besides the resources.
type OutboundOptions struct {
	// SendingApplication and SendingFacility are MSH-3 and MSH-4;
	// ReceivingApplication and ReceivingFacility MSH-5 and MSH-6.
	SendingApplication   hl7v2.HD
	SendingFacility      hl7v2.HD
	ReceivingApplication hl7v2.HD
	ReceivingFacility    hl7v2.HD
	// ControlID is MSH-10, unique per message (required).
	ControlID string
	// Now is the message time, MSH-7 (required).
	Now time.Time
	// ProcessingID is MSH-11; "" means P (production).
	ProcessingID string
	// Alert, when not nil, is a DetectedIssue raised by the Observation,
	// written as one more OBX row (ST, its code and detail, OBX-8 A or AA
	// by severity).
	Alert map[string]any
}

// PCD-01 constants of the outbound message.
const (
	outboundVersion = "2.6"
	pcd01Profile    = "IHE_PCD_001"
	pcd01ProfileOID = "1.3.6.1.4.1.19376.1.6.1.1.1"
	alertSystem     = "http://vigil.health/fhir/CodeSystem/alert"
	alertSystemName = "99VIGIL"
)

// EncodeORU builds a PCD-01 style ORU^R01 for an Observation (and
// optionally a DetectedIssue as an alert row, see OutboundOptions.Alert),
// given the Patient and Device resources it references (nil when unknown).
//
// MSH carries the options, MSH-9 ORU^R01^ORU_R01, MSH-11 P, MSH-12 2.6
// (the version IHE PCD-01 profiles), MSH-15 AL, MSH-16 NE and MSH-21
// IHE_PCD_001. PID comes from the Patient (identifiers with their assigning
// authority, names, birth date, sex), OBR from the Observation (filler
// order MSH-10 of the sender, OBR-7 the effective time). When the Device
// has an MDC type an MDS row (1.0.0.0) describes it; then one NM (or ST,
// CWE, SN, DTM) row per value and per component: OBX-3 the MDC code first
// and LOINC as the alternate, OBX-4 the containment 1.1.1.n, OBX-6 the MDC
// unit with UCUM as the alternate, OBX-7 the reference range, OBX-8 the
// interpretation, OBX-11 the status (table 0085), OBX-14 the time, OBX-17
// the method and OBX-18 the device's EUI-64.
func EncodeORU(obs map[string]any, patient, device map[string]any, opts OutboundOptions) (*hl7v2.Message, error) {
	if rt, _ := obs["resourceType"].(string); rt != "Observation" {
		return nil, fmt.Errorf("hl7map: encode ORU: %w: not an Observation", ErrEncode)
	}
	if opts.ControlID == "" || opts.Now.IsZero() {
		return nil, fmt.Errorf("hl7map: encode ORU: %w: the control id and the message time are required", ErrEncode)
	}
	e := &encoder{}
	m, err := hl7v2.New(hl7v2.DefaultDelimiters)
	if err != nil {
		return nil, fmt.Errorf("hl7map: encode ORU: %w", err)
	}
	e.m = m
	if err := m.SetCharset("UNICODE UTF-8"); err != nil {
		return nil, fmt.Errorf("hl7map: encode ORU: %w", err)
	}
	pid := opts.ProcessingID
	if pid == "" {
		pid = "P"
	}
	e.setHD("MSH-3", opts.SendingApplication)
	e.setHD("MSH-4", opts.SendingFacility)
	e.setHD("MSH-5", opts.ReceivingApplication)
	e.setHD("MSH-6", opts.ReceivingFacility)
	e.set("MSH-7", dtmString(opts.Now, hl7v2.PrecisionSecond))
	e.set("MSH-9.1", "ORU")
	e.set("MSH-9.2", "R01")
	e.set("MSH-9.3", "ORU_R01")
	e.set("MSH-10", opts.ControlID)
	e.set("MSH-11", pid)
	e.set("MSH-12", outboundVersion)
	e.set("MSH-15", "AL")
	e.set("MSH-16", "NE")
	e.set("MSH-21.1", pcd01Profile)
	e.set("MSH-21.2", "IHE PCD")
	e.set("MSH-21.3", pcd01ProfileOID)
	e.set("MSH-21.4", "ISO")

	if patient != nil {
		e.patient(patient)
	}

	effective, prec, err := effectiveTime(obs)
	if err != nil {
		return nil, fmt.Errorf("hl7map: encode ORU: %w", err)
	}
	obr := e.segment("OBR")
	e.segSet(obr, "1", "1")
	for _, f := range []string{"2", "3"} {
		e.segSet(obr, f+".1", opts.ControlID)
		e.segSet(obr, f+".2", opts.SendingApplication.NamespaceID)
		e.segSet(obr, f+".3", opts.SendingApplication.UniversalID)
		e.segSet(obr, f+".4", opts.SendingApplication.UniversalIDType)
	}
	e.segSet(obr, "4.1", "182777000")
	e.segSet(obr, "4.2", "monitoring of patient")
	e.segSet(obr, "4.3", "SCT")
	if !effective.IsZero() {
		e.segSet(obr, "7", dtmString(effective, prec))
	}

	devID := deviceEI(device)
	if t := mdcCoding(device, "type"); t != nil {
		obx := e.obx()
		e.segSet(obx, "3.1", str(t["code"]))
		e.segSet(obx, "3.2", mdcDisplay(t))
		e.segSet(obx, "3.3", "MDC")
		e.segSet(obx, "4", "1.0.0.0")
		e.segSet(obx, "11", "X")
		e.setEI(obx, devID)
	}

	status, _ := obs["status"].(string)
	st, ok := resultStatusCode[status]
	if !ok {
		return nil, fmt.Errorf("hl7map: encode ORU: %w: observation status %q has no table 0085 code", ErrEncode, status)
	}
	row := func(code map[string]any, value map[string]any, key string, metric int) error {
		obx := e.obx()
		if err := e.setCode(obx, "3", code); err != nil {
			return err
		}
		e.segSet(obx, "4", "1.1.1."+strconv.Itoa(metric))
		if err := e.setValue(obx, key, value, code); err != nil {
			return err
		}
		if rr, _ := value["referenceRange"].([]any); len(rr) > 0 {
			e.segSet(obx, "7", rangeText(rr[0]))
		}
		if in, _ := value["interpretation"].([]any); len(in) > 0 {
			for i, c := range in {
				if cd := firstCoding(c); cd != nil {
					e.segSet(obx, fmt.Sprintf("8(%d)", i+1), str(cd["code"]))
				}
			}
		}
		e.segSet(obx, "11", st)
		if !effective.IsZero() {
			e.segSet(obx, "14", dtmString(effective, prec))
		}
		if method, _ := obs["method"].(map[string]any); method != nil {
			if cd := firstCoding(method); cd != nil {
				e.segSet(obx, "17.1", str(cd["code"]))
				e.segSet(obx, "17.2", str(cd["display"]))
				e.segSet(obx, "17.3", systemName(str(cd["system"])))
			}
		}
		e.setEI(obx, devID)
		return nil
	}
	n := 0
	code, _ := obs["code"].(map[string]any)
	if key := valueKey(obs); key != "" {
		n++
		if err := row(code, obs, key, n); err != nil {
			return nil, err
		}
	}
	comps, _ := obs["component"].([]any)
	for _, c := range comps {
		cm, _ := c.(map[string]any)
		key := valueKey(cm)
		if key == "" {
			continue
		}
		n++
		cc, _ := cm["code"].(map[string]any)
		if err := row(cc, cm, key, n); err != nil {
			return nil, err
		}
	}
	if n == 0 {
		return nil, fmt.Errorf("hl7map: encode ORU: %w: the Observation has no value", ErrEncode)
	}
	if opts.Alert != nil {
		n++
		if err := e.alert(opts.Alert, n, devID); err != nil {
			return nil, err
		}
	}
	if e.err != nil {
		return nil, fmt.Errorf("hl7map: encode ORU: %w", e.err)
	}
	return m, nil
}

// encoder writes a message, keeping the first error of the setters.
type encoder struct {
	m   *hl7v2.Message
	err error
	obn int
}

func (e *encoder) set(loc, v string) {
	if v == "" || e.err != nil {
		return
	}
	e.err = e.m.Set(loc, v)
}

func (e *encoder) segSet(s *hl7v2.Segment, path, v string) {
	if v == "" || e.err != nil || s == nil {
		return
	}
	e.err = s.Set(path, v)
}

func (e *encoder) segment(id string) *hl7v2.Segment {
	s, err := e.m.AddSegment(id)
	if err != nil && e.err == nil {
		e.err = err
	}
	return s
}

func (e *encoder) obx() *hl7v2.Segment {
	e.obn++
	s := e.segment("OBX")
	e.segSet(s, "1", strconv.Itoa(e.obn))
	return s
}

func (e *encoder) setHD(loc string, hd hl7v2.HD) {
	e.set(loc+".1", hd.NamespaceID)
	e.set(loc+".2", hd.UniversalID)
	e.set(loc+".3", hd.UniversalIDType)
}

// setEI writes OBX-18 as the fixtures and PCD gateways do: 0012A1FFFE3C4D5E^EUI-64.
func (e *encoder) setEI(s *hl7v2.Segment, ei hl7v2.EI) {
	e.segSet(s, "18.1", ei.EntityIdentifier)
	e.segSet(s, "18.2", ei.NamespaceID)
	e.segSet(s, "18.3", ei.UniversalID)
	e.segSet(s, "18.4", ei.UniversalIDType)
}

// authority is the HD of an identifier system, the reverse of
// mapper.system.
func authority(system string) hl7v2.HD {
	switch {
	case system == "":
		return hl7v2.HD{}
	case strings.HasPrefix(system, "urn:oid:"):
		return hl7v2.HD{UniversalID: strings.TrimPrefix(system, "urn:oid:"), UniversalIDType: "ISO"}
	case strings.HasPrefix(system, "urn:uuid:"):
		return hl7v2.HD{UniversalID: strings.TrimPrefix(system, "urn:uuid:"), UniversalIDType: "UUID"}
	case strings.HasPrefix(system, vigilHL7Prefix) && !strings.HasPrefix(system, vigilCodeSystemPrefix):
		ns := strings.TrimPrefix(system, vigilHL7Prefix)
		if u, err := unescapeURN(ns); err == nil {
			ns = u
		}
		return hl7v2.HD{NamespaceID: ns}
	}
	return hl7v2.HD{UniversalID: system, UniversalIDType: "URI"}
}

func (e *encoder) patient(p map[string]any) {
	pid := e.segment("PID")
	ids, _ := p["identifier"].([]any)
	n := 0
	for _, id := range ids {
		im, _ := id.(map[string]any)
		v := str(im["value"])
		if v == "" {
			continue
		}
		n++
		f := fmt.Sprintf("3(%d)", n)
		e.segSet(pid, f+".1", v)
		hd := authority(str(im["system"]))
		e.segSet(pid, f+".4.1", hd.NamespaceID)
		e.segSet(pid, f+".4.2", hd.UniversalID)
		e.segSet(pid, f+".4.3", hd.UniversalIDType)
		if t, _ := im["type"].(map[string]any); t != nil {
			if cd := firstCoding(t); cd != nil && str(cd["system"]) == sysIdentifierType {
				e.segSet(pid, f+".5", str(cd["code"]))
			}
		}
	}
	names, _ := p["name"].([]any)
	for i, nm := range names {
		hn, _ := nm.(map[string]any)
		f := fmt.Sprintf("5(%d)", i+1)
		e.segSet(pid, f+".1", str(hn["family"]))
		given := strs(hn["given"])
		if len(given) > 0 {
			e.segSet(pid, f+".2", given[0])
			e.segSet(pid, f+".3", strings.Join(given[1:], " "))
		}
		if s := strs(hn["suffix"]); len(s) > 0 {
			e.segSet(pid, f+".4", s[0])
		}
		if s := strs(hn["prefix"]); len(s) > 0 {
			e.segSet(pid, f+".5", s[0])
		}
		e.segSet(pid, f+".7", nameTypeCode[str(hn["use"])])
	}
	e.segSet(pid, "7", strings.ReplaceAll(str(p["birthDate"]), "-", ""))
	e.segSet(pid, "8", genderCode[str(p["gender"])])
}

// effectiveTime reads effectiveDateTime, effectiveInstant or the start of
// effectivePeriod.
func effectiveTime(obs map[string]any) (time.Time, hl7v2.Precision, error) {
	s := str(obs["effectiveDateTime"])
	if s == "" {
		s = str(obs["effectiveInstant"])
	}
	if s == "" {
		if p, _ := obs["effectivePeriod"].(map[string]any); p != nil {
			s = str(p["start"])
		}
	}
	if s == "" {
		return time.Time{}, hl7v2.PrecisionNone, nil
	}
	for _, f := range []struct {
		layout string
		prec   hl7v2.Precision
	}{{time.RFC3339Nano, hl7v2.PrecisionSecond}, {"2006-01-02", hl7v2.PrecisionDay}, {"2006-01", hl7v2.PrecisionMonth}, {"2006", hl7v2.PrecisionYear}} {
		if t, err := time.Parse(f.layout, s); err == nil {
			if f.prec == hl7v2.PrecisionSecond && t.Nanosecond() != 0 {
				return t, hl7v2.PrecisionFraction, nil
			}
			return t, f.prec, nil
		}
	}
	return time.Time{}, hl7v2.PrecisionNone, fmt.Errorf("%w: effective time is not a FHIR dateTime", ErrEncode)
}

// dtmString formats t as an HL7 DTM at precision p, with its UTC offset
// when it has a time.
func dtmString(t time.Time, p hl7v2.Precision) string {
	switch p {
	case hl7v2.PrecisionYear:
		return t.Format("2006")
	case hl7v2.PrecisionMonth:
		return t.Format("200601")
	case hl7v2.PrecisionDay:
		return t.Format("20060102")
	case hl7v2.PrecisionFraction:
		s := t.Format("20060102150405.0000")
		return s + t.Format("-0700")
	}
	return t.Format("20060102150405-0700")
}

func str(v any) string { s, _ := v.(string); return s }

func strs(v any) []string {
	l, _ := v.([]any)
	var out []string
	for _, x := range l {
		if s, ok := x.(string); ok && s != "" {
			out = append(out, s)
		}
	}
	return out
}

func firstCoding(cc any) map[string]any {
	m, _ := cc.(map[string]any)
	l, _ := m["coding"].([]any)
	if len(l) == 0 {
		return nil
	}
	c, _ := l[0].(map[string]any)
	return c
}

func codingWith(cc map[string]any, system string) map[string]any {
	l, _ := cc["coding"].([]any)
	for _, c := range l {
		if cm, _ := c.(map[string]any); str(cm["system"]) == system {
			return cm
		}
	}
	return nil
}

// mdcCoding returns the MDC coding of a resource's CodeableConcept field.
func mdcCoding(res map[string]any, field string) map[string]any {
	if res == nil {
		return nil
	}
	cc, _ := res[field].(map[string]any)
	return codingWith(cc, codes.SystemMDC)
}

func mdcDisplay(c map[string]any) string {
	if d := str(c["display"]); d != "" {
		return d
	}
	if t, ok := codes.LookupMDCString(str(c["code"])); ok {
		return t.RefID
	}
	return ""
}

// deviceEI is OBX-18 for a Device: its EUI-64, else its first identifier.
func deviceEI(dev map[string]any) hl7v2.EI {
	ids, _ := dev["identifier"].([]any)
	for _, id := range ids {
		if im, _ := id.(map[string]any); str(im["system"]) == mappers.EUI64System && str(im["value"]) != "" {
			return hl7v2.EI{EntityIdentifier: str(im["value"]), NamespaceID: "EUI-64"}
		}
	}
	for _, id := range ids {
		im, _ := id.(map[string]any)
		if v := str(im["value"]); v != "" {
			hd := authority(str(im["system"]))
			return hl7v2.EI{EntityIdentifier: v, NamespaceID: hd.NamespaceID, UniversalID: hd.UniversalID, UniversalIDType: hd.UniversalIDType}
		}
	}
	return hl7v2.EI{}
}

// setCode writes a CodeableConcept as a CWE: the MDC coding first with LOINC
// as the alternate; without MDC, LOINC or the first coding alone.
func (e *encoder) setCode(s *hl7v2.Segment, field string, cc map[string]any) error {
	primary := codingWith(cc, codes.SystemMDC)
	var alt map[string]any
	if primary != nil {
		alt = codingWith(cc, codes.SystemLOINC)
	} else if primary = codingWith(cc, codes.SystemLOINC); primary == nil {
		primary = firstCoding(cc)
	}
	if primary == nil {
		return fmt.Errorf("hl7map: encode ORU: %w: a code without codings", ErrEncode)
	}
	disp := str(primary["display"])
	if str(primary["system"]) == codes.SystemMDC {
		disp = mdcDisplay(primary)
	}
	e.segSet(s, field+".1", str(primary["code"]))
	e.segSet(s, field+".2", disp)
	e.segSet(s, field+".3", systemName(str(primary["system"])))
	if alt != nil {
		e.segSet(s, field+".4", str(alt["code"]))
		e.segSet(s, field+".5", str(alt["display"]))
		e.segSet(s, field+".6", "LN")
	}
	return nil
}

// valueKey is the name of the value[x] element a map holds, or "".
func valueKey(m map[string]any) string {
	for _, k := range []string{"valueQuantity", "valueString", "valueCodeableConcept", "valueDateTime", "valueInteger", "valueRange", "valueRatio", "valueTime", "valueBoolean"} {
		if _, ok := m[k]; ok {
			return k
		}
	}
	return ""
}

// mdcUnits maps a UCUM code to the MDC dimension codes used with it: one
// per metric, and the first of the table for any metric.
var mdcUnits = sync.OnceValue(func() map[string]uint32 {
	out := map[string]uint32{}
	for _, m := range codes.Metrics() {
		for _, u := range m.Units {
			if _, ok := out[u.UCUM]; !ok && u.MDC != 0 {
				out[u.UCUM] = u.MDC
			}
		}
	}
	return out
})

// mdcUnitFor returns the MDC unit of ucum for the metric the code denotes.
func mdcUnitFor(code map[string]any, ucum string) (codes.MDCUnit, bool) {
	for _, sys := range []string{codes.SystemMDC, codes.SystemLOINC} {
		if c := codingWith(code, sys); c != nil {
			if m, _, _, ok := codes.MetricByCoding(sys, str(c["code"])); ok {
				if mu, ok := m.Unit(ucum); ok && mu.MDC != 0 {
					return codes.UnitByMDC(mu.MDC)
				}
			}
		}
	}
	if c, ok := mdcUnits()[ucum]; ok {
		return codes.UnitByMDC(c)
	}
	return codes.MDCUnit{}, false
}

// setUnit writes OBX-6: the MDC unit with UCUM as the alternate, or the
// UCUM code, or the unit text.
func (e *encoder) setUnit(s *hl7v2.Segment, q map[string]any, code map[string]any) {
	ucum := ""
	if str(q["system"]) == codes.SystemUCUM {
		ucum = str(q["code"])
	}
	if ucum == "" {
		e.segSet(s, "6.1", str(q["unit"]))
		return
	}
	if mu, ok := mdcUnitFor(code, ucum); ok {
		e.segSet(s, "6.1", strconv.FormatUint(uint64(mu.Code), 10))
		e.segSet(s, "6.2", mu.RefID)
		e.segSet(s, "6.3", "MDC")
		e.segSet(s, "6.4", ucum)
		e.segSet(s, "6.5", ucum)
		e.segSet(s, "6.6", "UCUM")
		return
	}
	e.segSet(s, "6.1", ucum)
	e.segSet(s, "6.2", ucum)
	e.segSet(s, "6.3", "UCUM")
}

func numberText(v any) string {
	switch n := v.(type) {
	case json.Number:
		return n.String()
	case string:
		return n
	case float64:
		return strconv.FormatFloat(n, 'f', -1, 64)
	case int:
		return strconv.Itoa(n)
	}
	return ""
}

// setValue writes OBX-2, OBX-5 and OBX-6 for one value[x].
func (e *encoder) setValue(s *hl7v2.Segment, key string, m map[string]any, code map[string]any) error {
	switch key {
	case "valueQuantity":
		q, _ := m[key].(map[string]any)
		v := numberText(q["value"])
		if v == "" {
			return fmt.Errorf("hl7map: encode ORU: %w: a quantity without a value", ErrEncode)
		}
		if cmp := str(q["comparator"]); cmp != "" {
			e.segSet(s, "2", "SN")
			e.segSet(s, "5.1", cmp)
			e.segSet(s, "5.2", v)
		} else {
			e.segSet(s, "2", "NM")
			e.segSet(s, "5", v)
		}
		e.setUnit(s, q, code)
	case "valueInteger":
		e.segSet(s, "2", "NM")
		e.segSet(s, "5", numberText(m[key]))
	case "valueString":
		e.segSet(s, "2", "ST")
		e.segSet(s, "5", str(m[key]))
	case "valueDateTime":
		t, p, err := effectiveTime(map[string]any{"effectiveDateTime": m[key]})
		if err != nil {
			return fmt.Errorf("hl7map: encode ORU: %w", err)
		}
		e.segSet(s, "2", "DTM")
		e.segSet(s, "5", dtmString(t, p))
	case "valueCodeableConcept":
		cc, _ := m[key].(map[string]any)
		e.segSet(s, "2", "CWE")
		if firstCoding(cc) == nil {
			e.segSet(s, "5.9", str(cc["text"]))
			break
		}
		if err := e.setCode(s, "5", cc); err != nil {
			return err
		}
		e.segSet(s, "5.9", str(cc["text"]))
	case "valueRange", "valueRatio":
		r, _ := m[key].(map[string]any)
		a, b, sep := "low", "high", "-"
		if key == "valueRatio" {
			a, b, sep = "numerator", "denominator", ":"
		}
		qa, _ := r[a].(map[string]any)
		qb, _ := r[b].(map[string]any)
		e.segSet(s, "2", "SN")
		e.segSet(s, "5.2", numberText(qa["value"]))
		e.segSet(s, "5.3", sep)
		e.segSet(s, "5.4", numberText(qb["value"]))
		if qa != nil {
			e.setUnit(s, qa, code)
		}
	default:
		return fmt.Errorf("hl7map: encode ORU: %w: %s has no HL7 v2 value type here", ErrEncode, key)
	}
	return nil
}

// rangeText writes a referenceRange as OBX-7: "low-high", ">low", "<high"
// or its text.
func rangeText(rr any) string {
	r, _ := rr.(map[string]any)
	lo, _ := r["low"].(map[string]any)
	hi, _ := r["high"].(map[string]any)
	l, h := numberText(lo["value"]), numberText(hi["value"])
	switch {
	case l != "" && h != "":
		return l + "-" + h
	case l != "":
		return ">" + l
	case h != "":
		return "<" + h
	}
	return str(r["text"])
}

// alert writes a DetectedIssue as an ST row: its code, its detail, OBX-8
// AA (high severity) or A, its status and identified time.
func (e *encoder) alert(di map[string]any, n int, dev hl7v2.EI) error {
	if rt := str(di["resourceType"]); rt != "DetectedIssue" {
		return fmt.Errorf("hl7map: encode ORU: %w: the alert is not a DetectedIssue", ErrEncode)
	}
	obx := e.obx()
	cc, _ := di["code"].(map[string]any)
	cd := firstCoding(cc)
	if cd == nil {
		return fmt.Errorf("hl7map: encode ORU: %w: the alert has no code", ErrEncode)
	}
	e.segSet(obx, "2", "ST")
	e.segSet(obx, "3.1", str(cd["code"]))
	e.segSet(obx, "3.2", str(cd["display"]))
	if sys := str(cd["system"]); sys == alertSystem {
		e.segSet(obx, "3.3", alertSystemName)
	} else {
		e.segSet(obx, "3.3", systemName(sys))
	}
	e.segSet(obx, "4", "1.1.1."+strconv.Itoa(n))
	detail := str(di["detail"])
	if detail == "" {
		detail = str(cd["display"])
	}
	e.segSet(obx, "5", detail)
	if str(di["severity"]) == "high" {
		e.segSet(obx, "8", "AA")
	} else {
		e.segSet(obx, "8", "A")
	}
	st, ok := resultStatusCode[str(di["status"])]
	if !ok {
		st = "F"
	}
	e.segSet(obx, "11", st)
	if t, p, err := effectiveTime(map[string]any{"effectiveDateTime": di["identifiedDateTime"]}); err == nil && !t.IsZero() {
		e.segSet(obx, "14", dtmString(t, p))
	}
	e.setEI(obx, dev)
	return nil
}

// unescapeURN reverses urnEscape.
func unescapeURN(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return "", err
			}
			b.WriteByte(byte(v))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String(), nil
}
