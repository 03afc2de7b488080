package hl7v2

import (
	"strings"

	"golang.org/x/text/encoding"
)

// Message is a parsed or built HL7 v2 message. It keeps its delimiters, its character set and
// the raw (escaped) text of every field. A Message is not safe for concurrent modification;
// concurrent reads are safe.
type Message struct {
	delims  Delimiters
	segs    []*Segment
	enc     encoding.Encoding // nil means UTF-8
	charset string            // MSH-18 as declared
}

// Segment is one segment of a message. Field 0 is the segment ID; for header segments (MSH,
// FHS, BHS) field 1 is the field separator and field 2 the encoding characters.
type Segment struct {
	m      *Message
	name   string
	fields []string // raw escaped text; fields[0] is the segment ID
	index  int      // occurrence among segments with the same ID, 1-based
}

// Delimiters returns the message's delimiters.
func (m *Message) Delimiters() Delimiters { return m.delims }

// Charset returns the character set declared in MSH-18 ("" when none was declared).
func (m *Message) Charset() string { return m.charset }

// Segments returns the message's segments in order. The slice must not be modified.
func (m *Message) Segments() []*Segment { return m.segs }

// Header returns the MSH segment.
func (m *Message) Header() *Segment {
	if len(m.segs) == 0 {
		return nil
	}
	return m.segs[0]
}

// Segment returns the first segment with the given ID, or nil.
func (m *Message) Segment(id string) *Segment { return m.SegmentN(id, 1) }

// SegmentN returns the n-th (1-based) segment with the given ID, or nil.
func (m *Message) SegmentN(id string, n int) *Segment {
	if n < 1 {
		n = 1
	}
	for _, s := range m.segs {
		if s.name == id {
			if n == 1 {
				return s
			}
			n--
		}
	}
	return nil
}

// SegmentsNamed returns every segment with the given ID, in order.
func (m *Message) SegmentsNamed(id string) []*Segment {
	var out []*Segment
	for _, s := range m.segs {
		if s.name == id {
			out = append(out, s)
		}
	}
	return out
}

// Get returns the decoded value at a location string such as "PID-3(2).1" or "OBX(2)-5". As in
// HAPI's Terser, a location that stops above the subcomponent level reads the first repetition,
// component and subcomponent below it. It returns "" for an absent value, an explicit null or
// an invalid location.
func (m *Message) Get(loc string) string {
	l, err := ParseLocation(loc)
	if err != nil {
		return ""
	}
	return m.At(l).Value()
}

// GetRaw returns the raw, still escaped text at a location string, with its delimiters: for
// "PID-5" the whole field, all repetitions and components included.
func (m *Message) GetRaw(loc string) string {
	l, err := ParseLocation(loc)
	if err != nil {
		return ""
	}
	return m.At(l).raw
}

// IsNull reports whether the value at a location string is the explicit null `""`.
func (m *Message) IsNull(loc string) bool {
	l, err := ParseLocation(loc)
	if err != nil {
		return false
	}
	return m.At(l).raw == `""`
}

// At returns the value at l, at the deepest level that l names.
func (m *Message) At(l Location) Value {
	seg := m.SegmentN(l.Segment, l.SegmentIndex)
	if seg == nil || l.Field == 0 {
		return Value{node{m: m, loc: l}}
	}
	n := seg.Field(l.Field).node
	if l.Rep == 0 && l.Comp == 0 && l.Sub == 0 {
		return Value{n}
	}
	n = Field{n}.Rep(max(l.Rep, 1)).node
	if l.Comp == 0 && l.Sub == 0 {
		return Value{n}
	}
	n = Repetition{n}.Component(max(l.Comp, 1)).node
	if l.Sub == 0 {
		return Value{n}
	}
	return Value{Component{n}.Sub(l.Sub).node}
}

// MessageType returns MSH-9.
func (m *Message) MessageType() MSG { return m.Header().Field(9).MSG() }

// ControlID returns MSH-10, the message control ID.
func (m *Message) ControlID() string { return m.Header().Field(10).Value() }

// Version returns MSH-12.1, the version ID.
func (m *Message) Version() string { return m.Header().Field(12).Value() }

// HasProfile reports whether a repetition of MSH-21 (message profile identifier) has the given
// entity identifier, such as "IHE_PCD_001".
func (m *Message) HasProfile(id string) bool {
	for _, r := range m.Header().Field(21).Reps() {
		if r.Component(1).Value() == id {
			return true
		}
	}
	return false
}

// Name returns the segment ID, such as "PID".
func (s *Segment) Name() string { return s.name }

// Index returns the occurrence of this segment among segments with the same ID (1-based).
func (s *Segment) Index() int { return s.index }

// NumFields returns the number of the last field present (trailing empty fields count).
func (s *Segment) NumFields() int { return len(s.fields) - 1 }

// isHeader reports whether field 1 and 2 are delimiters rather than data.
func (s *Segment) isHeader() bool { return isHeaderID(s.name) }

func isHeaderID(id string) bool { return id == "MSH" || id == "FHS" || id == "BHS" }

// Field returns field i (1-based). A missing field is empty.
func (s *Segment) Field(i int) Field {
	if s == nil {
		return Field{}
	}
	n := node{m: s.m, loc: Location{Segment: s.name, SegmentIndex: s.index, Field: i}, level: levelField}
	if i >= 1 && i < len(s.fields) {
		n.raw = s.fields[i]
		n.lit = i <= 2 && s.isHeader()
	}
	return Field{n}
}

// Get returns the decoded value at a location relative to the segment, such as "3(2).1".
func (s *Segment) Get(path string) string {
	if s == nil {
		return ""
	}
	l, err := ParseLocation(s.name + "-" + path)
	if err != nil {
		return ""
	}
	l.SegmentIndex = s.index
	return s.m.At(l).Value()
}

const (
	levelField = iota + 1
	levelRep
	levelComp
	levelSub
)

// node is the raw text of one element and what is needed to split and decode it.
type node struct {
	raw   string
	m     *Message
	loc   Location
	lit   bool // MSH-1 and MSH-2: never split nor decoded
	level int8
}

// Value is an element of any level, as returned by Message.At.
type Value struct{ node }

// Field is one field of a segment, with its repetitions.
type Field struct{ node }

// Repetition is one repetition of a field.
type Repetition struct{ node }

// Component is one component of a repetition.
type Component struct{ node }

// Subcomponent is one subcomponent of a component.
type Subcomponent struct{ node }

func (n node) delims() *Delimiters {
	if n.m == nil {
		return &DefaultDelimiters
	}
	return &n.m.delims
}

func (n node) decode(s string) string {
	if n.lit {
		return s
	}
	var enc encoding.Encoding
	if n.m != nil {
		enc = n.m.enc
	}
	return decodeEscapes(s, n.delims(), enc)
}

// value decodes the first subcomponent below n.
func (n node) value() string {
	if n.lit {
		return n.raw
	}
	d := n.delims()
	s := n.raw
	if n.level <= levelField {
		s = piece(s, d.Repetition, 1)
	}
	if n.level <= levelRep {
		s = piece(s, d.Component, 1)
	}
	if n.level <= levelComp {
		s = piece(s, d.Subcomponent, 1)
	}
	if s == `""` {
		return ""
	}
	return n.decode(s)
}

func (n node) child(sep byte, i int, level int8) node {
	c := node{m: n.m, loc: n.loc, lit: n.lit, level: level}
	switch level {
	case levelRep:
		c.loc.Rep = i
	case levelComp:
		c.loc.Comp = i
	case levelSub:
		c.loc.Sub = i
	}
	if n.lit {
		if i == 1 {
			c.raw = n.raw
		}
		return c
	}
	c.raw = piece(n.raw, sep, i)
	return c
}

func (n node) count(sep byte) int {
	if n.raw == "" {
		return 0
	}
	if n.lit {
		return 1
	}
	return strings.Count(n.raw, string(sep)) + 1
}

// String returns the raw, escaped text of the element, delimiters included.
func (n node) String() string { return n.raw }

// IsEmpty reports whether the element is absent or empty (but not the null `""`).
func (n node) IsEmpty() bool { return n.raw == "" }

// IsNull reports whether the element is the explicit null `""`.
func (n node) IsNull() bool { return n.raw == `""` }

// Value returns the decoded text of the first subcomponent of the element; "" for the null.
func (n node) Value() string { return n.value() }

// Location returns where the element is.
func (n node) Location() Location { return n.loc }

// NumReps returns the number of repetitions (0 for an empty field).
func (f Field) NumReps() int { return f.count(f.delims().Repetition) }

// Rep returns repetition i (1-based).
func (f Field) Rep(i int) Repetition {
	return Repetition{f.child(f.delims().Repetition, i, levelRep)}
}

// Reps returns every repetition of the field (none for an empty field).
func (f Field) Reps() []Repetition {
	n := f.NumReps()
	out := make([]Repetition, n)
	for i := range out {
		out[i] = f.Rep(i + 1)
	}
	return out
}

// Component returns component i of the first repetition.
func (f Field) Component(i int) Component { return f.Rep(1).Component(i) }

// NumComponents returns the number of components (0 when empty).
func (r Repetition) NumComponents() int { return r.count(r.delims().Component) }

// Component returns component i (1-based).
func (r Repetition) Component(i int) Component {
	return Component{r.child(r.delims().Component, i, levelComp)}
}

// Components returns every component of the repetition.
func (r Repetition) Components() []Component {
	out := make([]Component, r.NumComponents())
	for i := range out {
		out[i] = r.Component(i + 1)
	}
	return out
}

// NumSubcomponents returns the number of subcomponents (0 when empty).
func (c Component) NumSubcomponents() int { return c.count(c.delims().Subcomponent) }

// Sub returns subcomponent i (1-based).
func (c Component) Sub(i int) Subcomponent {
	return Subcomponent{c.child(c.delims().Subcomponent, i, levelSub)}
}

// Subs returns every subcomponent of the component.
func (c Component) Subs() []Subcomponent {
	out := make([]Subcomponent, c.NumSubcomponents())
	for i := range out {
		out[i] = c.Sub(i + 1)
	}
	return out
}

// piece returns the n-th (1-based) part of s split on sep, or "" when there is none.
func piece(s string, sep byte, n int) string {
	if n < 1 {
		return ""
	}
	for ; n > 1; n-- {
		j := strings.IndexByte(s, sep)
		if j < 0 {
			return ""
		}
		s = s[j+1:]
	}
	if j := strings.IndexByte(s, sep); j >= 0 {
		return s[:j]
	}
	return s
}
