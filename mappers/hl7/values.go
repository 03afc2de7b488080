package hl7map

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-health/vigil/hl7v2"
	"github.com/vigil-health/vigil/mappers"
	"github.com/vigil-health/vigil/mappers/codes"
)

// decimal turns HL7 NM text ("+5", ".5", "007.10") into a FHIR decimal
// literal that keeps its precision ("5", "0.5", "7.10").
func decimal(s string) (string, bool) {
	s = strings.TrimSpace(s)
	neg := false
	switch {
	case strings.HasPrefix(s, "+"):
		s = s[1:]
	case strings.HasPrefix(s, "-"):
		neg, s = true, s[1:]
	}
	intPart, frac, hasDot := strings.Cut(s, ".")
	intPart = strings.TrimLeft(intPart, "0")
	if intPart == "" {
		intPart = "0"
	}
	out := intPart
	if hasDot && frac != "" {
		out += "." + frac
	}
	if neg {
		out = "-" + out
	}
	if !mappers.IsDecimal(out) {
		return "", false
	}
	return out, true
}

// ts reads a TS/DTM field, recording a 102 problem when it is malformed.
func (x *mapper) ts(s *hl7v2.Segment, field int) (hl7v2.DTM, bool) {
	d, err := s.Field(field).TS()
	if err != nil {
		x.fail(asProblem(err, loc(s, field), "not a date/time (DTM)"))
		return hl7v2.DTM{}, false
	}
	return d, true
}

// instant is the moment a DTM names: with its own offset, or in the
// configured zone when it has none.
func (x *mapper) instant(d hl7v2.DTM) time.Time {
	if d.HasOffset {
		return d.Time
	}
	t := d.Time
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), x.opts.Location)
}

// dateTime formats a DTM as a FHIR dateTime at its precision; times below a
// second's precision get :00 seconds, which FHIR requires with a time.
func (x *mapper) dateTime(d hl7v2.DTM) string {
	switch d.Precision {
	case hl7v2.PrecisionNone:
		return ""
	case hl7v2.PrecisionYear:
		return d.Time.Format("2006")
	case hl7v2.PrecisionMonth:
		return d.Time.Format("2006-01")
	case hl7v2.PrecisionDay:
		return d.Time.Format("2006-01-02")
	}
	return x.instant(d).Format(time.RFC3339Nano)
}

// instantString formats a DTM as a FHIR instant, or "" when it is less
// precise than a second.
func (x *mapper) instantString(d hl7v2.DTM) string {
	if d.Precision < hl7v2.PrecisionSecond {
		return ""
	}
	return x.instant(d).Format(time.RFC3339Nano)
}

// date formats a DTM as a FHIR date (birth dates).
func date(d hl7v2.DTM) string {
	switch {
	case d.Precision == hl7v2.PrecisionNone:
		return ""
	case d.Precision == hl7v2.PrecisionYear:
		return d.Time.Format("2006")
	case d.Precision == hl7v2.PrecisionMonth:
		return d.Time.Format("2006-01")
	}
	return d.Time.Format("2006-01-02")
}

// unit is an OBX-6 unit: the UCUM code when known, the MDC dimension code
// when given, and the text as received.
type unit struct {
	UCUM string
	MDC  string
	Text string
}

// parseUnit reads OBX-6: an MDC dimension code (MDC_DIM_...) mapped to
// UCUM, a UCUM code, or free text normalised by codes.NormalizeUnit.
func parseUnit(c hl7v2.CWE) unit {
	var u unit
	for _, t := range [][3]string{{c.Identifier, c.Text, c.CodingSystem}, {c.AltIdentifier, c.AltText, c.AltCodingSystem}} {
		if t[0] == "" && strings.EqualFold(t[2], "MDC") {
			// Some devices send the reference id alone: ^MDC_DIM_MMHG^MDC.
			if term, ok := codes.LookupRefID(t[1]); ok && term.Unit != nil {
				t[0] = strconv.FormatUint(uint64(term.Code), 10)
			}
		}
		if t[0] == "" {
			continue
		}
		if u.Text == "" {
			u.Text = t[0]
			if t[1] != "" {
				u.Text = t[1]
			}
		}
		switch strings.ToUpper(t[2]) {
		case "MDC":
			if u.MDC == "" {
				u.MDC = t[0]
			}
			if term, ok := lookupMDCUnit(t[0]); ok && u.UCUM == "" {
				u.UCUM = term
			}
		case "UCUM":
			if u.UCUM == "" {
				u.UCUM = t[0]
			}
		}
	}
	if u.UCUM == "" && c.Identifier != "" && !strings.EqualFold(c.CodingSystem, "MDC") {
		if n, ok := normalizeUnit(c.Identifier); ok {
			u.UCUM = n
		}
	}
	return u
}

// quantity builds a Quantity (value as exact decimal) in unit u.
func quantity(value string, u unit) map[string]any {
	q := map[string]any{"value": json.Number(value)}
	switch {
	case u.UCUM != "":
		q["system"] = "http://unitsofmeasure.org"
		q["code"] = u.UCUM
		switch known, ok := codes.UnitByUCUM(u.UCUM); {
		case u.Text != "" && !strings.HasPrefix(u.Text, "MDC_"):
			q["unit"] = u.Text
		case ok:
			q["unit"] = known.Display
		default:
			q["unit"] = u.UCUM
		}
	case u.Text != "":
		q["unit"] = u.Text
	}
	return q
}

func jsonNumber(s string) json.Number { return json.Number(s) }
