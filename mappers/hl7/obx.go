package hl7map

import (
	"strings"

	"github.com/vigil-health/vigil/hl7v2"
)

const sysDataAbsent = "http://terminology.hl7.org/CodeSystem/data-absent-reason"

// status maps OBX-11 (table 0085); empty is final.
func (x *mapper) status(s *hl7v2.Segment) (string, bool) {
	v := strings.ToUpper(s.Field(11).Value())
	if v == "" {
		return "final", true
	}
	st, ok := observationStatus[v]
	if !ok {
		x.fail(problem(hl7v2.CodeTableValueNotFound, loc(s, 11), ErrInvalid, "observation result status not in table 0085"))
	}
	return st, ok
}

// setValue sets the value[x] of obs from OBX-2, OBX-5 and OBX-6 (see the
// package documentation for the types), or the components of a numeric
// array. It records a problem and returns false when the value is malformed.
func (x *mapper) setValue(obs map[string]any, s *hl7v2.Segment, code map[string]any) bool {
	vt := strings.ToUpper(s.Field(2).Value())
	f5 := s.Field(5)
	reps := f5.Reps()
	u := parseUnit(s.Field(6).CWE())
	if len(reps) > 1 && vt != "ST" && vt != "TX" && vt != "FT" {
		l := loc(s, 5)
		l.Rep = 2
		x.fail(problem(hl7v2.CodeDataType, l, ErrInvalid, "a repeated value is only allowed for text types"))
		return false
	}
	bad := func(msg string) bool {
		x.fail(problem(hl7v2.CodeDataType, loc(s, 5), ErrInvalid, msg))
		return false
	}
	switch vt {
	case "NM":
		n, err := f5.NM()
		if err != nil {
			x.fail(asProblem(err, loc(s, 5), "not a number (NM)"))
			return false
		}
		d, ok := decimal(n.Text)
		if !ok {
			return bad("not a number (NM)")
		}
		obs["valueQuantity"] = quantity(d, u)
	case "ST", "TX", "FT":
		var lines []string
		d := x.m.Delimiters()
		for _, r := range reps {
			lines = append(lines, hl7v2.DecodeEscapes(r.String(), d))
		}
		obs["valueString"] = strings.Join(lines, "\n")
	case "CWE", "CE", "CNE", "CF":
		c := concept(f5.CWE())
		if c == nil {
			return bad("coded value without a code or text")
		}
		obs["valueCodeableConcept"] = c
	case "SN":
		sn, err := f5.SN()
		if err != nil {
			x.fail(asProblem(err, loc(s, 5), "not a structured numeric (SN)"))
			return false
		}
		return x.setSN(obs, sn, u, bad)
	case "DTM", "TS", "DT":
		d, err := f5.TS()
		if err != nil {
			x.fail(asProblem(err, loc(s, 5), "not a date/time (DTM)"))
			return false
		}
		obs["valueDateTime"] = x.dateTime(d)
	case "TM":
		t, ok := fhirTime(f5.Value())
		if !ok {
			return bad("not a time (TM)")
		}
		obs["valueTime"] = t
	case "NA":
		var comps []any
		for _, c := range reps[0].Components() {
			comp := map[string]any{"code": code}
			if c.IsEmpty() || c.IsNull() {
				comp["dataAbsentReason"] = map[string]any{"coding": []any{map[string]any{"system": sysDataAbsent, "code": "unknown"}}}
			} else {
				n, err := c.NM()
				if err != nil {
					x.fail(asProblem(err, loc(s, 5), "numeric array element is not a number"))
					return false
				}
				d, ok := decimal(n.Text)
				if !ok {
					return bad("numeric array element is not a number")
				}
				comp["valueQuantity"] = quantity(d, u)
			}
			comps = append(comps, comp)
		}
		obs["component"] = comps
	case "":
		x.fail(problem(hl7v2.CodeRequiredFieldMissing, loc(s, 2), ErrMissing, "value type (OBX-2) is required with a value"))
		return false
	default:
		x.fail(problem(hl7v2.CodeTableValueNotFound, loc(s, 2), ErrInvalid, "value type not mapped"))
		return false
	}
	return true
}

// setSN maps a structured numeric: a comparator to a Quantity comparator,
// "-" to a Range, ":" and "/" to a Ratio, other forms ("2+") to text.
func (x *mapper) setSN(obs map[string]any, sn hl7v2.SN, u unit, bad func(string) bool) bool {
	n1, ok1 := decimal(sn.Num1.Text)
	n2, ok2 := decimal(sn.Num2.Text)
	has1, has2 := !sn.Num1.IsEmpty(), !sn.Num2.IsEmpty()
	if (has1 && !ok1) || (has2 && !ok2) {
		return bad("not a structured numeric (SN)")
	}
	switch sn.Separator {
	case "":
		if !has1 {
			return bad("structured numeric without a number")
		}
		q := quantity(n1, u)
		switch sn.Comparator {
		case "", "=":
		case ">", "<", ">=", "<=":
			q["comparator"] = sn.Comparator
		default:
			obs["valueString"] = sn.Comparator + sn.Num1.Text
			return true
		}
		obs["valueQuantity"] = q
	case "-":
		if sn.Comparator != "" || !has1 || !has2 {
			return bad("a structured numeric range needs two numbers and no comparator")
		}
		obs["valueRange"] = map[string]any{"low": quantity(n1, u), "high": quantity(n2, u)}
	case ":", "/":
		if sn.Comparator != "" || !has1 || !has2 {
			return bad("a structured numeric ratio needs two numbers and no comparator")
		}
		obs["valueRatio"] = map[string]any{"numerator": quantity(n1, u), "denominator": map[string]any{"value": jsonNumber(n2)}}
	default:
		obs["valueString"] = sn.Comparator + sn.Num1.Text + sn.Separator + sn.Num2.Text
	}
	return true
}

// fhirTime turns an HL7 TM (HHMM[SS[.S...]]) without offset into a FHIR time.
func fhirTime(s string) (string, bool) {
	if i := strings.IndexAny(s, "+-"); i >= 0 {
		s = s[:i]
	}
	main, frac, _ := strings.Cut(s, ".")
	if !isDigits(main) || (len(main) != 2 && len(main) != 4 && len(main) != 6) || (frac != "" && !isDigits(frac)) {
		return "", false
	}
	for len(main) < 6 {
		main += "00"
	}
	if main[0:2] > "23" || main[2:4] > "59" || main[4:6] > "59" {
		return "", false
	}
	out := main[0:2] + ":" + main[2:4] + ":" + main[4:6]
	if frac != "" {
		out += "." + frac
	}
	return out, true
}

// referenceRange maps OBX-7: "low-high", ">low", "<high" (with "=") as
// quantities in the row's unit, anything else as text.
func referenceRange(s string, u unit) map[string]any {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil
	}
	for _, p := range []struct {
		prefix, key string
	}{{">=", "low"}, {"<=", "high"}, {">", "low"}, {"<", "high"}} {
		if rest, ok := strings.CutPrefix(s, p.prefix); ok {
			if d, ok := decimal(rest); ok && rest != "" {
				return map[string]any{p.key: simpleQuantity(d, u)}
			}
			return map[string]any{"text": s}
		}
	}
	if i := strings.Index(s[1:], "-"); i >= 0 {
		lo, hi := strings.TrimSpace(s[:i+1]), strings.TrimSpace(s[i+2:])
		dl, okl := decimal(lo)
		dh, okh := decimal(hi)
		if okl && okh && lo != "" && hi != "" {
			return map[string]any{"low": simpleQuantity(dl, u), "high": simpleQuantity(dh, u)}
		}
	}
	return map[string]any{"text": s}
}

// simpleQuantity is a quantity with the unit but without a display text
// that is an MDC reference id.
func simpleQuantity(d string, u unit) map[string]any { return quantity(d, u) }

// interpretation maps OBX-8 (table 0078) to v3 ObservationInterpretation.
func interpretation(f hl7v2.Field) []any {
	var out []any
	for _, r := range f.Reps() {
		c := r.CWE()
		code := c.Identifier
		if code == "" {
			continue
		}
		coding := map[string]any{"code": code}
		if d, ok := interpretations[strings.ToUpper(code)]; ok {
			coding["system"] = sysInterpretation
			coding["code"] = strings.ToUpper(code)
			coding["display"] = d
		} else {
			coding["system"] = sysV2Prefix + "0078"
			if c.Text != "" {
				coding["display"] = c.Text
			}
		}
		out = append(out, map[string]any{"coding": []any{coding}})
	}
	return out
}

// addDetails adds what OBX rows carry besides the value: reference range,
// interpretation, method, body site and notes.
func (x *mapper) addDetails(obs map[string]any, row *obxRow, u unit) {
	s := row.seg
	if rr := referenceRange(s.Field(7).Value(), u); rr != nil {
		obs["referenceRange"] = []any{rr}
	}
	if in := interpretation(s.Field(8)); len(in) > 0 {
		obs["interpretation"] = in
	}
	if m := concept(s.Field(17).CWE()); m != nil {
		obs["method"] = m
	}
	if _, has := obs["bodySite"]; !has {
		if b := concept(s.Field(20).CWE()); b != nil {
			obs["bodySite"] = b
		}
	}
	if len(row.notes) > 0 {
		var notes []any
		for _, n := range row.notes {
			notes = append(notes, map[string]any{"text": n})
		}
		obs["note"] = notes
	}
	if x.encounterURL != "" {
		obs["encounter"] = map[string]any{"reference": x.encounterURL}
	}
}
