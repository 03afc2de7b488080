package hl7map

import (
	"strings"
	"time"

	"github.com/vigil-health/vigil/hl7v2"
	"github.com/vigil-health/vigil/mappers"
)

// mapPatient maps PID to the Patient entry; update asks the caller to
// replace an existing match (ADT), else the Patient is only created when
// none matches (ORU: results do not overwrite registration data).
func (x *mapper) mapPatient(pid *hl7v2.Segment, update bool) {
	p := map[string]any{"resourceType": "Patient"}
	var ids []any
	for _, r := range pid.Field(3).Reps() {
		cx := r.CX()
		if cx.ID == "" {
			continue
		}
		sys := x.system(cx.AssigningAuthority)
		id := map[string]any{"value": cx.ID}
		if sys != "" {
			id["system"] = sys
		}
		if cx.IdentifierTypeCode != "" {
			id["type"] = v2Concept("0203", cx.IdentifierTypeCode)
		}
		ids = append(ids, id)
		if x.patientIdent.IsZero() {
			x.patientIdent = mappers.Identifier{System: sys, Value: cx.ID}
		}
	}
	if len(ids) == 0 {
		x.fail(problem(hl7v2.CodeRequiredFieldMissing, loc(pid, 3), ErrMissing, "patient identifier list (PID-3) is required"))
		return
	}
	p["identifier"] = ids

	var names []any
	for _, r := range pid.Field(5).Reps() {
		if n := humanName(r.XPN()); n != nil {
			names = append(names, n)
		}
	}
	if len(names) > 0 {
		p["name"] = names
	}
	if !pid.Field(7).IsEmpty() {
		if d, ok := x.ts(pid, 7); ok && d.Precision != hl7v2.PrecisionNone {
			p["birthDate"] = date(d)
		}
	}
	if sex := strings.ToUpper(pid.Field(8).Value()); sex != "" {
		g, ok := administrativeGender[sex]
		if !ok {
			x.fail(problem(hl7v2.CodeTableValueNotFound, loc(pid, 8), ErrInvalid, "administrative sex not in table 0001"))
		} else {
			p["gender"] = g
		}
	}
	var addrs []any
	for _, r := range pid.Field(11).Reps() {
		if a := address(r.XAD()); a != nil {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) > 0 {
		p["address"] = addrs
	}
	var telecom []any
	for _, f := range []int{13, 14} {
		for _, r := range pid.Field(f).Reps() {
			if t := contactPoint(r, f == 14); t != nil {
				telecom = append(telecom, t)
			}
		}
	}
	if len(telecom) > 0 {
		p["telecom"] = telecom
	}
	if d := strings.ToUpper(pid.Field(30).Value()); d == "Y" || d == "N" {
		p["deceasedBoolean"] = d == "Y"
	}
	x.patientURL = x.fullURL("Patient", x.patientIdent.System+"|"+x.patientIdent.Value)
	x.add(Entry{
		FullURL:        x.patientURL,
		Resource:       p,
		IfNoneExist:    identifierQuery(x.patientIdent.System, x.patientIdent.Value),
		UpdateIfExists: update,
	})
}

func humanName(n hl7v2.XPN) map[string]any {
	out := map[string]any{}
	if n.FamilyName != "" {
		out["family"] = n.FamilyName
	}
	var given []any
	if n.GivenName != "" {
		given = append(given, n.GivenName)
	}
	if n.MiddleName != "" {
		given = append(given, n.MiddleName)
	}
	if len(given) > 0 {
		out["given"] = given
	}
	if n.Prefix != "" {
		out["prefix"] = []any{n.Prefix}
	}
	var suffix []any
	if n.Suffix != "" {
		suffix = append(suffix, n.Suffix)
	}
	if n.Degree != "" {
		suffix = append(suffix, n.Degree)
	}
	if len(suffix) > 0 {
		out["suffix"] = suffix
	}
	if len(out) == 0 {
		return nil
	}
	if u, ok := nameUse[strings.ToUpper(n.NameTypeCode)]; ok {
		out["use"] = u
	}
	return out
}

func address(a hl7v2.XAD) map[string]any {
	out := map[string]any{}
	var lines []any
	for _, l := range []string{a.Street, a.OtherDesignation} {
		if l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > 0 {
		out["line"] = lines
	}
	for k, v := range map[string]string{"city": a.City, "state": a.State, "postalCode": a.Zip, "country": a.Country, "district": a.County} {
		if v != "" {
			out[k] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	if u, ok := addressUse[strings.ToUpper(a.AddressType)]; ok {
		out["use"] = u
	}
	return out
}

// contactPoint maps an XTN: the e-mail address (XTN-4) or the number built
// from country code, area code, local number and extension (XTN-5..8), else
// the unformatted XTN-1.
func contactPoint(r hl7v2.Repetition, business bool) map[string]any {
	get := func(i int) string { return r.Component(i).Value() }
	equip := strings.ToUpper(get(3))
	value := ""
	switch {
	case get(4) != "" && (equip == "INTERNET" || equip == "X.400" || get(7) == ""):
		value = get(4)
		if equip == "" {
			equip = "INTERNET"
		}
	case get(7) != "":
		var parts []string
		if get(5) != "" {
			parts = append(parts, "+"+strings.TrimPrefix(get(5), "+"))
		}
		for _, p := range []string{get(6), get(7)} {
			if p != "" {
				parts = append(parts, p)
			}
		}
		value = strings.Join(parts, " ")
		if get(8) != "" {
			value += " ext. " + get(8)
		}
	default:
		value = get(1)
	}
	if value == "" {
		return nil
	}
	cp := map[string]any{"value": value}
	if s, ok := telecomSystem[equip]; ok {
		cp["system"] = s
	} else {
		cp["system"] = "phone"
	}
	if u, ok := telecomUse[strings.ToUpper(get(2))]; ok {
		cp["use"] = u
	} else if business {
		cp["use"] = "work"
	}
	return cp
}

// mapEncounter maps PV1 to the Encounter entry. Without a visit number
// (PV1-19) there is nothing to match a later message's Encounter with, so
// no Encounter is made. status is the status the event implies, "" to
// take it from PV1 (finished when PV1-45 is valued, planned for a
// pre-admit, else in-progress).
func (x *mapper) mapEncounter(pv1 *hl7v2.Segment, status string, evn *hl7v2.Segment, update bool) {
	if pv1 == nil {
		return
	}
	cx := pv1.Field(19).CX()
	if cx.ID == "" {
		return
	}
	enc := map[string]any{"resourceType": "Encounter"}
	sys := x.system(cx.AssigningAuthority)
	id := map[string]any{"value": cx.ID, "type": v2Concept("0203", "VN")}
	if sys != "" {
		id["system"] = sys
	}
	enc["identifier"] = []any{id}

	class := strings.ToUpper(pv1.Field(2).Value())
	switch c, ok := encounterClass[class]; {
	case ok:
		enc["class"] = map[string]any{"system": sysActCode, "code": c[0], "display": c[1]}
	case class != "":
		enc["class"] = map[string]any{"system": sysV2Prefix + "0004", "code": class}
	default:
		x.fail(problem(hl7v2.CodeRequiredFieldMissing, loc(pv1, 2), ErrMissing, "patient class (PV1-2) is required"))
		return
	}

	period := map[string]any{}
	var start, end time.Time
	if !pv1.Field(44).IsEmpty() {
		if d, ok := x.ts(pv1, 44); ok {
			period["start"], start = x.dateTime(d), x.instant(d)
		}
	}
	if !pv1.Field(45).IsEmpty() {
		if d, ok := x.ts(pv1, 45); ok {
			period["end"], end = x.dateTime(d), x.instant(d)
		}
	}
	if status == "finished" && period["end"] == nil && evn != nil {
		// The discharge time: EVN-6 (event occurred), else EVN-2 (recorded).
		for _, f := range []int{6, 2} {
			if !evn.Field(f).IsEmpty() {
				if d, ok := x.ts(evn, f); ok {
					period["end"], end = x.dateTime(d), x.instant(d)
				}
				break
			}
		}
	}
	if !start.IsZero() && !end.IsZero() && end.Before(start) {
		x.fail(problem(hl7v2.CodeDataType, loc(pv1, 44), ErrInvalid, "admit date/time (PV1-44) is after the discharge date/time"))
		return
	}
	if len(period) > 0 {
		enc["period"] = period
	}
	if status == "" {
		switch {
		case period["end"] != nil:
			status = "finished"
		case class == "P":
			status = "planned"
		default:
			status = "in-progress"
		}
	}
	enc["status"] = status
	if x.patientURL != "" {
		enc["subject"] = map[string]any{"reference": x.patientURL}
	}
	if l := placeDisplay(pv1.Field(3).Rep(1)); l != "" {
		ls := "active"
		switch status {
		case "finished":
			ls = "completed"
		case "planned":
			ls = "planned"
		}
		enc["location"] = []any{map[string]any{"location": map[string]any{"display": l}, "status": ls}}
	}
	var parts []any
	for _, p := range []struct {
		field      int
		code, disp string
	}{{7, "ATND", "attender"}, {8, "REF", "referrer"}, {9, "CON", "consultant"}, {17, "ADM", "admitter"}} {
		for _, r := range pv1.Field(p.field).Reps() {
			ind := practitioner(r)
			if ind == nil {
				continue
			}
			parts = append(parts, map[string]any{
				"type":       []any{map[string]any{"coding": []any{map[string]any{"system": sysParticipationType, "code": p.code, "display": p.disp}}}},
				"individual": ind,
			})
		}
	}
	if len(parts) > 0 {
		enc["participant"] = parts
	}
	if s := pv1.Field(10).Value(); s != "" {
		enc["serviceType"] = v2Concept("0069", s)
	}
	hosp := map[string]any{}
	if s := pv1.Field(14).Value(); s != "" {
		hosp["admitSource"] = v2Concept("0023", s)
	}
	if s := pv1.Field(13).Value(); s != "" {
		hosp["reAdmission"] = v2Concept("0092", s)
	}
	if s := pv1.Field(36).Value(); s != "" {
		hosp["dischargeDisposition"] = v2Concept("0112", s)
	}
	if len(hosp) > 0 {
		enc["hospitalization"] = hosp
	}
	x.encounterURL = x.fullURL("Encounter", sys+"|"+cx.ID)
	x.add(Entry{FullURL: x.encounterURL, Resource: enc, IfNoneExist: identifierQuery(sys, cx.ID), UpdateIfExists: update})
}

// placeDisplay formats a PL (point of care, room, bed, facility) as text.
func placeDisplay(r hl7v2.Repetition) string {
	var parts []string
	for i := 1; i <= 3; i++ {
		if v := r.Component(i).Value(); v != "" {
			parts = append(parts, v)
		}
	}
	s := strings.Join(parts, " ")
	if f := r.Component(4).HD().NamespaceID; f != "" {
		if s == "" {
			return f
		}
		s += " (" + f + ")"
	}
	return s
}

// practitioner maps an XCN to a Reference with the practitioner's
// identifier and name.
func practitioner(r hl7v2.Repetition) map[string]any {
	id := r.Component(1).Value()
	var name []string
	for _, i := range []int{6, 3, 4, 2} {
		if v := r.Component(i).Value(); v != "" {
			name = append(name, v)
		}
	}
	if id == "" && len(name) == 0 {
		return nil
	}
	ref := map[string]any{}
	if id != "" {
		ref["identifier"] = map[string]any{"value": id}
	}
	if len(name) > 0 {
		ref["display"] = strings.Join(name, " ")
	}
	return ref
}

// mapADT maps an ADT message: Patient (updated when it exists) and
// Encounter.
func (x *mapper) mapADT(event string) {
	pid := x.m.Segment("PID")
	if pid == nil {
		x.fail(problem(hl7v2.CodeSegmentSequence, hl7v2.Location{Segment: "PID"}, ErrMissing, "PID segment is required"))
		return
	}
	x.mapPatient(pid, true)
	if len(x.errs) > 0 {
		return
	}
	status := ""
	switch event {
	case "A28", "A31":
		return // person information only
	case "A01":
		status = "in-progress"
	case "A04":
		status = "arrived"
	case "A03":
		status = "finished"
	}
	pv1 := x.m.Segment("PV1")
	if pv1 == nil {
		x.fail(problem(hl7v2.CodeSegmentSequence, hl7v2.Location{Segment: "PV1"}, ErrMissing, "PV1 segment is required"))
		return
	}
	if pv1.Field(19).IsEmpty() {
		x.fail(problem(hl7v2.CodeRequiredFieldMissing, loc(pv1, 19), ErrMissing, "visit number (PV1-19) is required to match the encounter"))
		return
	}
	x.mapEncounter(pv1, status, x.m.Segment("EVN"), true)
}
