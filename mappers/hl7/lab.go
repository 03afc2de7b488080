package hl7map

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/vigil-health/vigil/hl7v2"
)

var laboratoryCategory = map[string]any{
	"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory", "display": "Laboratory"}},
	"text":   "Laboratory",
}

// orderIdentifier maps an EI order number (OBR-2 placer, OBR-3 filler) to
// an identifier typed PLAC or FILL.
func (x *mapper) orderIdentifier(ei hl7v2.EI, typ string) (map[string]any, string) {
	if ei.EntityIdentifier == "" {
		return nil, ""
	}
	sys := x.system(hl7v2.HD{NamespaceID: ei.NamespaceID, UniversalID: ei.UniversalID, UniversalIDType: ei.UniversalIDType})
	id := map[string]any{"value": ei.EntityIdentifier, "type": v2Concept("0203", typ)}
	if sys != "" {
		id["system"] = sys
	}
	return id, sys
}

// mapLabGroup maps an OBR and its OBX rows to Observations and a
// DiagnosticReport.
func (x *mapper) mapLabGroup(g *obrGroup) {
	if g.obr == nil {
		x.fail(problem(hl7v2.CodeSegmentSequence, loc(g.rows[0].seg, 0), ErrMissing, "OBX before any OBR"))
		return
	}
	obr := g.obr
	var ids []any
	matchSys, matchVal := "", ""
	for _, f := range []struct {
		field int
		typ   string
	}{{3, "FILL"}, {2, "PLAC"}} {
		ei := obr.Field(f.field).EI()
		if id, sys := x.orderIdentifier(ei, f.typ); id != nil {
			ids = append(ids, id)
			if matchVal == "" {
				matchSys, matchVal = sys, ei.EntityIdentifier
			}
		}
	}
	if matchVal == "" {
		x.fail(problem(hl7v2.CodeRequiredFieldMissing, loc(obr, 3), ErrMissing, "a placer (OBR-2) or filler (OBR-3) order number is required"))
		return
	}
	code := concept(obr.Field(4).CWE())
	if code == nil {
		x.fail(problem(hl7v2.CodeRequiredFieldMissing, loc(obr, 4), ErrMissing, "universal service identifier (OBR-4) is required"))
		return
	}
	var effective, issued string
	if !obr.Field(7).IsEmpty() {
		if d, ok := x.ts(obr, 7); ok {
			effective = x.dateTime(d)
		}
	}
	if !obr.Field(22).IsEmpty() {
		if d, ok := x.ts(obr, 22); ok {
			issued = x.instantString(d)
		}
	}
	status := "unknown"
	if v := strings.ToUpper(obr.Field(25).Value()); v != "" {
		st, ok := reportStatus[v]
		if !ok {
			x.fail(problem(hl7v2.CodeTableValueNotFound, loc(obr, 25), ErrInvalid, "result status not in table 0123"))
			return
		}
		status = st
	}

	orderKey := matchSys + "|" + matchVal
	seen := map[string]int{}
	var results []any
	for _, row := range g.rows {
		s := row.seg
		if s.Field(5).IsEmpty() || s.Field(5).IsNull() {
			continue // no result in this row
		}
		obs := map[string]any{"resourceType": "Observation", "category": []any{laboratoryCategory}}
		st, ok := x.status(s)
		if !ok {
			continue
		}
		obs["status"] = st
		c := concept(s.Field(3).CWE())
		if c == nil {
			x.fail(problem(hl7v2.CodeRequiredFieldMissing, loc(s, 3), ErrMissing, "observation identifier (OBX-3) is required"))
			continue
		}
		obs["code"] = c
		if !x.setValue(obs, s, c) {
			continue
		}
		if x.patientURL != "" {
			obs["subject"] = map[string]any{"reference": x.patientURL}
		}
		eff := effective
		if !s.Field(14).IsEmpty() {
			d, ok := x.ts(s, 14)
			if !ok {
				continue
			}
			eff = x.dateTime(d)
		}
		if eff != "" {
			obs["effectiveDateTime"] = eff
		}
		if issued != "" {
			obs["issued"] = issued
		}
		x.addDetails(obs, row, parseUnit(s.Field(6).CWE()))

		cw := s.Field(3).CWE()
		key := orderKey + "\x00" + cw.CodingSystem + "|" + cw.Identifier + "\x00" + s.Field(4).Value()
		seen[key]++
		if n := seen[key]; n > 1 {
			key += "\x00" + strings.Repeat("+", n)
		}
		sum := sha256.Sum256([]byte("vigil-hl7-obx-v1\x00" + key))
		idv := hex.EncodeToString(sum[:])
		obs["identifier"] = []any{map[string]any{"system": ObservationIdentifierSystem, "value": idv}}
		url := x.fullURL("Observation", idv)
		results = append(results, map[string]any{"reference": url})
		x.add(Entry{FullURL: url, Resource: obs, IfNoneExist: identifierQuery(ObservationIdentifierSystem, idv), UpdateIfExists: true})
	}

	dr := map[string]any{
		"resourceType": "DiagnosticReport",
		"identifier":   ids,
		"status":       status,
		"code":         code,
	}
	cat := "LAB"
	if v := obr.Field(24).Value(); v != "" {
		cat = v
	}
	dr["category"] = []any{map[string]any{"coding": []any{map[string]any{"system": sysDiagnosticService, "code": cat}}}}
	if x.patientURL != "" {
		dr["subject"] = map[string]any{"reference": x.patientURL}
	}
	if x.encounterURL != "" {
		dr["encounter"] = map[string]any{"reference": x.encounterURL}
	}
	if effective != "" {
		dr["effectiveDateTime"] = effective
	}
	if issued != "" {
		dr["issued"] = issued
	}
	if len(results) > 0 {
		dr["result"] = results
	}
	if len(g.notes) > 0 {
		dr["conclusion"] = strings.Join(g.notes, "\n")
	}
	x.reports = append(x.reports, Entry{
		FullURL:        x.fullURL("DiagnosticReport", orderKey),
		Resource:       dr,
		IfNoneExist:    identifierQuery(matchSys, matchVal),
		UpdateIfExists: true,
	})
}
