package hl7map

import (
	"strings"

	"github.com/vigil-health/vigil/hl7v2"
)

// obrGroup is an OBR with its OBX rows and notes.
type obrGroup struct {
	obr   *hl7v2.Segment
	notes []string
	rows  []*obxRow
}

// obxRow is an OBX with the NTE notes that follow it.
type obxRow struct {
	seg   *hl7v2.Segment
	notes []string
}

// groups splits the message into its OBR groups; OBX rows before any OBR
// form a group without one.
func (x *mapper) groups() []*obrGroup {
	var out []*obrGroup
	var cur *obrGroup
	var last *obxRow
	for _, s := range x.m.Segments() {
		switch s.Name() {
		case "OBR":
			cur = &obrGroup{obr: s}
			out = append(out, cur)
			last = nil
		case "OBX":
			if cur == nil {
				cur = &obrGroup{}
				out = append(out, cur)
			}
			last = &obxRow{seg: s}
			cur.rows = append(cur.rows, last)
		case "NTE":
			text := noteText(s)
			if text == "" {
				continue
			}
			switch {
			case last != nil:
				last.notes = append(last.notes, text)
			case cur != nil:
				cur.notes = append(cur.notes, text)
			}
		}
	}
	return out
}

// noteText is the comment of an NTE (NTE-3, repetitions on their own lines).
func noteText(s *hl7v2.Segment) string {
	var lines []string
	for _, r := range s.Field(3).Reps() {
		lines = append(lines, r.Value())
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}

// isDeviceReport reports whether an ORU^R01 is a device observation report:
// the IHE PCD-01 profile in MSH-21, or MDC codes in OBX-3.
func (x *mapper) isDeviceReport() bool {
	if x.m.HasProfile("IHE_PCD_001") {
		return true
	}
	for _, s := range x.m.SegmentsNamed("OBX") {
		c := s.Field(3).CWE()
		if strings.EqualFold(c.CodingSystem, "MDC") || strings.EqualFold(c.AltCodingSystem, "MDC") {
			return true
		}
	}
	return false
}

// mapORU maps an ORU^R01: Patient, Encounter, then the device or laboratory
// results.
func (x *mapper) mapORU() {
	pid := x.m.Segment("PID")
	if pid == nil {
		x.fail(problem(hl7v2.CodeSegmentSequence, hl7v2.Location{Segment: "PID"}, ErrMissing, "PID segment is required"))
		return
	}
	x.mapPatient(pid, false)
	x.mapEncounter(x.m.Segment("PV1"), "", nil, false)
	groups := x.groups()
	if len(x.m.SegmentsNamed("OBX")) == 0 {
		x.fail(problem(hl7v2.CodeSegmentSequence, hl7v2.Location{Segment: "OBX"}, ErrMissing, "no OBX segment"))
		return
	}
	if x.isDeviceReport() {
		x.mapDeviceReport(groups)
		return
	}
	for _, g := range groups {
		x.mapLabGroup(g)
	}
}
