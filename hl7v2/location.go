package hl7v2

import (
	"fmt"
	"strconv"
	"strings"
)

// Location addresses a place in a message, as in "PID-3(2).1.2" or "OBX(2)-5": segment ID,
// occurrence of that segment (1-based), field, field repetition, component and subcomponent.
// A zero number means "not given"; Get-style reads then take the first.
type Location struct {
	Segment      string
	SegmentIndex int // occurrence among segments with the same ID; 0 or 1 is the first
	Field        int
	Rep          int
	Comp         int
	Sub          int
}

// ParseLocation parses a location string: SEG[(n)][-field[(rep)][.comp[.sub]]].
func ParseLocation(s string) (Location, error) {
	var l Location
	bad := func(why string) (Location, error) {
		return Location{}, fmt.Errorf("hl7v2: location %q: %s", s, why)
	}
	if len(s) < 3 || !validSegmentID(s[:3]) {
		return bad("segment ID must be three upper-case letters or digits")
	}
	l.Segment = s[:3]
	rest := s[3:]
	var n int
	var ok bool
	if strings.HasPrefix(rest, "(") {
		if n, rest, ok = parenNumber(rest); !ok {
			return bad("bad segment occurrence")
		}
		l.SegmentIndex = n
	}
	if rest == "" {
		return l, nil
	}
	if rest[0] != '-' {
		return bad("expected '-' after the segment ID")
	}
	rest = rest[1:]
	if l.Field, rest, ok = leadingNumber(rest); !ok {
		return bad("bad field number")
	}
	if strings.HasPrefix(rest, "(") {
		if l.Rep, rest, ok = parenNumber(rest); !ok {
			return bad("bad repetition")
		}
	}
	if strings.HasPrefix(rest, ".") {
		if l.Comp, rest, ok = leadingNumber(rest[1:]); !ok {
			return bad("bad component number")
		}
		if strings.HasPrefix(rest, ".") {
			if l.Sub, rest, ok = leadingNumber(rest[1:]); !ok {
				return bad("bad subcomponent number")
			}
		}
	}
	if rest != "" {
		return bad("unexpected trailing text")
	}
	return l, nil
}

// leadingNumber reads a positive decimal number at the start of s (at most 6 digits).
func leadingNumber(s string) (int, string, bool) {
	i := 0
	for i < len(s) && i < 7 && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 || i > 6 {
		return 0, s, false
	}
	n, _ := strconv.Atoi(s[:i])
	if n < 1 {
		return 0, s, false
	}
	return n, s[i:], true
}

func parenNumber(s string) (int, string, bool) {
	n, rest, ok := leadingNumber(s[1:])
	if !ok || !strings.HasPrefix(rest, ")") {
		return 0, s, false
	}
	return n, rest[1:], true
}

// String formats l as a location string, such as "OBX(2)-5.1".
func (l Location) String() string {
	if l.Segment == "" {
		return ""
	}
	var b strings.Builder
	b.WriteString(l.Segment)
	if l.SegmentIndex > 1 {
		fmt.Fprintf(&b, "(%d)", l.SegmentIndex)
	}
	if l.Field == 0 {
		return b.String()
	}
	fmt.Fprintf(&b, "-%d", l.Field)
	if l.Rep > 1 {
		fmt.Fprintf(&b, "(%d)", l.Rep)
	}
	if l.Comp > 0 {
		fmt.Fprintf(&b, ".%d", l.Comp)
		if l.Sub > 0 {
			fmt.Fprintf(&b, ".%d", l.Sub)
		}
	}
	return b.String()
}

// erl formats l as an ERL data type (ERR-2): SEG^seq^field^rep^comp^sub, without trailing
// empty parts. A level given below an unnumbered one numbers it 1.
func (l Location) erl(d Delimiters) string {
	if l.Segment == "" {
		return ""
	}
	parts := []int{max(l.SegmentIndex, 1), l.Field, l.Rep, l.Comp, l.Sub}
	last := 0
	for i := range parts {
		if parts[i] > 0 {
			last = i
		}
	}
	parts = parts[:last+1]
	for i := range parts {
		if parts[i] == 0 {
			parts[i] = 1
		}
	}
	var b strings.Builder
	b.WriteString(l.Segment)
	for _, p := range parts {
		b.WriteByte(d.Component)
		b.WriteString(strconv.Itoa(p))
	}
	return b.String()
}

func validSegmentID(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
