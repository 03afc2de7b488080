package hl7v2

import (
	"errors"
	"fmt"
	"strings"
)

// New returns a message holding an MSH segment with MSH-1 and MSH-2 set from d. Use Set to
// fill it.
func New(d Delimiters) (*Message, error) {
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("hl7v2: new message: %w", err)
	}
	m := &Message{delims: d}
	m.segs = []*Segment{{m: m, name: "MSH", fields: []string{"MSH", string([]byte{d.Field}), d.EncodingCharacters()}, index: 1}}
	return m, nil
}

// SetCharset sets MSH-18 and the character set Encode writes, from HL7 table 0211 ("UNICODE
// UTF-8", "8859/1" ... "8859/15").
func (m *Message) SetCharset(name string) error {
	enc, ok := lookupCharset(name)
	if !ok {
		return newError(CodeTableValueNotFound, Location{Segment: "MSH", Field: 18}, "unsupported character set (table 0211)")
	}
	if err := m.Set("MSH-18", name); err != nil {
		return err
	}
	m.enc, m.charset = enc, name
	return nil
}

// AddSegment appends a segment with the given ID and no fields.
func (m *Message) AddSegment(id string) (*Segment, error) {
	if !validSegmentID(id) {
		return nil, fmt.Errorf("hl7v2: add segment: invalid segment ID %q", id)
	}
	if id == "MSH" && len(m.segs) > 0 {
		return nil, errors.New("hl7v2: add segment: a message has one MSH segment")
	}
	n := 1
	for _, s := range m.segs {
		if s.name == id {
			n++
		}
	}
	s := &Segment{m: m, name: id, fields: []string{id}, index: n}
	m.segs = append(m.segs, s)
	return s, nil
}

// Set sets the value at a location string ("PID-5.1", "OBX(2)-5", "PID-3(2).4.1"), escaping
// delimiters and control characters in value. Missing fields, repetitions and components are
// added empty; a segment one past the last of its ID is appended. A value of `""` sets the
// explicit null.
func (m *Message) Set(loc, value string) error {
	return m.SetRaw(loc, escapeText(value, &m.delims))
}

// SetNull sets the explicit null `""` at a location string.
func (m *Message) SetNull(loc string) error { return m.SetRaw(loc, `""`) }

// SetRaw sets already escaped text at a location string. raw may hold the delimiters of the
// levels below the location (for example "Doe^John" at "PID-5") but no segment terminator.
func (m *Message) SetRaw(loc, raw string) error {
	l, err := ParseLocation(loc)
	if err != nil {
		return err
	}
	return m.setAt(l, raw)
}

// Set sets the value at a location relative to the segment, such as "3(2).1", escaping it.
func (s *Segment) Set(path, value string) error {
	return s.SetRaw(path, escapeText(value, &s.m.delims))
}

// SetRaw sets already escaped text at a location relative to the segment, such as "5".
func (s *Segment) SetRaw(path, raw string) error {
	l, err := ParseLocation(s.name + "-" + path)
	if err != nil {
		return err
	}
	return s.set(l, raw)
}

func (m *Message) setAt(l Location, raw string) error {
	seg := m.SegmentN(l.Segment, l.SegmentIndex)
	if seg == nil {
		have := len(m.SegmentsNamed(l.Segment))
		if max(l.SegmentIndex, 1) != have+1 {
			return fmt.Errorf("hl7v2: set %s: no such segment to set or append", l)
		}
		var err error
		if seg, err = m.AddSegment(l.Segment); err != nil {
			return err
		}
	}
	return seg.set(l, raw)
}

func (s *Segment) set(l Location, raw string) error {
	if l.Field < 1 {
		return fmt.Errorf("hl7v2: set %s: the location must name a field", l)
	}
	if s.isHeader() && l.Field <= 2 {
		return fmt.Errorf("hl7v2: set %s: the delimiters are fixed when the message is made", l)
	}
	if strings.ContainsAny(raw, "\r\n") {
		return fmt.Errorf("hl7v2: set %s: value holds a segment terminator", l)
	}
	d := &s.m.delims
	for len(s.fields) <= l.Field {
		s.fields = append(s.fields, "")
	}
	f := s.fields[l.Field]
	rep, comp := max(l.Rep, 1), max(l.Comp, 1)
	val := raw
	if l.Sub > 0 {
		c := piece(piece(f, d.Repetition, rep), d.Component, comp)
		val = setPiece(c, d.Subcomponent, l.Sub, val)
	}
	if l.Comp > 0 || l.Sub > 0 {
		val = setPiece(piece(f, d.Repetition, rep), d.Component, comp, val)
	}
	if l.Rep > 0 || l.Comp > 0 || l.Sub > 0 {
		val = setPiece(f, d.Repetition, rep, val)
	}
	s.fields[l.Field] = val
	return nil
}

// setPiece replaces the n-th part of s split on sep, adding empty parts as needed.
func setPiece(s string, sep byte, n int, val string) string {
	parts := strings.Split(s, string(sep))
	for len(parts) < n {
		parts = append(parts, "")
	}
	parts[n-1] = val
	return strings.Join(parts, string(sep))
}
