package hl7map

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-health/vigil/hl7v2"
	"github.com/vigil-health/vigil/mappers"
	"github.com/vigil-health/vigil/mappers/codes"
)

func lookupMDCUnit(code string) (string, bool) {
	c, err := strconv.ParseUint(code, 10, 32)
	if err != nil {
		return "", false
	}
	u, ok := codes.UnitByMDC(uint32(c))
	return u.UCUM, ok
}

func normalizeUnit(s string) (string, bool) { return codes.NormalizeUnit(s) }

// containment is OBX-4 of a PCD-01 row, mds.vmd.chan.metric.
type containment [4]int

// parseContainment reads "1.2.1.3"; missing levels are 0.
func parseContainment(s string) (containment, bool) {
	var c containment
	if s == "" {
		return c, false
	}
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return c, false
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return c, false
		}
		c[i] = n
	}
	return c, true
}

func (c containment) isMDS() bool { return c[0] > 0 && c[1] == 0 && c[2] == 0 && c[3] == 0 }

// channel is the mds.vmd.chan prefix, the key that groups the parts of one
// blood pressure measurement.
func (c containment) channel() string {
	return strconv.Itoa(c[0]) + "." + strconv.Itoa(c[1]) + "." + strconv.Itoa(c[2])
}

// device is one Device of a device report.
type device struct {
	key  string
	info mappers.DeviceInfo
	typ  hl7v2.CWE
	url  string
}

// deviceRow is a valued OBX row of a device report, resolved.
type deviceRow struct {
	row  *obxRow
	g    *obrGroup
	cont containment
	dev  *device
}

// deviceOf reads an equipment instance identifier (OBX-18, EI): an EUI-64
// when the namespace or universal id type says EUI-64, else an identifier
// under the system of its assigning authority.
func (x *mapper) deviceOf(ei hl7v2.EI, l hl7v2.Location) (mappers.DeviceInfo, bool) {
	if strings.EqualFold(ei.NamespaceID, "EUI-64") || strings.EqualFold(ei.UniversalIDType, "EUI-64") {
		v := ei.EntityIdentifier
		if v == "" || strings.EqualFold(v, ei.NamespaceID) {
			v = ei.UniversalID
		}
		if !isEUI64(v) {
			x.fail(problem(hl7v2.CodeDataType, l, ErrInvalid, "equipment identifier is not an EUI-64 (16 hexadecimal digits)"))
			return mappers.DeviceInfo{}, false
		}
		return mappers.DeviceInfo{EUI64: v}, true
	}
	if ei.EntityIdentifier == "" {
		return mappers.DeviceInfo{}, false
	}
	sys := x.system(hl7v2.HD{NamespaceID: ei.NamespaceID, UniversalID: ei.UniversalID, UniversalIDType: ei.UniversalIDType})
	return mappers.DeviceInfo{Identifier: mappers.Identifier{System: sys, Value: ei.EntityIdentifier}}, true
}

// isEUI64 reports whether s is 16 hexadecimal digits, maybe grouped with
// '-' or ':'.
func isEUI64(s string) bool {
	n := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i] | 0x20; {
		case c >= '0' && c <= '9' || c >= 'a' && c <= 'f':
			n++
		case s[i] == '-' || s[i] == ':':
		default:
			return false
		}
	}
	return n == 16
}

// mapDeviceReport maps the OBX rows of an IHE PCD-01 ORU^R01: Devices from
// the equipment identifiers and MDS rows, Observations from the valued rows.
func (x *mapper) mapDeviceReport(groups []*obrGroup) {
	devices := map[string]*device{}
	var order []*device
	register := func(info mappers.DeviceInfo) *device {
		key := info.Key()
		if d, ok := devices[key]; ok {
			return d
		}
		d := &device{key: key, info: info}
		devices[key] = d
		order = append(order, d)
		return d
	}
	// The sending gateway (MSH-3 with an EUI-64) is the device of rows
	// that name none.
	var gateway *device
	if hd := x.m.Header().Field(3).HD(); strings.EqualFold(hd.UniversalIDType, "EUI-64") && isEUI64(hd.UniversalID) {
		gateway = &device{info: mappers.DeviceInfo{EUI64: hd.UniversalID}}
		gateway.key = gateway.info.Key()
	}

	// First each row's own device (OBX-18), and the MDS rows, which name the
	// device of their whole hierarchy and its type.
	var rows []deviceRow
	mds := map[int]*device{}
	for _, g := range groups {
		for _, r := range g.rows {
			c, ok := parseContainment(r.seg.Field(4).Value())
			if !ok && !r.seg.Field(4).IsEmpty() {
				x.fail(problem(hl7v2.CodeDataType, loc(r.seg, 4), ErrInvalid, "observation sub-id is not a containment mds.vmd.chan.metric"))
				continue
			}
			dr := deviceRow{row: r, g: g, cont: c}
			if f := r.seg.Field(18); !f.IsEmpty() {
				if info, ok := x.deviceOf(f.EI(), loc(r.seg, 18)); ok {
					dr.dev = register(info)
				}
			}
			if c.isMDS() && dr.dev != nil {
				mds[c[0]] = dr.dev
				if dr.dev.typ.Identifier == "" {
					dr.dev.typ = r.seg.Field(3).CWE()
				}
			}
			rows = append(rows, dr)
		}
	}
	// A row without a device is reported, and still checked so that every
	// problem of the message is reported at once.
	var valued []deviceRow
	for _, dr := range rows {
		if dr.row.seg.Field(5).IsEmpty() || dr.row.seg.Field(5).IsNull() {
			continue // a row describing the device hierarchy
		}
		if dr.dev == nil {
			if d, ok := mds[dr.cont[0]]; ok {
				dr.dev = d
			} else if gateway != nil {
				dr.dev = register(gateway.info)
			} else {
				x.fail(problem(hl7v2.CodeRequiredFieldMissing, loc(dr.row.seg, 18), ErrMissing, "equipment instance identifier (OBX-18) is required for a device observation"))
				dr.dev = &device{}
			}
		}
		valued = append(valued, dr)
	}
	for _, d := range order {
		d.info.Type = d.typ.Identifier
		res := mappers.Device(d.info, "")
		if d.typ.Identifier != "" {
			if _, known := codes.DeviceTypeByName(d.typ.Identifier); !known {
				if c := concept(d.typ); c != nil {
					res["type"] = c
				}
			}
		}
		id := mappers.DeviceIdentifier(d.info)
		d.url = x.fullURL("Device", d.key)
		x.add(Entry{FullURL: d.url, Resource: res, IfNoneExist: identifierQuery(id.System, id.Value)})
	}

	x.mapDeviceObservations(valued)
}

// panel collects the parts of one blood pressure measurement.
type panel struct {
	reading mappers.Reading
	rows    map[string]*obxRow // by component name
	unit    unit
}

// deviceItem is one Observation to build, in row order.
type deviceItem struct {
	reading *mappers.Reading // a numeric reading
	panel   *panel
	row     *obxRow
	dev     *device
	unit    unit
	// value is the value[x] of a row that is not a numeric reading; such an
	// Observation is built from the row directly.
	value map[string]any
}

func (x *mapper) mapDeviceObservations(rows []deviceRow) {
	var items []*deviceItem
	panels := map[string]*panel{}
	for _, dr := range rows {
		s := dr.row.seg
		status, ok := x.status(s)
		if !ok {
			continue
		}
		cw := s.Field(3).CWE()
		code, display, sys := cw.Identifier, cw.Text, cw.CodingSystem
		if !strings.EqualFold(sys, "MDC") && strings.EqualFold(cw.AltCodingSystem, "MDC") {
			code, display, sys = cw.AltIdentifier, cw.AltText, cw.AltCodingSystem
		}
		if code == "" && strings.EqualFold(sys, "MDC") {
			// Some devices send the reference id alone: ^MDC_ECG_HEART_RATE^MDC.
			if term, ok := codes.LookupRefID(display); ok {
				code = strconv.FormatUint(uint64(term.Code), 10)
			}
		}
		if code == "" {
			x.fail(problem(hl7v2.CodeRequiredFieldMissing, loc(s, 3), ErrMissing, "observation identifier (OBX-3) is required"))
			continue
		}
		coding := &codes.Coding{System: systemOf(sys), Code: code, Display: display}
		t, timeOK := x.rowTime(dr)
		u := parseUnit(s.Field(6).CWE())
		r := mappers.Reading{Device: dr.dev.info, Patient: x.patientIdent, Code: coding, Time: t, Status: status, UnitText: u.Text, Unit: u.UCUM}
		m, comp, mdc, known := codes.MetricByCoding(coding.System, code)
		if known {
			r.Metric, r.MDC = m.Name, mdc
		}
		if !strings.EqualFold(s.Field(2).Value(), "NM") {
			obs := map[string]any{}
			if x.setValue(obs, s, concept(cw)) && timeOK {
				items = append(items, &deviceItem{reading: &r, row: dr.row, dev: dr.dev, unit: u, value: obs})
			}
			continue
		}
		n, err := s.Field(5).NM()
		if err != nil {
			x.fail(asProblem(err, loc(s, 5), "not a number (NM)"))
			continue
		}
		v, ok := decimal(n.Text)
		if !ok {
			x.fail(problem(hl7v2.CodeDataType, loc(s, 5), ErrInvalid, "not a number (NM)"))
			continue
		}
		if !timeOK {
			continue
		}
		if known && comp != "" {
			// A part of a panel: the panel reading is what ingest builds
			// from {"metric": "blood-pressure", "systolic": ...}.
			key := dr.dev.key + "\x00" + dr.cont.channel() + "\x00" + t.UTC().Format(time.RFC3339Nano) + "\x00" + status + "\x00" + u.UCUM
			p, ok := panels[key]
			if !ok || p.rows[comp] != nil {
				p = &panel{
					reading: mappers.Reading{Device: dr.dev.info, Patient: x.patientIdent, Metric: m.Name, Time: t, Status: status, Unit: u.UCUM, UnitText: u.Text, Parts: map[string]string{}},
					rows:    map[string]*obxRow{},
					unit:    u,
				}
				panels[key] = p
				items = append(items, &deviceItem{panel: p, row: dr.row, dev: dr.dev, unit: u})
			}
			p.reading.Parts[comp] = v
			p.rows[comp] = dr.row
			continue
		}
		r.Value = v
		items = append(items, &deviceItem{reading: &r, row: dr.row, dev: dr.dev, unit: u})
	}
	if len(x.errs) > 0 {
		return
	}

	seen := map[string]bool{}
	for _, it := range items {
		var obs map[string]any
		var err error
		r := it.reading
		if it.panel != nil {
			r = &it.panel.reading
		}
		// Numeric readings get the checks ingest applies; the others have no
		// metric range to check, only their time.
		switch {
		case x.opts.Now.IsZero():
		case it.value == nil:
			if verr := mappers.Validate(r, x.opts.Now, x.opts.Skew); verr != nil {
				x.validationProblems(verr, it)
				continue
			}
		case r.Time.After(x.opts.Now.Add(x.opts.Skew)):
			x.fail(problem(hl7v2.CodeDataType, loc(it.row.seg, 14), ErrInvalid, "reading rejected: "+mappers.ErrFutureTime.Error()))
			continue
		}
		refs := mappers.Refs{Subject: x.patientURL, Device: it.dev.url}
		if it.value != nil {
			obs = x.genericDeviceObservation(it, refs)
		} else {
			obs, err = mappers.Observation(r, refs)
			if err != nil {
				x.fail(problem(hl7v2.CodeDataType, loc(it.row.seg, 5), ErrInvalid, "reading cannot be mapped"))
				continue
			}
		}
		x.addDetails(obs, it.row, it.unit)
		if it.panel != nil {
			delete(obs, "referenceRange")
			x.panelRanges(obs, it.panel)
		}
		id := r.ReadingID()
		if seen[id] {
			x.fail(problem(hl7v2.CodeDuplicateKey, loc(it.row.seg, 3), ErrDuplicate, "a second row for the same device, observation and time"))
			continue
		}
		seen[id] = true
		correction := false
		switch obs["status"] {
		case "amended", "corrected", "entered-in-error", "cancelled":
			correction = true
		}
		x.add(Entry{
			FullURL:        x.fullURL("Observation", id),
			Resource:       obs,
			IfNoneExist:    identifierQuery(mappers.ReadingIdentifierSystem, id),
			UpdateIfExists: correction,
		})
	}
}

// rowTime is the observation time of a row: OBX-14, else OBR-7.
func (x *mapper) rowTime(dr deviceRow) (time.Time, bool) {
	s := dr.row.seg
	if !s.Field(14).IsEmpty() {
		d, ok := x.ts(s, 14)
		if !ok {
			return time.Time{}, false
		}
		return x.instant(d), true
	}
	if dr.g.obr != nil && !dr.g.obr.Field(7).IsEmpty() {
		d, ok := x.ts(dr.g.obr, 7)
		if !ok {
			return time.Time{}, false
		}
		return x.instant(d), true
	}
	x.fail(problem(hl7v2.CodeRequiredFieldMissing, loc(s, 14), ErrMissing, "observation time (OBX-14 or OBR-7) is required"))
	return time.Time{}, false
}

// validationProblems reports the problems of an invalid reading at the
// fields of its row, with texts that quote no values.
func (x *mapper) validationProblems(err error, it *deviceItem) {
	var ve *mappers.ValidationError
	if !errors.As(err, &ve) {
		x.fail(problem(hl7v2.CodeDataType, loc(it.row.seg, 5), ErrInvalid, "reading rejected"))
		return
	}
	for _, p := range ve.Problems {
		field, code := 5, hl7v2.CodeDataType
		switch {
		case errors.Is(p.Kind, mappers.ErrUnknownUnit):
			field = 6
		case errors.Is(p.Kind, mappers.ErrMissingTime), errors.Is(p.Kind, mappers.ErrInvalidTime), errors.Is(p.Kind, mappers.ErrFutureTime):
			field = 14
		case errors.Is(p.Kind, mappers.ErrMissingDevice):
			field, code = 18, hl7v2.CodeRequiredFieldMissing
		case errors.Is(p.Kind, mappers.ErrMissingPatient):
			x.fail(problem(hl7v2.CodeRequiredFieldMissing, hl7v2.Location{Segment: "PID", Field: 3}, ErrMissing, "reading rejected: "+p.Kind.Error()))
			continue
		case errors.Is(p.Kind, mappers.ErrUnsupportedMetric):
			field = 3
		case errors.Is(p.Kind, mappers.ErrInvalidStatus):
			field, code = 11, hl7v2.CodeTableValueNotFound
		}
		x.fail(problem(code, loc(it.row.seg, field), ErrInvalid, "reading rejected: "+p.Kind.Error()))
	}
}

// panelRanges puts the reference range of each part's row on its component.
func (x *mapper) panelRanges(obs map[string]any, p *panel) {
	comps, _ := obs["component"].([]any)
	for _, c := range comps {
		cm, _ := c.(map[string]any)
		cc, _ := cm["code"].(map[string]any)
		codings, _ := cc["coding"].([]any)
		for _, cd := range codings {
			m, _ := cd.(map[string]any)
			sys, _ := m["system"].(string)
			code, _ := m["code"].(string)
			if _, name, _, ok := codes.MetricByCoding(sys, code); ok && name != "" {
				if row := p.rows[name]; row != nil {
					if rr := referenceRange(row.seg.Field(7).Value(), p.unit); rr != nil {
						cm["referenceRange"] = []any{rr}
					}
					if in := interpretation(row.seg.Field(8)); len(in) > 0 {
						cm["interpretation"] = in
					}
				}
				break
			}
		}
	}
}

// genericDeviceObservation builds the Observation of a device row whose
// value is not a number (text, code, structured numeric, time, array).
func (x *mapper) genericDeviceObservation(it *deviceItem, refs mappers.Refs) map[string]any {
	s := it.row.seg
	r := it.reading
	code := concept(s.Field(3).CWE())
	obs := map[string]any{
		"resourceType":      "Observation",
		"identifier":        []any{map[string]any{"system": mappers.ReadingIdentifierSystem, "value": r.ReadingID()}},
		"status":            r.Status,
		"code":              code,
		"effectiveDateTime": r.Time.Format(time.RFC3339Nano),
	}
	if refs.Subject != "" {
		obs["subject"] = map[string]any{"reference": refs.Subject}
	}
	if refs.Device != "" {
		obs["device"] = map[string]any{"reference": refs.Device}
	}
	// A metric Vigil knows gets the codes and category ingest gives it (the
	// LOINC code first), but not the vital-signs profile: the profile wants
	// a plain quantity.
	if c := r.Code; r.Metric != "" && c != nil {
		if _, comp, _, _ := codes.MetricByCoding(c.System, c.Code); comp == "" {
			tmp := *r
			tmp.Value, tmp.Parts = "0", nil
			if known, err := mappers.Observation(&tmp, mappers.Refs{}); err == nil {
				obs["code"] = known["code"]
				obs["category"] = known["category"]
			}
		}
	}
	for k, v := range it.value {
		obs[k] = v
	}
	return obs
}
